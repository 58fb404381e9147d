"""``lowdose protocols [--site SITE] [--site-library DIR] [--history FILE] [--json]``: the planning
protocol library, every value with the file that set it and its source; with ``--history``, the
department's own typical value (median) and 75th percentile of CTDIvol and exam DLP per scanner
model beside the cited levels (ICRP Publication 135 terms, :mod:`optimiser.levels`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rich.table import Table

    from protocols.library import DepartmentLevel, SiteProtocol

HELP = "list the planning protocol library and where each value comes from"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", help="show one site only (default: all)")
    parser.add_argument(
        "--site-library",
        metavar="DIR",
        type=Path,
        help="folder of department override files (<site>.toml) applied over the built-in ones",
    )
    parser.add_argument(
        "--history",
        metavar="FILE",
        type=Path,
        help="assessments (JSON lines, as lowdose assess --json or the assessments topic write "
        "them): show the department's own median and 75th percentile beside the cited levels",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    from protocols.library import load_library

    library = load_library(args.site_library)
    sites = [args.site] if args.site else library.site_ids
    for site in sites:
        library.get(site)  # raises with the list of known sites
    dept: dict[str, list[DepartmentLevel]] = {}
    if args.history is not None:
        from optimiser.levels import department_levels, read_history

        dept = department_levels(read_history(args.history))
    if args.json:
        doc: dict[str, Any] = {
            "k_factors": library.k_factors.model_dump(),
            "sites": {
                site: [
                    {"key": v.key, "value": v.value, "origin": v.origin, "source": v.source}
                    for v in library.provenance[site]
                ]
                for site in sites
            },
        }
        doc["levels"] = {
            site: _levels_json(library.sites[site], dept.get(site, [])) for site in sites
        }
        print(json.dumps(doc, indent=2, default=str))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    k = library.k_factors
    console.print(
        f"k factors ({k.column}): "
        + ", ".join(f"{region} {value:g}" for region, value in k.k.items())
        + f"  [source: {k.source}]"
    )
    for site in sites:
        protocol = library.sites[site]
        table = Table(title=f"{site}: {protocol.title}", show_lines=False)
        table.add_column("key")
        table.add_column("value", overflow="fold")
        table.add_column("set by", overflow="fold")
        table.add_column("source", overflow="fold")
        for v in library.provenance[site]:
            table.add_row(v.key, str(v.value), v.origin, v.source or "-")
        console.print(table)
        if args.history is not None:
            console.print(_levels_table(protocol, dept.get(site, [])))
    return 0


Cited = Literal["ctdivol_mgy", "dlp_mgy_cm"]
_QUANTITIES: tuple[tuple[Cited, str, str], ...] = (
    ("ctdivol_mgy", "ctdivol_mgy", "CTDIvol mGy"),
    ("dlp_mgy_cm", "exam_dlp_mgy_cm", "exam DLP mGy.cm"),
)


def _levels_json(protocol: SiteProtocol, dept: list[DepartmentLevel]) -> dict[str, Any]:
    from optimiser.levels import describe

    out: dict[str, Any] = {}
    rooms = protocol.department.local_drl_min_rooms
    for cited_key, dept_key, _ in _QUANTITIES:
        out[dept_key] = {
            "cited": [v.model_dump() for v in protocol.levels(cited_key)],
            "department": [
                {
                    **lv.model_dump(),
                    "meaning": describe(lv, rooms),
                }
                for lv in dept
                if lv.quantity == dept_key
            ],
        }
    return out


def _levels_table(protocol: SiteProtocol, dept: list[DepartmentLevel]) -> Table:
    from rich.markup import escape
    from rich.table import Table

    from optimiser.levels import describe

    policy = protocol.department
    table = Table(title=f"{protocol.site}: cited levels and the department's own (ICRP 135)")
    for name in ("quantity", "level", "value", "n", "period", "meaning"):
        table.add_column(name, overflow="fold")
    for cited_key, dept_key, label in _QUANTITIES:
        for v in protocol.levels(cited_key):
            kind = "DRL (P75 type)" if v.kind == "drl" else "typical value (median/mean)"
            table.add_row(
                label,
                f"cited {kind}",
                f"{v.value:g}",
                "-",
                "-",
                escape(f"{v.statistic}; {v.source}"),
            )
        for lv in dept:
            if lv.quantity != dept_key:
                continue
            model = lv.scanner_model or "model unknown"
            used = "" if lv.n >= policy.min_exams else f"; not used: n < {policy.min_exams}"
            table.add_row(
                label, f"department median ({model})", f"{lv.median:g}", str(lv.n), lv.period,
                describe(lv, policy.local_drl_min_rooms) + "; exceeding it is info" + used,
            )  # fmt: skip
            promoted = policy.promote_p75_to_warning
            role = "a warning level" if promoted else "shown only"
            key = escape(f"[department] promote_p75_to_warning = {str(promoted).lower()}")
            table.add_row(
                label, f"department P75 ({model})",
                f"{lv.warning_value(policy.local_drl_min_rooms):g}", str(lv.n), lv.period,
                f"{key}: {role}{used}",
            )  # fmt: skip
    return table
