"""Per-study state the pipeline keeps between messages, and the store interface that holds it.

A dose report is assessed against the planning requirement of its study's earlier protocol event
(and later structure set); cumulative reports resend events already assessed. The pipeline keeps
that knowledge in a :class:`StudyState` per Study Instance UID. The store is injected: in-process
runs use :class:`MemoryStateStore`; the Kafka service backs it with a compacted changelog topic
(``streams.state``) so a consumer that takes over a partition rebuilds it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
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

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> StudyState:
        return cls.model_validate_json(data)


class StudyStateStore(Protocol):
    """Where the pipeline reads and writes study state. Implementations bound their size."""

    def get(self, study_instance_uid: str) -> StudyState | None: ...

    def put(self, state: StudyState) -> None: ...


class MemoryStateStore:
    """Bounded in-memory store: least recently updated studies beyond ``max_studies`` or older
    than ``ttl_s`` are forgotten (a planning study is complete within days)."""

    def __init__(self, max_studies: int = 100_000, ttl_s: float = 14 * 86400.0) -> None:
        self.max_studies = max_studies
        self.ttl_s = ttl_s
        self._states: OrderedDict[str, StudyState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, study_instance_uid: str) -> StudyState | None:
        state = self._states.get(study_instance_uid)
        if state is not None and time.time() - state.updated_at > self.ttl_s:
            del self._states[study_instance_uid]
            return None
        return state

    def put(self, state: StudyState) -> None:
        state.updated_at = time.time()
        self._states[state.study_instance_uid] = state
        self._states.move_to_end(state.study_instance_uid)
        while len(self._states) > self.max_studies:
            self._states.popitem(last=False)
