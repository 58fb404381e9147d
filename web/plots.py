"""Plotly figures of the desk as plain dicts (plotly.js's figure format, rendered by the
``plotly.min.js`` the desk serves; building dicts keeps a page's cost in the database).

The z-axis picture: the needed range (margins included, as the assessment's ``needed_basis``
says) with the site tolerance, the planned range, the irradiated range with the helical
over-ranging at its ends (half each end, the model's assumption, optimiser/dose_model.py), the
proposal, the body-region bands of the site library anchored at the needed range's edges
(protocols/library.py ``Regions``), and the DLP per 1 cm slab of the irradiated range
(CTDIvol x slab length, planning-ct.md section 2), split into needed and excess.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np

from protocols.library import SiteProtocol
from store.stats import MonthPoint

SLAB_MM = 10.0
COLOURS = {
    "needed": "#2e7d32",
    "planned": "#1565c0",
    "irradiated": "#ef6c00",
    "overranging": "#ffb74d",
    "proposal": "#6a1b9a",
    "excess": "#c62828",
    "reference": "#424242",
    "local": "#00838f",
}
_BAND_FILL = ("rgba(120,144,156,0.10)", "rgba(120,144,156,0.22)")


def _bar(name: str, row: str, z: tuple[float, float], colour: str, text: str) -> dict[str, Any]:
    lo, hi = min(z), max(z)
    return {
        "type": "bar",
        "orientation": "h",
        "name": name,
        "y": [row],
        "x": [hi - lo],
        "base": [lo],
        "marker": {"color": colour},
        "hovertemplate": f"{text}: %{{base:.0f}} to %{{x:.0f}} mm long<extra></extra>",
        "xaxis": "x",
        "yaxis": "y",
        "showlegend": False,
    }


def region_bands(
    protocol: SiteProtocol | None, needed: tuple[float, float] | None
) -> list[tuple[str, float, float]]:
    """(region, z_lo, z_hi) bands anchored at the needed range (superior = higher z)."""
    if protocol is None or needed is None:
        return []
    lo, hi = min(needed), max(needed)
    length = hi - lo
    bands: list[tuple[str, float, float]] = []
    top = hi
    for b in protocol.regions.inside:
        bottom = top - b.fraction * length
        bands.append((b.region, bottom, top))
        top = bottom
    edge = hi
    for ob in protocol.regions.above:
        bands.append((ob.region, edge, edge + ob.length_mm))
        edge += ob.length_mm
    edge = lo
    for ob in protocol.regions.below:
        bands.append((ob.region, edge - ob.length_mm, edge))
        edge -= ob.length_mm
    return bands


def slab_profile(
    irradiated: tuple[float, float], needed: tuple[float, float] | None, ctdivol_mgy: float
) -> tuple[list[float], list[float], list[float]]:
    """Slab centres and the DLP (mGy.cm) of each 1 cm slab inside and outside the needed range."""
    lo, hi = min(irradiated), max(irradiated)
    edges = np.arange(math.floor(lo / SLAB_MM) * SLAB_MM, hi + SLAB_MM, SLAB_MM)
    a = np.maximum(edges[:-1], lo)
    b = np.minimum(edges[1:], hi)
    length = np.clip(b - a, 0.0, None)
    if needed is None:
        inside = np.zeros_like(length)
    else:
        n_lo, n_hi = min(needed), max(needed)
        inside = np.clip(np.minimum(b, n_hi) - np.maximum(a, n_lo), 0.0, None)
    centres = 0.5 * (edges[:-1] + edges[1:])
    keep = length > 0
    dlp_in = ctdivol_mgy * inside / 10.0
    dlp_out = ctdivol_mgy * (length - inside) / 10.0
    return (
        [round(float(c), 1) for c in centres[keep]],
        [round(float(v), 3) for v in dlp_in[keep]],
        [round(float(v), 3) for v in dlp_out[keep]],
    )


def z_axis_figure(doc: dict[str, Any], protocol: SiteProtocol | None) -> dict[str, Any] | None:
    needed = tuple(doc["needed_z_mm"]) if doc.get("needed_z_mm") else None
    irradiated = tuple(doc["irradiated_z_mm"]) if doc.get("irradiated_z_mm") else None
    if needed is None and irradiated is None:
        return None
    data: list[dict[str, Any]] = []
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    rows = ["proposal", "irradiated", "planned", "needed"]
    if needed is not None:
        n = (min(needed), max(needed))
        data.append(_bar("needed", "needed", n, COLOURS["needed"], "needed (with margins)"))
        tol = protocol.coverage.tolerance_mm if protocol is not None else 0.0
        if tol:
            for z in (n[0] - tol, n[1] + tol):
                shapes.append(_vline(z, COLOURS["needed"], "dot"))
    if irradiated is not None:
        x = (min(irradiated), max(irradiated))
        half = 0.5 * float(doc.get("overranging_mm") or 0.0)
        planned = (x[0] + half, x[1] - half) if x[1] - x[0] > 2 * half else x
        data.append(_bar("planned", "planned", planned, COLOURS["planned"], "planned"))
        data.append(_bar("irradiated", "irradiated", planned, COLOURS["irradiated"], "irradiated"))
        if half > 0:
            for end in ((x[0], planned[0]), (planned[1], x[1])):
                data.append(
                    _bar("over-ranging", "irradiated", end, COLOURS["overranging"], "over-ranging")
                )
        ctdi = doc.get("ctdivol_mgy")
        if ctdi:
            centres, inside, outside = slab_profile(x, needed, float(ctdi))
            for name, values, colour in (
                ("DLP per 1 cm slab, needed", inside, COLOURS["needed"]),
                ("DLP per 1 cm slab, outside needed", outside, COLOURS["excess"]),
            ):
                data.append(
                    {
                        "type": "bar",
                        "name": name,
                        "x": centres,
                        "y": values,
                        "width": SLAB_MM * 0.9,
                        "marker": {"color": colour},
                        "xaxis": "x2",
                        "yaxis": "y2",
                        "hovertemplate": "z %{x} mm: %{y:.2f} mGy·cm<extra></extra>",
                    }
                )
    proposal = doc.get("proposal")
    if proposal and proposal.get("z_mm"):
        p = tuple(proposal["z_mm"])
        data.append(_bar("proposal", "proposal", (min(p), max(p)), COLOURS["proposal"], "proposal"))
    spans = [z for z in (needed, irradiated, tuple(proposal["z_mm"]) if proposal and
             proposal.get("z_mm") else None) if z is not None]  # fmt: skip
    view = (min(min(z) for z in spans) - 80.0, max(max(z) for z in spans) + 80.0)
    for i, (region, band_lo, band_hi) in enumerate(region_bands(protocol, needed)):
        lo, hi = max(band_lo, view[0]), min(band_hi, view[1])  # "inf" bands end at the view
        if not hi > lo:
            continue
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": lo,
                "x1": hi,
                "y0": 0,
                "y1": 1,
                "fillcolor": _BAND_FILL[i % 2],
                "line": {"width": 0},
                "layer": "below",
            }
        )
        annotations.append(
            {
                "x": 0.5 * (lo + hi),
                "y": 1.0,
                "xref": "x",
                "yref": "paper",
                "text": region,
                "showarrow": False,
                "font": {"size": 10},
                "yanchor": "bottom",
            }
        )
    layout = {
        "barmode": "stack",
        "height": 540,
        "margin": {"l": 90, "r": 20, "t": 40, "b": 120},
        "xaxis": {"range": list(view), "anchor": "y"},
        "xaxis2": {
            "matches": "x",
            "anchor": "y2",
            "title": {"text": "table position z (mm), superior to the right"},
        },
        "yaxis": {"domain": [0.42, 1.0], "categoryorder": "array", "categoryarray": rows},
        "yaxis2": {"domain": [0.0, 0.32], "title": {"text": "mGy·cm per slab"}},
        "shapes": shapes,
        "annotations": annotations,
        "legend": {"orientation": "h", "y": -0.25, "yanchor": "top"},
    }
    return {"data": data, "layout": layout}


def _vline(z: float, colour: str, dash: str) -> dict[str, Any]:
    return {
        "type": "line", "xref": "x", "yref": "paper", "x0": z, "x1": z, "y0": 0, "y1": 1,
        "line": {"color": colour, "dash": dash, "width": 1},
    }  # fmt: skip


def _level_shape(value: float, colour: str) -> dict[str, Any]:
    return {
        "type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": value, "y1": value,
        "line": {"color": colour, "dash": "dash", "width": 2},
    }  # fmt: skip


def _level_label(value: float, text: str, colour: str) -> dict[str, Any]:
    return {
        "xref": "paper", "x": 1.0, "xanchor": "right", "yref": "y", "y": value,
        "yanchor": "bottom", "text": f"{text} {value:.1f}", "showarrow": False,
        "font": {"color": colour, "size": 11},
    }  # fmt: skip


def trend_figures(
    points: list[MonthPoint],
    recent: list[tuple[datetime, float | None, float, int]],
    *,
    cited_ctdivol: float | None,
    cited_dlp: float | None,
    local_ctdivol: float | None,
    local_dlp: float | None,
) -> dict[str, dict[str, Any]]:
    """Four figures: CTDIvol and DLP over time (each recent acquisition, and the monthly mean)
    against the cited and the local level; avoidable excess DLP per month; share flagged."""
    months = [f"{p.month}-15" for p in points]  # the month's middle on a date axis
    times = [t.isoformat(sep=" ", timespec="minutes") for t, _, _, _ in recent]
    colours = [COLOURS["excess"] if s >= 1 else "#90a4ae" for _, _, _, s in recent]

    def layout(title: str, ytitle: str, cited: float | None = None, local: float | None = None
               ) -> dict[str, Any]:  # fmt: skip
        shapes, labels = [], []
        for value, text, colour in ((cited, "cited", COLOURS["reference"]),
                                    (local, "local P75", COLOURS["local"])):  # fmt: skip
            if value is not None:
                shapes.append(_level_shape(value, colour))
                labels.append(_level_label(value, text, colour))
        return {
            "title": {"text": title},
            "height": 370,
            "margin": {"l": 60, "r": 20, "t": 40, "b": 90},
            "xaxis": {"type": "date"},
            "yaxis": {"title": {"text": ytitle}, "rangemode": "tozero"},
            "legend": {"orientation": "h", "y": -0.18, "yanchor": "top"},
            "shapes": shapes,
            "annotations": labels,
        }

    def over_time(values: list[float | None], means: list[float | None], name: str
                  ) -> list[dict[str, Any]]:  # fmt: skip
        return [
            {"type": "scattergl" if len(times) > 1000 else "scatter", "mode": "markers",
             "name": f"each acquisition (newest {len(times)}; red: flagged)", "x": times,
             "y": values, "marker": {"color": colours, "size": 5, "opacity": 0.7}},
            {"type": "scatter", "mode": "lines+markers", "name": f"monthly mean {name}",
             "x": months, "y": means, "line": {"color": COLOURS["planned"], "width": 3}},
        ]  # fmt: skip

    return {
        "ctdivol": {
            "data": over_time(
                [c for _, c, _, _ in recent], [p.mean_ctdivol_mgy for p in points], "CTDIvol"
            ),
            "layout": layout("CTDIvol over time", "mGy", cited_ctdivol, local_ctdivol),
        },
        "dlp": {
            "data": over_time(
                [d for _, _, d, _ in recent], [p.mean_dlp_mgy_cm for p in points], "DLP"
            ),
            "layout": layout("DLP over time", "mGy·cm", cited_dlp, local_dlp),
        },
        "excess": {
            "data": [
                {
                    "type": "bar",
                    "name": "avoidable excess DLP",
                    "x": months,
                    "y": [p.excess_dlp_mgy_cm for p in points],
                    "marker": {"color": COLOURS["excess"]},
                }
            ],
            "layout": layout("Avoidable excess DLP per month (sum)", "mGy·cm"),
        },
        "flagged": {
            "data": [
                {
                    "type": "bar",
                    "name": "share flagged",
                    "x": months,
                    "y": [round(100 * p.share_flagged, 1) for p in points],
                    "text": [f"{p.flagged} of {p.n}" for p in points],
                }
            ],
            "layout": layout("Share of acquisitions with a warning or alert", "%"),
        },
    }
