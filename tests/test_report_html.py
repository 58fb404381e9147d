"""The HTML report: self-contained, plots embedded, numbers equal to the table's cells."""

from __future__ import annotations

import itertools
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from optimiser.assessment import Assessment, Finding, Proposal, assessment_id
from optimiser.errors import ConfigurationError
from report import build_report, render_html, row_cells, summary_cells, write_html
from report.readback import parse_report
from report.svg import nice_ticks
from tests.realparts import require_tool


def _assessment(
    *,
    kind: str,
    study: str,
    index: int | None,
    event_uid: str | None = None,
    site: str = "prostate",
    excess_length: float = 0.0,
    excess_dlp: float = 0.0,
    dlp: float = 400.0,
    ctdivol: float = 16.0,
    findings: tuple[tuple[str, str], ...] = (),
    saving: float | None = None,
    description: str = "Helical 2.5mm",
) -> Assessment:
    proposal = None
    if saving is not None:
        proposal = Proposal(
            z_mm=(0.0, 200.0),
            mas=100.0,
            ctdivol_mgy=ctdivol,
            dlp_mgy_cm=dlp - saving,
            dlp_saving_mgy_cm=saving,
            effective_dose_saving_msv=saving * 0.015,
            changes=[f"range 0 to 200 mm: the needed range plus 10 mm tolerance (#{index})"]
            if saving
            else [],
        )
    input_id = f"{study}-{kind}"
    return Assessment(
        schema_="lowdose.assessment/1",
        assessment_id=assessment_id(kind, input_id, str(event_uid or index)),
        input_kind=kind,  # type: ignore[arg-type]
        input_id=input_id,
        study_instance_uid=study,
        accession_number=f"ACC-{study}",
        acquisition_index=index,
        irradiation_event_uid=event_uid,
        site=site,
        acquisition_type="spiral",
        description=description,
        needed_z_mm=(0.0, 200.0),
        needed_basis="given",
        irradiated_z_mm=(-excess_length, 200.0),
        placement="planned",
        ctdivol_mgy=ctdivol,
        dlp_mgy_cm=dlp,
        scan_length_mm=200.0 + excess_length,
        excess_length_mm=excess_length,
        excess_dlp_mgy_cm=excess_dlp,
        excess_fraction=excess_length / (200.0 + excess_length),
        effective_dose_msv=dlp * 0.015,
        excess_effective_dose_msv=excess_dlp * 0.015,
        findings=[Finding(code=c, severity=s, message=f"{c} here") for c, s in findings],  # type: ignore[arg-type]
        proposal=proposal,
    )


def _day() -> list[Assessment]:
    return [
        # study A: planned with a thin reconstruction, delivered with excess coverage
        _assessment(
            kind="protocol_event",
            study="A",
            index=1,
            excess_length=90.0,
            excess_dlp=144.0,
            findings=(("thin_reconstruction", "warning"),),
            saving=130.0,
        ),
        _assessment(
            kind="dose_report",
            study="A",
            index=None,
            event_uid="uid-A1",
            excess_length=100.0,
            excess_dlp=160.0,  # 16 mGy x 10 cm
            dlp=480.0,  # 16 mGy x 30 cm
            findings=(("excess_coverage", "alert"),),
            saving=150.5,
        ),
        # study B: clean breast scan, delivered
        _assessment(kind="protocol_event", study="B", index=1, site="breast", ctdivol=9.0),
        _assessment(
            kind="dose_report",
            study="B",
            index=None,
            event_uid="uid-B1",
            site="breast",
            ctdivol=9.0,
            dlp=270.0,
        ),
        # study C: above the reference, only the protocol event arrived
        _assessment(
            kind="protocol_event",
            study="C",
            index=1,
            site="breast",
            ctdivol=40.0,
            dlp=1200.0,
            findings=(("above_reference_level", "alert"),),
            saving=420.0,
            description="<b>Helical</b> & co",
        ),
    ]


