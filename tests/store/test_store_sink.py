"""The store sink (streams/sink.py) against the in-memory client of tests.support.fake: rows
commit before offsets, redelivery after a crash leaves exactly one row, an alert on both topics
is one row, bad records go to the injected policy (default: logged, skipped, committed)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy import func, select

from store import Store
from store.models import AssessmentRow
from streams.client import Consumer, Record, StopFlag, TopicPartition
from streams.deadletter import BadMessage, StopPolicy
from streams.settings import Topics
from streams.sink import run_sink
from tests.store.factory import make_assessment
from tests.support.fake import FakeBroker, FakeConsumer, FakeRecord

TOPICS = Topics()
GROUP = "lowdose-store"


class Crash(Exception):
    """Stands for SIGKILL between the rows' commit and the offsets' commit."""


class SinkConsumer(FakeConsumer):
    """The fake group member with what these tests control: at most ``batch`` records a poll,
    the group's assignment only at poll ``assign_at_poll`` (a group join: the callbacks run
    inside that poll), and ``on_commit`` called before each commit. A new instance on the same
    broker is a restart: it reads from the group's committed offsets."""

    def __init__(
        self,
        broker: FakeBroker,
        *,
        on_commit: Callable[[Mapping[TopicPartition, int]], None] | None = None,
        batch: int = 3,
        assign_at_poll: int = 1,
    ) -> None:
        super().__init__(broker, group=GROUP)
        self.on_commit = on_commit
        self.batch = batch
        self.assign_at_poll = assign_at_poll
        self.polls = 0

    def poll(
        self, timeout_ms: int, max_records: int
    ) -> Mapping[TopicPartition, Sequence[FakeRecord]]:
        self.polls += 1
        if self.polls < self.assign_at_poll:
            return {}
        return super().poll(timeout_ms, min(self.batch, max_records))

    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_ms: int, stop: StopFlag
    ) -> None:
        if self.on_commit is not None:
            self.on_commit(offsets)
        super().commit(offsets, timeout_ms, stop)


