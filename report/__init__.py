"""Department reports: flagged acquisitions, summary and hand-drawn inline SVG plots."""

from report.html import render_html, write_html
from report.model import Report, Row, Summary, build_report, row_cells, summary_cells

__all__ = [
    "Report",
    "Row",
    "Summary",
    "build_report",
    "render_html",
    "row_cells",
    "summary_cells",
    "write_html",
]
