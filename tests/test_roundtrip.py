"""Simulated dose reports parse back, through optimiser.dicom, to the values written."""

from __future__ import annotations

import pytest

from optimiser.dicom import read_dicom, read_dose_report
from optimiser.records import DoseReport
from optimiser.strictness import Strictness
from simulator import ProblemRates, simulate_feed

ALL = ProblemRates.from_mapping(dict.fromkeys(ProblemRates.codes(), 0.5))


@pytest.fixture(scope="module")
def studies() -> list:  # type: ignore[type-arg]
    return simulate_feed(30, seed=31, problem_rates=ALL)


def test_reports_parse_back_to_the_values_written(studies: list) -> None:  # type: ignore[type-arg]
    for study in studies:
        # raise strictness: a simulated report must have no malformed item at all
        report = read_dose_report(study.rdsr_bytes, source="sim", strictness=Strictness.RAISE)
        assert report.warnings == []
        assert report.sop_class_uid == "1.2.840.10008.5.1.4.1.1.88.67"
        assert report.sop_instance_uid == study.sop_instance_uid
        assert report.study_instance_uid == study.study_instance_uid
        event = study.protocol_event
        assert report.accession_number == event.study.accession_number
        assert report.station_name == event.scanner.station_name
        assert report.manufacturer == event.scanner.manufacturer
        assert report.model == event.scanner.model
        assert report.device_serial == event.scanner.device_serial
        expected_intent = "diagnostic" if "diagnostic_intent" in study.injected else "therapeutic"
        assert report.has_intent == expected_intent
        assert report.total_number_of_events == len(study.delivered)
        assert report.dlp_total_mgy_cm == pytest.approx(
            sum(d.dlp_mgy_cm for d in study.delivered), abs=0.006
        )
        assert report.start_of_irradiation is not None
        assert len(report.acquisitions) == len(study.delivered)
        for got, want in zip(report.acquisitions, study.delivered, strict=True):
            assert got.irradiation_event_uid == want.irradiation_event_uid
            assert got.acquisition_type == want.acquisition_type
            assert got.acquisition_protocol == want.protocol
            # written as with/without contrast: read back as "with"/"none"
            assert got.contrast == ("with" if want.contrast else "none")
            assert got.mean_ctdivol_mgy == want.ctdivol_mgy
            assert got.dlp_mgy_cm == want.dlp_mgy_cm
            assert got.phantom == want.phantom
            assert got.scanning_length_mm == want.scanning_length_mm
            assert got.top_z_mm == want.top_z_mm
            assert got.bottom_z_mm == want.bottom_z_mm
            assert got.frame_of_reference_uid is not None
            assert got.frame_of_reference_uid.startswith("2.25.")
            assert got.pitch_factor == want.pitch
            assert got.nominal_total_collimation_mm == want.total_collimation_mm
            assert got.exposure_time_s == want.exposure_time_s
            assert got.kvp == [want.kvp]
            assert got.sources[0].mean_tube_current_ma == want.mean_tube_current_ma
            assert got.sources[0].max_tube_current_ma == want.max_tube_current_ma
            assert got.target_region is not None and got.target_region.scheme == "SCT"


def test_dose_check_details_parse_back(studies: list) -> None:  # type: ignore[type-arg]
    checked = [s for s in studies if "dose_check_exceeded" in s.injected]
    assert checked, "seed 31 with rate 0.5 injects dose checks"
    for study in checked:
        report = read_dose_report(study.rdsr_bytes, strictness=Strictness.RAISE)
        got = [(a.irradiation_event_uid, d) for a in report.acquisitions for d in a.dose_check]
        want = [(a.irradiation_event_uid, c) for a in study.delivered for c in a.dose_checks]
        # every scan records the configured values; one of them the exceedance and its reason
        assert len(got) == len(want)
        assert sum(c.reason_for_proceeding is not None for _, c in want) == 1
        for (got_uid, g), (want_uid, w) in zip(got, want, strict=True):
            assert got_uid == want_uid
            assert g.kind == w.kind
            assert g.ctdivol_value_mgy == w.ctdivol_value_mgy
            assert g.dlp_value_mgy_cm == w.dlp_value_mgy_cm
            assert g.ctdivol_forward_estimate_mgy == w.ctdivol_forward_estimate_mgy
            assert g.dlp_forward_estimate_mgy_cm == w.dlp_forward_estimate_mgy_cm
            assert g.reason_for_proceeding == w.reason_for_proceeding
            assert g.ctdivol_configured is (w.ctdivol_value_mgy is not None)
            assert g.dlp_configured is (w.dlp_value_mgy_cm is not None)


def test_read_dicom_dispatches_simulated_reports(studies: list) -> None:  # type: ignore[type-arg]
    assert isinstance(read_dicom(studies[0].rdsr_bytes), DoseReport)
