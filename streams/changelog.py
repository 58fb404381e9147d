"""Study state backed by a compacted changelog topic (``lowdose.state.v1``, keyed by study UID).

Implements :class:`optimiser.state.StudyStateStore`. Reads are served from a bounded in-memory
store; every write also goes to the changelog partition with the number of the input partition
the study's messages arrive on (inputs and changelog are co-partitioned). When the consumer is
assigned input partitions, :meth:`ChangelogStateStore.rebuild` replays the same-numbered changelog
partitions before their records are processed, so state follows a partition that moves to
another consumer.

Writes are held back until :meth:`ChangelogStateStore.send_pending`, which the service calls
after the batch's outputs are flushed and before it commits. The order matters: the state says
which Irradiation Event UIDs were assessed, and a reprocessed report skips those; if state could
reach the changelog before the assessments it stands for, a crash in between would lose them.
This way a crash leaves either nothing (reprocess everything) or the outputs without the state
(reprocess, duplicate outputs with the same ids): at-least-once either way.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ValidationError

from optimiser.state import StudyState
from streams.metrics import state_record_skipped

log = logging.getLogger("lowdose.streams.state")


def default_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (murmur2, positive modulo)."""
    from kafka.partitioner.default import murmur2

    return int((murmur2(key.encode()) & 0x7FFFFFFF) % partitions)


class ChangelogStateStore:
    """A :class:`StudyStateStore` whose writes go to a compacted topic and can be replayed."""

    def __init__(
        self,
        producer: Any,
        topic: str,
        partitions: int,
        reader_factory: Callable[[], Any],
        *,
        max_studies: int = 100_000,
        ttl_s: float = 14 * 86400.0,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.partitions = partitions
        self.reader_factory = reader_factory
        self.ttl_s = ttl_s
        self.max_studies = max_studies
        # Least recently updated first: the bound evicts from the front.
        self._states: OrderedDict[str, StudyState] = OrderedDict()
        self._partition_of: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pending: dict[str, StudyState] = {}
        # Copies of states as they were before the current batch touched them (see rollback).
        self._before: dict[str, StudyState | None] = {}
        self.writes = 0

    def route(self, study_instance_uid: str, partition: int) -> None:
        """Remember the input partition a study arrived on: its state is written there too."""
        self._partition_of[study_instance_uid] = partition

    def partition_for(self, study_instance_uid: str) -> int:
        p = self._partition_of.get(study_instance_uid)
        return p if p is not None else default_partition(study_instance_uid, self.partitions)

    def __len__(self) -> int:
        return len(self._states)

    def get(self, study_instance_uid: str) -> StudyState | None:
        with self._lock:
            state = self._states.get(study_instance_uid)
            if state is not None and time.time() - state.updated_at > self.ttl_s:
                del self._states[study_instance_uid]
                state = None
            if study_instance_uid not in self._before:
                self._before[study_instance_uid] = _copy(state)
            return state

    def begin(self) -> None:
        """Start a batch: :meth:`rollback` undoes what it changes (the pipeline edits in place)."""
        with self._lock:
            self._before.clear()

    def rollback(self) -> None:
        """Put back the states the batch changed and forget its unsent writes."""
        with self._lock:
            for uid, state in self._before.items():
                if state is None:
                    self._states.pop(uid, None)
                else:
                    self._states[uid] = state
            self._before.clear()
            self._pending.clear()

    def put(self, state: StudyState) -> None:
        state.updated_at = time.time()
        with self._lock:
            uid = state.study_instance_uid
            if uid not in self._before:
                self._before[uid] = _copy(self._states.get(uid))
            self._remember(state)
            self._pending[state.study_instance_uid] = state

    def send_pending(self) -> int:
        """Send the states written since the last call (the last one per study) to the changelog."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for uid, state in pending.items():
            self.producer.send(
                self.topic,
                key=uid.encode(),
                value=state.to_json(),
                partition=self.partition_for(uid),
            )
        self.writes += len(pending)
        return len(pending)

    def _remember(self, state: StudyState) -> None:
        uid = state.study_instance_uid
        self._states[uid] = state
        self._states.move_to_end(uid)
        while len(self._states) > self.max_studies:
            self._states.popitem(last=False)
        # The routing table must not outgrow the store it serves.
        if len(self._partition_of) > 2 * self.max_studies:
            self._partition_of = {u: p for u, p in self._partition_of.items() if u in self._states}

    def drop(self, partitions: Iterable[int]) -> int:
        """Forget the studies of partitions this consumer no longer owns; returns how many."""
        gone = set(partitions)
        with self._lock:
            uids = [uid for uid, p in self._partition_of.items() if p in gone]
            for uid in uids:
                self._states.pop(uid, None)
                del self._partition_of[uid]
        return len(uids)

    def rebuild(self, partitions: Iterable[int], timeout_s: float = 60.0) -> int:
        """Replay changelog ``partitions`` from the beginning; the last state per study wins.

        Returns the number of live studies loaded. Expired states (older than the TTL) and
        tombstones are skipped.
        """
        from kafka import TopicPartition

        wanted = sorted(set(partitions))
        if not wanted:
            return 0
        tps = [TopicPartition(self.topic, p) for p in wanted]
        reader = self.reader_factory()
        latest: dict[str, tuple[int, bytes | None]] = {}
        try:
            reader.assign(tps)
            reader.seek_to_beginning(*tps)
            end = reader.end_offsets(tps)
            deadline = time.monotonic() + timeout_s
            remaining = {tp for tp in tps if end[tp] > reader.position(tp)}
            while remaining:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"replaying {self.topic} partitions {wanted} took over {timeout_s:.0f} s"
                    )
                for tp, records in reader.poll(timeout_ms=500).items():
                    for record in records:
                        if record.key is not None:
                            latest[record.key.decode()] = (tp.partition, record.value)
                remaining = {tp for tp in remaining if reader.position(tp) < end[tp]}
        finally:
            reader.close()
        loaded = 0
        now = time.time()
        with self._lock:
            for uid, (partition, value) in latest.items():
                if value is None:
                    continue
                try:
                    state = StudyState.from_json(value)
                except ValidationError:
                    state_record_skipped(uid, partition, "unreadable")
                    continue
                if now - state.updated_at > self.ttl_s:
                    continue
                # Keep the stored timestamp: expiry counts from the last real update.
                self._partition_of[uid] = partition
                self._remember(state)
                loaded += 1
        return loaded


def _copy(state: StudyState | None) -> StudyState | None:
    """A copy deep enough to undo the pipeline's in-place edits: every list and dict field is
    copied (their items are immutable: strings, tuples, the frozen protocol event)."""
    if state is None:
        return None
    return state.model_copy(
        update={name: copy.copy(value) for name, value in state if isinstance(value, list | dict)}
    )
