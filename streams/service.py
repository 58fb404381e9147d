"""The consumer service behind ``lowdose run``: consume, decode, assess, produce, then commit.

One loop iteration is one batch: poll up to ``max_batch`` records from the input topics, decode
them (bad ones go to the bad-message policy), hand the decoded batch to the same
:class:`optimiser.pipeline.Pipeline` that ``lowdose demo`` uses (one kernel call per batch),
produce every assessment to ``lowdose.assessments.v1`` and the flagged ones to
``lowdose.alerts.v1``, flush the producer (outputs, dead letters and state changelog writes), and
only then commit the consumed offsets: at-least-once. An output's key is the Study Instance UID
and its ``assessment_id`` header is derived from the input, so a duplicate after a crash is
recognisable.

Dose reports are assessed against their study's protocol event. Both arrive on co-numbered
partitions of two topics, so a report may be fetched before its event when the protocol
partition lags; such reports wait (up to ``max_defer_s``) until that partition has caught up.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from optimiser.errors import BrokerError, LowdoseError
from streams.changelog import ChangelogStateStore
from streams.deadletter import BadMessagePolicy, dead_letter_policy
from streams.decode import Decoder, study_uid_of
from streams.metrics import HEALTH, METRICS
from streams.settings import StreamSettings
from streams.topics import ensure_topics

log = logging.getLogger("lowdose.streams.service")

HEADER_ASSESSMENT_ID = "assessment_id"
HEADER_INPUT = "lowdose.input"

PipelineFactory = Callable[[ChangelogStateStore], Any]


@dataclass
class ServiceStats:
    batches: int = 0
    consumed: int = 0
    assessed: int = 0
    alerts: int = 0
    bad: int = 0
    commits: int = 0
    commit_failures: int = 0
    rebalances: int = 0
    rebuilt_studies: int = 0
    stalls: int = 0


def default_pipeline_factory(settings: StreamSettings) -> PipelineFactory:
    def build(store: ChangelogStateStore) -> Any:
        from optimiser.pipeline import Pipeline

        library = None
        if settings.site_library is not None:
            from protocols.library import load_library

            library = load_library(settings.site_library)
        return Pipeline(library=library, store=store, strictness=settings.strictness)

    return build


def key_hash_partitioner(max_keys: int = 100_000) -> Any:
    """Kafka's default partitioner (murmur2 of the key, positive modulo the partition count)
    with each key's hash remembered: a study's outputs and alerts share its key, and pure-Python
    murmur2 costs about 8 us a call. Same partition as ``DefaultPartitioner`` for every key."""
    from kafka.partitioner.default import DefaultPartitioner, murmur2

    class KeyHashPartitioner(DefaultPartitioner):  # type: ignore[misc]
        def __init__(self) -> None:
            self.hashes: dict[bytes, int] = {}

        def partition(
            self,
            topic: str,
            key: Any,
            serialized_key: bytes | None,
            value: Any,
            serialized_value: Any,
            cluster: Any,
        ) -> int:
            partitions = cluster.partitions_for_topic(topic)
            if serialized_key is None or not partitions:
                return int(
                    super().partition(topic, key, serialized_key, value, serialized_value, cluster)
                )
            h = self.hashes.get(serialized_key)
            if h is None:
                if len(self.hashes) >= max_keys:
                    self.hashes.clear()
                h = self.hashes[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
            ordered = sorted(partitions)
            return int(ordered[h % len(ordered)])

    return KeyHashPartitioner()


class _Rebalance:
    """Records assignment changes (called on the client's I/O thread); the loop acts on them.

    The consumer uses the eager protocol: every rebalance revokes all partitions and assigns the
    new set, and fetch positions restart from the committed offsets. So on any change the loop
    drops its study state and deferred records and replays the changelog of the new set.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owned: set[Any] = set()
        self.changed = False
        self.count = 0

    def on_partitions_revoked(self, revoked: Any) -> None:
        with self.lock:
            self.owned -= set(revoked)
            self.changed = True

    def on_partitions_assigned(self, assigned: Any) -> None:
        with self.lock:
            self.owned |= set(assigned)
            self.changed = True
            self.count += 1

    def on_partitions_lost(self, lost: Any) -> None:
        self.on_partitions_revoked(lost)

    def take(self) -> set[Any] | None:
        """The owned partitions if they changed since the last call, else None."""
        with self.lock:
            if not self.changed:
                return None
            self.changed = False
            return set(self.owned)


class Service:
    def __init__(
        self,
        settings: StreamSettings,
        *,
        pipeline_factory: PipelineFactory | None = None,
        policy_factory: Callable[[Any], BadMessagePolicy] | None = None,
        decoder: Decoder | None = None,
        max_defer_s: float = 60.0,
        stall_check_s: float = 10.0,
        grace_ms: float = 300.0,
    ) -> None:
        self.settings = settings
        self.pipeline_factory = pipeline_factory or default_pipeline_factory(settings)
        self.policy_factory = policy_factory or (
            lambda producer: dead_letter_policy(producer, settings)
        )
        self.decoder = decoder or Decoder(
            settings.topics.protocol, settings.topics.rdsr, strictness=settings.strictness
        )
        self.max_defer_s = max_defer_s
        self.stall_check_s = stall_check_s
        self.grace_ms = grace_ms
        self.stats = ServiceStats()
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once the consumer has subscribed
        self.assigned: set[Any] = set()  # input partitions owned after the last rebalance

    def request_stop(self) -> None:
        """Finish the current batch, commit, leave the group (safe from a signal handler)."""
        self._stop.set()

    # -- set-up -------------------------------------------------------------------------------

    def _producer(self) -> Any:
        from kafka import KafkaProducer

        return KafkaProducer(
            **self.settings.kafka_common(),
            acks="all",
            partitioner=key_hash_partitioner(),
            linger_ms=self.settings.linger_ms,
            batch_size=self.settings.batch_size,
            # Broker restarts must not lose outputs: retry delivery for up to 5 minutes.
            delivery_timeout_ms=300_000,
            request_timeout_ms=30_000,
        )

    def _reader(self) -> Any:
        from kafka import KafkaConsumer

        return KafkaConsumer(
            **self.settings.kafka_common(), group_id=None, enable_auto_commit=False
        )

    def _consumer(self) -> Any:
        from kafka import KafkaConsumer

        s = self.settings
        return KafkaConsumer(
            **s.kafka_common(),
            group_id=s.group_id,
            enable_auto_commit=False,
            auto_offset_reset=s.auto_offset_reset,
            max_poll_records=s.max_batch,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            # Seen in the kill -9 test: after a rebalance the new owner's fetches returned nothing
            # for its partitions for minutes; full fetch requests avoid stale fetch-session state
            # (a handful of partitions per consumer, so the incremental saving is small).
            enable_incremental_fetch_sessions=False,
            # A group leader whose metadata missed a topic assigns none of its partitions and
            # only notices at the next metadata refresh: keep that wait short.
            metadata_max_age_ms=10_000,
        )

    # -- the loop -----------------------------------------------------------------------------

    def run(self, *, idle_stop_s: float | None = None) -> ServiceStats:
        """Consume until :meth:`request_stop` (or ``idle_stop_s`` without any record)."""
        loop = self.open()
        try:
            loop.run(idle_stop_s)
        finally:
            self.close(loop)
        return self.stats

    def close(self, loop: ServiceLoop) -> None:
        """Leave the group (no commit: every processed batch is committed already), close."""
        HEALTH.stopping()
        try:
            loop.consumer.close(autocommit=False)
        finally:
            loop.producer.close(timeout=30)
        log.info("service stopped", extra={"event": "stopped", **asdict(self.stats)})

    def open(self) -> ServiceLoop:
        """Create topics, producer, state store and pipeline, warm up, then subscribe."""
        from kafka import ConsumerRebalanceListener

        counts = ensure_topics(self.settings)
        producer = self._producer()
        store = ChangelogStateStore(
            producer,
            self.settings.topics.state,
            counts[self.settings.topics.state],
            self._reader,
            max_studies=self.settings.state_max_studies,
            ttl_s=self.settings.state_ttl_s,
        )
        pipeline = self.pipeline_factory(store)
        started = time.perf_counter()
        # Compile the kernels before joining the group: a first batch that compiles could
        # overrun max_poll_interval_ms and trigger a rebalance.
        pipeline.warm_up()
        log.info(
            "pipeline warmed up",
            extra={"event": "warm_up", "seconds": round(time.perf_counter() - started, 3)},
        )
        # Everything alive now (modules, numba and pydantic machinery, the site library) lives
        # as long as the process. Freezing it keeps full collections from re-walking it: a batch
        # holds its records and assessments long enough to survive the young generations, so
        # full collections are frequent, and walking the startup heap cost several times more
        # per event than the collection of the batch's own objects.
        gc.collect()
        gc.freeze()
        policy = self.policy_factory(producer)
        rebalance = _Rebalance()

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                rebalance.on_partitions_revoked(revoked)

            def on_partitions_assigned(self, assigned: Any) -> None:
                rebalance.on_partitions_assigned(assigned)

            def on_partitions_lost(self, lost: Any) -> None:
                rebalance.on_partitions_lost(lost)

        consumer = self._consumer()
        _await_partition_metadata(consumer, {t: counts[t] for t in self.settings.topics.inputs})
        consumer.subscribe(self.settings.topics.inputs, listener=Listener())
        self.ready.set()
        log.info(
            "consumer subscribed",
            extra={"event": "subscribed", "group_id": self.settings.group_id},
        )
        return ServiceLoop(self, consumer, producer, store, pipeline, policy, rebalance)


def _await_partition_metadata(
    consumer: Any, counts: dict[str, int], timeout_s: float = 60.0
) -> None:
    """Wait until the consumer's metadata shows every partition of the input topics.

    Seen under load right after topic creation: the group leader assigned with metadata that
    lacked the new topics ("No partition metadata for topic"), so the group got no partitions
    until the next metadata refresh minutes later.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        known = {t: len(consumer.partitions_for_topic(t)) for t in counts}
        if all(known[t] >= n for t, n in counts.items()):
            return
        if time.monotonic() > deadline:
            raise BrokerError(
                f"input topic metadata incomplete after {timeout_s:.0f} s: partitions known "
                f"{known}, expected {counts}; check the broker's health"
            )
        time.sleep(0.2)


class ServiceLoop:
    """The poll-process-commit loop of one opened :class:`Service` (``run`` or ``step``)."""

    def __init__(
        self,
        service: Service,
        consumer: Any,
        producer: Any,
        store: ChangelogStateStore,
        pipeline: Any,
        policy: BadMessagePolicy,
        rebalance: _Rebalance,
    ) -> None:
        self.service = service
        self.s = service.settings
        self.stats = service.stats
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.pipeline = pipeline
        self.policy = policy
        self.rebalance = rebalance
        self.owned: set[Any] = set()
        # Report partitions waiting for their protocol partition, with when the wait began.
        self.waiting_since: dict[Any, float] = {}
        # Timestamp of the newest protocol event read, per partition (reset on rebalance).
        self.protocol_ts: dict[int, int] = {}

    def run(self, idle_stop_s: float | None) -> None:
        last_record = last_check = time.monotonic()
        while not self.service._stop.is_set():
            HEALTH.tick()
            if self.step():
                last_record = last_check = time.monotonic()
                continue
            now = time.monotonic()
            if idle_stop_s is not None and now - last_record > idle_stop_s:
                break
            if self.owned and now - last_check > self.service.stall_check_s:
                last_check = now
                self._unstall()

    def _unstall(self) -> None:
        """Idle while owned partitions have unread records: restart their fetch positions.

        A guard, not the normal path: in the kill -9 test the consumer that took over a dead
        member's partitions occasionally stopped receiving records although its position was
        behind the log end (kafka-python 3.0.12). Seeking to the current position resets the
        fetcher's state for the partition; nothing is skipped or repeated.
        """
        lagging = {}
        try:
            tps = sorted(self.owned - set(self.waiting_since))
            ends = self.consumer.end_offsets(tps, timeout_ms=5000)
            for tp in tps:
                position = self.consumer.position(tp, timeout_ms=5000)
                end = ends.get(tp)
                if position is not None and end is not None and position < end:
                    lagging[tp] = position
        except Exception as exc:  # diagnostics must not stop the loop
            log.warning("stall check failed", extra={"event": "stall_check", "error": repr(exc)})
            return
        if not lagging:
            return
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

    def step(self) -> int:
        """One poll and, when it returned records, one processed and committed batch."""
        polled = self.consumer.poll(timeout_ms=self.s.poll_timeout_ms, max_records=self.s.max_batch)
        self._follow_rebalance()
        records = [r for tp, rs in polled.items() if tp in self.owned for r in rs]
        if records:
            try:
                self._batch(records)
            except _Redo as exc:
                log.error(str(exc), extra={"event": "batch_redo"})
        return len(records)

    def _follow_rebalance(self) -> None:
        owned = self.rebalance.take()
        if owned is None:
            return
        self.stats.rebalances += 1
        METRICS.rebalanced()
        self.owned = owned
        self.service.assigned = set(owned)
        # Eager rebalance: fetch positions restart from the committed offsets and pauses are
        # any wait starts over.
        self.waiting_since = {}
        self.protocol_ts = {}
        numbers = {tp.partition for tp in owned}
        # Replay everything we own: positions restart from committed offsets after a rebalance
        # and the changelog holds the state as of those commits (flushed before each commit).
        dropped = self.store.drop(range(self.store.partitions))
        started = time.perf_counter()
        loaded = self.store.rebuild(numbers)
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

    def _split_deferred(self, records: list[Any]) -> list[Any]:
        """Records ready now; dose reports that may precede their protocol event wait.

        A report on partition *p* with timestamp *T* is ready once protocol partition *p* has
        been read past *T* (its events are timestamped in order), or has no unread record left
        according to a fresh log-end offset (the fetch high-water mark can be stale) and the
        report is older than ``grace_ms``. A waiting
        report partition is sought back to its first waiting record, so it is fetched again
        later (no buffering, no pause/resume: a resumed partition sometimes stayed silent with
        kafka-python 3.0.12); it waits at most ``max_defer_s``.
        """
        topics = self.s.topics
        for r in records:
            if r.topic == topics.protocol:
                seen = self.protocol_ts.get(r.partition, -1)
                self.protocol_ts[r.partition] = max(seen, r.timestamp)
        now = time.monotonic()
        ready: list[Any] = []
        rewind: dict[Any, int] = {}
        caught_up: dict[int, bool] = {}
        for record in records:
            tp = _tp(record)
            if tp in rewind:
                continue
            if record.topic == topics.rdsr:
                p = record.partition
                since = self.waiting_since.get(tp)
                expired = since is not None and now - since > self.service.max_defer_s
                if not expired and self.protocol_ts.get(p, -1) < record.timestamp:
                    if p not in caught_up:
                        caught_up[p] = self._protocol_caught_up(p)
                    # An event sent just before its report may become readable just after it
                    # (different partitions of one produce request): a short grace covers that.
                    young = time.time() * 1000 - record.timestamp < self.service.grace_ms
                    if young or not caught_up[p]:
                        rewind[tp] = record.offset
                        self.waiting_since.setdefault(tp, now)
                        continue
            ready.append(record)
        for tp in {_tp(r) for r in ready}:
            self.waiting_since.pop(tp, None)
        for tp, offset in rewind.items():
            self.consumer.seek(tp, offset)
        return ready

    def _protocol_caught_up(self, partition: int) -> bool:
        """True when protocol partition ``partition`` has no record this consumer has not read."""
        from kafka import TopicPartition

        tp = TopicPartition(self.s.topics.protocol, partition)
        if tp not in self.owned:
            return True
        try:
            end = self.consumer.end_offsets([tp], timeout_ms=5000).get(tp)
            position = self.consumer.position(tp, timeout_ms=5000)
        except Exception:  # unknown (e.g. a slow broker): wait; max_defer_s bounds the wait
            return False
        return end is None or position is None or position >= end

    def _batch(self, records: list[Any]) -> None:
        started = time.perf_counter()
        ready = self._split_deferred(records)
        if not ready:
            return
        # Protocol events before the reports that follow them (an event wins a millisecond tie);
        # the sort is stable, so the order within a partition holds.
        protocol = self.s.topics.protocol
        ready.sort(key=lambda r: (r.timestamp, r.topic != protocol))
        self.stats.batches += 1
        self.stats.consumed += len(ready)
        for topic in (protocol, self.s.topics.rdsr):
            METRICS.consumed(sum(1 for r in ready if r.topic == topic), topic)
        items: list[Any] = []
        origins: list[Any] = []
        for record in ready:
            try:
                item = self.service.decoder.decode(record)
            except LowdoseError as exc:
                self._bad(record, exc, "decode")
                continue
            uid = study_uid_of(item)
            if uid is not None:
                self.store.route(uid, record.partition)
            items.append(item)
            origins.append(record)
        assessments = self._assess(items, origins)
        futures = []
        topics = self.s.topics
        for assessment in assessments:
            key = assessment.study_instance_uid.encode()
            value = assessment.to_json().encode()
            headers = [
                (HEADER_ASSESSMENT_ID, assessment.assessment_id.encode()),
                ("content-type", b"application/json"),
            ]
            futures.append(
                self.producer.send(topics.assessments, key=key, value=value, headers=headers)
            )
            if assessment.is_alert:
                futures.append(
                    self.producer.send(topics.alerts, key=key, value=value, headers=headers)
                )
                self.stats.alerts += 1
        self.stats.assessed += len(assessments)
        METRICS.assessed(len(assessments))
        METRICS.alerts(sum(1 for a in assessments if a.is_alert))
        self.producer.flush()
        self._check_delivered(futures, ready)
        # State only after its outputs are delivered (see streams.changelog), then commit.
        if self.store.send_pending():
            self.producer.flush()
        self._commit(ready)
        METRICS.batch_done(time.perf_counter() - started)
        METRICS.state_size(len(self.store))
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "batch committed",
                extra={
                    "event": "batch",
                    "records": len(ready),
                    "assessments": len(assessments),
                    "oldest_age_ms": round(time.time() * 1000 - ready[0].timestamp, 1),
                    "seconds": round(time.perf_counter() - started, 4),
                },
            )

    def _check_delivered(self, futures: list[Any], ready: list[Any]) -> None:
        failed = [f for f in futures if f.failed()]
        if not failed:
            return
        # Outputs lost after all retries: undo the batch's state, reprocess it from its start.
        self.store.rollback()
        self._rewind(ready)
        raise _Redo(
            f"{len(failed)} output record(s) could not be delivered ({failed[0].exception!r}); "
            "offsets not committed, the batch will be reprocessed"
        )

    def _assess(self, items: list[Any], origins: list[Any]) -> list[Any]:
        if not items:
            return []
        self.store.begin()
        try:
            return list(self.pipeline.process(items))
        except LowdoseError:
            self.store.rollback()
        # One item spoilt the batch: assess one by one to find it and keep the rest.
        out: list[Any] = []
        for item, record in zip(items, origins, strict=True):
            self.store.begin()
            try:
                out.extend(self.pipeline.process([item]))
            except LowdoseError as exc:
                self.store.rollback()
                self._bad(record, exc, "assess")
            except Exception as exc:  # a pipeline bug must not stop the feed for everyone
                self.store.rollback()
                log.exception(
                    "pipeline failed on one message",
                    extra={"event": "pipeline_error", "source": _where(record)},
                )
                self._bad(record, exc, "assess")
        return out

    def _bad(self, record: Any, error: Exception, stage: str) -> None:
        self.stats.bad += 1
        self.policy.handle(record, error, stage)

    def _rewind(self, records: list[Any]) -> None:
        first: dict[Any, int] = {}
        for r in records:
            tp = _tp(r)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        for tp, offset in first.items():
            self.consumer.seek(tp, offset)

    def _commit(self, records: list[Any]) -> None:
        from kafka import OffsetAndMetadata
        from kafka.errors import CommitFailedError, KafkaError

        offsets: dict[Any, Any] = {}
        for r in records:
            tp = _tp(r)
            if tp not in offsets or offsets[tp].offset < r.offset + 1:
                offsets[tp] = OffsetAndMetadata(r.offset + 1, "", -1)
        for attempt in range(10):
            try:
                self.consumer.commit(offsets=offsets, timeout_ms=15_000)
                self.stats.commits += 1
                for tp, committed in offsets.items():
                    METRICS.lag(
                        tp.topic, tp.partition, self.consumer.highwater(tp), committed.offset
                    )
                return
            except CommitFailedError:
                # We were rebalanced out: the new owner reprocesses from the last commit
                # (duplicates with the same assessment ids, nothing lost).
                self.stats.commit_failures += 1
                METRICS.commit_failed()
                log.warning("commit failed after a rebalance", extra={"event": "commit_failed"})
                return
            except KafkaError as exc:
                self.stats.commit_failures += 1
                METRICS.commit_failed()
                log.warning(
                    "commit failed, retrying",
                    extra={"event": "commit_retry", "attempt": attempt, "error": repr(exc)},
                )
                time.sleep(min(5.0, 0.5 * (attempt + 1)))
        raise BrokerError(
            f"could not commit offsets to group {self.s.group_id} after 10 attempts; the "
            "outputs are flushed and will be reproduced (same assessment ids) on restart"
        )


class _Redo(BrokerError):
    """The batch's outputs were not delivered; it was rewound and will be polled again."""


def _tp(record: Any) -> Any:
    from kafka import TopicPartition

    return TopicPartition(record.topic, record.partition)


def _where(record: Any) -> str:
    return f"{record.topic}/{record.partition}@{record.offset}"
