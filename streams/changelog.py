"""Study state backed by a compacted changelog topic (``lowdose.state.v1``, keyed by study UID).

:class:`ChangelogStateStore` is the :class:`optimiser.state.StudyStateStore` the service's
pipeline gets. It is a :class:`optimiser.state.TransactionalStateStore` (bounded memory, one
expiry and eviction, buffered writes, no copy on read) plus what Kafka adds: each study's writes
go to the changelog partition with the number of the input partition its messages arrive on
(inputs and changelog are co-partitioned), and when the consumer is assigned input partitions,
:meth:`ChangelogStateStore.rebuild` replays the same-numbered changelog partitions before their
records are processed, so state follows a partition that moves to another consumer.

The checkpoint (:mod:`streams.checkpoint`) sends :meth:`ChangelogStateStore.changelog_records`
after the batch's outputs are flushed and before it commits offsets. The order matters: the state
says which Irradiation Event UIDs were assessed, and a reprocessed report skips those; if state
could reach the changelog before the assessments it stands for, a crash in between would lose
them. So a crash leaves either nothing (reprocess everything) or the outputs without the state
(reprocess, duplicate outputs with the same ids): at-least-once either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from pydantic import ValidationError

from optimiser.state import MemoryStateStore, StudyState, TransactionalStateStore
from streams.client import Reader, TopicPartition, default_partition
from streams.metrics import state_record_skipped

log = logging.getLogger("lowdose.streams.state")


class ChangelogRecord(NamedTuple):
    partition: int
    key: bytes
    value: bytes


class ChangelogStateStore(TransactionalStateStore):
    """A transactional state store whose committed writes are replayed from a compacted topic."""

    def __init__(
        self,
        topic: str,
        partitions: int,
        reader_factory: Callable[[], Reader],
        *,
        max_studies: int = 100_000,
        ttl_s: float = 14 * 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(MemoryStateStore(max_studies, ttl_s, clock=clock))
        self.topic = topic
        self.partitions = partitions
        self.reader_factory = reader_factory
        self._partition_of: dict[str, int] = {}
        self.on_forget(self._unroute)
        self.writes = 0
        self.skipped_records = 0  # unreadable changelog records met in rebuilds

    def _unroute(self, study_instance_uid: str) -> None:
        self._partition_of.pop(study_instance_uid, None)

    def route(self, study_instance_uid: str, partition: int) -> None:
        """Remember the input partition a study arrived on: its state is written there too."""
        self._partition_of[study_instance_uid] = partition

    def partition_for(self, study_instance_uid: str) -> int:
        p = self._partition_of.get(study_instance_uid)
        if p is not None:
            return p
        return default_partition(study_instance_uid.encode(), self.partitions)

    def changelog_records(self) -> list[ChangelogRecord]:
        """The batch's writes as changelog records (last state per study), not yet committed."""
        return [
            ChangelogRecord(self.partition_for(uid), uid.encode(), value)
            for uid, value in self.prepare().items()
        ]

    def commit(self) -> None:
        self.writes += self.pending
        super().commit()
        # The routing table must not outgrow the store it serves (routes of inputs whose study
        # never wrote state, e.g. undecodable-at-assess reports, are not forgotten otherwise).
        if len(self._partition_of) > 2 * self.memory.max_studies:
            self._partition_of = {u: p for u, p in self._partition_of.items() if u in self.memory}

    def drop(self, partitions: Iterable[int]) -> int:
        """Forget the studies of partitions this consumer no longer owns; returns how many."""
        gone = set(partitions)
        uids = [uid for uid, p in self._partition_of.items() if p in gone]
        for uid in uids:
            self.remove(uid)
            del self._partition_of[uid]
        return len(uids)

    def rebuild(self, partitions: Iterable[int], timeout_s: float = 60.0) -> int:
        """Replay changelog ``partitions`` from the beginning; the last state per study wins.

        Returns the number of live studies loaded. Expired states (older than the TTL) and
        tombstones are skipped; an unreadable record is logged with its study and partition and
        counted in ``skipped_records``, never skipped silently.
        """
        wanted = sorted(set(partitions))
        if not wanted:
            return 0
        tps = [TopicPartition(self.topic, p) for p in wanted]
        reader = self.reader_factory()
        latest: dict[str, tuple[int, bytes | None]] = {}
        try:
            reader.assign(tps)
            reader.seek_to_beginning(tps)
            end = reader.end_offsets(tps, timeout_ms=30_000)
            deadline = time.monotonic() + timeout_s
            remaining = {tp for tp in tps if end[tp] > (reader.position(tp, 30_000) or 0)}
            while remaining:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"replaying {self.topic} partitions {wanted} took over {timeout_s:.0f} s"
                    )
                for tp, records in reader.poll(timeout_ms=500, max_records=10_000).items():
                    for record in records:
                        if record.key is not None:
                            latest[record.key.decode()] = (tp.partition, record.value)
                remaining = {tp for tp in remaining if (reader.position(tp, 30_000) or 0) < end[tp]}
        finally:
            reader.close(timeout_ms=5000)
        now = self.memory.clock()
        states: list[tuple[StudyState, bytes, int]] = []
        for uid, (partition, value) in latest.items():
            if value is None:
                continue
            try:
                state = StudyState.from_json(value)
            except ValidationError:
                self.skipped_records += 1
                state_record_skipped(uid, partition, "unreadable")
                continue
            if now - state.updated_at > self.memory.ttl_s:
                continue
            states.append((state, value, partition))
        # Oldest first: the store's order is its expiry order.
        states.sort(key=lambda s: s[0].updated_at)
        for state, value, partition in states:
            self._partition_of[state.study_instance_uid] = partition
            self.load_committed(state, value)
        return len(states)
