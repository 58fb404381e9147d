"""The self-contained HTML report for a physicist: summary, plots, what needs review.

One file, inline CSS and inline SVG, no scripts and no external resources: it opens from a mail
attachment or a network share. The numbers come from :mod:`report.model`, the same cells
the console table prints.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from pathlib import Path

from optimiser.errors import ConfigurationError
from report.model import (
    CHANGE_COLUMN,
    COLUMNS,
    FINDING_COLUMN,
    NUMERIC_COLUMNS,
    SITE_COLUMNS,
    Report,
    fmt,
    row_cells,
    site_cells,
    summary_cells,
)
from report.svg import Point, bar_chart, strip_chart

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.88em; }
th, td { border: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f4f6f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.alert td:first-child { border-left: 4px solid #c0392b; }
tr.warning td:first-child { border-left: 4px solid #e67e22; }
tr.info td:first-child { border-left: 4px solid #2e86c1; }
#summary { width: auto; }
#summary td:last-child { text-align: right; font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
svg.chart { width: 100%; max-width: 760px; height: auto; border: 1px solid #eee; }
svg .grid { stroke: #e5e5e5; stroke-width: 1; }
svg .tick { font-size: 11px; fill: #555; }
svg .axis-label { font-size: 12px; fill: #333; }
svg .chart-title { font-size: 14px; font-weight: 600; fill: #222; }
.notes { color: #555; font-size: 0.85em; }
"""


def _summary_table(report: Report) -> str:
    rows = "".join(
        f'<tr data-key="{escape(label, quote=True)}"><td>{escape(label)}</td>'
        f"<td>{escape(value)}</td></tr>"
        for label, value in summary_cells(report.summary)
    )
    return f'<table id="summary"><tbody>{rows}</tbody></table>'


def _sites_table(report: Report) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in SITE_COLUMNS)
    rows = []
    for cells in site_cells(report):
        tds = [f"<td>{escape(cells[0])}</td>"]
        tds += [f'<td class="num">{escape(cell)}</td>' for cell in cells[1:]]
        rows.append(f"<tr>{''.join(tds)}</tr>")
    return f'<table id="sites"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _findings_table(report: Report) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = []
    for row in report.flagged_rows:
        cells = row_cells(row)
        messages = " | ".join(f"{f.severity}: {f.message}" for f in row.findings)
        tips = {FINDING_COLUMN: messages, CHANGE_COLUMN: row.proposed_change_full}
        tds = []
        for i, cell in enumerate(cells):
            cls = ' class="num"' if i in NUMERIC_COLUMNS else ""
            title = f' title="{escape(tips[i], quote=True)}"' if i in tips else ""
            tds.append(f"<td{cls}{title}>{escape(cell)}</td>")
        body.append(f'<tr class="{row.severity or ""}">{"".join(tds)}</tr>')
    if not body:
        body.append(
            f'<tr><td colspan="{len(COLUMNS)}">no acquisition needs review (no warning or '
            "alert)</td></tr>"
        )
    return (
        f'<table id="flagged"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def _charts(report: Report) -> str:
    sites = report.sites
    # Each plot marks the acquisitions flagged (warning or alert) for what it shows: an info
    # finding (a CTDIvol above a median, a small excess) is drawn like the others.
    excess = [
        Point(
            r.site,
            r.excess_length_mm,
            f"{r.study} {r.acquisition}",
            r.flagged_for("excess_coverage"),
        )
        for r in report.rows
    ]
    ctdi = [
        Point(
            r.site,
            r.ctdivol_mgy,
            f"{r.study} {r.acquisition}",
            r.flagged_for("above_reference_level"),
        )
        for r in report.rows
        if r.ctdivol_mgy is not None
    ]
    counts = [(code, float(n)) for code, n in report.summary.findings_by_code.items()]
    return (
        '<div class="charts">'
        + strip_chart(
            chart_id="excess-length-by-site",
            title="Irradiated length beyond the needed range, by site",
            y_label="excess length (mm)",
            categories=sites,
            points=excess,
            flagged_label="excess_coverage (warning or alert)",
            clean_label="other acquisitions",
        )
        + strip_chart(
            chart_id="ctdivol-vs-reference",
            title="CTDIvol against the site's planning reference level",
            y_label="CTDIvol (mGy)",
            categories=sites,
            points=ctdi,
            references={s: v for s, v in report.reference_ctdivol_mgy.items() if s in sites},
            reference_label="site reference CTDIvol",
            flagged_label="above_reference_level (warning or alert)",
            clean_label="other acquisitions",
        )
        + bar_chart(
            chart_id="findings-by-code",
            title="Acquisitions with each finding",
            y_label="acquisitions",
            bars=counts,
        )
        + "</div>"
    )


def render_html(report: Report, *, generated_at: datetime | None = None) -> str:
    """The whole report as one HTML document."""
    s = report.summary
    stamp = f" · generated {generated_at:%Y-%m-%d %H:%M}" if generated_at else ""
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(report.title)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{escape(report.title)}</h1>
<p class="sub">{s.studies} studies; {s.flagged} of {s.acquisitions} acquisitions need review
({s.alerts} alert, {s.flagged - s.alerts} warning); {s.info_only} info only; total avoidable DLP
{fmt(s.avoidable_dlp_mgy_cm, 1)} mGy.cm
{stamp}</p>
<h2>Summary</h2>
{_summary_table(report)}
<h2>By site</h2>
{_sites_table(report)}
<h2>Plots</h2>
{_charts(report)}
<h2>Acquisitions that need review (warning or alert)</h2>
{_findings_table(report)}
<h2>How to read this report</h2>
<ul class="notes">
<li>Excess = the irradiated range (planned range plus helical over-ranging) outside the range
planning needs: target plus margins, united with whole organs and the image-guidance field
(planning-ct.md section 4). Excess DLP is the robust metric; effective dose uses region k-factors
(section 5) and is a population-average indicator.</li>
<li>Findings merge the prospective assessment of the protocol event and the retrospective one of
the dose report; numbers are those of the dose report (what was delivered) when it arrived.</li>
<li>Avoidable DLP = the sum of the proposals' savings: range trimmed to the needed range plus
tolerance (helical over-ranging is unavoidable and not counted), a repeated acquisition or extra
contrast phase omitted, exposure scaled down to the site's 75th-percentile-type reference level
(a DRL) when above it, never below the site's exposure floor (a published centre's median
planning CTDIvol).</li>
{notes}
</ul>
</body>
</html>
"""


def write_html(report: Report, path: Path, *, generated_at: datetime | None = None) -> Path:
    """Write the report; an unwritable path is a :class:`ConfigurationError`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(report, generated_at=generated_at), encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"report path {str(path)!r}: cannot write there ({exc.strerror or exc}); "
            "give a writable folder with --out"
        ) from exc
    return path
