"""``lowdose assess`` and ``lowdose protocols`` end to end through the CLI entry point."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from lowdose.main import main
from tests.paths import SHARED

RDSR = SHARED / "data" / "rdsr"
GE = RDSR / "CT-ESR-GE_Optima.dcm"
GE_STUDY = "1.3.6.1.4.1.5962.99.1.2026073515.1319176460.1479494856107.12.0"

KEYS = {
    "study_instance_uid",
    "acquisition_index",
    "irradiation_event_uid",
    "site",
    "needed_z_mm",
    "irradiated_z_mm",
    "dlp_mgy_cm",
    "excess_dlp_mgy_cm",
    "excess_fraction",
    "effective_dose_msv",
    "excess_effective_dose_msv",
    "ssde_mgy",
    "findings",
    "proposal",
}


def _event(study: str = GE_STUDY, event_id: str = "evt-ge") -> dict[str, Any]:
    spiral = {"type": "spiral", "kvp": 120, "mas": 100, "ctdivol_mgy": 4.0, "pitch": 1.0,
              "total_collimation_mm": 40.0}  # fmt: skip
    return {
        "schema": "lowdose.protocol/1",
        "event_id": event_id,
        "emitted_at": "2026-11-26T07:00:00Z",
        "scanner": {"station_name": "CT1"},
        "study": {"study_instance_uid": study, "purpose": "rt_planning"},
        "planning": {"site": "lung_3d", "needed_z_mm": [-150, 180]},
        "acquisitions": [
            {"index": 0, "type": "localizer", "z_start_mm": 300, "z_end_mm": -300,
             "kvp": 120, "mas": 10, "ctdivol_mgy": 0.1},
            {"index": 1, "z_start_mm": 240, "z_end_mm": -180, **spiral},
            {"index": 2, "z_start_mm": 240, "z_end_mm": -200, **spiral, "contrast": "with"},
        ],
    }  # fmt: skip


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_assess_protocol_event_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(_event(study="1.2.3.4", event_id="e-only")))
    code, out, _ = _run(capsys, "assess", str(path), "--json")
    assert code == 0
    doc = json.loads(out)
    # two assessments: the localizer has none
    assert [a["acquisition_index"] for a in doc] == [1, 2]
    for a in doc:
        assert set(a) >= KEYS
        assert {"code", "severity", "message"} <= set(a["findings"][0])
        assert {"z_mm", "mas", "dlp_saving_mgy_cm", "effective_dose_saving_msv"} <= set(
            a["proposal"]
        )
        assert a["ssde_mgy"] is None  # no size known for a protocol event
    # 240..-180 planned over needed -150..180: 60 mm above and 30 mm below plus over-ranging
    # (24 + 16 x 0.73) x (0.94 + 1.13 x 1.0) = 73.86 mm (the 16 mm beyond the fitted 24 mm with
    # the wide-beam bound, issue 20 defect 3): excess 90 + 73.86 = 163.86 mm -> 4 x 16.386 =
    # 65.54 mGy.cm
    assert doc[0]["excess_dlp_mgy_cm"] == pytest.approx(65.543)
    assert "multiphase_contrast" in {f["code"] for f in doc[1]["findings"]}


@pytest.mark.realdata
def test_assess_joins_event_and_report_by_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps([_event()]))
    # report first on the command line: the event is still applied first
    code, out, _ = _run(capsys, "assess", str(GE), str(path), "--json")
    assert code == 0
    doc = json.loads(out)
    kinds = [a["input_kind"] for a in doc]
    assert kinds == ["protocol_event", "protocol_event", "dose_report", "dose_report"]
    reports = [a for a in doc if a["input_kind"] == "dose_report"]
    for a in reports:
        assert set(a) >= KEYS
        assert a["site"] == "lung_3d"
        assert a["placement"] == "protocol_event"
        assert a["irradiation_event_uid"]
    # expected.json: 155.97 and 259.85 mGy.cm for the two spiral events
    assert [a["dlp_mgy_cm"] for a in reports] == pytest.approx([155.97, 259.85])


@pytest.mark.realdata
def test_assess_table_output_and_folder(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "assess", str(RDSR))
    assert code == 0
    assert "lowdose assessments" in out


def test_assess_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = _run(capsys, "assess", str(bad))
    assert code == 1
    assert err.startswith("lowdose assess: error:") and "not JSON" in err
    assert err.count("\n") == 1
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"schema": "lowdose.protocol/1", "event_id": "x"}))
    code, _, err = _run(capsys, "assess", str(wrong))
    assert code == 1 and "not a valid lowdose.protocol/1 event" in err
    code, _, err = _run(capsys, "assess", str(tmp_path / "missing.dcm"))
    assert code == 1 and "no such file" in err
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(_event(study="1.2.3")))
    code, _, err = _run(capsys, "assess", str(ok), "--site-library", str(tmp_path / "nope"))
    assert code == 1 and "not a directory" in err


def test_assess_with_department_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "lung_3d.toml").write_text(
        "[reference_ctdivol_mgy]\nvalue = 3.0\nkind = 'drl'\nstatistic = 'local'\n"
        "source = 'audit'\n"
        "[image_quality]\nmin_ctdivol_mgy = 2.0\nsource = 'image-quality review'\n"
    )
    ev = tmp_path / "event.json"
    ev.write_text(json.dumps(_event(study="1.2.3")))
    code, out, _ = _run(capsys, "assess", str(ev), "--json", "--site-library", str(lib))
    assert code == 0
    doc = json.loads(out)
    # CTDIvol 4.0 over the local 3.0 mGy reference: ratio 1.33, a warning (alert from 1.5)
    found = {f["code"]: f["severity"] for f in doc[0]["findings"]}
    assert found["above_reference_level"] == "warning"
    assert doc[0]["proposal"]["mas"] == pytest.approx(75.0)  # 100 mAs x 3 / 4


def test_protocols_lists_values_with_sources(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "protocols", "--json", "--site", "breast")
    assert code == 0
    doc = json.loads(out)
    rows = {r["key"]: r for r in doc["sites"]["breast"]}
    assert rows["reference_ctdivol_mgy.value"]["value"] == 26.0
    assert "PMC5124809" in rows["reference_ctdivol_mgy.value"]["source"]
    assert rows["coverage.tolerance_mm"]["origin"] == "built-in _defaults.toml"
    code, out, _ = _run(capsys, "protocols")
    assert code == 0 and "prostate" in out
    code, _, err = _run(capsys, "protocols", "--site", "pancreas")
    assert code == 1 and "pancreas" in err


@pytest.mark.realdata
def test_ct_image_gives_the_study_ssde(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ct = SHARED / "data" / "ct" / "CT_small.dcm"
    path = tmp_path / "event.json"
    path.write_text(json.dumps(_event(study="1.3.6.1.4.1.5962.1.2.1.20040119072730.12322")))
    code, out, _ = _run(capsys, "assess", str(path), str(ct), "--json")
    assert code == 0
    doc = json.loads(out)
    a = doc[0]
    dw = a["water_equivalent_diameter_mm"]
    assert 300 < dw < 400
    # SSDE = CTDIvol x 3.704369 exp(-0.03671937 D_w / 10), body phantom (TG-204)
    assert a["ssde_mgy"] == pytest.approx(4.0 * 3.704369 * math.exp(-0.03671937 * dw / 10), 1e-3)
    notes = " ".join(a["notes"])
    assert "Pixel Spacing" in notes and "truncated" in notes
