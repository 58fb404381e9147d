"""The one home of the topic-partition type, free of the Kafka client (the store's sink and the
stream service both name partitions; only :mod:`streams.client` imports kafka)."""

from __future__ import annotations

from typing import NamedTuple


class TopicPartition(NamedTuple):
    """A topic partition; equal (and hashing equal) to kafka-python's namedtuple of the same."""

    topic: str
    partition: int
