"""The service loop: poll, decode, assess, checkpoint. Nothing else lives here.

One iteration is one batch: poll up to ``max_batch`` records; follow a rebalance if one happened
(drop study state, replay the changelog of the new partitions); let :class:`Alignment` send
reports that precede their protocol event back to wait; order the batch by timestamp, a tie by
the rank of its input (both as the table of inputs, :mod:`streams.inputs`, says); decode
(failures to the injected :class:`FailurePolicy`); assess the batch in one pipeline call (the
policy splits a failing batch); send every assessment to the assessments topic and the alerts
also to the alerts topic; then the :class:`Checkpoint` flushes outputs, then state, then
commits. The client is injected (:mod:`streams.client` for Kafka, :mod:`tests.support.fake` in
the unit tests).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from optimiser.assessment import Assessment
from optimiser.errors import LowdoseError
from optimiser.inputs import PipelineInput, study_uid_of
from streams import inputs
from streams.alignment import Alignment
from streams.changelog import ChangelogStateStore
from streams.checkpoint import Checkpoint, next_offsets
from streams.client import Consumer, Delivery, Producer, Record, TopicPartition
from streams.errors import BrokerError, DeliveryError, Interrupted
from streams.metrics import HEALTH, METRICS
from streams.policy import FailurePolicy
from streams.settings import Topics

log = logging.getLogger("lowdose.streams.service")

HEADER_ASSESSMENT_ID = "assessment_id"
_CONTENT_TYPE = ("content-type", b"application/json")


class PipelineLike(Protocol):
    def process(self, items: Sequence[PipelineInput]) -> list[Assessment]: ...
    def warm_up(self) -> None: ...


class DecoderLike(Protocol):
    def decode(self, record: Record) -> PipelineInput: ...


@dataclass
class ServiceStats:
    """Counters of one service (where a metrics exporter reads them)."""

    batches: int = 0
    consumed: int = 0
    assessed: int = 0
    alerts: int = 0
    bad: int = 0
    commits: int = 0
    commit_failures: int = 0
    redone: int = 0
    rebalances: int = 0
    rebuilt_studies: int = 0
    expired_studies: int = 0
    stalls: int = 0


class StopSignal:
    """A stop request with a grace period: the batch in flight may finish (flush, commit) for
    ``grace_s``; after that every wait on the broker gives up (:attr:`interrupt` is set)."""

    def __init__(self, grace_s: float = 2.0, monotonic: Callable[[], float] = time.monotonic):
        self.grace_s = grace_s
        self.monotonic = monotonic
        self.requested = threading.Event()
        self._at: float | None = None
        self.interrupt = self  # the StopFlag the client's waits check

    def request(self) -> None:
        """Safe from a signal handler."""
        if self._at is None:
            self._at = self.monotonic()
        self.requested.set()

    def is_set(self) -> bool:
        at = self._at
        return at is not None and self.monotonic() - at >= self.grace_s


class _Assignment:
    """Assignment changes reported by the client; the loop acts on them after the poll."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owned: set[TopicPartition] = set()
        self.changed = False

    def assigned(self, tps: set[TopicPartition]) -> None:
        with self.lock:
            self.owned |= tps
            self.changed = True

    def revoked(self, tps: set[TopicPartition]) -> None:
        with self.lock:
            self.owned -= tps
            self.changed = True

    def take(self) -> set[TopicPartition] | None:
        with self.lock:
            if not self.changed:
                return None
            self.changed = False
            return set(self.owned)


