"""Round trip: dose reports written by the feed simulator parse back to the values it wrote."""

from __future__ import annotations

import pytest

from optimiser.dicom import merge_study, read_dicom, read_dose_report
from optimiser.records import CtAcquisition, DoseReport
from optimiser.strictness import Strictness
from simulator.delivered import DeliveredAcquisition
from simulator.generator import SimulatedStudy, simulate_feed

STUDIES = simulate_feed(24, seed=31)


def _pairs() -> list[tuple[SimulatedStudy, DoseReport]]:
    # raise mode: a simulated report must be free of every defect the reader knows
    return [
        (s, read_dose_report(s.rdsr_bytes, source=f"sim-{n}.dcm", strictness=Strictness.RAISE))
        for n, s in enumerate(STUDIES)
    ]


def _check_event(got: CtAcquisition, want: DeliveredAcquisition) -> None:
    assert got.irradiation_event_uid == want.irradiation_event_uid
    assert got.acquisition_type == want.acquisition_type
    assert got.acquisition_protocol == want.protocol
    # the simulator writes "with"/"without contrast": read back as enhanced-unspecified/none
    assert got.contrast == ("with" if want.contrast else "none")
    assert (got.top_z_mm, got.bottom_z_mm) == (want.top_z_mm, want.bottom_z_mm)
    assert got.scanning_length_mm == pytest.approx(want.scanning_length_mm, abs=1e-9)
    assert got.exposure_time_s == want.exposure_time_s
    assert got.nominal_single_collimation_mm == want.single_collimation_mm
    assert got.nominal_total_collimation_mm == want.total_collimation_mm
    assert got.pitch_factor == want.pitch
    assert got.kvp == [want.kvp]
    source = got.sources[0]
    assert source.max_tube_current_ma == want.max_tube_current_ma
    assert source.mean_tube_current_ma == want.mean_tube_current_ma
    assert source.exposure_time_per_rotation_s == want.rotation_time_s
    assert got.mean_ctdivol_mgy == want.ctdivol_mgy
    assert got.phantom == want.phantom
    assert got.dlp_mgy_cm == want.dlp_mgy_cm
    assert [d.kind for d in got.dose_check] == [d.kind for d in want.dose_checks]
    for read, wrote in zip(got.dose_check, want.dose_checks, strict=True):
        assert read.ctdivol_value_mgy == wrote.ctdivol_value_mgy
        assert read.dlp_value_mgy_cm == wrote.dlp_value_mgy_cm
        assert read.ctdivol_forward_estimate_mgy == wrote.ctdivol_forward_estimate_mgy
        assert read.dlp_forward_estimate_mgy_cm == wrote.dlp_forward_estimate_mgy_cm
        assert read.reason_for_proceeding == (wrote.reason_for_proceeding or None)
        # "Configured = Yes" exactly when the writer set a value (TID 10015)
        assert read.dlp_configured is (wrote.dlp_value_mgy_cm is not None)
        assert read.ctdivol_configured is (wrote.ctdivol_value_mgy is not None)


def test_simulated_reports_parse_back_to_the_delivered_values() -> None:
    events = 0
    for study, report in _pairs():
        assert report.study_instance_uid == study.study_instance_uid
        assert report.sop_instance_uid == study.sop_instance_uid
        assert report.station_name == study.protocol_event.scanner.station_name
        assert report.warnings == []
        assert len(report.acquisitions) == len(study.delivered)
        for got, want in zip(report.acquisitions, study.delivered, strict=True):
            _check_event(got, want)
            events += 1
    assert events >= 24


def test_simulated_totals_agree_with_the_events() -> None:
    reports = [r for _, r in _pairs()]
    studies = merge_study(reports)
    assert len(studies) == len(STUDIES)
    for study, report in zip(studies, reports, strict=True):
        assert study.warnings == []
        assert report.dlp_total_mgy_cm == pytest.approx(study.dlp_total_mgy_cm, abs=0.05)
        assert report.total_number_of_events == len(report.acquisitions)


def test_read_dicom_dispatches_simulated_reports() -> None:
    assert isinstance(read_dicom(STUDIES[0].rdsr_bytes), DoseReport)
