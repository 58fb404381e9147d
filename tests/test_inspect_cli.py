"""``lowdose inspect``: tables by default, one JSON array with --json, exit 1 after reading all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lowdose.main import main
from tests.paths import SHARED, rdsr_expected

RDSR = SHARED / "data" / "rdsr"
EXPECTED = rdsr_expected()

pytestmark = pytest.mark.realdata


def test_json_of_every_report_has_the_expected_keys_and_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = [str(RDSR / e["file"]) for e in EXPECTED]
    assert main(["inspect", "--json", *paths]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [p["file"] for p in printed] == [e["file"] for e in EXPECTED]
    for got, want in zip(printed, EXPECTED, strict=True):
        assert got["study_instance_uid"] == want["study_instance_uid"]
        assert got["dlp_total_mgy_cm"] == pytest.approx(want["dlp_total_mgy_cm"], abs=1e-6)
        for g, w in zip(got["events"], want["events"], strict=True):
            for key, value in w.items():
                assert g[key] == (pytest.approx(value, abs=1e-6) if value is not None else None)
        assert "patient_id" not in got


def test_table_shows_events_totals_and_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(RDSR / "CT-ESR-GE_Optima.dcm")]) == 0
    out = capsys.readouterr().out
    assert "spiral" in out and "localizer" in out
    assert "155.97" in out and "415.82" in out  # an event's DLP and the reported total
    assert "warning:" in out and "mGycm" in out


def test_structure_set_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(SHARED / "data" / "ct" / "rtstruct.dcm")]) == 0
    out = capsys.readouterr().out
    assert "patient" in out and "-200.0" in out and "-180.0" in out


def test_a_bad_file_fails_the_run_after_reading_the_others(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    good = str(RDSR / "CT-RDSR-Siemens-Multi-1.dcm")
    assert main(["inspect", "--json", str(junk), str(SHARED / "data" / "ct"), good]) == 1
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    kinds = [(p["file"], p["kind"]) for p in printed]
    assert ("junk.dcm", "error") in kinds and (
        "CT-RDSR-Siemens-Multi-1.dcm",
        "dose_report",
    ) in kinds
    assert ("rtstruct.dcm", "structure_set") in kinds and ("CT_small.dcm", "error") in kinds
    assert "junk.dcm: not a DICOM file" in captured.err
    assert "Traceback" not in captured.err


def test_patient_id_is_never_printed(capsys: pytest.CaptureFixture[str]) -> None:
    from optimiser.dicom import read_dose_report

    path = RDSR / "CT-RDSR-Toshiba_DoseCheck.dcm"
    patient_id = read_dose_report(path).patient_id
    assert patient_id
    main(["inspect", str(path)])
    main(["inspect", "--json", str(path)])
    captured = capsys.readouterr()
    assert patient_id not in captured.out and patient_id not in captured.err


def test_raise_mode_fails_a_defective_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--strictness", "raise", str(RDSR / "CT-ESR-GE_Optima.dcm")]) == 1
    assert "mGycm" in capsys.readouterr().err
