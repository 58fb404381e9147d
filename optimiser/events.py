"""Protocol events: the acquisitions a scanner plans, sent before exposure.

The field names are a contract with scanner feeds (issue 4); do not rename them. The JSON schema
published in ``streams/schemas/`` is generated from these models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from optimiser.errors import InputError

PROTOCOL_SCHEMA = "lowdose.protocol/1"

AcquisitionType = Literal["spiral", "sequenced", "localizer", "stationary", "free", "cone_beam"]
ACQUISITION_TYPES: tuple[AcquisitionType, ...] = (
    "spiral",
    "sequenced",
    "localizer",
    "stationary",
    "free",
    "cone_beam",
)

ZRange = tuple[float, float]

Phantom = Literal["head", "body"]  # CTDI phantom: 16 cm head, 32 cm body (IEC 60601-2-44)

# Contrast phase of one acquisition (issue 9 defect 5; planning-ct.md section 8: several contrast
# phases over one range are a diagnostic-grade sign). "none" is non-contrast; "with" is
# contrast-enhanced with the phase unspecified (a dose report's Procedure Context "with contrast"
# says no more); the named phases are the usual enhanced phases. An unknown phase (a report
# without Procedure Context) is None where it can occur.
ContrastPhase = Literal["none", "with", "arterial", "portal_venous", "delayed"]
CONTRAST_PHASES: tuple[ContrastPhase, ...] = (
    "none",
    "with",
    "arterial",
    "portal_venous",
    "delayed",
)
ENHANCED_PHASES: frozenset[ContrastPhase] = frozenset(CONTRAST_PHASES[1:])
_PHASE_NAMES: dict[ContrastPhase, str] = {
    "none": "non-contrast",
    "with": "enhanced (phase unspecified)",
    "arterial": "arterial",
    "portal_venous": "portal venous",
    "delayed": "delayed",
}


def is_enhanced(phase: ContrastPhase | None) -> bool:
    """True for a contrast-enhanced phase; False for non-contrast and for unknown (None)."""
    return phase in ENHANCED_PHASES


def phase_name(phase: ContrastPhase | None) -> str:
    """The phase as a physicist reads it: 'non-contrast', 'arterial', ..., or 'unknown'."""
    return "unknown" if phase is None else _PHASE_NAMES[phase]


Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ordered(value: tuple[float, float] | None) -> tuple[float, float] | None:
    if value is None:
        return None
    lo, hi = value
    return (lo, hi) if lo <= hi else (hi, lo)


class Scanner(_Strict):
    station_name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    device_serial: str | None = None


class Study(_Strict):
    study_instance_uid: str = Field(min_length=1, max_length=64)
    accession_number: str | None = None
    # Kept for matching reports to events; never logged.
    patient_id: str | None = Field(default=None, repr=False)
    study_description: str | None = None
    purpose: Literal["rt_planning", "diagnostic", "other"] = "rt_planning"
    labelled_planning: bool = True


class Planning(_Strict):
    site: str = Field(min_length=1)
    needed_z_mm: ZRange | None = None
    target_z_mm: ZRange | None = None
    isocentre_z_mm: float | None = None
    organs_z_mm: dict[str, ZRange] = Field(default_factory=dict)

    _order = field_validator("needed_z_mm", "target_z_mm")(_ordered)

    @field_validator("organs_z_mm")
    @classmethod
    def _order_organs(cls, value: dict[str, ZRange]) -> dict[str, ZRange]:
        return {k: (lo, hi) if lo <= hi else (hi, lo) for k, (lo, hi) in value.items()}


class PlannedAcquisition(_Strict):
    index: int = Field(ge=0)
    type: AcquisitionType
    z_start_mm: float
    z_end_mm: float
    kvp: Positive
    mas: NonNegative
    ctdivol_mgy: NonNegative
    # Absent: the site library's phantom (head for brain and head & neck; issue 9 defect 6).
    phantom: Phantom | None = None
    pitch: Positive | None = None
    total_collimation_mm: Positive | None = None
    rotation_time_s: Positive | None = None
    slice_thickness_mm: Positive | None = None
    kernel: str | None = None
    contrast: ContrastPhase = "none"
    tube_current_modulation: bool = False
    series_description: str | None = None

    @property
    def z_range_mm(self) -> ZRange:
        """Planned range, low end first (scanners send start/end in either order)."""
        return (min(self.z_start_mm, self.z_end_mm), max(self.z_start_mm, self.z_end_mm))


class ProtocolEvent(_Strict):
    schema_: Literal["lowdose.protocol/1"] = Field(alias="schema")
    event_id: str = Field(min_length=1, max_length=200)
    emitted_at: datetime
    scanner: Scanner
    study: Study
    planning: Planning
    acquisitions: list[PlannedAcquisition] = Field(min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("acquisitions")
    @classmethod
    def _unique_indices(cls, value: list[PlannedAcquisition]) -> list[PlannedAcquisition]:
        indices = [a.index for a in value]
        if len(set(indices)) != len(indices):
            raise ValueError(f"acquisition indices must be unique, got {indices}")
        return value

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)


def parse_protocol_event(data: bytes | str, *, source: str = "protocol event") -> ProtocolEvent:
    """Validate one protocol event from JSON; every failure is an :class:`InputError`."""
    try:
        return ProtocolEvent.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise InputError(
            f"not a valid {PROTOCOL_SCHEMA} event: field {where}: {first['msg']} "
            f"({exc.error_count()} error(s) in all); fix the feed to follow "
            "streams/schemas/protocol-event.schema.json",
            source=source,
        ) from exc
