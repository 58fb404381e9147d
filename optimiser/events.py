"""Protocol events: the acquisitions a scanner plans, sent before exposure.

The field names are a contract with scanner feeds (issue 4); do not rename them. The JSON schema
published in ``streams/schemas/`` is generated from these models.

Bounds (issue 10): every float must be finite (NaN and ±Infinity are refused, JSON ``1e400``
included), values beyond what any CT scanner can plan are refused, and one event holds at most
:data:`MAX_ACQUISITIONS` acquisitions and bounded strings. Together these keep the study-state
record that holds an event below :data:`MAX_EVENT_STATE_BYTES` (tests/test_events_limits.py
builds the largest allowed event and measures it), far below the producer's 1 MB request
limit. The physical bounds are deliberately loose (a plausibility gate against corrupt feeds,
not a protocol check): couch travel of commercial CT is about 2 m, tube voltages 70-150 kV
(IEC 60601-2-44 scanners; no clinical tube exceeds 150 kV), detector coverage at most 160 mm,
pitch at most about 3.4 (dual-source), and an accumulated-CTDIvol Dose Check alert value of
1000 mGy is suggested by AAPM 2011 (../shared/reference/planning-ct.md, section 7); the limits
below are several times those figures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from optimiser.construct import unvalidated
from optimiser.errors import InputError

PROTOCOL_SCHEMA = "lowdose.protocol/1"
# Minor versions of the protocol event: each adds optional fields only, so every event of an
# earlier minor version is still valid (a consumer reads "lowdose.protocol/1.x" as major 1).
# 1.1 (issue 20): an acquisition may record why it repeats an earlier one (``repeat_reason``,
# ``repeat_reason_text``). A field of a later minor version in an event that names an earlier one
# is refused: the schema string says which fields a producer may have filled.
PROTOCOL_SCHEMA_1_1 = "lowdose.protocol/1.1"
ProtocolSchema = Literal["lowdose.protocol/1", "lowdose.protocol/1.1"]

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
CONTRAST_PHASES: tuple[ContrastPhase, ...] = get_args(ContrastPhase)
ENHANCED_PHASES: frozenset[ContrastPhase] = frozenset(CONTRAST_PHASES[1:])
_PHASE_NAMES: dict[ContrastPhase, str] = {
    "none": "non-contrast",
    "with": "enhanced (phase unspecified)",
    "arterial": "arterial",
    "portal_venous": "portal venous",
    "delayed": "delayed",
}


# Why an acquisition repeats an earlier one over the same range (schema 1.1; planning-ct.md
# section 8: a repeat is a diagnostic-grade sign only "without a recorded reason"). The usual
# reasons a planning CT is repeated: the patient moved (or coughed, swallowed), irregular
# breathing spoilt a (4D) respiratory-correlated scan, the patient or immobilisation had to be
# re-positioned, an artefact (metal, streaks, a truncated body outline) made the images unusable;
# "other" needs ``repeat_reason_text``.
RepeatReason = Literal["patient_motion", "breathing", "positioning", "artefact", "other"]
REPEAT_REASONS: tuple[RepeatReason, ...] = get_args(RepeatReason)
_REPEAT_REASON_NAMES: dict[RepeatReason, str] = {
    "patient_motion": "patient motion",
    "breathing": "irregular breathing",
    "positioning": "re-positioning",
    "artefact": "image artefact",
    "other": "other reason",
}


def repeat_reason_name(reason: RepeatReason) -> str:
    """The reason as a physicist reads it: 'patient motion', 'image artefact', ..."""
    return _REPEAT_REASON_NAMES[reason]


def is_enhanced(phase: ContrastPhase | None) -> bool:
    """True for a contrast-enhanced phase; False for non-contrast and for unknown (None)."""
    return phase in ENHANCED_PHASES


def phase_name(phase: ContrastPhase | None) -> str:
    """The phase as a physicist reads it: 'non-contrast', 'arterial', ..., or 'unknown'."""
    return "unknown" if phase is None else _PHASE_NAMES[phase]


Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]

# -- bounds (see the module docstring for the figures behind them) ---------------------------
# One planning CT has a few acquisitions (localizers, one or two spirals, a 4D series); 100
# leaves room for every phase of a 4D CT sent as its own acquisition.
MAX_ACQUISITIONS = 100
MAX_ORGANS = 100  # named organ ranges in the planning block
MAX_TEXT = 256  # free text: descriptions, station, manufacturer (DICOM LO is 64 characters)
MAX_NAME = 64  # identifiers: site, kernel, organ names
MAX_ID = 64  # patient ID (DICOM LO) and accession number (DICOM SH is 16 characters)
Z_LIMIT_MM = 10_000.0  # |z| of any position: ten metres is no couch
MAX_SCAN_LENGTH_MM = 3_000.0  # one acquisition or planning range: longer than any couch travel
MAX_KVP = 200.0
MAX_MAS = 100_000.0
MAX_CTDIVOL_MGY = 10_000.0  # ten times the accumulated Dose Check alert value (AAPM 2011)
MAX_PITCH = 10.0
MAX_COLLIMATION_MM = 500.0
MAX_ROTATION_TIME_S = 60.0
MAX_SLICE_THICKNESS_MM = 100.0
MAX_INDEX = 9_999
# Upper bound of the JSON of a study-state record holding the largest allowed event (measured
# in tests/test_events_limits.py). The changelog store relies on it: a state record always fits
# the producer's 1 MB max_request_size with room for the rest of the study state.
# Schema 1.1's repeat_reason_text (MAX_TEXT on each of MAX_ACQUISITIONS) took the measured
# largest record from 82.1 kB to 108.7 kB: the bound rose from 100 kB to 125 kB, still below a
# quarter of the producer's 1 MB limit (asserted by the test).
MAX_EVENT_STATE_BYTES = 125_000

ZMm = Annotated[float, Field(ge=-Z_LIMIT_MM, le=Z_LIMIT_MM)]
PlanRange = tuple[ZMm, ZMm]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Name = Annotated[str, Field(max_length=MAX_NAME)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _ordered(value: tuple[float, float] | None) -> tuple[float, float] | None:
    if value is None:
        return None
    lo, hi = value
    lo, hi = (lo, hi) if lo <= hi else (hi, lo)
    _check_length(lo, hi)
    return lo, hi


def _check_length(lo: float, hi: float) -> None:
    if abs(hi - lo) > MAX_SCAN_LENGTH_MM:
        raise ValueError(
            f"range {lo:g}..{hi:g} mm is longer than {MAX_SCAN_LENGTH_MM:g} mm (no couch travels "
            "that far); check the units (mm) and the positions"
        )


class Scanner(_Strict):
    station_name: Text | None = None
    manufacturer: Text | None = None
    model: Text | None = None
    device_serial: Text | None = None


class Study(_Strict):
    study_instance_uid: str = Field(min_length=1, max_length=64)
    accession_number: str | None = Field(default=None, max_length=MAX_ID)
    # Kept for matching reports to events; never logged.
    patient_id: str | None = Field(default=None, repr=False, max_length=MAX_ID)
    study_description: Text | None = None
    purpose: Literal["rt_planning", "diagnostic", "other"] = "rt_planning"
    labelled_planning: bool = True


class Planning(_Strict):
    site: str = Field(min_length=1, max_length=MAX_NAME)
    needed_z_mm: PlanRange | None = None
    target_z_mm: PlanRange | None = None
    isocentre_z_mm: ZMm | None = None
    organs_z_mm: dict[Name, PlanRange] = Field(default_factory=dict, max_length=MAX_ORGANS)

    _order = field_validator("needed_z_mm", "target_z_mm")(_ordered)

    @field_validator("organs_z_mm")
    @classmethod
    def _order_organs(cls, value: dict[str, ZRange]) -> dict[str, ZRange]:
        ordered = {k: (lo, hi) if lo <= hi else (hi, lo) for k, (lo, hi) in value.items()}
        for lo, hi in ordered.values():
            _check_length(lo, hi)
        return ordered


class PlannedAcquisition(_Strict):
    index: int = Field(ge=0, le=MAX_INDEX)
    type: AcquisitionType
    z_start_mm: ZMm
    z_end_mm: ZMm
    kvp: Annotated[float, Field(gt=0, le=MAX_KVP)]
    mas: Annotated[float, Field(ge=0, le=MAX_MAS)]
    ctdivol_mgy: Annotated[float, Field(ge=0, le=MAX_CTDIVOL_MGY)]
    # Absent: the site library's phantom (head for brain and head & neck; issue 9 defect 6).
    phantom: Phantom | None = None
    pitch: Annotated[float, Field(gt=0, le=MAX_PITCH)] | None = None
    total_collimation_mm: Annotated[float, Field(gt=0, le=MAX_COLLIMATION_MM)] | None = None
    rotation_time_s: Annotated[float, Field(gt=0, le=MAX_ROTATION_TIME_S)] | None = None
    slice_thickness_mm: Annotated[float, Field(gt=0, le=MAX_SLICE_THICKNESS_MM)] | None = None
    kernel: Name | None = None
    contrast: ContrastPhase = "none"
    tube_current_modulation: bool = False
    series_description: Text | None = None
    # Schema 1.1: why this acquisition repeats an earlier one over the same range, and the
    # operator's words for it. Only read on the later (repeated) acquisition.
    repeat_reason: RepeatReason | None = None
    repeat_reason_text: Text | None = None

    @model_validator(mode="after")
    def _plausible_length(self) -> PlannedAcquisition:
        _check_length(self.z_start_mm, self.z_end_mm)
        if self.repeat_reason_text is not None and self.repeat_reason is None:
            raise ValueError(
                "repeat_reason_text needs a repeat_reason (patient_motion, breathing, "
                "positioning, artefact or other)"
            )
        if self.repeat_reason == "other" and not (self.repeat_reason_text or "").strip():
            raise ValueError('repeat_reason "other" needs repeat_reason_text saying why')
        return self

    @property
    def z_range_mm(self) -> ZRange:
        """Planned range, low end first (scanners send start/end in either order)."""
        return (min(self.z_start_mm, self.z_end_mm), max(self.z_start_mm, self.z_end_mm))


class ProtocolEvent(_Strict):
    schema_: ProtocolSchema = Field(alias="schema")
    event_id: str = Field(min_length=1, max_length=200)
    emitted_at: datetime
    scanner: Scanner
    study: Study
    planning: Planning
    acquisitions: list[PlannedAcquisition] = Field(min_length=1, max_length=MAX_ACQUISITIONS)

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    @field_validator("acquisitions")
    @classmethod
    def _unique_indices(cls, value: list[PlannedAcquisition]) -> list[PlannedAcquisition]:
        indices = [a.index for a in value]
        if len(set(indices)) != len(indices):
            raise ValueError(f"acquisition indices must be unique, got {indices}")
        return value

    @model_validator(mode="after")
    def _fields_of_its_version(self) -> ProtocolEvent:
        if self.schema_ == PROTOCOL_SCHEMA and any(
            a.repeat_reason is not None for a in self.acquisitions
        ):
            raise ValueError(
                f"repeat_reason is a field of {PROTOCOL_SCHEMA_1_1}: send the event with "
                f'"schema": "{PROTOCOL_SCHEMA_1_1}" ({PROTOCOL_SCHEMA} events stay valid '
                "without it)"
            )
        return self

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    def without_identifiers(self) -> ProtocolEvent:
        """This event without the Patient ID and accession number: what the study state keeps
        (a dose report finds its event by Study Instance UID; assessment needs neither)."""
        study = _replaced(self.study, patient_id=None, accession_number=None)
        return _replaced(self, study=study)


_M = TypeVar("_M", bound=BaseModel)


def _replaced(model: _M, **changes: object) -> _M:
    """What ``model.model_copy(update=changes)`` gives (same field values but ``changes``, the
    fields set grown by their names, nothing validated), without its three ``copy.copy`` calls
    per model: 9 us an event on a loaded machine. Only for models of this module without
    private attributes or extras, and for values their fields accept (None where optional, a
    model of the field's type); tests/test_state_identifiers.py compares it with model_copy."""
    return unvalidated(
        model.__class__, {**model.__dict__, **changes}, model.model_fields_set | changes.keys()
    )


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
