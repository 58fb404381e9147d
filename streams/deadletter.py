"""What happens to a message that cannot be decoded or assessed: the bad-message policy.

The service is given one policy object. The default, :class:`DeadLetterPolicy`, sends the
original bytes (key and headers kept) to ``lowdose.dlq.v1`` with headers naming the error, the
source topic, partition and offset, and lets the service keep going. :class:`SkipPolicy` only logs;
:class:`StopPolicy` stops the service (for feeds where a bad message means a broken scanner link).
The DLQ record is sent before the batch's offsets are committed, so it is at-least-once too.

A dead letter always fits (issue 10, defect 1): its size is estimated the way the producer
counts it, and when the original bytes with the reason headers would exceed the producer's
``max_request_size`` or the DLQ topic's ``max.message.bytes``, the value is cut to fit and the
headers ``lowdose.dlq.truncated``, ``lowdose.dlq.original.size`` and
``lowdose.dlq.original.sha256`` say so (the first bytes, the size and the digest identify the
original in the source topic, named by the source headers). Oversized keys and original headers
are replaced by their digest in the same way. A record the producer still refuses (a size or
type error) is sent again with no value; only a broker failure propagates (the batch is then
not committed and is redone).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from optimiser.errors import LowdoseError
from streams.metrics import METRICS
from streams.settings import StreamSettings

log = logging.getLogger("lowdose.streams.dlq")

HEADER_ERROR_TYPE = "lowdose.error.type"
HEADER_ERROR_MESSAGE = "lowdose.error.message"
HEADER_SOURCE_TOPIC = "lowdose.source.topic"
HEADER_SOURCE_PARTITION = "lowdose.source.partition"
HEADER_SOURCE_OFFSET = "lowdose.source.offset"
HEADER_STAGE = "lowdose.error.stage"  # decode | assess

HEADER_TRUNCATED = "lowdose.dlq.truncated"  # "true" when the value was cut to fit
HEADER_ORIGINAL_SIZE = "lowdose.dlq.original.size"  # bytes of the original value
HEADER_ORIGINAL_SHA256 = "lowdose.dlq.original.sha256"  # hex digest of the original value
HEADER_ORIGINAL_KEY_SHA256 = "lowdose.dlq.original.key.sha256"  # when the key was dropped
HEADER_HEADERS_DROPPED = "lowdose.dlq.original.headers.dropped"  # count, when dropped

# Long messages (a pydantic error list) are cut: headers are not for documents.
_MAX_MESSAGE = 2000
# kafka-python's default max_request_size; the broker's default message.max.bytes is 1048588.
DEFAULT_MAX_REQUEST_SIZE = 1_048_576
# Keys and original headers beyond these sizes are replaced by a digest (a study UID is at most
# 64 bytes; a content-type header a few dozen).
MAX_KEY_BYTES = 1024
MAX_ORIGINAL_HEADER_BYTES = 16 * 1024
# Room kept free below the limit: the record batch header (61 bytes), the record's varints and
# attributes (at most 21 + 5 per header), and a margin for producer versions that count more.
_OVERHEAD_BYTES = 512


class BadMessage(LowdoseError):
    """Raised by :class:`StopPolicy`: the service stops and does not commit the batch."""


class BadMessagePolicy(Protocol):
    def handle(self, record: Any, error: Exception, stage: str) -> None:
        """Deal with ``record`` (a kafka-python ConsumerRecord) that failed with ``error``."""
        ...


def _original_headers(record: Any) -> list[tuple[str, bytes]]:
    """The record's own headers (a null header value becomes empty bytes: the producer only
    takes bytes), without earlier ``lowdose.error.*`` ones."""
    out: list[tuple[str, bytes]] = []
    for k, v in record.headers or []:
        if str(k).startswith(("lowdose.error.", "lowdose.dlq.")):
            continue
        out.append((str(k), b"" if v is None else bytes(v)))
    return out


def dlq_headers(record: Any, error: Exception, stage: str) -> list[tuple[str, bytes]]:
    """Headers of a dead-letter record: original headers first, then why and where from."""
    original = _original_headers(record)
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


def record_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> int:
    """An upper bound of the bytes the producer counts for one record in its own batch
    (kafka-python's ``estimate_size_in_bytes``: batch header, record overhead, varint lengths)."""
    size = _OVERHEAD_BYTES + len(key or b"") + len(value or b"")
    for k, v in headers:
        size += len(k.encode()) + len(v) + 10
    return size


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One DLQ record, ready to send."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    truncated: bool


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).hexdigest().encode()


