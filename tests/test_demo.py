"""``lowdose demo``: the default day shows every finding, the report matches the table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lowdose.commands import demo
from lowdose.main import main
from optimiser.finding_codes import FINDING_CODES
from report.model import COLUMNS, FINDING_COLUMN
from report.readback import parse_report
from simulator import simulate_feed


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [sys.executable, "-m", "lowdose.main", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout, out


def test_demo_writes_the_report_and_prints_its_path(demo_run: tuple[str, Path]) -> None:
    stdout, out = demo_run
    path = out / demo.REPORT_NAME
    assert path.is_file()
    assert f"report: {path.resolve()}" in stdout
    assert (out / "feed" / "manifest.json").is_file()


def test_default_day_shows_findings_of_every_kind(demo_run: tuple[str, Path]) -> None:
    stdout, out = demo_run
    assert "not seen in this day" not in stdout
    flagged = parse_report((out / demo.REPORT_NAME).read_text()).tables["flagged"]
    seen = {code for row in flagged[1:] for code in row[FINDING_COLUMN].split(", ")}
    assert {row[COLUMNS.index("severity")] for row in flagged[1:]} <= {"warning", "alert"}
    assert seen == set(FINDING_CODES)


LINE = re.compile(
    r"simulator check: (\d+) of (\d+) injected problems detected \((\d+%|-)\); (\d+) of (\d+) "
    r"clean studies with a false warning or alert \((\d+%|-)\)"
)


def _check_line(stdout: str) -> re.Match[str]:
    line = next(x for x in stdout.splitlines() if x.startswith("simulator check:"))
    match = LINE.fullmatch(line)
    assert match, line
    return match


def test_simulator_check_line_is_computed_from_the_day(demo_run: tuple[str, Path]) -> None:
    """The closing line's figures are those of the day's assessments, recomputed here."""
    stdout, _ = demo_run
    studies = simulate_feed(demo.DEFAULT_STUDIES, seed=demo.DEFAULT_SEED)
    assessments, _ = demo.assess_day(studies, show_progress=False)
    check = demo.simulator_check(assessments, studies)
    assert _check_line(stdout).group(0) == check.line()
    assert check.injected > 0 and check.clean > 0
    # the figures are counted, not asserted: recount them by hand from the assessments
    flagged: dict[str, set[str]] = {}
    for a in assessments:
        flagged.setdefault(a.study_instance_uid, set()).update(
            f.code for f in a.findings if f.severity in ("warning", "alert")
        )
    clean = [s for s in studies if not s.injected]
    assert check.clean_flagged == sum(bool(flagged.get(s.study_instance_uid)) for s in clean)
    assert check.detected == sum(
        len(s.injected & flagged.get(s.study_instance_uid, set())) for s in studies
    )
    if check.missed:
        assert "not detected at warning or alert:" in stdout


def test_simulator_check_counts_a_false_alert_and_a_miss() -> None:
    from optimiser.assessment import Assessment, Finding

    studies = simulate_feed(6, seed=demo.DEFAULT_SEED)
    clean = next(s for s in studies if not s.injected)
    dirty = next(s for s in studies if s.injected)
    base = {
        "assessment_id": "a",
        "input_kind": "protocol_event",
        "input_id": "e",
        "site": "breast",
        "needed_z_mm": None,
        "needed_basis": "given",
        "irradiated_z_mm": None,
        "placement": "planned",
        "ctdivol_mgy": 1.0,
        "dlp_mgy_cm": 1.0,
        "scan_length_mm": 1.0,
        "excess_length_mm": 0.0,
        "excess_dlp_mgy_cm": 0.0,
        "excess_fraction": 0.0,
        "effective_dose_msv": 0.0,
        "excess_effective_dose_msv": 0.0,
    }
    false_alert = Assessment(
        study_instance_uid=clean.study_instance_uid,
        findings=[Finding(code="excess_coverage", severity="alert", message="m")],
        **base,  # type: ignore[arg-type]
    )
    info_only = Assessment(
        study_instance_uid=dirty.study_instance_uid,
        findings=[Finding(code=c, severity="info", message="m") for c in dirty.injected],  # type: ignore[arg-type]
        **base,  # type: ignore[arg-type]
    )
    check = demo.simulator_check([false_alert, info_only], [clean, dirty])
    assert (check.clean, check.clean_flagged) == (1, 1)
    # info findings do not reach the physicist: the injected problems count as missed
    assert (check.injected, check.detected) == (len(dirty.injected), 0)
    assert sorted(check.missed) == sorted(dirty.injected)


def test_default_day_detects_everything_without_false_alerts(demo_run: tuple[str, Path]) -> None:
    match = _check_line(demo_run[0])
    detected, injected, flagged = (int(match.group(i)) for i in (1, 2, 4))
    assert detected == injected and flagged == 0


def _console_rows(stdout: str) -> list[list[str]]:
    """Rows of the rich table ('│ a │ b │'), continuation lines joined into their row."""
    rows: list[list[str]] = []
    in_table = False
    for line in stdout.splitlines():
        if line.startswith("┡"):
            in_table = True
            continue
        if line.startswith("└"):
            break
        if in_table and line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            if cells[0] or not rows:
                rows.append(cells)
            else:  # a wrapped cell continues on the next line
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
    return rows


def test_html_table_equals_the_console_table(demo_run: tuple[str, Path]) -> None:
    stdout, out = demo_run
    parsed = parse_report((out / demo.REPORT_NAME).read_text())
    html_rows = parsed.tables["flagged"]
    assert html_rows[0] == list(COLUMNS)
    console_rows = _console_rows(stdout)
    assert len(console_rows) == len(html_rows) - 1 > 0
    for console_row, html_row in zip(console_rows, html_rows[1:], strict=True):
        assert console_row == html_row


def test_html_summary_equals_the_console_summary(demo_run: tuple[str, Path]) -> None:
    stdout, out = demo_run
    summary = parse_report((out / demo.REPORT_NAME).read_text()).tables["summary"]
    for label, value in summary:
        # the label may wrap in the console; its value sits on the line where the label starts
        first_word = label.split(" (")[0]
        line = next(x for x in stdout.splitlines() if f"│ {first_word}" in x)
        assert re.search(rf"{re.escape(value)} │$", line), (label, value, line)


def test_html_plots_hold_every_assessed_acquisition(demo_run: tuple[str, Path]) -> None:
    _, out = demo_run
    parsed = parse_report((out / demo.REPORT_NAME).read_text())
    acquisitions = int(dict(parsed.tables["summary"])["acquisitions assessed"])
    assert len(parsed.points["excess-length-by-site"]) == acquisitions
    assert len(parsed.points["ctdivol-vs-reference"]) == acquisitions
    assert parsed.references["ctdivol-vs-reference"]  # the site reference levels are drawn
    assert parsed.external == [] and parsed.scripts == 0


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--studies", "-1"], "--studies -1"),
        (["--studies", "0"], "--studies 0"),
        (["--batch-size", "0"], "--batch-size 0"),
    ],
)
def test_bad_counts_are_one_line_errors(
    argv: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path), *argv]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in err


def test_output_path_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["demo", "--out", str(blocker)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a directory" in err
    assert main(["demo", "--out", str(blocker / "sub")]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write there" in err


def test_compact_table_keeps_the_key_columns() -> None:
    from report import build_report

    report = build_report([], title="empty")
    full = demo.findings_table(report)
    compact = demo.findings_table(report, compact=True)
    assert [c.header for c in full.columns] == list(COLUMNS)
    assert [c.header for c in compact.columns] == [
        "study",
        "site",
        "severity",
        "finding",
        "excess DLP (mGy.cm)",
        "saving DLP (mGy.cm)",
    ]
