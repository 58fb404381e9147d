"""Per-study state the pipeline keeps between messages, and the store interface that holds it.

A dose report is assessed against the planning requirement of its study's earlier protocol event
(and later structure set); cumulative reports resend events already assessed. The pipeline keeps
that knowledge in a :class:`StudyState` per Study Instance UID. The store is injected: in-process
runs use :class:`MemoryStateStore`; the Kafka service backs it with a compacted changelog topic
(``streams.changelog``) so a consumer that takes over a partition rebuilds it.

:class:`MemoryStateStore` is the one implementation of the bounds: expiry (``ttl_s`` since a
study's last update, on read and by :meth:`MemoryStateStore.expire`, which a long-running
service calls on a timer) and eviction (least recently updated beyond ``max_studies``).
:class:`TransactionalStateStore` puts a transaction over it: writes are buffered, ``prepare``
serialises them (the changelog records), ``commit`` applies them and ``rollback`` undoes the
batch, reads are never copied.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from optimiser.events import ContrastPhase, ProtocolEvent, ZRange


class StudyState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    study_instance_uid: str
    updated_at: float = Field(default_factory=time.time)  # epoch seconds, for expiry
    protocol_event: ProtocolEvent | None = None
    # ROI name -> (z_min, z_max) from the study's RT Structure Set, when one has arrived.
    structure_set_rois: dict[str, ZRange] | None = None
    structure_set_roi_types: dict[str, str] = Field(default_factory=dict)
    # Irradiation Event UIDs already assessed: cumulative reports resend them.
    assessed_event_uids: list[str] = Field(default_factory=list)
    # (x_lo, x_hi, contrast phase) of reported events already assessed and placed, so that a
    # repeat or an extra phase in a later (continued) report of the study is recognised.
    reported_ranges: list[tuple[float, float, ContrastPhase | None]] = Field(default_factory=list)

    @field_validator("reported_ranges", mode="before")
    @classmethod
    def _phase_from_bool(cls, value: object) -> object:
        """Changelog records written before phases were modelled hold a bool: True (with
        contrast) is enhanced with the phase unspecified, False is non-contrast."""
        if not isinstance(value, list):
            return value
        out: list[object] = []
        for entry in value:
            if isinstance(entry, list | tuple) and len(entry) == 3 and isinstance(entry[2], bool):
                entry = (entry[0], entry[1], "with" if entry[2] else "none")
            out.append(entry)
        return out

    # Total DLP of the study's reported events assessed so far (exam-level DRL check, ICRP 135).
    reported_exam_dlp_mgy_cm: float = 0.0

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> StudyState:
        return cls.model_validate_json(data)


class StudyStateStore(Protocol):
    """Where the pipeline reads and writes study state. Implementations bound their size."""

    def get(self, study_instance_uid: str) -> StudyState | None: ...

    def put(self, state: StudyState) -> None: ...


Clock = Callable[[], float]


class MemoryStateStore:
    """Bounded in-memory store: least recently updated studies beyond ``max_studies`` or older
    than ``ttl_s`` are forgotten (a planning study is complete within days).

    Studies are kept in order of their last update, oldest first, so :meth:`expire` and the
    eviction both work from the front. ``on_forget`` is called with the UID of every study the
    store drops by itself (expired or evicted), so a wrapper can forget what it keeps beside.
    """

    def __init__(
        self,
        max_studies: int = 100_000,
        ttl_s: float = 14 * 86400.0,
        *,
        clock: Clock = time.time,
        on_forget: Callable[[str], None] | None = None,
    ) -> None:
        self.max_studies = max_studies
        self.ttl_s = ttl_s
        self.clock = clock
        self.on_forget = on_forget
        self._states: OrderedDict[str, StudyState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, study_instance_uid: object) -> bool:
        return study_instance_uid in self._states

    def get(self, study_instance_uid: str) -> StudyState | None:
        state = self._states.get(study_instance_uid)
        if state is not None and self.clock() - state.updated_at > self.ttl_s:
            self._forget(study_instance_uid)
            return None
        return state

    def put(self, state: StudyState) -> None:
        """Store ``state`` as updated now."""
        state.updated_at = self.clock()
        self.load(state)

    def load(self, state: StudyState) -> None:
        """Store ``state`` keeping its ``updated_at`` (a replayed or restored state): expiry
        counts from the last real update. Load oldest first to keep the order exact."""
        uid = state.study_instance_uid
        self._states[uid] = state
        self._states.move_to_end(uid)
        while len(self._states) > self.max_studies:
            self._forget(next(iter(self._states)))

    def remove(self, study_instance_uid: str) -> bool:
        """Forget a study (no ``on_forget`` call: the caller decides); True if it was there."""
        return self._states.pop(study_instance_uid, None) is not None

    def expire(self, now: float | None = None) -> int:
        """Forget every study not updated for ``ttl_s``; returns how many (defect 8 of issue
        10: expiry only on read let unread studies pile up to the ``max_studies`` bound)."""
        now = self.clock() if now is None else now
        expired = 0
        while self._states:
            uid, state = next(iter(self._states.items()))
            if now - state.updated_at <= self.ttl_s:
                break
            self._forget(uid)
            expired += 1
        return expired

    def uids(self) -> list[str]:
        return list(self._states)

    def _forget(self, uid: str) -> None:
        del self._states[uid]
        if self.on_forget is not None:
            self.on_forget(uid)


class TransactionalStateStore:
    """A :class:`StudyStateStore` whose writes form a transaction over a :class:`MemoryStateStore`.

    During a batch, :meth:`put` only buffers (the last write per study wins) and :meth:`get`
    returns the buffered state, else the stored one itself (no copy). :meth:`prepare` serialises
    the buffered states (the records a changelog persists), :meth:`commit` applies them to the
    store, :meth:`rollback` drops them. The pipeline edits the object it read in place, so a
    rollback cannot trust the stored objects the batch touched: it puts back each one's last
    committed serialisation (kept per study, the same bytes the changelog holds) or forgets a
    study that had none. The price is those bytes in memory, not a copy on every read.
    """

    def __init__(self, memory: MemoryStateStore) -> None:
        self.memory = memory
        self._forget_hooks: list[Callable[[str], None]] = []
        memory.on_forget = self._forgotten
        self._committed: dict[str, bytes] = {}
        self._writes: dict[str, StudyState] = {}
        self._touched: set[str] = set()
        self._prepared: dict[str, bytes] | None = None
        # Under a savepoint: each study's visible state before its first touch since then,
        # as (was a buffered write, serialisation or None).
        self._save: dict[str, tuple[bool, bytes | None]] | None = None

    def on_forget(self, hook: Callable[[str], None]) -> None:
        """Also call ``hook(uid)`` when the store expires or evicts a study."""
        self._forget_hooks.append(hook)

    def __len__(self) -> int:
        return len(self.memory)

    def get(self, study_instance_uid: str) -> StudyState | None:
        self._touched.add(study_instance_uid)
        if self._save is not None and study_instance_uid not in self._save:
            self._note(study_instance_uid)
        state = self._writes.get(study_instance_uid)
        return state if state is not None else self.memory.get(study_instance_uid)

    def put(self, state: StudyState) -> None:
        state.updated_at = self.memory.clock()
        uid = state.study_instance_uid
        self._touched.add(uid)
        if self._save is not None and uid not in self._save:
            self._note(uid)
        self._writes[uid] = state
        self._prepared = None

    def savepoint(self) -> None:
        """Mark the present state of the transaction; :meth:`rollback_to_savepoint` returns to it.

        For the split-and-retry of a failing batch only: under a savepoint the first touch of a
        study serialises its visible state (the failing item may edit it in place).
        """
        self._save = {}

    def rollback_to_savepoint(self) -> None:
        save, self._save = self._save or {}, None
        for uid, (buffered, data) in save.items():
            if buffered:
                assert data is not None
                self._writes[uid] = StudyState.from_json(data)
                continue
            self._writes.pop(uid, None)
            if data is None:
                self.memory.remove(uid)
            else:
                self.memory.load(StudyState.from_json(data))
        self._prepared = None

    def release_savepoint(self) -> None:
        self._save = None

    def _note(self, uid: str) -> None:
        assert self._save is not None
        buffered = self._writes.get(uid)
        if buffered is not None:
            self._save[uid] = (True, buffered.to_json())
            return
        stored = self.memory.get(uid)
        self._save[uid] = (False, None if stored is None else stored.to_json())

    @property
    def pending(self) -> int:
        return len(self._writes)

    def prepare(self) -> dict[str, bytes]:
        """The batch's writes serialised, by study UID: what must be persisted before commit."""
        if self._prepared is None:
            self._prepared = {uid: state.to_json() for uid, state in self._writes.items()}
        return self._prepared

    def commit(self) -> None:
        """Apply the batch's writes (after their changelog records were delivered)."""
        prepared = self.prepare()
        for uid, state in self._writes.items():
            self.memory.load(state)
            self._committed[uid] = prepared[uid]
        self._end()

    def rollback(self) -> None:
        """Drop the batch's writes and restore every study it read or wrote."""
        for uid in self._touched:
            committed = self._committed.get(uid)
            if committed is None:
                self.memory.remove(uid)
            else:
                self.memory.load(StudyState.from_json(committed))
        self._end()

    def load_committed(self, state: StudyState, data: bytes) -> None:
        """Load a state replayed from its serialisation ``data`` (a changelog record)."""
        self.memory.load(state)
        self._committed[state.study_instance_uid] = data

    def remove(self, study_instance_uid: str) -> None:
        self.memory.remove(study_instance_uid)
        self._committed.pop(study_instance_uid, None)

    def expire(self, now: float | None = None) -> int:
        return self.memory.expire(now)

    def _forgotten(self, uid: str) -> None:
        self._committed.pop(uid, None)
        for hook in self._forget_hooks:
            hook(uid)

    def _end(self) -> None:
        self._save = None
        self._writes = {}
        self._touched = set()
        self._prepared = None
