"""The department's own levels from synthetic assessed histories (ICRP Publication 135 terms)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lowdose.main import main
from optimiser.assessment import Assessment
from optimiser.dose_model import AcquisitionRow, Needed
from optimiser.errors import InputError
from optimiser.findings import above_reference_level
from optimiser.kernels import RowResult
from optimiser.levels import department_levels, read_history, with_department_levels
from protocols.library import builtin_library, load_library
from tests.support.rows import make_row

MODEL = "SimScan 16"


def assessment(n: int, k: int = 0, **kw: Any) -> Assessment:
    """Acquisition k of study n: a prostate dose-report assessment on MODEL in room CTSIM1."""
    base: dict[str, Any] = {
        "assessment_id": f"asm-{n}-{k}-{kw.get('input_kind', 'dose_report')}",
        "input_kind": "dose_report",
        "input_id": f"sop-{n}",
        "study_instance_uid": f"1.2.3.{n}",
        "site": "prostate",
        "acquisition_type": "spiral",
        "scanner_model": MODEL,
        "station_name": "CTSIM1",
        "performed_at": f"2026-0{1 + n % 9}-1{n % 10}T08:00:00Z",
        "needed_z_mm": (0.0, 200.0),
        "needed_basis": "given",
        "irradiated_z_mm": (0.0, 250.0),
        "placement": "report_z",
        "ctdivol_mgy": 10.0,
        "dlp_mgy_cm": 250.0,
        "scan_length_mm": 250.0,
        "excess_length_mm": 0.0,
        "excess_dlp_mgy_cm": 0.0,
        "excess_fraction": 0.0,
        "effective_dose_msv": 3.0,
        "excess_effective_dose_msv": 0.0,
    }
    base.update(kw)
    return Assessment.model_validate(base)


def history() -> list[Assessment]:
    """25 prostate studies, CTDIvol 10..34 mGy, each a 1 x CTDIvol x 25 cm helical plus a
    stationary bolus-tracking event of 5 mGy.cm, and noise the computation must ignore."""
    out = []
    for n in range(25):
        c = 10.0 + n
        out.append(assessment(n, 0, ctdivol_mgy=c, dlp_mgy_cm=c * 25.0))
        out.append(
            assessment(n, 1, acquisition_type="stationary", ctdivol_mgy=200.0, dlp_mgy_cm=5.0)
        )
        # the planned numbers of the same study: left out, the delivered ones are there
        out.append(assessment(n, 0, input_kind="protocol_event", ctdivol_mgy=99.0))
    out.append(out[0])  # a duplicate (at-least-once delivery) counts once
    out.append(assessment(99, site="generic", ctdivol_mgy=500.0))  # site unknown: left out
    out.append(assessment(98, scanner_model="Other CT", ctdivol_mgy=40.0, station_name="CT2"))
    return out


def test_median_p75_n_rooms_and_period_per_site_and_model() -> None:
    levels = department_levels(history())
    assert set(levels) == {"prostate"}
    by = {(lv.quantity, lv.scanner_model): lv for lv in levels["prostate"]}
    ctdi = by[("ctdivol_mgy", MODEL)]
    values = np.arange(10.0, 35.0)
    # 25 values 10..34: median 22, P75 (linear) 28; the stationary 200 mGy is left out
    assert (ctdi.median, ctdi.p75, ctdi.n, ctdi.rooms) == (22.0, 28.0, 25, 1)
    assert ctdi.p75 == pytest.approx(float(np.percentile(values, 75)))
    dlp = by[("exam_dlp_mgy_cm", MODEL)]
    # exam DLP = 25 x CTDIvol + 5 (bolus tracking counts in the exam): median 555, P75 705
    assert (dlp.median, dlp.p75, dlp.n) == (555.0, 705.0, 25)
    assert ctdi.period == "2026-01-10 to 2026-09-18"
    other = by[("ctdivol_mgy", "Other CT")]
    assert (other.median, other.n, other.rooms) == (40.0, 1, 1)


def _row(ctdivol: float, model: str | None, library: Any) -> AcquisitionRow:
    return make_row(
        input_kind="dose_report",
        input_id="r",
        study_instance_uid="9.9",
        site="prostate",
        protocol=library.get("prostate"),
        needed=Needed((0.0, 200.0), "given"),
        lo_mm=0.0,
        hi_mm=200.0,
        is_planned=False,
        helical=True,
        total_collimation_mm=None,
        pitch_factor=None,
        ctdivol_mgy=ctdivol,
        placement="report_z",
        acquisition_type="spiral",
        scanner_model=model,
    )


RES = RowResult(
    x_lo=0.0,
    x_hi=200.0,
    dlp=0.0,
    excess_length=0.0,
    excess_dlp=0.0,
    effective_dose=0.0,
    excess_effective_dose=0.0,
    planned_lo=0.0,
    planned_hi=200.0,
    avoidable_length=0.0,
    avoidable_dlp=0.0,
    avoidable_effective_dose=0.0,
    overrange=0.0,
    proposal_lo=0.0,
    proposal_hi=200.0,
    proposal_dlp=0.0,
    proposal_effective_dose=0.0,
)


def test_exceeding_the_department_typical_value_is_info() -> None:
    lib = with_department_levels(builtin_library(), department_levels(history()))
    # 23 mGy: above the department median 22 (and the cited median 17: info either way)
    f = above_reference_level(_row(15.0, MODEL, lib), RES)
    assert f is None  # below both medians (department 22, cited 17)
    f = above_reference_level(_row(23.0, MODEL, lib), RES)
    assert f is not None and f.severity == "info"
    # the 'Other CT' level has n = 1 < min_exams 20: not used
    assert lib.get("prostate").department_levels
    assert {lv.scanner_model for lv in lib.get("prostate").department_levels} == {MODEL}


def test_department_median_below_the_cited_one_gives_info_on_its_own() -> None:
    low = [assessment(n, ctdivol_mgy=8.0 + 0.1 * n) for n in range(30)]  # median 9.45
    lib = with_department_levels(builtin_library(), department_levels(low))
    f = above_reference_level(_row(12.0, MODEL, lib), RES)
    assert f is not None and f.severity == "info"
    assert f.evidence["statistic"] == "department_typical"
    assert "department typical value" in f.message
    # another scanner model is not compared with this model's levels
    assert above_reference_level(_row(12.0, "Other CT", lib), RES) is None


def test_promoted_department_p75_is_a_warning_level(tmp_path: Path) -> None:
    (tmp_path / "prostate.toml").write_text(
        "[department]\npromote_p75_to_warning = true\nsource = 'physics committee 2026'\n"
    )
    lib = with_department_levels(load_library(tmp_path), department_levels(history()))
    at_p75 = above_reference_level(_row(28.0, MODEL, lib), RES)
    assert at_p75 is not None and at_p75.severity == "info"
    f = above_reference_level(_row(29.0, MODEL, lib), RES)
    assert f is not None and f.severity == "warning"
    assert f.evidence["statistic"] == "department_p75"
    # not promoted (the default): the same value is info only
    plain = with_department_levels(builtin_library(), department_levels(history()))
    same = above_reference_level(_row(29.0, MODEL, plain), RES)
    assert same is not None and same.severity == "info"


def test_read_history_json_lines_and_arrays(tmp_path: Path) -> None:
    items = history()[:3]
    lines = tmp_path / "h.jsonl"
    lines.write_text("\n".join(a.to_json() for a in items) + "\n\n")
    array = tmp_path / "h.json"
    array.write_text(json.dumps([json.loads(a.to_json()) for a in items]))
    assert read_history(lines) == items
    assert read_history(array) == items
    bad = tmp_path / "bad.jsonl"
    bad.write_text(items[0].to_json() + "\n{not json\n")
    with pytest.raises(InputError, match="line 2"):
        read_history(bad)


def test_protocols_history_shows_department_levels_beside_cited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one table row per line
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(a.to_json() for a in history()))
    assert main(["protocols", "--site", "prostate", "--history", str(path)]) == 0
    out = capsys.readouterr().out
    assert "typical value, not a local DRL" in out
    assert "department median" in out and "cited DRL" in out
    assert "[department] promote_p75_to_warning = false: shown only" in out
    assert main(["protocols", "--site", "prostate", "--history", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    ctdi = doc["levels"]["prostate"]["ctdivol_mgy"]
    assert [c["value"] for c in ctdi["cited"]] == [17.0]
    assert {d["scanner_model"]: d["median"] for d in ctdi["department"]} == {
        MODEL: 22.0,
        "Other CT": 40.0,
    }
    assert "not a local DRL" in ctdi["department"][0]["meaning"]


def test_local_drl_is_the_p75_of_room_medians_with_enough_rooms(tmp_path: Path) -> None:
    # Room CT1: 13 studies at 30 mGy; rooms CT2..CT12: one study each at 10..20 mGy.
    # Exams: 24 values, P75 (linear, index 17.25) = 30. Room medians: 30 and 10..20, 12 rooms,
    # P75 (index 8.25 of 10..20, 30) = 18 + 0.25 x 1 = 18.25: the busy room does not dominate.
    hist = [assessment(n, ctdivol_mgy=30.0, station_name="CT1") for n in range(13)]
    hist += [
        assessment(100 + r, ctdivol_mgy=10.0 + (r - 2), station_name=f"CT{r}") for r in range(2, 13)
    ]
    [ctdi, _] = department_levels(hist)["prostate"]
    assert (ctdi.p75, ctdi.p75_of_room_medians, ctdi.rooms, ctdi.n) == (30.0, 18.25, 12, 24)
    assert ctdi.warning_value(10) == 18.25  # 12 rooms >= 10: the local DRL
    assert ctdi.warning_value(20) == 30.0  # too few rooms: the exams' P75
    (tmp_path / "prostate.toml").write_text(
        "[department]\npromote_p75_to_warning = true\nmin_exams = 10\nsource = 'network'\n"
    )
    lib = with_department_levels(load_library(tmp_path), {"prostate": [ctdi]})
    f = above_reference_level(_row(19.0, MODEL, lib), RES)
    assert f is not None and f.severity == "warning" and f.evidence["reference"] == 18.25


def test_assess_with_history_uses_the_department_levels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lowdose assess --history FILE`: the department's median joins the cited levels at run
    time (before, only `lowdose protocols --history` showed it)."""
    hist = tmp_path / "history.jsonl"
    hist.write_text("\n".join(a.model_dump_json(by_alias=True) for a in history()) + "\n")
    event = {
        "schema": "lowdose.protocol/1",
        "event_id": "ev-history",
        "emitted_at": "2026-10-01T08:00:00Z",
        "scanner": {"model": MODEL, "station_name": "CTSIM1"},
        "study": {"study_instance_uid": "1.2.3.777"},
        "planning": {"site": "prostate", "needed_z_mm": [0.0, 200.0]},
        "acquisitions": [
            {"index": 1, "type": "spiral", "z_start_mm": 0.0, "z_end_mm": 200.0, "kvp": 120.0,
             "mas": 200.0, "ctdivol_mgy": 16.0, "pitch": 1.0, "total_collimation_mm": 20.0,
             "slice_thickness_mm": 2.5}
        ],
    }  # fmt: skip
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))

    def statistics(*extra: str) -> set[str]:
        assert main(["assess", str(path), "--json", *extra]) == 0
        [out] = json.loads(capsys.readouterr().out)
        return {
            str(f["evidence"].get("statistic"))
            for f in out["findings"]
            if f["code"] == "above_reference_level"
        }

    # 16 mGy: under the cited prostate median (17 mGy) and the department's (22 mGy): silent.
    assert statistics() == set()
    assert statistics("--history", str(hist)) == set()
    # 23 mGy: above both medians; the department's is named only when its history is given.
    event["acquisitions"][0]["ctdivol_mgy"] = 23.0  # type: ignore[index]
    path.write_text(json.dumps(event))
    without = statistics()
    with_history = statistics("--history", str(hist))
    assert "department_typical" not in without
    assert "department_typical" in with_history
