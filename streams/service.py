"""The consumer service behind ``lowdose run``: its parts, built for Kafka and wired together.

:class:`Service` creates the topics, the Kafka clients (:mod:`streams.client`), the changelog
state store, the pipeline (warmed up before joining the group), the failure policy and the
:class:`streams.loop.ServiceLoop` that runs them: poll, decode, assess, checkpoint (flush
outputs, then state, then commit: at-least-once). An output's key is the Study Instance UID and
its ``assessment_id`` header is derived from the input, so a duplicate after a crash is
recognisable. Stopping (:meth:`Service.request_stop`, SIGTERM in ``lowdose run``) lets the batch
in flight finish for ``stop_grace_s``; past that every wait on the broker gives up, nothing
unflushed is committed, and the clients close within a bounded time.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict

from streams.changelog import ChangelogStateStore
from streams.client import (
    KafkaConsumerClient,
    KafkaProducerClient,
    Producer,
    TopicPartition,
    key_hash_partitioner,
)
from streams.deadletter import BadMessagePolicy, dead_letter_policy
from streams.decode import Decoder
from streams.loop import HEADER_ASSESSMENT_ID, PipelineLike, ServiceLoop, ServiceStats, StopSignal
from streams.metrics import HEALTH
from streams.policy import FailurePolicy
from streams.settings import StreamSettings
from streams.topics import ensure_topics

__all__ = [
    "HEADER_ASSESSMENT_ID",
    "Service",
    "ServiceLoop",
    "ServiceStats",
    "key_hash_partitioner",
]

log = logging.getLogger("lowdose.streams.service")

PipelineFactory = Callable[[ChangelogStateStore], PipelineLike]
PolicyFactory = Callable[[Producer], BadMessagePolicy]

CLOSE_TIMEOUT_MS = 2000


def default_pipeline_factory(settings: StreamSettings) -> PipelineFactory:
    def build(store: ChangelogStateStore) -> PipelineLike:
        from optimiser.levels import library_with_history
        from optimiser.pipeline import Pipeline
        from protocols.library import load_library

        library = library_with_history(
            load_library(settings.site_library), settings.department_history
        )
        pipeline: PipelineLike = Pipeline(
            library=library, store=store, strictness=settings.strictness
        )
        return pipeline

    return build


class Service:
    def __init__(
        self,
        settings: StreamSettings,
        *,
        pipeline_factory: PipelineFactory | None = None,
        policy_factory: PolicyFactory | None = None,
        decoder: Decoder | None = None,
        max_defer_s: float = 60.0,
        stall_check_s: float = 10.0,
        grace_ms: float = 300.0,
        stop_grace_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.pipeline_factory = pipeline_factory or default_pipeline_factory(settings)
        self.policy_factory: PolicyFactory = policy_factory or (
            lambda producer: dead_letter_policy(producer, settings)
        )
        self.decoder = decoder or Decoder(settings.topics, strictness=settings.strictness)
        self.max_defer_s = max_defer_s
        self.stall_check_s = stall_check_s
        self.grace_ms = grace_ms
        self.stats = ServiceStats()
        self.stop = StopSignal(stop_grace_s)
        self.ready = threading.Event()  # set once the consumer has subscribed
        self._loop: ServiceLoop | None = None

    @property
    def assigned(self) -> set[TopicPartition]:
        """Input partitions owned after the last rebalance the loop followed."""
        return set(self._loop.owned) if self._loop is not None else set()

    def request_stop(self) -> None:
        """Finish the current batch (within the grace), leave the group; signal-handler safe."""
        self.stop.request()

    def run(self, *, idle_stop_s: float | None = None) -> ServiceStats:
        """Consume until :meth:`request_stop` (or ``idle_stop_s`` without any record)."""
        loop = self.open()
        try:
            loop.run(idle_stop_s)
        finally:
            self.close(loop)
        return self.stats

    def close(self, loop: ServiceLoop) -> None:
        """Leave the group (no commit: every checkpointed batch is committed), close; bounded."""
        HEALTH.stopping()
        try:
            loop.consumer.close(timeout_ms=CLOSE_TIMEOUT_MS)
        finally:
            loop.producer.close(timeout_s=CLOSE_TIMEOUT_MS / 1000)
        log.info("service stopped", extra={"event": "stopped", **asdict(self.stats)})

    # -- set-up -------------------------------------------------------------------------------

    def _producer(self) -> KafkaProducerClient:
        return KafkaProducerClient(
            **self.settings.kafka_common(),
            stop=self.stop.interrupt,
            acks="all",
            partitioner=key_hash_partitioner(),
            linger_ms=self.settings.linger_ms,
            batch_size=self.settings.batch_size,
            # Broker restarts must not lose outputs: retry delivery for up to 5 minutes.
            delivery_timeout_ms=300_000,
            request_timeout_ms=30_000,
        )

    def _reader(self) -> KafkaConsumerClient:
        return KafkaConsumerClient(
            **self.settings.kafka_common(), group_id=None, enable_auto_commit=False
        )

    def _consumer(self) -> KafkaConsumerClient:
        s = self.settings
        return KafkaConsumerClient(
            **s.kafka_common(),
            group_id=s.group_id,
            enable_auto_commit=False,
            auto_offset_reset=s.auto_offset_reset,
            max_poll_records=s.max_batch,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            max_partition_fetch_bytes=s.max_partition_fetch_bytes,
            # Seen in the kill -9 test: after a rebalance the new owner's fetches returned nothing
            # for its partitions for minutes; full fetch requests avoid stale fetch-session state
            # (a handful of partitions per consumer, so the incremental saving is small).
            enable_incremental_fetch_sessions=False,
            # A group leader whose metadata missed a topic assigns none of its partitions and
            # only notices at the next metadata refresh: keep that wait short.
            metadata_max_age_ms=10_000,
        )

    def open(self) -> ServiceLoop:
        """Create topics, clients, state store and pipeline, warm up, then subscribe."""
        s = self.settings
        counts = ensure_topics(s)
        producer = self._producer()
        store = ChangelogStateStore(
            s.topics.state,
            counts[s.topics.state],
            self._reader,
            max_studies=s.state_max_studies,
            ttl_s=s.state_ttl_s,
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
        # Where the dead-letter producer is handed over (the DLQ policy sends with it).
        policy = FailurePolicy(self.policy_factory(producer))
        consumer = self._consumer()
        consumer.wait_for_partitions({t: counts[t] for t in s.topics.inputs})
        loop = ServiceLoop(
            consumer=consumer,
            producer=producer,
            store=store,
            pipeline=pipeline,
            decoder=self.decoder,
            policy=policy,
            topics=s.topics,
            stop=self.stop,
            stats=self.stats,
            max_batch=s.max_batch,
            poll_timeout_ms=s.poll_timeout_ms,
            max_defer_s=self.max_defer_s,
            grace_ms=self.grace_ms,
            stall_check_s=self.stall_check_s,
            expire_every_s=min(60.0, s.state_ttl_s / 10),
        )
        loop.subscribe()
        self._loop = loop
        self.ready.set()
        log.info("consumer subscribed", extra={"event": "subscribed", "group_id": s.group_id})
        return loop
