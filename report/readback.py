"""Reading a written report back: its tables and the numbers its plots carry.

For checks that a report file shows what was computed (tests, CI smoke checks of ``make demo``):
html.parser only, as a browser would see the document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class ParsedReport:
    """What a browser would show, read back with html.parser."""

    tables: dict[str, list[list[str]]] = field(default_factory=dict)
    svgs: list[str] = field(default_factory=list)
    points: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    references: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    bars: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    external: list[str] = field(default_factory=list)
    scripts: int = 0


class ReportParser(HTMLParser):
    """Collects table cells by table id and the ``data-`` attributes of plotted marks by chart."""

    def __init__(self) -> None:
        super().__init__()
        self.out = ParsedReport()
        self._table: str | None = None
        self._svg: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for key in ("src", "href"):
            if key in a:
                self.out.external.append(a[key])
        if tag == "link" or (tag == "img" and "src" in a):
            self.out.external.append(tag)
        if tag == "script":
            self.out.scripts += 1
        if tag == "table":
            self._table = a.get("id", "")
            self.out.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "svg":
            self._svg = a.get("id", "")
            self.out.svgs.append(self._svg)
        elif self._svg is not None and "data-value" in a:
            kind = {"circle": self.out.points, "line": self.out.references, "rect": self.out.bars}
            kind[tag].setdefault(self._svg, []).append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.out.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "svg":
            self._svg = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_report(html: str) -> ParsedReport:
    """Tables, charts, plotted values and any external resource or script of a report."""
    parser = ReportParser()
    parser.feed(html)
    parser.close()
    return parser.out
