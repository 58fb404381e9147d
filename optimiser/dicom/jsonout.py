"""JSON view of records: the ``lowdose inspect --json`` shape.

The keys required by issue 3 are named exactly as in ../shared/data/rdsr/expected.json (``file``,
``study_instance_uid``, ``dlp_total_mgy_cm``, ``events`` with ``irradiation_event_uid``,
``acquisition_type``, ``ctdivol_mgy``, ``dlp_mgy_cm``, ``scanning_length_mm``, ``kvp``); the rest
are extras. The patient ID is never written.
"""

from __future__ import annotations

from typing import Any

from optimiser.records import CtAcquisition, DoseReport, StructureSet


def _event(acq: CtAcquisition) -> dict[str, Any]:
    return {
        "irradiation_event_uid": acq.irradiation_event_uid,
        "acquisition_type": acq.acquisition_type,
        "ctdivol_mgy": acq.mean_ctdivol_mgy,
        "dlp_mgy_cm": acq.dlp_mgy_cm,
        "scanning_length_mm": acq.scanning_length_mm,
        "kvp": acq.kvp,
        "acquisition_protocol": acq.acquisition_protocol,
        "comment": acq.comment,
        "target_region": (
            None
            if acq.target_region is None
            else {
                "value": acq.target_region.value,
                "scheme": acq.target_region.scheme,
                "meaning": acq.target_region.meaning,
            }
        ),
        "exposure_time_s": acq.exposure_time_s,
        "exposed_range_mm": acq.exposed_range_mm,
        "top_z_mm": acq.top_z_mm,
        "bottom_z_mm": acq.bottom_z_mm,
        "pitch_factor": acq.pitch_factor,
        "nominal_total_collimation_mm": acq.nominal_total_collimation_mm,
        "phantom": acq.phantom,
        "contrast": acq.contrast,
        "ssde_mgy": acq.ssde_mgy,
        "dose_check": [
            {"kind": dc.kind, "configured": dc.configured(), "exceeded": dc.exceedances()}
            for dc in acq.dose_check
        ],
    }


def report_to_json(report: DoseReport) -> dict[str, Any]:
    """One dose report as a JSON-ready dict (no patient ID)."""
    return {
        "file": report.source,
        "kind": "dose_report",
        "study_instance_uid": report.study_instance_uid,
        "sop_instance_uid": report.sop_instance_uid,
        "manufacturer": report.manufacturer,
        "model": report.model,
        "station_name": report.station_name,
        "has_intent": report.has_intent,
        "start_of_irradiation": (
            report.start_of_irradiation.isoformat() if report.start_of_irradiation else None
        ),
        "dlp_total_mgy_cm": report.dlp_total_mgy_cm,
        "total_number_of_events": report.total_number_of_events,
        "events": [_event(a) for a in report.acquisitions],
        "warnings": list(report.warnings),
    }


def structure_set_to_json(structures: StructureSet) -> dict[str, Any]:
    """One structure set as a JSON-ready dict: ROIs with their z-extents."""
    return {
        "file": structures.source,
        "kind": "structure_set",
        "study_instance_uid": structures.study_instance_uid,
        "frame_of_reference_uid": structures.frame_of_reference_uid,
        "rois": [
            {
                "number": roi.number,
                "name": roi.name,
                "interpreted_type": roi.interpreted_type,
                "z_min_mm": roi.z_min_mm,
                "z_max_mm": roi.z_max_mm,
            }
            for roi in structures.rois
        ],
        "warnings": list(structures.warnings),
    }