class Collect:
    """A bad-message policy that keeps (offset, reason, stage) of every record handed to it."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str, str]] = []

    def handle(self, record: Any, error: Exception, stage: str) -> None:
        self.seen.append((record.offset, str(error), stage))


def _broker() -> FakeBroker:
    broker = FakeBroker()
    for topic in (TOPICS.assessments, TOPICS.alerts):
        broker.create(topic, 2)
    return broker


def _feed(n: int) -> FakeBroker:
    """n assessments over two partitions; every alert also on the alerts topic."""
    broker = _broker()
    for i in range(n):
        a = make_assessment(i, findings=[("excess_coverage", "alert")] if i % 2 else [])
        for topic in (TOPICS.assessments, TOPICS.alerts) if i % 2 else (TOPICS.assessments,):
            broker.append(topic, a.to_json().encode(), partition=i % 2)
    return broker


def _ends(broker: FakeBroker) -> dict[TopicPartition, int]:
    """The log-end offset of every partition that holds records."""
    return {
        tp: broker.end(tp)
        for topic, partitions in broker.partitions.items()
        for tp in (TopicPartition(topic, p) for p in range(len(partitions)))
        if broker.end(tp)
    }


def _committed(broker: FakeBroker) -> dict[TopicPartition, int]:
    return broker.committed.get(GROUP, {})


def _rows(store: Store) -> int:
    with store.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(AssessmentRow)) or 0)


def test_rows_commit_before_offsets_and_an_alert_is_one_row(store: Store) -> None:
    broker = _feed(10)
    seen_rows: list[int] = []
    source = SinkConsumer(broker, on_commit=lambda _: seen_rows.append(_rows(store)))
    stats = run_sink(source, store, stop=threading.Event(), idle_stop_s=0.0)
    assert source.topics == [TOPICS.assessments, TOPICS.alerts]
    assert _rows(store) == 10
    assert stats.records == 15 and stats.bad_records == 0
    assert _committed(broker) == _ends(broker)
    # at every offset commit the batch's rows were already visible to another session
    assert seen_rows and seen_rows == sorted(seen_rows) and seen_rows[0] > 0


@pytest.mark.parametrize("crash_at", [1, 2])
def test_a_crash_between_rows_and_offsets_redelivers_into_exactly_one_row(
    store: Store, crash_at: int
) -> None:
    broker = _feed(12)
    calls = 0

    def crash(_: Mapping[TopicPartition, int]) -> None:
        nonlocal calls
        calls += 1
        if calls == crash_at:
            raise Crash

    with pytest.raises(Crash):
        run_sink(
            SinkConsumer(broker, on_commit=crash),
            store,
            stop=threading.Event(),
            idle_stop_s=30,  # ends a run that did not crash (the test then fails)
        )
    written_before_restart = _rows(store)
    assert written_before_restart > 0
    stats = run_sink(SinkConsumer(broker), store, stop=threading.Event(), idle_stop_s=0)
    assert stats.records > 0  # the uncommitted batch came again
    assert _rows(store) == 12
    assert _committed(broker) == _ends(broker)


def _bad_feed() -> tuple[FakeBroker, TopicPartition]:
    broker = _broker()
    tp = TopicPartition(TOPICS.assessments, 0)
    for value in (b"{not json", None, make_assessment(1).to_json().encode()):
        broker.append(tp.topic, value, partition=tp.partition)
    return broker, tp


def test_bad_records_are_skipped_counted_and_committed(store: Store) -> None:
    broker, tp = _bad_feed()
    bad = Collect()
    stats = run_sink(SinkConsumer(broker), store, stop=threading.Event(), idle_stop_s=0, on_bad=bad)
    assert [o for o, _, _ in bad.seen] == [0, 1] and stats.bad_records == 2
    assert {stage for _, _, stage in bad.seen} == {"decode"}
    assert bad.seen[1][1] == "empty value (tombstone)"
    assert _rows(store) == 1 and _committed(broker) == {tp: 3}


def test_the_default_policy_logs_each_bad_record_and_goes_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    broker, tp = _bad_feed()
    with caplog.at_level(logging.WARNING, logger="lowdose.store.sink"):
        stats = run_sink(SinkConsumer(broker), store, stop=threading.Event(), idle_stop_s=0)
    skipped = [r.getMessage() for r in caplog.records if r.name == "lowdose.store.sink"]
    assert len(skipped) == 2 and stats.bad_records == 2
    assert skipped[0].startswith(f"{tp.topic}/0@0: not an assessment, skipped: ")
    assert skipped[1] == f"{tp.topic}/0@1: not an assessment, skipped: empty value (tombstone)"
    assert _rows(store) == 1 and _committed(broker) == {tp: 3}


def test_the_service_stop_policy_stops_the_sink_before_rows_and_offsets(store: Store) -> None:
    broker, _tp = _bad_feed()
    with pytest.raises(BadMessage, match="NotAnAssessment"):
        run_sink(
            SinkConsumer(broker), store, stop=threading.Event(), idle_stop_s=0, on_bad=StopPolicy()
        )
    assert _rows(store) == 0 and _committed(broker) == {}


def test_idle_time_counts_only_once_partitions_are_assigned(store: Store) -> None:
    """A restarted sink waits for the rebalance (seen on the real broker: a restart with
    --idle-stop 10 gave up while the group still waited for the killed member)."""
    source = SinkConsumer(_feed(4), assign_at_poll=40)
    started = time.monotonic()
    stats = run_sink(source, store, stop=threading.Event(), idle_stop_s=0.05, poll_timeout_ms=0)
    assert source.polls > 40 and stats.records == 6 and _rows(store) == 4
    assert time.monotonic() - started < 30


def test_stop_ends_the_loop(store: Store) -> None:
    stop = threading.Event()
    stop.set()
    stats = run_sink(SinkConsumer(_feed(2)), store, stop=stop)
    assert stats.batches == 0 and _rows(store) == 0


def _typed(broker: FakeBroker) -> tuple[Consumer, Record]:
    """The fakes satisfy the client protocols the sink takes (checked by mypy users)."""
    return SinkConsumer(broker), broker.append(TOPICS.assessments, None)