def dead_letter(record: Any, error: Exception, stage: str, *, limit_bytes: int) -> DeadLetter:
    """The DLQ record for ``record``, cut so that :func:`record_size` stays within the limit."""
    key = None if record.key is None else bytes(record.key)
    value = None if record.value is None else bytes(record.value)
    headers = dlq_headers(record, error, stage)
    extra: list[tuple[str, bytes]] = []
    if key is not None and len(key) > MAX_KEY_BYTES:
        extra.append((HEADER_ORIGINAL_KEY_SHA256, _digest(key)))
        key = None
    original = _original_headers(record)
    if sum(len(k) + len(v) for k, v in original) > MAX_ORIGINAL_HEADER_BYTES:
        extra.append((HEADER_HEADERS_DROPPED, str(len(original)).encode()))
        headers = dlq_headers(_NoHeaders(record), error, stage)
    if key is None and value is None:
        value = b""  # the producer refuses a record with neither key nor value
    truncated = False
    if record_size(key, value, headers + extra) > limit_bytes:
        assert value is not None
        marks = [
            (HEADER_TRUNCATED, b"true"),
            (HEADER_ORIGINAL_SIZE, str(len(value)).encode()),
            (HEADER_ORIGINAL_SHA256, _digest(value)),
        ]
        room = limit_bytes - record_size(key, b"", headers + extra + marks)
        value = value[: max(0, room)]
        extra += marks
        truncated = True
    return DeadLetter(key, value, headers + extra, truncated)


def bodiless_dead_letter(record: Any, error: Exception, stage: str) -> DeadLetter:
    """The last resort: reason, source, size and digest of the original; no key, no value."""
    value = b"" if record.value is None else bytes(record.value)
    headers = [
        *dlq_headers(_NoHeaders(record), error, stage),
        (HEADER_TRUNCATED, b"true"),
        (HEADER_ORIGINAL_SIZE, str(len(value)).encode()),
        (HEADER_ORIGINAL_SHA256, _digest(value)),
    ]
    return DeadLetter(None, b"", headers, True)


class _NoHeaders:
    """A view of a record without its own headers (they were too large to copy)."""

    def __init__(self, record: Any) -> None:
        self.topic = record.topic
        self.partition = record.partition
        self.offset = record.offset
        self.headers: list[tuple[str, bytes]] = []


def producer_limit(producer: Any) -> int:
    """The producer's ``max_request_size`` (kafka-python keeps it in ``config``)."""
    config = getattr(producer, "config", None)
    if isinstance(config, dict):
        size = config.get("max_request_size")
        if isinstance(size, int) and size > 0:
            return size
    size = getattr(producer, "max_request_size", None)
    return size if isinstance(size, int) and size > 0 else DEFAULT_MAX_REQUEST_SIZE


def _refused(exc: Exception) -> bool:
    """A send error that a smaller record cures (not a broker or network failure)."""
    return isinstance(exc, ValueError | TypeError) or type(exc).__name__ in (
        "MessageSizeTooLargeError",
        "RecordTooLargeError",
    )


class DeadLetterPolicy:
    """Send bad messages to the DLQ topic, cut to fit the smaller of the producer's
    ``max_request_size`` and ``topic_max_bytes`` (the topic's ``max.message.bytes``, when
    known: see :func:`streams.topics.max_message_bytes`)."""

    def __init__(self, producer: Any, topic: str, *, topic_max_bytes: int | None = None) -> None:
        self.producer = producer
        self.topic = topic
        self.limit_bytes = min(producer_limit(producer), topic_max_bytes or 1 << 62)
        self.count = 0
        self.truncated = 0

    def handle(self, record: Any, error: Exception, stage: str) -> None:
        letter = dead_letter(record, error, stage, limit_bytes=self.limit_bytes)
        try:
            self.producer.send(
                self.topic, key=letter.key, value=letter.value, headers=letter.headers
            )
        except Exception as exc:
            if not _refused(exc):
                raise
            # Still refused: the reason and the source without the body, never a stop.
            letter = bodiless_dead_letter(record, error, stage)
            self.producer.send(
                self.topic, key=letter.key, value=letter.value, headers=letter.headers
            )
            log.error(
                "dead letter refused by the producer; sent without its body",
                extra={"event": "dead_letter_refused", "error": type(exc).__name__},
            )
        self.count += 1
        self.truncated += letter.truncated
        METRICS.dead_lettered(stage, truncated=letter.truncated)
        log.warning(
            "dead-lettered message",
            extra={
                "event": "dead_letter",
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "stage": stage,
                "truncated": letter.truncated,
                "error": describe(error)[:300],
            },
        )


def dead_letter_policy(producer: Any, settings: StreamSettings) -> DeadLetterPolicy:
    """The default policy, limited by the DLQ topic's ``max.message.bytes`` read from the
    broker (the producer's ``max_request_size`` alone when it cannot be read)."""
    from streams.topics import max_message_bytes

    topic = settings.topics.dlq
    return DeadLetterPolicy(producer, topic, topic_max_bytes=max_message_bytes(settings, topic))


class SkipPolicy:
    def __init__(self) -> None:
        self.count = 0

    def handle(self, record: Any, error: Exception, stage: str) -> None:
        self.count += 1
        METRICS.dead_lettered(stage)
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