EVENT_INDEX = {"uid-A1": 1, "uid-B1": 1}
REFERENCES = {"prostate": 17.0, "breast": 26.0}


def _report():  # type: ignore[no-untyped-def]
    return build_report(
        _day(), title="test day", event_index=EVENT_INDEX, reference_ctdivol_mgy=REFERENCES
    )


def test_assessments_of_one_acquisition_merge_into_one_row() -> None:
    report = _report()
    assert [(r.study_instance_uid, r.delivered) for r in report.rows] == [
        ("A", True),
        ("B", True),
        ("C", False),
    ]
    a = report.rows[0]
    # findings from both, in FINDING_CODES order; numbers from the dose report
    assert a.codes == ("excess_coverage", "thin_reconstruction")
    assert a.severity == "alert"
    assert (a.excess_length_mm, a.excess_dlp_mgy_cm, a.dlp_mgy_cm) == (100.0, 160.0, 480.0)
    assert a.saving_dlp_mgy_cm == 150.5
    assert not report.rows[1].flagged


def test_summary_totals_by_hand() -> None:
    s = _report().summary
    assert (s.studies, s.acquisitions, s.flagged) == (3, 3, 2)
    # need review (warning or alert): A and C, both alerts; 2 / 3 = 67 %; no info-only row
    assert (s.alerts, s.info_only) == (2, 0)
    assert s.flagged_share == pytest.approx(2 / 3)
    # total DLP 480 + 270 + 1200 = 1950; excess 160 + 0 + 0 = 160
    assert s.total_dlp_mgy_cm == pytest.approx(1950.0)
    assert s.total_excess_dlp_mgy_cm == pytest.approx(160.0)
    # avoidable = savings of every row: 150.5 (A, from its dose report) + 0 (B) + 420 (C) = 570.5
    assert s.avoidable_dlp_mgy_cm == pytest.approx(570.5)
    # 570.5 x 0.015 = 8.5575 mSv
    assert s.avoidable_effective_dose_msv == pytest.approx(8.5575)
    assert s.findings_by_code["excess_coverage"] == 1
    assert s.findings_by_code["above_reference_level"] == 1
    assert s.findings_by_code["repeat_acquisition"] == 0
    labels = dict(summary_cells(s))
    assert labels["need review (warning or alert)"] == "2 (2 alert, 0 warning)"
    assert labels["share needing review"] == "67%"
    assert labels["info findings only"] == "0"
    assert labels["total avoidable DLP (mGy.cm)"] == "570.5"


def test_row_cells_format() -> None:
    cells = row_cells(_report().rows[0])
    assert cells[:5] == [
        "ACC-A",
        "prostate",
        "#1 Helical 2.5mm",
        "alert",
        "excess_coverage, thin_reconstruction",
    ]
    # 100 mm, 160.0 mGy.cm, 160 x 0.015 = 2.40 mSv; saving 150.5 and 150.5 x 0.015 = 2.26 mSv
    assert cells[5:8] == ["100", "160.0", "2.40"]
    assert cells[8] == "range 0 to 200 mm"
    assert cells[9:] == ["150.5", "2.26"]


def test_html_is_self_contained_with_embedded_plots() -> None:
    html = render_html(_report())
    parsed = parse_report(html)
    assert parsed.external == []
    assert parsed.scripts == 0
    assert {"excess-length-by-site", "ctdivol-vs-reference"} <= set(parsed.svgs)
    assert html.startswith("<!DOCTYPE html>")


def test_html_numbers_equal_the_table_cells() -> None:
    report = _report()
    parsed = parse_report(render_html(report))
    flagged = parsed.tables["flagged"]
    assert flagged[0] == [
        "study",
        "site",
        "acq",
        "severity",
        "finding",
        "excess length (mm)",
        "excess DLP (mGy.cm)",
        "excess E (mSv)",
        "proposed change",
        "saving DLP (mGy.cm)",
        "saving E (mSv)",
    ]
    assert flagged[1:] == [row_cells(r) for r in report.flagged_rows]
    assert parsed.tables["summary"] == [list(c) for c in summary_cells(report.summary)]


