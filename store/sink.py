"""The store sink: assessments and alerts from Kafka into the store, exactly one row each.

The loop polls a batch from its own consumer group on ``lowdose.assessments.v1`` and
``lowdose.alerts.v1``, upserts every assessment of the batch in one transaction, and only after
that transaction commits does it commit the batch's offsets. A crash between the two (SIGKILL)
redelivers the batch; the upsert by ``assessment_id`` makes the redelivery a no-op, so
at-least-once delivery leaves exactly one row. An alert arrives on both topics: the same upsert.

The sink sees the broker only through :class:`Source`, a subset of the consumer protocol of
``streams.client`` (the one module that imports ``kafka``); the tests drive it with an
in-memory source. A record that is not an assessment goes to the injected ``on_bad`` policy
(default: log it and go on; its offset is committed with the batch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import ValidationError

from optimiser.assessment import Assessment
from store.assessments import upsert_assessments
from store.db import Store
from streams.partitions import TopicPartition

log = logging.getLogger("lowdose.store.sink")

ASSESSMENTS_TOPIC = "lowdose.assessments.v1"
ALERTS_TOPIC = "lowdose.alerts.v1"
GROUP_ID = "lowdose-store"


class SourceRecord(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def value(self) -> bytes | None: ...


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


class Source(Protocol):
    """What the sink needs of a consumer (``streams.client.KafkaConsumerClient`` fits)."""

    def subscribe(
        self,
        topics: Sequence[str],
        on_assigned: Callable[[set[TopicPartition]], None],
        on_revoked: Callable[[set[TopicPartition]], None],
    ) -> None: ...
    def poll(
        self, timeout_ms: int, max_records: int
    ) -> Mapping[TopicPartition, Sequence[SourceRecord]]: ...
    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_ms: int, stop: StopFlag
    ) -> None: ...
    def close(self, timeout_ms: int) -> None: ...


BadRecordPolicy = Callable[[SourceRecord, str], None]


def log_bad_record(record: SourceRecord, reason: str) -> None:
    log.warning(
        "%s/%d@%d: not an assessment, skipped: %s",
        record.topic,
        record.partition,
        record.offset,
        reason,
    )


@dataclass
class SinkStats:
    batches: int = 0
    records: int = 0
    rows_written: int = 0
    bad_records: int = 0


def _parse(
    records: Iterable[SourceRecord], on_bad: BadRecordPolicy, stats: SinkStats
) -> list[Assessment]:
    out = []
    for record in records:
        stats.records += 1
        if record.value is None:
            stats.bad_records += 1
            on_bad(record, "empty value (tombstone)")
            continue
        try:
            out.append(Assessment.model_validate_json(record.value))
        except ValidationError as exc:
            stats.bad_records += 1
            on_bad(record, str(exc).splitlines()[0])
    return out


def run_sink(
    source: Source,
    store: Store,
    *,
    stop: StopFlag,
    topics: Sequence[str] = (ASSESSMENTS_TOPIC, ALERTS_TOPIC),
    max_records: int = 500,
    poll_timeout_ms: int = 500,
    commit_timeout_ms: int = 30_000,
    idle_stop_s: float | None = None,
    on_bad: BadRecordPolicy = log_bad_record,
) -> SinkStats:
    """Consume until ``stop`` is set, or ``idle_stop_s`` passes without a record while
    partitions are assigned (a restart after a crash first waits for the group to rebalance)."""
    stats = SinkStats()
    assigned: set[TopicPartition] = set()
    idle_since: float | None = None  # idle time counts only while partitions are assigned

    def on_assigned(tps: set[TopicPartition]) -> None:
        nonlocal idle_since
        assigned.update(tps)
        idle_since = time.monotonic()

    def on_revoked(tps: set[TopicPartition]) -> None:
        assigned.difference_update(tps)

    source.subscribe(list(topics), on_assigned, on_revoked)
    while not stop.is_set():
        polled = source.poll(poll_timeout_ms, max_records)
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
        offsets = {
            TopicPartition(tp[0], tp[1]): max(r.offset for r in records) + 1
            for tp, records in polled.items()
            if records
        }
        assessments = _parse((r for rs in polled.values() for r in rs), on_bad, stats)
        with store.sessions.begin() as session:  # rows first ...
            stats.rows_written += upsert_assessments(session, assessments)
        source.commit(offsets, commit_timeout_ms, stop)  # ... then the offsets
        stats.batches += 1
        log.info(
            "stored %d assessments from %d records",
            len(assessments),
            sum(map(len, polled.values())),
        )
    return stats
