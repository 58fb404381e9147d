"""The assessment a fake pipeline emits in the stream tests: no range and zero dose unless the
caller's fields say otherwise (the loop and the broker tests need identities, not physics)."""

from __future__ import annotations

from typing import Any

from optimiser.assessment import Assessment

_ZERO: dict[str, Any] = {
    "needed_z_mm": None,
    "needed_basis": "given",
    "irradiated_z_mm": None,
    "dlp_mgy_cm": 0.0,
    "scan_length_mm": 0.0,
    "excess_length_mm": 0.0,
    "excess_dlp_mgy_cm": 0.0,
    "excess_fraction": 0.0,
    "effective_dose_msv": 0.0,
    "excess_effective_dose_msv": 0.0,
}


def blank_assessment(**fields: Any) -> Assessment:
    return Assessment(**(_ZERO | fields))
