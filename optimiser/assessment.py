"""Assessments: what lowdose says about one acquisition. The output contract of every edge.

`lowdose assess --json`, the HTML report and the Kafka topics ``lowdose.assessments.v1`` /
``lowdose.alerts.v1`` all carry these models; the JSON schema in ``streams/schemas/`` is
generated from them.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from optimiser.construct import unvalidated
from optimiser.events import ZRange
from optimiser.finding_codes import FindingCode

ASSESSMENT_SCHEMA = "lowdose.assessment/1"

Severity = Literal["info", "warning", "alert"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "alert": 2}


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Finding(_Out):
    code: FindingCode
    severity: Severity
    message: str  # one sentence, with the numbers
    evidence: dict[str, float | int | str | bool | None] = Field(default_factory=dict)


class Proposal(_Out):
    """The optimised acquisition and what it would have saved."""

    z_mm: ZRange
    mas: float | None
    ctdivol_mgy: float | None
    dlp_mgy_cm: float
    dlp_saving_mgy_cm: float
    effective_dose_saving_msv: float
    changes: list[str] = Field(default_factory=list)


class Assessment(_Out):
    schema_: Literal["lowdose.assessment/1"] = Field(default="lowdose.assessment/1", alias="schema")
    assessment_id: str  # deterministic: derived from the input, so duplicates are recognisable
    input_kind: Literal["protocol_event", "dose_report"]
    input_id: str  # protocol event_id, or the dose report's SOP Instance UID / source
    study_instance_uid: str
    accession_number: str | None = None
    acquisition_index: int | None = None
    irradiation_event_uid: str | None = None
    site: str
    acquisition_type: str | None = None
    description: str | None = None  # series description or acquisition protocol
    # Where and when, for the department's own levels per site and scanner model (ICRP 135).
    scanner_model: str | None = None
    station_name: str | None = None
    performed_at: datetime | None = None  # event emitted_at, or the report's start of irradiation
    needed_z_mm: ZRange | None
    needed_basis: str  # given | target_margins | site_default | structure_set
    irradiated_z_mm: ZRange | None
    placement: str  # planned | report_z | protocol_event | aligned_with_needed
    excess_is_lower_bound: bool = False
    ctdivol_mgy: float | None
    dlp_mgy_cm: float
    scan_length_mm: float
    excess_length_mm: float
    excess_dlp_mgy_cm: float
    excess_fraction: float
    effective_dose_msv: float
    excess_effective_dose_msv: float
    # Helical over-ranging (both ends together) of this acquisition: unavoidable, not excess.
    overranging_mm: float = 0.0
    # Avoidable dose: planned range beyond the needed range plus the site tolerance, and the
    # whole of a surplus acquisition (a repeat or an extra contrast phase).
    avoidable_excess_length_mm: float = 0.0
    avoidable_excess_dlp_mgy_cm: float = 0.0
    avoidable_effective_dose_msv: float = 0.0
    ssde_mgy: float | None = None
    water_equivalent_diameter_mm: float | None = None
    findings: list[Finding] = Field(default_factory=list)
    proposal: Proposal | None = None
    notes: list[str] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def max_severity(self) -> Severity | None:
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=SEVERITY_RANK.__getitem__)

    @property
    def is_alert(self) -> bool:
        """True when a finding is a warning or an alert: these go to ``lowdose.alerts.v1``."""
        return any(SEVERITY_RANK[f.severity] >= 1 for f in self.findings)

    def to_json(self) -> str:
        return self.json_bytes().decode()

    def json_bytes(self) -> bytes:
        """The JSON document as UTF-8 bytes, what a producer sends: the same bytes as
        ``to_json().encode()`` (= ``model_dump_json(by_alias=True)``) without the decode and
        encode, and without model_dump_json's argument handling (a tenth of its time)."""
        return self.__pydantic_serializer__.to_json(self, by_alias=True)


_M = TypeVar("_M", bound=BaseModel)


def trusted(cls: type[_M], values: dict[str, Any], defaults: dict[str, Any] | None = None) -> _M:
    """An instance of one of these output models built from ``values`` WITHOUT validation.

    For the pipeline's own outputs only (:mod:`optimiser.assemble`, :mod:`optimiser.findings`,
    :mod:`optimiser.proposal`): every value there is already what validation would make it
    (built from validated inputs, floats from ``round``, literal codes checked by mypy), so
    validating again only costs time: about 11 us per assessment and 4 us per finding, a fifth
    of the pipeline's CPU with serialisation. ``model_construct`` is no cheaper on pydantic
    2.14 (it works field by field), so this builds the instance with
    :func:`optimiser.construct.unvalidated`: ``values`` (every field given by the caller, in
    field order) as the fields set, ``defaults`` (fields left at their default) beside them.
    tests/test_trusted_models.py checks, for every model the pipeline builds from the clinical
    cases and a simulated feed, that validating the same values gives the same fields with the
    same types, and that the JSON is the same. Anything from outside (input messages, history
    files, the changelog) is validated as before.
    """
    return unvalidated(cls, {**defaults, **values} if defaults else values, values)


def assessment_id(input_kind: str, input_id: str, acquisition_key: str) -> str:
    """Deterministic id of the assessment of one acquisition of one input message."""
    digest = hashlib.sha256(f"{input_kind}\x1f{input_id}\x1f{acquisition_key}".encode()).hexdigest()
    return f"asm-{digest[:32]}"
