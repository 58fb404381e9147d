"""What the scanner delivered: the content of a simulated dose report, one record per event."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DoseCheck:
    """A NEMA XR-25 Dose Check notification or alert recorded for one acquisition (TID 10015)."""

    kind: str  # notification | alert
    ctdivol_value_mgy: float
    dlp_value_mgy_cm: float
    ctdivol_forward_estimate_mgy: float
    dlp_forward_estimate_mgy_cm: float
    reason_for_proceeding: str


@dataclass(frozen=True, slots=True)
class DeliveredAcquisition:
    """One irradiation event as the scanner delivered it: what the dose report carries."""

    index: int
    acquisition_type: str  # spiral | localizer
    protocol: str
    contrast: bool
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

    @property
    def scanning_length_mm(self) -> float:
        return round(self.top_z_mm - self.bottom_z_mm, 2)
