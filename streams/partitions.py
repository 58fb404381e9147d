"""The one home of the topic-partition type, free of the Kafka client; :mod:`streams.client` (the
only module that imports kafka) re-exports it, and the rest of ``streams/`` names it from there."""

from __future__ import annotations

from typing import NamedTuple


class TopicPartition(NamedTuple):
    """A topic partition; equal (and hashing equal) to kafka-python's namedtuple of the same."""

    topic: str
    partition: int
