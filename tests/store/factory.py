"""Assessments for the store and desk tests, built through the real pydantic model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from optimiser.assessment import Assessment, Finding, Proposal

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def make_assessment(
    n: int,
    *,
    site: str = "prostate",
    scanner: str | None = "SOMATOM go.Open Pro",
    findings: list[tuple[str, str]] | None = None,
    ctdivol_mgy: float | None = 12.0,
    dlp_mgy_cm: float = 600.0,
    performed_at: datetime | None = None,
    description: str | None = "Planning CT",
    **extra: Any,
) -> Assessment:
    """Assessment number ``n`` (its id depends on n only); findings as (code, severity)."""
    found = [
        Finding(
            code=code,  # type: ignore[arg-type]
            severity=severity,  # type: ignore[arg-type]
            message=f"{code} ({severity}) on acquisition {n}",
            evidence={"excess_length_mm": 80.0, "source": "planning-ct.md section 4"},
        )
        for code, severity in (findings or [])
    ]
    proposal = (
        Proposal(
            z_mm=(-150.0, 100.0),
            mas=None,
            ctdivol_mgy=ctdivol_mgy,
            dlp_mgy_cm=dlp_mgy_cm * 0.8,
            dlp_saving_mgy_cm=dlp_mgy_cm * 0.2,
            effective_dose_saving_msv=1.5,
            changes=["shorten the scan range to the needed range plus margins"],
        )
        if found
        else None
    )
    return Assessment(
        assessment_id=f"asm-{n:032d}",
        input_kind="dose_report",
        input_id=f"1.2.3.{n}",
        study_instance_uid=f"1.2.826.0.1.{n // 2}",
        accession_number=f"ACC{n}",
        acquisition_index=1,
        irradiation_event_uid=f"1.2.3.4.{n}",
        site=site,
        description=description,
        scanner_model=scanner,
        station_name="CTSIM1",
        performed_at=performed_at or (T0 + timedelta(hours=n)),
        needed_z_mm=(-150.0, 100.0),
        needed_basis="site_default",
        irradiated_z_mm=(-220.0, 130.0),
        placement="planned",
        ctdivol_mgy=ctdivol_mgy,
        dlp_mgy_cm=dlp_mgy_cm,
        scan_length_mm=350.0,
        excess_length_mm=100.0,
        excess_dlp_mgy_cm=120.0,
        excess_fraction=0.2,
        effective_dose_msv=9.0,
        excess_effective_dose_msv=1.8,
        overranging_mm=30.0,
        avoidable_excess_length_mm=60.0,
        avoidable_excess_dlp_mgy_cm=72.0,
        avoidable_effective_dose_msv=1.0,
        findings=found,
        proposal=proposal,
        **extra,
    )
