"""Small inline SVG charts drawn by hand: no plotting library, no external resources.

Each plotted point carries its numbers in ``data-`` attributes and a ``<title>`` tooltip, so the
chart can be checked against the table (tests parse them) and read in a browser.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 760
HEIGHT = 340
MARGIN_LEFT = 70
MARGIN_RIGHT = 20
MARGIN_TOP = 40
MARGIN_BOTTOM = 60
# Bar charts: room below the axis for rotated category labels.
BAR_HEIGHT = 400
BAR_MARGIN_BOTTOM = 130

FLAGGED = "#c0392b"
CLEAN = "#2e86c1"
REFERENCE = "#27ae60"


@dataclass(frozen=True, slots=True)
class Point:
    category: str
    value: float
    label: str
    flagged: bool


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + 1.0
    # A span below float resolution of the values cannot be ticked: widen it.
    hi = max(hi, lo + 1e-6 * max(abs(lo), abs(hi), 1.0))
    raw = (hi - lo) / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw)
    digits = max(0, 2 - math.floor(math.log10(step)))
    first = math.floor(lo / step)
    # lo / step can underflow to -0.0 for a tiny negative lo: the first tick must not pass lo.
    if round(first * step, digits) > lo:
        first -= 1
    ticks = []
    i = first
    # Ticks by index, not by accumulation, so that rounding errors do not add up.
    while (i - 1) * step < hi:
        ticks.append(round(i * step, digits))
        if ticks[-1] >= hi:
            break
        i += 1
    return ticks


def _attrs(**values: object) -> str:
    return " ".join(
        f'{k.replace("_", "-")}="{escape(str(v), quote=True)}"' for k, v in values.items()
    )


def _point_attrs(p: Point) -> str:
    return _attrs(
        class_="point",
        data_category=p.category,
        data_value=p.value,
        data_label=p.label,
        data_flagged=str(p.flagged).lower(),
    )


def _svg_open(chart_id: str, title: str, height: int = HEIGHT) -> str:
    box = f"0 0 {WIDTH} {height}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" {_attrs(id=chart_id, viewBox=box)} role="img" '
        f'aria-label="{escape(title, quote=True)}" class="chart">'
        f"<title>{escape(title)}</title>"
        f'<text x="{WIDTH / 2:.0f}" y="22" text-anchor="middle" class="chart-title">'
        f"{escape(title)}</text>"
    )


def strip_chart(
    *,
    chart_id: str,
    title: str,
    y_label: str,
    categories: Sequence[str],
    points: Sequence[Point],
    references: Mapping[str, float] | None = None,
    reference_label: str = "reference",
    flagged_label: str = "flagged",
    clean_label: str = "not flagged",
) -> str:
    """A categorical strip chart: one column per category, one dot per point (jittered
    horizontally in a fixed pattern), an optional reference level drawn as a bar per category."""
    refs = dict(references or {})
    values = [p.value for p in points if math.isfinite(p.value)]
    values += [v for c, v in refs.items() if c in categories]
    ticks = nice_ticks(min([0.0, *values]), max([1.0, *values]))
    y_lo, y_hi = ticks[0], ticks[-1]
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    band = plot_w / max(len(categories), 1)

    def y(v: float) -> float:
        return MARGIN_TOP + plot_h * (1.0 - (v - y_lo) / (y_hi - y_lo))

    def x(category: str) -> float:
        return MARGIN_LEFT + band * (categories.index(category) + 0.5)

    parts = [_svg_open(chart_id, title)]
    for t in ticks:
        ty = y(t)
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
            'class="grid"/>'
        )
        parts.append(
            f'<text x="{MARGIN_LEFT - 8}" y="{ty + 4:.1f}" text-anchor="end" class="tick">'
            f"{t:g}</text>"
        )
    parts.append(
        f'<text transform="translate(16 {MARGIN_TOP + plot_h / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle" class="axis-label">{escape(y_label)}</text>'
    )
    for c in categories:
        parts.append(
            f'<text x="{x(c):.1f}" y="{HEIGHT - MARGIN_BOTTOM + 18}" text-anchor="middle" '
            f'class="tick">{escape(c)}</text>'
        )
        if c in refs:
            ry = y(refs[c])
            parts.append(
                f"<line {_attrs(class_='reference', data_category=c, data_value=refs[c])} "
                f'x1="{x(c) - band * 0.4:.1f}" x2="{x(c) + band * 0.4:.1f}" y1="{ry:.1f}" '
                f'y2="{ry:.1f}" stroke="{REFERENCE}" stroke-width="3">'
                f"<title>{escape(c)}: {escape(reference_label)} {refs[c]:g}</title></line>"
            )
    seen: dict[str, int] = {}
    for p in points:
        if not math.isfinite(p.value) or p.category not in categories:
            continue
        k = seen.get(p.category, 0)
        seen[p.category] = k + 1
        # Fixed jitter pattern: deterministic output, dots spread across the column.
        dx = band * 0.3 * (((k * 7) % 13) / 12.0 - 0.5) * 2.0
        colour = FLAGGED if p.flagged else CLEAN
        parts.append(
            f"<circle {_point_attrs(p)} "
            f'cx="{x(p.category) + dx:.1f}" cy="{y(p.value):.1f}" r="4.5" fill="{colour}" '
            f'fill-opacity="0.8"><title>{escape(p.label)}: {p.value:g}</title></circle>'
        )
    legend_y = HEIGHT - 18
    parts.append(
        f'<circle cx="{MARGIN_LEFT}" cy="{legend_y - 4}" r="4.5" fill="{FLAGGED}"/>'
        f'<text x="{MARGIN_LEFT + 10}" y="{legend_y}" class="tick">{escape(flagged_label)}</text>'
        f'<circle cx="{MARGIN_LEFT + 200}" cy="{legend_y - 4}" r="4.5" fill="{CLEAN}"/>'
        f'<text x="{MARGIN_LEFT + 210}" y="{legend_y}" class="tick">{escape(clean_label)}</text>'
    )
    if refs:
        parts.append(
            f'<line x1="{MARGIN_LEFT + 400}" x2="{MARGIN_LEFT + 425}" y1="{legend_y - 4}" '
            f'y2="{legend_y - 4}" stroke="{REFERENCE}" stroke-width="3"/>'
            f'<text x="{MARGIN_LEFT + 432}" y="{legend_y}" class="tick">'
            f"{escape(reference_label)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(*, chart_id: str, title: str, y_label: str, bars: Sequence[tuple[str, float]]) -> str:
    """Vertical bars, one per (label, value)."""
    values = [v for _, v in bars if math.isfinite(v)]
    ticks = nice_ticks(0.0, max([1.0, *values]))
    y_hi = ticks[-1]
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = BAR_HEIGHT - MARGIN_TOP - BAR_MARGIN_BOTTOM
    band = plot_w / max(len(bars), 1)
    parts = [_svg_open(chart_id, title, BAR_HEIGHT)]
    for t in ticks:
        ty = MARGIN_TOP + plot_h * (1.0 - t / y_hi)
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'class="grid"/><text x="{MARGIN_LEFT - 8}" y="{ty + 4:.1f}" text-anchor="end" '
            f'class="tick">{t:g}</text>'
        )
    parts.append(
        f'<text transform="translate(16 {MARGIN_TOP + plot_h / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle" class="axis-label">{escape(y_label)}</text>'
    )
    for i, (label, value) in enumerate(bars):
        h = plot_h * (value / y_hi) if math.isfinite(value) else 0.0
        bx = MARGIN_LEFT + band * i + band * 0.15
        parts.append(
            f"<rect {_attrs(class_='bar', data_category=label, data_value=value)} "
            f'x="{bx:.1f}" y="{MARGIN_TOP + plot_h - h:.1f}" width="{band * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{FLAGGED}" fill-opacity="0.75">'
            f"<title>{escape(label)}: {value:g}</title></rect>"
            f'<text x="{bx + band * 0.35:.1f}" y="{BAR_HEIGHT - BAR_MARGIN_BOTTOM + 14}" '
            f'text-anchor="end" class="tick" transform="rotate(-30 {bx + band * 0.35:.1f} '
            f'{BAR_HEIGHT - BAR_MARGIN_BOTTOM + 14})">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
