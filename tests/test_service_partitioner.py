"""The service's key-hash-caching partitioner picks exactly the partition Kafka's default does."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import DefaultPartitioner

from streams.service import key_hash_partitioner


class _Cluster:
    def __init__(self, partitions: set[int]) -> None:
        self.partitions = partitions

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions if topic == "t" else None

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions


@given(
    keys=st.lists(st.binary(min_size=0, max_size=80), min_size=1, max_size=30),
    n_partitions=st.integers(min_value=1, max_value=64),
)
def test_same_partition_as_the_default_partitioner(keys: list[bytes], n_partitions: int) -> None:
    cluster: Any = _Cluster(set(range(n_partitions)))
    cached = key_hash_partitioner(max_keys=7)  # small: the cache is cleared along the way
    default = DefaultPartitioner()
    for key in keys + keys:  # every key twice: the second lookup hits the cache
        want = default.partition("t", key, key, None, None, cluster)
        assert cached.partition("t", key, key, None, None, cluster) == want


def test_partition_count_change_is_followed() -> None:
    # Only the hash is remembered, not the partition: a topic grown from 3 to 6 partitions
    # gets the default's choice for 6.
    cached = key_hash_partitioner()
    default = DefaultPartitioner()
    key = b"2.25.1234567890"
    small: Any = _Cluster({0, 1, 2})
    large: Any = _Cluster(set(range(6)))
    assert cached.partition("t", key, key, None, None, small) == default.partition(
        "t", key, key, None, None, small
    )
    assert cached.partition("t", key, key, None, None, large) == default.partition(
        "t", key, key, None, None, large
    )


def test_unknown_topic_fails_as_the_default_does() -> None:
    cached = key_hash_partitioner()
    cluster: Any = _Cluster({0})
    try:
        cached.partition("other", b"k", b"k", None, None, cluster)
    except ValueError as exc:
        assert "other" in str(exc)
    else:
        raise AssertionError("an unknown topic must raise ValueError like DefaultPartitioner")