def test_site_table_by_hand() -> None:
    parsed = parse_report(render_html(_report()))
    assert parsed.tables["sites"][1:] == [
        # breast: B (9 mGy, 270 mGy.cm) and C (40 mGy, 1200 mGy.cm, saving 420):
        # median of 9 and 40 = 24.5; total 1470; excess 0; avoidable 420 (C is flagged)
        ["breast", "2", "1", "24.5", "26.0", "1470.0", "0.0", "420.0"],
        # prostate: A alone, from its dose report
        ["prostate", "1", "1", "16.0", "17.0", "480.0", "160.0", "150.5"],
    ]


def test_plots_carry_the_rows_values() -> None:
    report = _report()
    parsed = parse_report(render_html(report))
    excess = parsed.points["excess-length-by-site"]
    assert [(p["data-category"], float(p["data-value"])) for p in excess] == [
        (r.site, r.excess_length_mm) for r in report.rows
    ]
    # marked: the acquisitions flagged for excess coverage (study A only)
    assert [p["data-flagged"] for p in excess] == ["true", "false", "false"]
    ctdi = parsed.points["ctdivol-vs-reference"]
    assert sorted(float(p["data-value"]) for p in ctdi) == [9.0, 16.0, 40.0]
    refs = {
        r["data-category"]: float(r["data-value"])
        for r in parsed.references["ctdivol-vs-reference"]
    }
    assert refs == REFERENCES
    bars = {b["data-category"]: float(b["data-value"]) for b in parsed.bars["findings-by-code"]}
    assert bars["excess_coverage"] == 1.0 and bars["dose_check_exceeded"] == 0.0


def test_text_is_escaped() -> None:
    html = render_html(_report())
    assert "<b>Helical</b>" not in html
    assert "&lt;b&gt;Helical&lt;/b&gt; &amp; co" in html


def test_empty_day_renders() -> None:
    report = build_report([], title="nothing")
    parsed = parse_report(render_html(report))
    assert parsed.tables["flagged"][1] == ["no acquisition needs review (no warning or alert)"]
    assert len(parsed.svgs) == 3


def test_info_only_acquisitions_are_shown_not_flagged() -> None:
    """Issue 20 defect 4: "flagged" means a warning or an alert; an acquisition with info
    findings only is counted apart, and its avoidable dose still counts."""
    report = build_report(
        [
            _assessment(
                kind="protocol_event",
                study="D",
                index=1,
                site="prostate",
                ctdivol=16.0,
                findings=(("excess_coverage", "info"),),
                saving=12.0,
            ),
            _assessment(
                kind="protocol_event",
                study="E",
                index=1,
                site="prostate",
                ctdivol=16.0,
                findings=(("thin_reconstruction", "warning"),),
            ),
        ],
        title="info",
    )
    s = report.summary
    assert (s.acquisitions, s.flagged, s.alerts, s.info_only) == (2, 1, 0, 1)
    assert [r.study for r in report.flagged_rows] == ["ACC-E"]
    assert s.avoidable_dlp_mgy_cm == pytest.approx(12.0)
    labels = dict(summary_cells(s))
    assert labels["need review (warning or alert)"] == "1 (0 alert, 1 warning)"
    assert labels["info findings only"] == "1"
    # the plots mark only the warning or alert: D's info excess is drawn like the others
    excess = parse_report(render_html(report)).points["excess-length-by-site"]
    assert [p["data-flagged"] for p in excess] == ["false", "false"]


