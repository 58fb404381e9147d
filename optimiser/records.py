"""Typed records read from DICOM: dose reports (TID 10011), studies, structure sets.

Names follow the DICOM concept names of PS3.16 TID 10011/10013/10015 (see
../shared/reference/planning-ct.md section 2). Units are normalised: mm, s, kV, mA, mGy, mGy.cm.
These are plain slotted dataclasses so that the parser stays fast; pydantic is used where they
cross a boundary (JSON output, the study-state changelog).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from optimiser.events import AcquisitionType
from optimiser.events import ContrastPhase as ContrastPhase  # re-exported; home: events
from optimiser.events import Phantom as Phantom  # re-exported; home: events

Intent = Literal["diagnostic", "therapeutic", "guidance"]


@dataclass(frozen=True, slots=True)
class Code:
    """A coded concept: value and scheme identify it; the meaning is for display only."""

    value: str
    scheme: str
    meaning: str = ""


@dataclass(slots=True)
class SourceParameters:
    """CT X-Ray Source Parameters (113831), one per tube."""

    identification: str | None = None
    kvp: float | None = None
    max_tube_current_ma: float | None = None
    mean_tube_current_ma: float | None = None
    exposure_time_per_rotation_s: float | None = None


@dataclass(slots=True)
class DoseCheckDetails:
    """Dose Check Alert (113900) or Notification (113908) details, NEMA XR-25 / TID 10015.

    TID 10015 (PS3.16 2024d; planning-ct.md section 9): "Value Configured" (Yes/No) and the
    configured value describe the scanner's set-up; the forward estimates, the Reason for
    Proceeding and the person authorising are present only when a value was exceeded. So a
    container, or "Configured = Yes" alone, is configuration, not an event.
    """

    kind: Literal["alert", "notification"]
    dlp_configured: bool | None = None
    ctdivol_configured: bool | None = None
    dlp_value_mgy_cm: float | None = None
    ctdivol_value_mgy: float | None = None
    dlp_forward_estimate_mgy_cm: float | None = None
    ctdivol_forward_estimate_mgy: float | None = None
    reason_for_proceeding: str | None = None
    # Person Name (113870) with Person Role in Procedure 113850 "Irradiation Authorizing"
    # (TID 1020): staff, not patient data; kept for the record, never put in a message.
    authorizing_persons: list[str] = field(default_factory=list)

    def configured(self) -> list[str]:
        """The configured values, e.g. ``['CTDIvol 1000 mGy']`` (Configured not No, value given)."""
        out = []
        if self.ctdivol_configured is not False and self.ctdivol_value_mgy is not None:
            out.append(f"CTDIvol {self.ctdivol_value_mgy:g} mGy")
        if self.dlp_configured is not False and self.dlp_value_mgy_cm is not None:
            out.append(f"DLP {self.dlp_value_mgy_cm:g} mGy.cm")
        return out

    def exceedances(self) -> list[str]:
        """What in this container shows that a configured value was exceeded, one text each:
        a forward estimate at or above its configured value (or with "Configured = Yes" and the
        value left out), a reason for proceeding, an authorising person. A forward estimate
        under "Configured = No", or with neither a value nor "Yes", shows nothing: some writers
        fill the estimates in regardless."""
        out = []
        pairs = (
            ("CTDIvol", self.ctdivol_configured, self.ctdivol_forward_estimate_mgy,
             self.ctdivol_value_mgy, "mGy"),
            ("DLP", self.dlp_configured, self.dlp_forward_estimate_mgy_cm,
             self.dlp_value_mgy_cm, "mGy.cm"),
        )  # fmt: skip
        for quantity, flag, estimate, limit, unit in pairs:
            if estimate is None or flag is False:
                continue
            if limit is not None and estimate >= limit:
                out.append(
                    f"{quantity} forward estimate {estimate:g} {unit} >= {self.kind} "
                    f"value {limit:g} {unit}"
                )
            elif limit is None and flag is True:
                # Configured = Yes and an estimate, but the value itself left out: the estimate
                # is present only when the value was exceeded (TID 10015).
                out.append(
                    f"{quantity} forward estimate {estimate:g} {unit} (the configured "
                    f"{self.kind} value is not recorded)"
                )
        if self.reason_for_proceeding:
            out.append(f"reason for proceeding: {self.reason_for_proceeding}")
        if self.authorizing_persons:
            out.append("authorising person recorded")
        return out


@dataclass(slots=True)
class CtAcquisition:
    """One CT Acquisition container (113819): one irradiation event."""

    irradiation_event_uid: str
    acquisition_type: AcquisitionType | None = None
    acquisition_protocol: str | None = None
    # Comment (121106, DCM) of TID 10013, free text: vendors write technical notes there; an
    # operator may record why the event was repeated (optimiser.repeats).
    comment: str | None = None
    target_region: Code | None = None
    # Procedure Context: "with" (with contrast: enhanced, phase unspecified), "none" (without),
    # None (absent: unknown).
    contrast: ContrastPhase | None = None
    exposure_time_s: float | None = None
    scanning_length_mm: float | None = None
    exposed_range_mm: float | None = None
    top_z_mm: float | None = None
    bottom_z_mm: float | None = None
    frame_of_reference_uid: str | None = None
    nominal_single_collimation_mm: float | None = None
    nominal_total_collimation_mm: float | None = None
    pitch_factor: float | None = None
    number_of_sources: int | None = None
    sources: list[SourceParameters] = field(default_factory=list)
    mean_ctdivol_mgy: float | None = None
    phantom: Phantom | None = None
    dlp_mgy_cm: float | None = None
    ssde_mgy: float | None = None
    water_equivalent_diameter_mm: float | None = None
    dose_check: list[DoseCheckDetails] = field(default_factory=list)

    @property
    def kvp(self) -> list[float]:
        """kVp per source, in source order, leaving out sources that did not report one."""
        return [s.kvp for s in self.sources if s.kvp is not None]


@dataclass(slots=True)
class DoseReport:
    """One CT Radiation Dose SR document as read from one file or message."""

    source: str
    sop_class_uid: str
    sop_instance_uid: str | None
    study_instance_uid: str
    accession_number: str | None = None
    patient_id: str | None = field(default=None, repr=False)  # for matching only; never logged
    station_name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    device_serial: str | None = None
    start_of_irradiation: datetime | None = None
    end_of_irradiation: datetime | None = None
    has_intent: Intent | None = None
    source_of_dose_information: Code | None = None
    dlp_total_mgy_cm: float | None = None
    total_number_of_events: int | None = None
    acquisitions: list[CtAcquisition] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class StudyDose:
    """All dose reports of one study merged: unique events by Irradiation Event UID."""

    study_instance_uid: str
    sources: list[str]
    acquisitions: list[CtAcquisition]
    reported_dlp_totals_mgy_cm: list[float]
    dlp_total_mgy_cm: float  # recomputed from the unique events
    header: DoseReport  # the newest report's study-level fields
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RoiExtent:
    """One ROI of an RT Structure Set with the z-extent of its contour points."""

    number: int
    name: str
    z_min_mm: float
    z_max_mm: float
    interpreted_type: str | None = None  # RT ROI Interpreted Type: PTV, ORGAN, EXTERNAL, ...


@dataclass(slots=True)
class StructureSet:
    source: str
    study_instance_uid: str
    frame_of_reference_uid: str | None
    rois: list[RoiExtent] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
