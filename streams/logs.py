"""Structured JSON log lines for the service, one object per line on stderr.

Only operational fields are logged: topic, partition, offset, counts, assessment ids, error
types. Message bodies, patient identifiers and names never reach a log record (the pipeline's
errors name messages by topic/partition/offset).
"""

from __future__ import annotations

import json
import logging
import os
import sys
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


def configure_json_logging(level: str = "INFO") -> None:
    """Replace the root handlers with one JSON handler on stderr; quieten the Kafka client."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # kafka-python logs connection churn at INFO/WARNING; its errors still come through
    # ($LOWDOSE_KAFKA_LOG_LEVEL shows more when debugging the client).
    kafka_level = os.environ.get("LOWDOSE_KAFKA_LOG_LEVEL")
    logging.getLogger("kafka").setLevel(
        kafka_level or max(logging.ERROR, logging.getLevelName(level))
    )
