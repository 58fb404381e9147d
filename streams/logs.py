"""Structured JSON log lines for the service, one object per line on stderr.

Only operational fields are logged: topic, partition, offset, counts, assessment ids, error
types. Message bodies, patient identifiers and names never reach a log record (the pipeline's
errors name messages by topic/partition/offset).

The Kafka client is another matter: at DEBUG kafka-python logs every sent record's key and value,
every produce request and fetch response with its record bytes, and the raw bytes on the wire,
so protocol events (Patient ID, accession number) and DICOM reports (patient name) would reach
the log (issue 10, defect 6). :class:`ClientPayloadFilter`, installed by
:func:`protect_client_logs` on every ``kafka`` logger and on the root handlers, rewrites the
arguments of the client's log records at every level: byte strings become ``<N bytes>``,
record-carrying protocol objects (produce requests, fetch responses, record batches, consumer
records) become ``<Name redacted>``, containers holding either are redacted likewise. Connection,
metadata, group and offset messages keep their detail.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else was passed through ``extra=`` and is logged.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_FORBIDDEN = {"patient_id", "patient_name", "PatientID", "PatientName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _FORBIDDEN and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        return json.dumps(out, default=str)


# Types whose repr carries record keys and values (kafka-python 3.0: ProduceRequest and its
# TopicProduceData/PartitionProduceData, FetchResponse and its partitions, ShareFetch*, record
# batches and builders, ConsumerRecord, the producer's batches).
_PAYLOAD_NAMES = ("Produce", "Fetch", "Record", "Batch", "Message")
_PAYLOAD_MODULES = ("kafka.record", "kafka.consumer.fetcher", "kafka.producer.producer_batch")
_MAX_DEPTH = 4


def _payload(value: object, depth: int = 0) -> bool:
    """True when ``value``'s text would show message bytes."""
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    if isinstance(value, str | int | float | bool | type(None)):
        return False
    kind = type(value)
    module = kind.__module__ or ""
    if module.startswith("kafka.") and (
        module.startswith(_PAYLOAD_MODULES)
        or (module.startswith("kafka.protocol") and any(n in kind.__name__ for n in _PAYLOAD_NAMES))
    ):
        return True
    if depth >= _MAX_DEPTH:
        return False
    if isinstance(value, Mapping):
        return any(_payload(k, depth + 1) or _payload(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_payload(v, depth + 1) for v in value)
    return False


def _redacted(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, list | tuple | set | frozenset | Mapping):
        return f"<{type(value).__name__} of {len(value)} with message data, redacted>"
    return f"<{type(value).__name__} redacted>"


class ClientPayloadFilter(logging.Filter):
    """Redact record payloads from the Kafka client's log records (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "kafka" and not record.name.startswith("kafka."):
            return True
        args = record.args
        if isinstance(args, Mapping):
            record.args = {k: _redacted(v) if _payload(v) else v for k, v in args.items()}
        elif isinstance(args, tuple):
            record.args = tuple(_redacted(a) if _payload(a) else a for a in args)
        if _payload(record.msg):
            record.msg = _redacted(record.msg)
        return True


_FILTER = ClientPayloadFilter()


def protect_client_logs() -> None:
    """Install the payload filter on every ``kafka`` logger and every root handler.

    Call after the root handlers are set up (``configure_json_logging`` does). The root
    handlers see every client record (kafka-python's loggers propagate), including loggers the
    client creates after this call; existing ``kafka`` loggers get the filter themselves too.
    """
    names = [n for n in logging.Logger.manager.loggerDict if n == "kafka" or n.startswith("kafka.")]
    for name in ["kafka", *names]:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def configure_json_logging(level: str = "INFO") -> None:
    """Replace the root handlers with one JSON handler on stderr; quieten the Kafka client."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    protect_client_logs()
    # kafka-python logs connection churn at INFO/WARNING; its errors still come through
    # ($LOWDOSE_KAFKA_LOG_LEVEL shows more when debugging the client).
    kafka_level = os.environ.get("LOWDOSE_KAFKA_LOG_LEVEL")
    logging.getLogger("kafka").setLevel(
        kafka_level or max(logging.ERROR, logging.getLevelName(level))
    )