class ServiceLoop:
    """The poll-decode-assess-checkpoint loop over an injected client."""

    def __init__(
        self,
        *,
        consumer: Consumer,
        producer: Producer,
        store: ChangelogStateStore,
        pipeline: PipelineLike,
        decoder: DecoderLike,
        policy: FailurePolicy,
        topics: Topics,
        stop: StopSignal,
        stats: ServiceStats | None = None,
        max_batch: int = 500,
        poll_timeout_ms: int = 200,
        max_defer_s: float = 60.0,
        grace_ms: float = 300.0,
        stall_check_s: float = 10.0,
        expire_every_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], float] = lambda: time.time() * 1000.0,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.pipeline = pipeline
        self.decoder = decoder
        self.policy = policy
        self.topics = topics
        self.stop = stop
        self.stats = stats or ServiceStats()
        self.max_batch = max_batch
        self.poll_timeout_ms = poll_timeout_ms
        self.stall_check_s = stall_check_s
        self.expire_every_s = expire_every_s
        self.monotonic = monotonic
        self.alignment = Alignment(
            consumer,
            inputs.waiting(topics),
            max_defer_s=max_defer_s,
            grace_ms=grace_ms,
            monotonic=monotonic,
            wall_ms=wall_ms,
        )
        self.checkpoint = checkpoint or Checkpoint(consumer, producer, store, stop.interrupt)
        self.assignment = _Assignment()
        # Order within a timestamp tie, by input topic (any other topic last).
        self.tie_rank = inputs.ranks(topics)
        self._last_rank = max(self.tie_rank.values())
        self.owned: set[TopicPartition] = set()
        self._last_expiry = monotonic()

    def subscribe(self) -> None:
        self.consumer.subscribe(
            self.topics.inputs, self.assignment.assigned, self.assignment.revoked
        )

    # -- running ------------------------------------------------------------------------------

    def run(self, idle_stop_s: float | None = None) -> None:
        """Batches until a stop is requested (or ``idle_stop_s`` without any record)."""
        last_record = last_check = self.monotonic()
        while not self.stop.requested.is_set():
            HEALTH.tick()
            try:
                got = self.step()
            except Interrupted as exc:
                log.warning(str(exc), extra={"event": "interrupted"})
                return
            now = self.monotonic()
            if now - self._last_expiry > self.expire_every_s:
                self._last_expiry = now
                self.expire()
            if got:
                last_record = last_check = now
                continue
            if idle_stop_s is not None and now - last_record > idle_stop_s:
                return
            if self.owned and now - last_check > self.stall_check_s:
                last_check = now
                self.unstall()

    def step(self) -> int:
        """One poll and, when it returned records, one processed and checkpointed batch."""
        polled = self.consumer.poll(self.poll_timeout_ms, self.max_batch)
        self._follow_rebalance()
        owned = self.owned
        records = [r for tp, rs in polled.items() if tp in owned for r in rs]
        if records:
            try:
                self.batch(records)
            except DeliveryError as exc:
                self.stats.redone += 1
                log.error(str(exc), extra={"event": "batch_redo"})
        return len(records)

    def expire(self) -> int:
        """Forget studies past their TTL (on a timer: defect 8 of issue 10)."""
        n = self.store.expire()
        self.stats.expired_studies += n
        if n:
            log.info("expired study state", extra={"event": "expired", "studies": n})
        return n

    # -- one batch ----------------------------------------------------------------------------

    def batch(self, records: list[Record]) -> None:
        started = time.perf_counter()
        ready = self.alignment.split(records)
        if not ready:
            return
        # Protocol events before the reports that follow them (an event wins a millisecond tie:
        # the rank of its input); the sort is stable, so the order within a partition holds.
        rank, last = self.tie_rank.get, self._last_rank
        ready.sort(key=lambda r: (r.timestamp, rank(r.topic, last)))
        self.stats.batches += 1
        self.stats.consumed += len(ready)
        for topic in self.topics.inputs:
            METRICS.consumed(sum(1 for r in ready if r.topic == topic), topic)
        items: list[PipelineInput] = []
        origins: list[Record] = []
        for record in ready:
            try:
                item = self.decoder.decode(record)
            except LowdoseError as exc:
                self.stats.bad += 1
                self.policy.reject(record, exc, "decode")
                continue
            uid = study_uid_of(item)
            if uid is not None:
                self.store.route(uid, record.partition)
            items.append(item)
            origins.append(record)
        rejected = self.policy.rejected
        try:
            assessments = self.policy.assess(self.pipeline.process, self.store, items, origins)
            self.stats.bad += self.policy.rejected - rejected
            outputs = self._produce(assessments)
        except (Interrupted, BrokerError):
            self.checkpoint.abandon(ready)
            raise
        committed = self.checkpoint(ready, outputs)
        self.stats.commits += committed
        for _ in range(self.checkpoint.stats.commit_failures - self.stats.commit_failures):
            METRICS.commit_failed()
        self.stats.commit_failures = self.checkpoint.stats.commit_failures
        if committed:
            METRICS.batch_done(time.perf_counter() - started)
            for tp, offset in next_offsets(ready).items():
                METRICS.lag(tp.topic, tp.partition, self.consumer.highwater(tp), offset)
        METRICS.state_size(len(self.store))
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "batch checkpointed",
                extra={
                    "event": "batch",
                    "records": len(ready),
                    "assessments": len(assessments),
                    "committed": committed,
                    "seconds": round(time.perf_counter() - started, 4),
                },
            )

    def _produce(self, assessments: Sequence[Assessment]) -> list[Delivery]:
        out: list[Delivery] = []
        send = self.producer.send
        topics = self.topics
        stop = self.stop.interrupt
        alerts = 0
        for a in assessments:
            key = a.study_instance_uid.encode()
            value = a.json_bytes()
            headers = [(HEADER_ASSESSMENT_ID, a.assessment_id.encode()), _CONTENT_TYPE]
            out.append(send(topics.assessments, key=key, value=value, headers=headers, stop=stop))
            if a.is_alert:
                out.append(send(topics.alerts, key=key, value=value, headers=headers, stop=stop))
                alerts += 1
        self.stats.alerts += alerts
        self.stats.assessed += len(assessments)
        METRICS.assessed(len(assessments))
        METRICS.alerts(alerts)
        return out

    # -- rebalances and stalls ----------------------------------------------------------------

    def _follow_rebalance(self) -> None:
        owned = self.assignment.take()
        if owned is None:
            return
        self.stats.rebalances += 1
        METRICS.rebalanced()
        self.owned = owned
        self.alignment.reset(owned)
        # Eager rebalance: fetch positions restart from the committed offsets, and the changelog
        # holds the state as of those commits (flushed before each commit): replay all we own.
        self.store.rollback()
        dropped = self.store.drop(range(self.store.partitions))
        started = time.perf_counter()
        loaded = self.store.rebuild({tp.partition for tp in owned})
        self.stats.rebuilt_studies += loaded
        METRICS.state_size(len(self.store))
        HEALTH.set_ready(True)
        log.info(
            "partitions assigned",
            extra={
                "event": "assigned",
                "partitions": sorted(f"{tp.topic}/{tp.partition}" for tp in owned),
                "studies_dropped": dropped,
                "studies_rebuilt": loaded,
                "rebuild_seconds": round(time.perf_counter() - started, 3),
            },
        )

    def unstall(self) -> int:
        """Idle while owned partitions have unread records: restart their fetch positions.

        A guard, not the normal path: in the kill -9 test the consumer that took over a dead
        member's partitions occasionally stopped receiving records although its position was
        behind the log end (kafka-python 3.0.12). Seeking to the current position resets the
        fetcher's state for the partition; nothing is skipped or repeated.
        """
        lagging: dict[TopicPartition, int] = {}
        try:
            tps = sorted(self.owned - set(self.alignment.waiting_since))
            ends = self.consumer.end_offsets(tps, timeout_ms=2000)
            for tp in tps:
                position = self.consumer.position(tp, timeout_ms=2000)
                end = ends.get(tp)
                if position is not None and end is not None and position < end:
                    lagging[tp] = position
        except BrokerError as exc:  # diagnostics must not stop the loop
            log.warning("stall check failed", extra={"event": "stall_check", "error": str(exc)})
            return 0
        if not lagging:
            return 0
        log.warning(
            "no records although partitions lag; restarting their fetch positions",
            extra={
                "event": "stalled",
                "partitions": {f"{tp.topic}/{tp.partition}": p for tp, p in lagging.items()},
                "paused": sorted(f"{tp.topic}/{tp.partition}" for tp in self.consumer.paused()),
            },
        )
        self.stats.stalls += 1
        for tp, position in lagging.items():
            self.consumer.seek(tp, position)
        return len(lagging)
