"""``lowdose validate``: figures per finding code, the false alert rate, exit status, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lowdose.main import main
from lowdose.validation import DEFAULT_CASES_DIR, load_cases, run_cases
from tests.paths import SHARED

PASSING_CASE = "excess_breast_both_ends_alert"  # passes on main today: exit 0 on it alone
FAILING_CASE = "clean_brain_16slice_24mm"  # a false warning today (severity rule 1)


def _one(tmp_path: Path, case_id: str) -> Path:
    folder = tmp_path / case_id
    folder.mkdir()
    shutil.copy(DEFAULT_CASES_DIR / f"{case_id}.json", folder)
    return folder


def test_json_figures_equal_the_library_run(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", "--json", "--shared", str(SHARED)])
    out = json.loads(capsys.readouterr().out)
    summary = run_cases(load_cases(DEFAULT_CASES_DIR), SHARED)
    assert out == json.loads(json.dumps(summary.as_dict()))
    assert code == (0 if summary.passed else 1)
    assert out["cases"] >= 40 and out["clean_cases"] > 0
    assert set(out["by_code"]) >= {"excess_coverage", "dose_check_exceeded"}


def test_text_report_names_each_code_and_the_false_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "--cases", str(_one(tmp_path, PASSING_CASE))]) == 0
    out = capsys.readouterr().out
    assert "excess_coverage" in out and "1/1  100.0%" in out
    assert "false warnings/alerts on clean cases: 0 of 0" in out
    assert out.rstrip().endswith("PASS: 100% detection, no false warning or alert")


def test_a_false_warning_fails_and_names_the_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = _one(tmp_path, FAILING_CASE)
    (case / "extra.json").write_text(
        (DEFAULT_CASES_DIR / f"{PASSING_CASE}.json")
        .read_text()
        .replace(f'"id": "{PASSING_CASE}"', '"id": "extra"')
    )
    summary = run_cases(load_cases(case), SHARED)
    code = main(["validate", "--cases", str(case)])
    out = capsys.readouterr().out
    if summary.passed:  # the core changes of issue 9 are merged: the case now passes
        assert code == 0
        return
    assert code == 1
    assert f"{FAILING_CASE}: input 0 acquisition 1: unexpected" in out
    assert "false warnings/alerts on clean cases: 1 of 1 acquisitions (100.0%)" in out
    assert "FAIL" in out


def test_missing_case_folder_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "--cases", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert "--cases" in err and "tests/clinical/cases" in err and "give --cases DIR" in err


def test_an_invalid_case_names_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.json").write_text('{"schema": "lowdose.clinical-case/1", "id": "bad"}')
    assert main(["validate", "--cases", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bad.json" in err and "field" in err
