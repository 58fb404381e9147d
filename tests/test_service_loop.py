"""The service loop driven through every branch on the in-memory fake client (no Kafka).

The fake pipeline edits study state in place, as the real one does, so rollbacks are tested
against in-place edits: a protocol event appends its id to the study's ``assessed_event_uids``;
a dose report needs its study's event in state (else ``InputError``); an event whose id starts
with ``poison`` edits state and then fails.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from optimiser.assessment import Assessment, Finding, assessment_id
from optimiser.errors import InputError
from optimiser.events import ProtocolEvent
from optimiser.inputs import PipelineInput
from optimiser.records import DoseReport
from optimiser.state import StudyState
from simulator import simulate_feed
from streams.changelog import ChangelogStateStore
from streams.client import Record, TopicPartition
from streams.decode import Decoder
from streams.errors import CommitError, Interrupted
from streams.loop import HEADER_ASSESSMENT_ID, ServiceLoop, StopSignal
from streams.policy import FailurePolicy
from streams.settings import Topics
from tests.blank import blank_assessment
from tests.support.fake import FakeBroker, FakeConsumer, FakeProducer, FakeReader

TOPICS = Topics(
    protocol="in.protocol",
    rdsr="in.rdsr",
    assessments="out.assessments",
    alerts="out.alerts",
    dlq="out.dlq",
    state="state",
)
N_PARTITIONS = 2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Collect:
    """Bad-message policy that records what it is handed."""

    def __init__(self) -> None:
        self.seen: list[tuple[Record, Exception, str]] = []

    def handle(self, record: Any, error: Exception, stage: str) -> None:
        self.seen.append((record, error, stage))


def _blank(**fields: Any) -> Assessment:
    return blank_assessment(
        **({"site": "pelvis", "placement": "planned", "ctdivol_mgy": 1.0} | fields)
    )


class InPlacePipeline:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls = 0

    def warm_up(self) -> None:
        pass

    def process(self, items: Sequence[PipelineInput]) -> list[Assessment]:
        self.calls += 1
        out = []
        for item in items:
            if isinstance(item, ProtocolEvent):
                uid = item.study.study_instance_uid
                state = self.store.get(uid) or StudyState(study_instance_uid=uid)
                state.assessed_event_uids.append(item.event_id)  # in place, like the pipeline
                state.protocol_event = item
                self.store.put(state)
                if item.event_id.startswith("poison"):
                    raise InputError("poisoned event", source=item.event_id)
                out.append(
                    _blank(
                        assessment_id=assessment_id("protocol_event", item.event_id, "0"),
                        input_kind="protocol_event",
                        input_id=item.event_id,
                        study_instance_uid=uid,
                        findings=[
                            Finding(code="above_reference_level", severity="alert", message="m")
                        ],
                    )
                )
                continue
            assert isinstance(item, DoseReport)
            state = self.store.get(item.study_instance_uid)
            if state is None or state.protocol_event is None:
                raise InputError("no protocol event for this study", source=item.source)
            out.append(
                _blank(
                    assessment_id=assessment_id("dose_report", item.source, "0"),
                    input_kind="dose_report",
                    input_id=item.source,
                    study_instance_uid=item.study_instance_uid,
                )
            )
        return out


def _read_report(data: bytes, *, source: str, strictness: Any) -> DoseReport:
    if not data.startswith(b"REPORT:"):
        raise InputError("not a dose report", source=source)
    return DoseReport(
        source=source,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67",
        sop_instance_uid=None,
        study_instance_uid=data[7:].decode(),
    )


class Rig:
    """A loop over a fake broker, with handles on every part."""

    def __init__(self, *, stop_grace_s: float = 5.0, max_batch: int = 500) -> None:
        self.broker = FakeBroker()
        for topic in (*TOPICS.model_dump().values(),):
            self.broker.create(topic, N_PARTITIONS)
        self.clock = Clock()
        self.wall = Clock()
        self.wall.now = 2e12
        self.consumer = FakeConsumer(self.broker)
        self.producer = FakeProducer(self.broker)
        self.state_clock = Clock()
        self.store = ChangelogStateStore(
            TOPICS.state,
            N_PARTITIONS,
            lambda: FakeReader(self.broker),
            ttl_s=3600.0,
            clock=self.state_clock,
        )
        self.pipeline = InPlacePipeline(self.store)
        self.bad = Collect()
        self.stop = StopSignal(stop_grace_s, monotonic=self.clock)
        self.loop = ServiceLoop(
            consumer=self.consumer,
            producer=self.producer,
            store=self.store,
            pipeline=self.pipeline,
            decoder=Decoder(TOPICS, decoders={"rdsr": _read_report}),
            policy=FailurePolicy(self.bad),
            topics=TOPICS,
            stop=self.stop,
            max_batch=max_batch,
            max_defer_s=60.0,
            grace_ms=300.0,
            stall_check_s=10.0,
            expire_every_s=60.0,
            monotonic=self.clock,
            wall_ms=self.wall,
        )
        self.loop.checkpoint.sleep = lambda s: None
        self.loop.subscribe()
        self.events = [s.protocol_event for s in simulate_feed(6, seed=5)]

    def event(self, i: int, *, event_id: str | None = None, partition: int = 0) -> Record:
        e = self.events[i]
        if event_id is not None:
            e = e.model_copy(update={"event_id": event_id})
        return self.broker.append(
            TOPICS.protocol,
            e.to_json().encode(),
            key=e.study.study_instance_uid.encode(),
            partition=partition,
            timestamp=self._ts(),
        )

    def report(self, i: int, *, partition: int = 0) -> Record:
        uid = self.events[i].study.study_instance_uid
        return self.broker.append(
            TOPICS.rdsr,
            b"REPORT:" + uid.encode(),
            key=uid.encode(),
            partition=partition,
            timestamp=self._ts(),
        )

    def _ts(self) -> int:
        self.broker.clock_ms += 1
        return int(self.wall.now) - 100_000 + (self.broker.clock_ms - 1_000_000)

    def ids(self, topic: str = TOPICS.assessments) -> list[str]:
        return [
            dict(r.headers)[HEADER_ASSESSMENT_ID].decode()  # type: ignore[union-attr]
            for r in self.broker.records(topic)
        ]

    def committed(self) -> dict[TopicPartition, int]:
        return self.broker.committed.get("g", {})

    def drain(self, steps: int = 10) -> None:
        for _ in range(steps):
            self.loop.step()


def test_happy_path_outputs_then_state_then_commit() -> None:
    rig = Rig()
    rig.event(0)
    rig.event(1)
    rig.report(0)
    assert rig.loop.step() == 3
    assert len(rig.ids()) == 3 and len(rig.ids(TOPICS.alerts)) == 2
    kinds = [kind + ":" + topic for kind, topic in rig.broker.log[3:]]
    outputs = [i for i, k in enumerate(kinds) if k.startswith("append:out.")]
    state = [i for i, k in enumerate(kinds) if k == "append:state"]
    commit = [i for i, k in enumerate(kinds) if k.startswith("commit")]
    assert outputs and state and commit
    assert max(outputs) < min(state) and max(state) < min(commit), kinds
    assert rig.committed() == {
        TopicPartition(TOPICS.protocol, 0): 2,
        TopicPartition(TOPICS.rdsr, 0): 1,
    }
    assert rig.bad.seen == []


def test_commit_failure_is_retried_then_committed() -> None:
    rig = Rig()
    rig.event(0)
    rig.consumer.fail_commits = 2
    rig.loop.step()
    assert rig.committed() == {TopicPartition(TOPICS.protocol, 0): 1}
    assert rig.loop.checkpoint.stats.commit_failures == 2


def test_commit_failing_every_attempt_stops_the_service_with_outputs_flushed() -> None:
    rig = Rig()
    rig.event(0)
    rig.consumer.fail_commits = 100
    with pytest.raises(CommitError, match="could not commit offsets after 10 attempts"):
        rig.loop.step()
    assert len(rig.ids()) == 1 and rig.committed() == {}


def test_produce_failure_rewinds_rolls_back_and_redoes_the_batch() -> None:
    rig = Rig()
    rig.event(0)
    rig.loop.step()
    rig.event(0, event_id="second")
    rig.producer.fail_deliveries = 1  # the assessment of "second" is lost
    rig.loop.step()
    assert rig.loop.stats.redone == 1
    assert rig.committed()[TopicPartition(TOPICS.protocol, 0)] == 1  # not past the lost output
    uid = rig.events[0].study.study_instance_uid
    state = rig.store.get(uid)
    assert state is not None and state.assessed_event_uids == [rig.events[0].event_id]
    rig.loop.step()  # the batch again
    assert rig.committed()[TopicPartition(TOPICS.protocol, 0)] == 2
    assert sorted(set(rig.ids())) == sorted(
        {assessment_id("protocol_event", e, "0") for e in (rig.events[0].event_id, "second")}
    )
    state = rig.store.get(uid)
    assert state is not None and state.assessed_event_uids == [rig.events[0].event_id, "second"]


def test_rebalance_mid_batch_refuses_commit_and_new_owner_rebuilds_state() -> None:
    rig = Rig()
    rig.event(0, partition=1)
    rig.loop.step()
    rig.event(1, partition=1)
    # The group moves on while this batch is in flight: its commit is refused.
    rig.consumer.rebalance({TopicPartition(TOPICS.protocol, 1), TopicPartition(TOPICS.rdsr, 1)})
    before = len(rig.ids())
    rig.loop.step()
    assert len(rig.ids()) == before + 1  # output flushed before the commit attempt
    assert rig.committed()[TopicPartition(TOPICS.protocol, 1)] == 1
    assert rig.loop.checkpoint.stats.commit_failures == 1
    rig.report(0, partition=1)
    rig.loop.step()  # rebalance followed: state replayed from the changelog, batch redone
    assert rig.loop.stats.rebalances == 2 and rig.loop.stats.rebuilt_studies >= 2
    ids = rig.ids()
    assert len(ids) - len(set(ids)) == 1, "one duplicate, same assessment id"
    assert assessment_id("dose_report", f"{TOPICS.rdsr}/1@0", "0") in ids
    assert rig.bad.seen == []
    assert rig.committed()[TopicPartition(TOPICS.rdsr, 1)] == 1


def test_report_before_its_event_waits_for_the_protocol_partition() -> None:
    rig = Rig()
    rig.event(0)
    rig.report(0)
    protocol0 = TopicPartition(TOPICS.protocol, 0)
    rig.consumer.held.add(protocol0)  # the protocol partition lags behind the report
    rig.loop.step()
    assert rig.ids() == [] and rig.bad.seen == []
    assert TopicPartition(TOPICS.rdsr, 0) in rig.loop.alignment.waiting_since
    rig.consumer.held.clear()
    rig.drain(3)
    assert rig.bad.seen == []
    assert [
        json.loads(r.value or b"")["input_kind"] for r in rig.broker.records(TOPICS.assessments)
    ] == [
        "protocol_event",
        "dose_report",
    ]


def test_an_event_wins_a_timestamp_tie_with_the_report_that_follows_it() -> None:
    rig = Rig()
    report = rig.report(0)
    event = rig.events[0]
    rig.broker.append(
        TOPICS.protocol,
        event.to_json().encode(),
        key=event.study.study_instance_uid.encode(),
        timestamp=report.timestamp,  # the same millisecond, appended after the report
    )
    assert rig.loop.step() == 2
    assert rig.bad.seen == []
    assert [
        json.loads(r.value or b"")["input_kind"] for r in rig.broker.records(TOPICS.assessments)
    ] == ["protocol_event", "dose_report"]


def test_report_without_event_is_assessed_after_max_defer() -> None:
    rig = Rig()
    rig.event(0)
    rig.report(1)  # its study's event never arrives
    rig.consumer.held.add(TopicPartition(TOPICS.protocol, 0))
    rig.loop.step()
    assert rig.bad.seen == []
    rig.clock.now += 61.0
    rig.loop.step()
    assert [stage for _, _, stage in rig.bad.seen] == ["assess"]


def test_poison_messages_go_to_the_policy_and_the_rest_keep_outputs_and_state() -> None:
    rig = Rig()
    rig.event(0)
    rig.broker.append(TOPICS.protocol, b"{ not json", key=b"k", timestamp=rig._ts())
    rig.event(0, event_id="poison-1")  # same study: its in-place edit must be undone
    rig.event(1)
    rig.loop.step()
    stages = sorted(stage for _, _, stage in rig.bad.seen)
    assert stages == ["assess", "decode"]
    assert rig.loop.stats.bad == 2
    assert len(rig.ids()) == 2
    uid = rig.events[0].study.study_instance_uid
    state = rig.store.get(uid)
    assert state is not None and state.assessed_event_uids == [rig.events[0].event_id]
    changelog = {r.key: r.value for r in rig.broker.records(TOPICS.state)}
    assert StudyState.from_json(changelog[uid.encode()] or b"").assessed_event_uids == [
        rig.events[0].event_id
    ]
    assert rig.committed()[TopicPartition(TOPICS.protocol, 0)] == 4


def test_stall_restarts_the_fetch_position() -> None:
    rig = Rig()
    rig.loop.step()  # assignment
    rig.event(0)
    rig.consumer.stalled.add(TopicPartition(TOPICS.protocol, 0))
    assert rig.loop.step() == 0
    rig.clock.now += 11.0
    assert rig.loop.unstall() == 1
    assert rig.loop.step() == 1 and rig.loop.stats.stalls == 1


def test_stop_while_broker_unreachable_mid_batch_commits_nothing() -> None:
    rig = Rig(stop_grace_s=2.0)
    rig.event(0)
    rig.loop.step()
    rig.event(0, event_id="second")
    rig.producer.hang = True
    rig.stop.request()  # SIGTERM while the batch waits on a broker that is gone
    rig.clock.now += 2.0  # grace over: waits give up
    with pytest.raises(Interrupted):
        rig.loop.step()
    assert rig.committed()[TopicPartition(TOPICS.protocol, 0)] == 1
    uid = rig.events[0].study.study_instance_uid
    state = rig.store.get(uid)
    assert state is not None and state.assessed_event_uids == [rig.events[0].event_id]


def test_state_expires_on_a_timer_without_being_read() -> None:
    rig = Rig()
    rig.event(0)
    rig.loop.step()
    assert len(rig.store) == 1
    rig.state_clock.now += 7200.0  # two hours on, TTL one hour
    rig.loop.run(idle_stop_s=-1.0)  # one idle pass: no expiry yet, the timer has not run
    assert len(rig.store) == 1
    rig.clock.now += 61.0
    rig.loop.run(idle_stop_s=-1.0)
    assert len(rig.store) == 0 and rig.loop.stats.expired_studies == 1