def test_write_html_to_an_unwritable_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigurationError, match="cannot write there"):
        write_html(_report(), blocker / "report.html")
    path = write_html(_report(), tmp_path / "out" / "report.html")
    assert parse_report(path.read_text()).tables["flagged"]


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        # range 0..100 in ~5 steps: raw step 20 -> 2 x 10
        (0.0, 100.0, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]),
        # range 0..37: raw 7.4 -> step 10, covering 37 needs 40
        (0.0, 37.0, [0.0, 10.0, 20.0, 30.0, 40.0]),
        # empty range widens to 1: raw 0.2 -> step 0.2
        (5.0, 5.0, [5.0, 5.2, 5.4, 5.6, 5.8, 6.0]),
    ],
)
def test_nice_ticks(lo: float, hi: float, expected: list[float]) -> None:
    assert nice_ticks(lo, hi) == pytest.approx(expected)


# --- headless Chromium: the report opens and its plots are drawn -------------------------------


def _screenshot(page: Path, png: Path, width: int, height: int) -> None:
    subprocess.run(
        [
            require_tool("chromium", "chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            # No network: background services would only try (and fail) to reach the internet.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={png.parent / 'chromium-profile'}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG into rows of raw pixel bytes (PNG spec, filters 0-4)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, bpp = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for r in range(height):
        f = raw[r * (stride + 1)]
        line = bytearray(raw[r * (stride + 1) + 1 : (r + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i : i + 3]) for r in rows for i in range(0, stride, bpp)]


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    require_tool("chromium", "chromium")
    report_page = write_html(_report(), tmp_path / "report.html")
    blank_page = tmp_path / "blank.html"
    blank_page.write_text("<!DOCTYPE html><html><body></body></html>")
    _screenshot(report_page, tmp_path / "report.png", 1000, 1400)
    _screenshot(blank_page, tmp_path / "blank.png", 1000, 1400)
    report_png = (tmp_path / "report.png").read_bytes()
    assert struct.unpack(">II", report_png[16:24]) == (1000, 1400)
    # a drawn page compresses far worse than an empty one
    assert len(report_png) > 5 * len((tmp_path / "blank.png").read_bytes())


def test_chart_pixels_show_points_and_reference_levels(tmp_path: Path) -> None:
    require_tool("chromium", "chromium")
    report = _report()
    html = render_html(report)
    start = html.index('<svg xmlns="http://www.w3.org/2000/svg" id="ctdivol-vs-reference"')
    chart = html[start : html.index("</svg>", start) + len("</svg>")]
    page = tmp_path / "chart.html"
    page.write_text(f"<!DOCTYPE html><html><body style='margin:0'>{chart}</body></html>")
    _screenshot(page, tmp_path / "chart.png", 760, 340)
    width, height, pixels = _png_pixels((tmp_path / "chart.png").read_bytes())
    assert (width, height) == (760, 340)
    counts = Counter(pixels)

    def near(rgb: tuple[int, int, int], tol: int = 12) -> int:
        return sum(n for p, n in counts.items() if all(abs(p[i] - rgb[i]) <= tol for i in range(3)))

    # reference bars: solid #27ae60, 3 px high and about 0.8 x 96 px long per site (2 sites)
    assert near((0x27, 0xAE, 0x60)) > 300
    # the above-reference point: #c0392b at 0.8 opacity on white = (205, 97, 85)
    assert near((205, 97, 85), tol=20) > 20
    # the other points: #2e86c1 at 0.8 opacity on white = (88, 158, 205)
    assert near((88, 158, 205), tol=20) > 40


@settings(max_examples=200, deadline=None)
@given(
    lo=st.floats(min_value=-1e5, max_value=1e5, allow_nan=False),
    span=st.floats(min_value=0.0, max_value=1e5, allow_nan=False),
)
@example(lo=-5e-324, span=0.0)  # lo / step underflows to -0.0 (found by hypothesis)
def test_nice_ticks_cover_the_range_in_even_steps(lo: float, span: float) -> None:
    hi = lo + span
    ticks = nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi - 1e-9 * max(1.0, abs(hi))
    steps = [b - a for a, b in itertools.pairwise(ticks)]
    assert steps and all(s > 0 for s in steps)
    assert max(steps) - min(steps) <= 1e-6 * max(steps)
    assert len(ticks) <= 12
