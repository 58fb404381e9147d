"""What happens to a message that cannot be decoded or assessed: the bad-message policy.

The service is given one policy object. The default, :class:`DeadLetterPolicy`, sends the
original bytes (key and headers kept) to ``lowdose.dlq.v1`` with headers naming the error, the
source topic, partition and offset, and lets the service keep going. :class:`SkipPolicy` only logs;
:class:`StopPolicy` stops the service (for feeds where a bad message means a broken scanner link).
The DLQ record is sent before the batch's offsets are committed, so it is at-least-once too.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from optimiser.errors import LowdoseError

log = logging.getLogger("lowdose.streams.dlq")

HEADER_ERROR_TYPE = "lowdose.error.type"
HEADER_ERROR_MESSAGE = "lowdose.error.message"
HEADER_SOURCE_TOPIC = "lowdose.source.topic"
HEADER_SOURCE_PARTITION = "lowdose.source.partition"
HEADER_SOURCE_OFFSET = "lowdose.source.offset"
HEADER_STAGE = "lowdose.error.stage"  # decode | assess

# Long messages (a pydantic error list) are cut: headers are not for documents.
_MAX_MESSAGE = 2000


class BadMessage(LowdoseError):
    """Raised by :class:`StopPolicy`: the service stops and does not commit the batch."""


class BadMessagePolicy(Protocol):
    def handle(self, record: Any, error: Exception, stage: str) -> None:
        """Deal with ``record`` (a kafka-python ConsumerRecord) that failed with ``error``."""
        ...


def dlq_headers(record: Any, error: Exception, stage: str) -> list[tuple[str, bytes]]:
    """Headers of a dead-letter record: original headers first, then why and where from."""
    original = [(k, v) for k, v in (record.headers or []) if not k.startswith("lowdose.error.")]
    message = str(error)[:_MAX_MESSAGE]
    return [
        *original,
        (HEADER_ERROR_TYPE, type(error).__name__.encode()),
        (HEADER_ERROR_MESSAGE, message.encode("utf-8", "replace")),
        (HEADER_STAGE, stage.encode()),
        (HEADER_SOURCE_TOPIC, str(record.topic).encode()),
        (HEADER_SOURCE_PARTITION, str(record.partition).encode()),
        (HEADER_SOURCE_OFFSET, str(record.offset).encode()),
    ]


def describe(error: Exception) -> str:
    """One line for logs: the error type and, for lowdose errors, their message."""
    if isinstance(error, LowdoseError):
        return f"{type(error).__name__}: {error}"
    return type(error).__name__


class DeadLetterPolicy:
    def __init__(self, producer: Any, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.count = 0

    def handle(self, record: Any, error: Exception, stage: str) -> None:
        self.producer.send(
            self.topic,
            key=record.key,
            value=record.value,
            headers=dlq_headers(record, error, stage),
        )
        self.count += 1
        log.warning(
            "dead-lettered message",
            extra={
                "event": "dead_letter",
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "stage": stage,
                "error": describe(error)[:300],
            },
        )


class SkipPolicy:
    def __init__(self) -> None:
        self.count = 0

    def handle(self, record: Any, error: Exception, stage: str) -> None:
        self.count += 1
        log.warning(
            "skipped bad message",
            extra={
                "event": "skipped",
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error": describe(error)[:300],
            },
        )


class StopPolicy:
    def handle(self, record: Any, error: Exception, stage: str) -> None:
        raise BadMessage(
            f"{record.topic}/{record.partition}@{record.offset}: {describe(error)}; the "
            "service stops without committing (bad-message policy 'stop')"
        ) from error
