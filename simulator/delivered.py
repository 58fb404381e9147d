"""What the scanner delivered: the content of a simulated dose report, one record per event."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DoseCheck:
    """A NEMA XR-25 Dose Check container recorded for one acquisition (DICOM PS3.16 TID 10015;
    ../shared/reference/planning-ct.md section 9).

    A configured value alone is configuration; an exceedance is shown by a forward estimate at
    or above it, a reason for proceeding or an authorising person. A value left ``None`` is not
    written (its "Configured" flag is then No); ``legacy_codes`` writes Yes/No as the older SRT
    codes R-0038D / R-00339 instead of SCT 373066001 / 373067005.
    """

    kind: str  # notification | alert
    ctdivol_value_mgy: float | None
    dlp_value_mgy_cm: float | None
    ctdivol_forward_estimate_mgy: float | None = None
    dlp_forward_estimate_mgy_cm: float | None = None
    reason_for_proceeding: str | None = None
    authorized_by: str | None = None  # TID 1020 Person Name, role "Irradiation Authorizing"
    legacy_codes: bool = False


@dataclass(frozen=True, slots=True)
class DeliveredAcquisition:
    """One irradiation event as the scanner delivered it: what the dose report carries.

    ``top_z_mm`` / ``bottom_z_mm`` bound the scanning length (the planned, reconstructable range);
    ``exposed_range_mm`` is the irradiated length, which for a helical scan adds the scanner's
    over-ranging (planning-ct.md section 4): DLP = CTDIvol x exposed range. Left ``None`` it equals
    the scanning length (non-helical acquisitions).
    """

    index: int
    acquisition_type: str  # spiral | sequenced | stationary | localizer
    protocol: str
    contrast: bool | None
    irradiation_event_uid: str
    top_z_mm: float
    bottom_z_mm: float
    exposure_time_s: float
    single_collimation_mm: float
    total_collimation_mm: float
    pitch: float | None
    kvp: float
    max_tube_current_ma: float
    mean_tube_current_ma: float
    rotation_time_s: float
    ctdivol_mgy: float
    phantom: str
    dlp_mgy_cm: float
    dose_checks: tuple[DoseCheck, ...] = ()
    exposed_range_mm: float | None = None
    # TID 10013 Comment (121106, DCM): e.g. the operator's reason for a repeat; None: no item.
    comment: str | None = None

    @property
    def scanning_length_mm(self) -> float:
        return round(self.top_z_mm - self.bottom_z_mm, 2)

    @property
    def irradiated_length_mm(self) -> float:
        """Exposed range when given, else the scanning length."""
        if self.exposed_range_mm is not None:
            return round(self.exposed_range_mm, 2)
        return self.scanning_length_mm
