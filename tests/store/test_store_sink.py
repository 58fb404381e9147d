"""The store sink against an in-memory source: rows commit before offsets, redelivery after a
crash leaves exactly one row, an alert on both topics is one row, bad records are skipped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select

from store import Store
from store.models import AssessmentRow
from store.sink import (
    ALERTS_TOPIC,
    ASSESSMENTS_TOPIC,
    SourceRecord,
    StopFlag,
    TopicPartition,
    run_sink,
)
from tests.store.factory import make_assessment


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes | None


class Crash(Exception):
    """Stands for SIGKILL between the rows' commit and the offsets' commit."""


@dataclass
class MemorySource:
    """Partitions as lists; a group's committed offsets survive a 'restart' (a new instance
    sharing ``committed``)."""

    log: dict[TopicPartition, list[Rec]]
    committed: dict[TopicPartition, int]
    on_commit: Callable[[Mapping[TopicPartition, int]], None] | None = None
    batch: int = 3
    position: dict[TopicPartition, int] = field(default_factory=dict)
    subscribed: list[str] = field(default_factory=list)
    assign_at_poll: int = 1  # polls before the group assigns the partitions
    polls: int = 0
    assign: Callable[[], None] = lambda: None

    def subscribe(
        self,
        topics: Sequence[str],
        on_assigned: Callable[[set[TopicPartition]], None],
        on_revoked: Callable[[set[TopicPartition]], None],
    ) -> None:
        self.subscribed = list(topics)
        self.position = {tp: self.committed.get(tp, 0) for tp in self.log}
        self.assign = lambda: on_assigned(set(self.log))

    def poll(self, timeout_ms: int, max_records: int) -> Mapping[TopicPartition, Sequence[Rec]]:
        self.polls += 1
        if self.polls == self.assign_at_poll:  # like a group join: callbacks run inside poll
            self.assign()
        if self.polls < self.assign_at_poll:
            return {}
        out: dict[TopicPartition, Sequence[Rec]] = {}
        for tp, records in self.log.items():
            start = self.position[tp]
            chunk = records[start : start + min(self.batch, max_records)]
            if chunk:
                out[tp] = chunk
                self.position[tp] = start + len(chunk)
        return out

    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_ms: int, stop: StopFlag
    ) -> None:
        if self.on_commit is not None:
            self.on_commit(offsets)
        self.committed.update(offsets)

    def close(self, timeout_ms: int) -> None:
        return None


def _feed(n: int) -> dict[TopicPartition, list[Rec]]:
    """n assessments over two partitions; every alert also on the alerts topic."""
    log: dict[TopicPartition, list[Rec]] = {}
    for i in range(n):
        a = make_assessment(i, findings=[("excess_coverage", "alert")] if i % 2 else [])
        for topic in (ASSESSMENTS_TOPIC, ALERTS_TOPIC) if i % 2 else (ASSESSMENTS_TOPIC,):
            tp = TopicPartition(topic, i % 2)
            records = log.setdefault(tp, [])
            records.append(Rec(topic, i % 2, len(records), a.to_json().encode()))
    return log


def _rows(store: Store) -> int:
    with store.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(AssessmentRow)) or 0)


def test_rows_commit_before_offsets_and_an_alert_is_one_row(store: Store) -> None:
    log = _feed(10)
    seen_rows: list[int] = []
    source = MemorySource(log, {}, on_commit=lambda _: seen_rows.append(_rows(store)))
    stats = run_sink(source, store, stop=threading.Event(), idle_stop_s=0.0)
    assert source.subscribed == [ASSESSMENTS_TOPIC, ALERTS_TOPIC]
    assert _rows(store) == 10
    assert stats.records == 15 and stats.bad_records == 0
    assert source.committed == {tp: len(rs) for tp, rs in log.items()}
    # at every offset commit the batch's rows were already visible to another session
    assert seen_rows and seen_rows == sorted(seen_rows) and seen_rows[0] > 0


@pytest.mark.parametrize("crash_at", [1, 2])
def test_a_crash_between_rows_and_offsets_redelivers_into_exactly_one_row(
    store: Store, crash_at: int
) -> None:
    log = _feed(12)
    committed: dict[TopicPartition, int] = {}
    calls = 0

    def crash(_: Mapping[TopicPartition, int]) -> None:
        nonlocal calls
        calls += 1
        if calls == crash_at:
            raise Crash

    with pytest.raises(Crash):
        run_sink(
            MemorySource(log, committed, on_commit=crash),
            store,
            stop=threading.Event(),
            idle_stop_s=30,  # ends a run that did not crash (the test then fails)
        )
    written_before_restart = _rows(store)
    assert written_before_restart > 0
    stats = run_sink(MemorySource(log, committed), store, stop=threading.Event(), idle_stop_s=0)
    assert stats.records > 0  # the uncommitted batch came again
    assert _rows(store) == 12
    assert committed == {tp: len(rs) for tp, rs in log.items()}


def test_bad_records_are_skipped_counted_and_committed(store: Store) -> None:
    tp = TopicPartition(ASSESSMENTS_TOPIC, 0)
    good = make_assessment(1).to_json().encode()
    log = {tp: [Rec(tp.topic, 0, 0, b"{not json"), Rec(tp.topic, 0, 1, None),
                Rec(tp.topic, 0, 2, good)]}  # fmt: skip
    bad: list[tuple[int, str]] = []
    source = MemorySource(log, {})
    stats = run_sink(
        source,
        store,
        stop=threading.Event(),
        idle_stop_s=0,
        on_bad=lambda r, why: bad.append((r.offset, why)),
    )
    assert [o for o, _ in bad] == [0, 1] and stats.bad_records == 2
    assert _rows(store) == 1 and source.committed == {tp: 3}


def test_idle_time_counts_only_once_partitions_are_assigned(store: Store) -> None:
    """A restarted sink waits for the rebalance (seen on the real broker: a restart with
    --idle-stop 10 gave up while the group still waited for the killed member)."""
    source = MemorySource(_feed(4), {}, assign_at_poll=40)
    started = time.monotonic()
    stats = run_sink(source, store, stop=threading.Event(), idle_stop_s=0.05, poll_timeout_ms=0)
    assert source.polls > 40 and stats.records == 6 and _rows(store) == 4
    assert time.monotonic() - started < 30


def test_stop_ends_the_loop(store: Store) -> None:
    stop = threading.Event()
    stop.set()
    stats = run_sink(MemorySource(_feed(2), {}), store, stop=stop)
    assert stats.batches == 0 and _rows(store) == 0


def _typed(record: SourceRecord) -> int:  # Rec satisfies the protocol (checked by mypy users)
    return record.offset
