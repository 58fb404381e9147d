"""The store sink: assessments and alerts from Kafka into the store, exactly one row each.

The loop polls a batch from its own consumer group on the assessments and alerts topics
(:class:`streams.settings.Topics`: ``lowdose.assessments.v1``, ``lowdose.alerts.v1``) and ends it
the way the service's checkpoint does, each step only after the one before it succeeded:

1. **Rows**: every assessment of the batch is upserted in one transaction
   (:func:`store.assessments.write_assessments`), committed when it returns.
2. **Offsets**: the next offset per partition (:func:`streams.checkpoint.next_offsets`) is
   committed synchronously, once; a failure propagates and the sink stops.

A crash between the two (SIGKILL) redelivers the batch; the upsert by ``assessment_id`` makes the
redelivery a no-op, so at-least-once delivery leaves exactly one row. An alert arrives on both
topics: the same upsert.

The consumer is :class:`streams.client.Consumer` (Kafka: ``KafkaConsumerClient``; the unit tests:
:class:`tests.support.fake.FakeConsumer`). A record that is not an assessment goes to the injected
bad-message policy, the service's type (:class:`streams.deadletter.BadMessagePolicy`, stage
``decode``); the default, :class:`LogAndSkip`, logs it and goes on, and its offset is committed
with the batch. :class:`streams.deadletter.StopPolicy` fits as well (the sink stops before the
batch's rows and offsets are written).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from optimiser.assessment import Assessment
from optimiser.errors import LowdoseError
from store.assessments import write_assessments
from store.db import Store
from streams.checkpoint import next_offsets
from streams.client import Consumer, Record, StopFlag, TopicPartition
from streams.deadletter import BadMessagePolicy
from streams.settings import Topics

# The store sink's logger name, as before it moved here (it shows in every log line).
log = logging.getLogger("lowdose.store.sink")


class NotAnAssessment(LowdoseError):
    """A sink record whose value is no assessment; the message says why (one line)."""


class LogAndSkip:
    """The sink's default bad-message policy: log the record and go on (its offset is committed
    with the batch)."""

    def __init__(self) -> None:
        self.count = 0

    def handle(self, record: Any, error: Exception, stage: str) -> None:
        self.count += 1
        log.warning(
            "%s/%d@%d: not an assessment, skipped: %s",
            record.topic,
            record.partition,
            record.offset,
            error,
        )


@dataclass
class SinkStats:
    batches: int = 0
    records: int = 0
    rows_written: int = 0
    bad_records: int = 0


def decode(record: Record) -> Assessment:
    """The assessment of ``record``; :class:`NotAnAssessment` when it holds none."""
    if record.value is None:
        raise NotAnAssessment("empty value (tombstone)")
    try:
        return Assessment.model_validate_json(record.value)
    except ValidationError as exc:
        raise NotAnAssessment(str(exc).splitlines()[0]) from exc


def _parse(
    records: Iterable[Record], on_bad: BadMessagePolicy, stats: SinkStats
) -> list[Assessment]:
    out = []
    for record in records:
        stats.records += 1
        try:
            out.append(decode(record))
        except NotAnAssessment as exc:
            stats.bad_records += 1
            on_bad.handle(record, exc, "decode")
    return out


def run_sink(
    consumer: Consumer,
    store: Store,
    *,
    stop: StopFlag,
    topics: Topics | None = None,
    max_records: int = 500,
    poll_timeout_ms: int = 500,
    commit_timeout_ms: int = 30_000,
    idle_stop_s: float | None = None,
    on_bad: BadMessagePolicy | None = None,
) -> SinkStats:
    """Consume the assessments and alerts topics of ``topics`` (default: :class:`Topics`) until
    ``stop`` is set, or ``idle_stop_s`` passes without a record while partitions are assigned (a
    restart after a crash first waits for the group to rebalance). ``on_bad`` defaults to
    :class:`LogAndSkip`."""
    topics = topics or Topics()
    on_bad = on_bad or LogAndSkip()
    stats = SinkStats()
    assigned: set[TopicPartition] = set()
    idle_since: float | None = None  # idle time counts only while partitions are assigned

    def on_assigned(tps: set[TopicPartition]) -> None:
        nonlocal idle_since
        assigned.update(tps)
        idle_since = time.monotonic()

    def on_revoked(tps: set[TopicPartition]) -> None:
        assigned.difference_update(tps)

    consumer.subscribe([topics.assessments, topics.alerts], on_assigned, on_revoked)
    while not stop.is_set():
        polled = consumer.poll(poll_timeout_ms, max_records)
        if not any(polled.values()):
            idle = idle_since is not None and bool(assigned)
            if (
                idle_stop_s is not None
                and idle
                and time.monotonic() - (idle_since or 0) > idle_stop_s
            ):
                break
            continue
        idle_since = time.monotonic()
        records: Sequence[Record] = [r for rs in polled.values() for r in rs]
        assessments = _parse(records, on_bad, stats)
        stats.rows_written += write_assessments(store, assessments)  # rows first ...
        consumer.commit(next_offsets(records), commit_timeout_ms, stop)  # ... then the offsets
        stats.batches += 1
        log.info("stored %d assessments from %d records", len(assessments), len(records))
    return stats
