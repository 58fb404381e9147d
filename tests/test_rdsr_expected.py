"""Every real dose report in ../shared/data/rdsr reproduces expected.json (warn mode), and the
files with defects raise, naming the defect, in raise mode."""

from __future__ import annotations

from typing import Any

import pytest

from optimiser.dicom import read_dicom, read_dose_report, report_to_json
from optimiser.errors import MalformedItemError
from optimiser.records import DoseReport
from optimiser.strictness import Strictness
from tests.paths import SHARED, rdsr_expected

RDSR = SHARED / "data" / "rdsr"
EXPECTED: list[dict[str, Any]] = rdsr_expected()
BY_FILE = {e["file"]: e for e in EXPECTED}

pytestmark = pytest.mark.realdata

# file -> text the raise-mode error must contain (the first defect in document order)
DEFECTS = {
    "CT-ESR-GE_Optima.dcm": "'mGycm'",
    "CT-RDSR-GEPixelMed.dcm": "Target Region (123014, DCM)",
    "CT-RDSR-Siemens_Flash-TAP-SS.dcm": "'mGycm'",
    "CT-RDSR-SpectrumDynamics.dcm": "'mGycm'",
}


def _close(got: object, want: object) -> bool:
    if isinstance(want, float) and isinstance(got, float):
        return abs(got - want) <= 1e-6
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(_close(g, w) for g, w in zip(got, want, strict=True))
    return got == want


@pytest.mark.parametrize("name", sorted(BY_FILE))
def test_file_reproduces_expected_json(name: str) -> None:
    want = BY_FILE[name]
    got = report_to_json(read_dose_report(RDSR / name))
    assert got["file"] == name
    assert got["study_instance_uid"] == want["study_instance_uid"]
    assert _close(got["dlp_total_mgy_cm"], want["dlp_total_mgy_cm"])
    assert len(got["events"]) == len(want["events"])
    for g, w in zip(got["events"], want["events"], strict=True):
        for key, value in w.items():
            assert _close(g[key], value), (name, w["irradiation_event_uid"], key, g[key], value)


@pytest.mark.parametrize("name", sorted(BY_FILE))
def test_bytes_and_path_give_the_same_report(name: str) -> None:
    from_path = read_dose_report(RDSR / name)
    from_bytes = read_dose_report((RDSR / name).read_bytes(), source=name)
    assert report_to_json(from_path) == report_to_json(from_bytes)
    assert isinstance(read_dicom(RDSR / name), DoseReport)


@pytest.mark.parametrize("name", sorted(set(BY_FILE) - set(DEFECTS)))
def test_clean_files_read_in_raise_mode_without_warnings(name: str) -> None:
    report = read_dose_report(RDSR / name, strictness=Strictness.RAISE)
    assert report.warnings == []
    assert len(report.acquisitions) == len(BY_FILE[name]["events"])


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_defect_files_raise_naming_the_defect(name: str) -> None:
    with pytest.raises(MalformedItemError) as info:
        read_dose_report(RDSR / name, strictness=Strictness.RAISE)
    message = str(info.value)
    assert message.startswith(name + ": ")
    assert DEFECTS[name] in message


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_defect_files_warn_in_warn_mode_and_are_silent_in_ignore_mode(name: str) -> None:
    warned = read_dose_report(RDSR / name)
    assert warned.warnings and all(w.startswith(name + ": ") for w in warned.warnings)
    ignored = read_dose_report(RDSR / name, strictness=Strictness.IGNORE)
    assert ignored.warnings == []
    # A repaired unit keeps its value in every mode; only raise mode stops.
    assert ignored.dlp_total_mgy_cm == warned.dlp_total_mgy_cm


def test_study_level_fields_of_a_report() -> None:
    report = read_dose_report(RDSR / "CT-RDSR-Toshiba_DoseCheck.dcm")
    assert report.sop_class_uid == "1.2.840.10008.5.1.4.1.1.88.67"
    assert report.manufacturer == "TOSHIBA"
    assert report.has_intent == "diagnostic"  # R-408C3 SRT, the legacy code
    assert report.total_number_of_events == 2
    assert report.source_of_dose_information is not None
    assert report.source_of_dose_information.value == "113856"
    assert report.start_of_irradiation is not None
    assert report.start_of_irradiation.isoformat() == "2017-11-15T07:53:19"
    assert "patient_id" not in repr(report) and "patient_id" not in report_to_json(report)


def test_acquisition_details_and_dose_check() -> None:
    report = read_dose_report(RDSR / "CT-RDSR-Toshiba_DoseCheck.dcm")
    first = report.acquisitions[0]
    assert first.acquisition_protocol == "Abdomen Routine ZC (NR)"
    assert first.target_region is not None
    assert (first.target_region.value, first.target_region.scheme) == ("T-D4000", "SRT")
    assert first.contrast == "none"  # P5-0808E SRT: CT without contrast
    assert first.exposed_range_mm == 527.0
    assert first.pitch_factor == pytest.approx(0.813)
    assert first.nominal_total_collimation_mm == 40.0
    assert first.phantom == "body"
    assert first.sources[0].exposure_time_per_rotation_s == 0.5
    alert, notification = first.dose_check
    assert (alert.kind, notification.kind) == ("alert", "notification")
    assert alert.dlp_configured is True and notification.dlp_configured is False
    assert alert.dlp_value_mgy_cm == 100.0 and alert.ctdivol_value_mgy == 10.0
    assert report.acquisitions[1].dose_check[0].ctdivol_forward_estimate_mgy == 10.6


def test_reconstructable_volume_z_and_frame_of_reference() -> None:
    report = read_dose_report(RDSR / "CT-RDSR-GEPixelMed.dcm")
    stationary = report.acquisitions[1]
    # Only the reconstructable volume's z is reported: 2.5 mm / -2.5 mm
    assert (stationary.top_z_mm, stationary.bottom_z_mm) == (2.5, -2.5)
    assert stationary.frame_of_reference_uid is not None


def test_spectrum_dynamics_mean_current_above_max_is_dropped_with_a_warning() -> None:
    report = read_dose_report(RDSR / "CT-RDSR-SpectrumDynamics.dcm")
    source = report.acquisitions[0].sources[0]
    # 60.2354 mA mean against 60 mA maximum: the mean breaks the rule and is dropped
    assert source.max_tube_current_ma == 60.0 and source.mean_tube_current_ma is None
    assert any("60.2354" in w and "113734" in w for w in report.warnings)
