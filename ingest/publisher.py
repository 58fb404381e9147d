"""Where a received object goes: the :class:`Publisher` protocol the Storage SCP talks to.

The SCP answers Success only after :meth:`Publisher.publish` returned, i.e. after the broker
acknowledged the record; :class:`PublishFailed` (broker down, timeout, record refused) makes it
answer Out of Resources so that the sender keeps the object and retries. The Kafka
implementation is :mod:`ingest.kafka_publisher`; tests give the SCP their own publisher.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from streams.errors import BrokerError

Headers = Sequence[tuple[str, bytes]]


class PublishFailed(BrokerError):
    """The record was not acknowledged; ``reason`` says why (for the log and the DICOM status)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
