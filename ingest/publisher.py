"""Where a received object goes: the :class:`Publisher` protocol the Storage SCP talks to.

The SCP answers Success only after :meth:`Publisher.publish` returned, i.e. after the broker
acknowledged the record; :class:`PublishFailed` (broker down, timeout, record refused) makes it
answer Out of Resources so that the sender keeps the object and retries; :class:`RecordTooLarge`
(an object larger than the topic takes, which no retry cures) makes it answer with a permanent
failure instead. The Kafka implementation is :mod:`ingest.kafka_publisher`; tests give the SCP
their own publisher.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from streams.errors import BrokerError

Headers = Sequence[tuple[str, bytes]]


class PublishFailed(BrokerError):
    """The record was not acknowledged; ``reason`` says why (for the log and the DICOM status's
    Error Comment, which ``comment`` may shorten)."""

    def __init__(self, reason: str, *, comment: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.comment = comment or reason


class RecordTooLarge(PublishFailed):
    """The object is larger than the topic takes (``limit``, its ``max.message.bytes``):
    refused before it was sent, or (``by_broker``) refused by the broker after the topic's limit
    was lowered below what the listener had read. Resending it cannot succeed until the limit
    is raised."""

    def __init__(self, size: int, limit: int, topic: str, *, by_broker: bool = False) -> None:
        self.size = size
        self.limit = limit
        self.topic = topic
        self.by_broker = by_broker
        comment = f"too large: {size} bytes, topic limit {limit} bytes"
        if by_broker:
            reason = (
                f"{comment}: refused by Kafka (MESSAGE_TOO_LARGE); the max.message.bytes of "
                f"{topic} was lowered under the running listener, which now refuses larger "
                "objects before sending"
            )
        else:
            reason = (
                f"{comment} (max.message.bytes of {topic}; lowdose creates the topic with "
                "rdsr_max_message_bytes): not sent"
            )
        super().__init__(reason, comment=comment)


class Publisher(Protocol):
    """Publishes one DICOM object to the dose report topic and waits for the acknowledgement."""

    @property
    def destination(self) -> str:
        """Where objects go (a topic name), for the log."""
        ...

    def publish(self, key: bytes, value: bytes, headers: Headers) -> None:
        """Return once the record is durably stored; raise :class:`PublishFailed` otherwise.

        Called from several association threads at once: implementations are thread-safe.
        """
        ...

    def close(self) -> None: ...
