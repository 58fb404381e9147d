"""``lowdose inspect PATH... [--json]``: what dose reports and RT structure sets hold.

Every file is read, even after one fails; the exit status is 1 when any could not be read. The
patient ID is never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from optimiser.records import DoseReport, StructureSet

HELP = "show the events of CT dose reports (RDSR) and the ROIs of RT structure sets"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="DICOM files, or folders to search for *.dcm files",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON array, one object per file"
    )
    parser.add_argument(
        "--strictness",
        choices=["ignore", "warn", "raise"],
        default="warn",
        help="malformed items: drop silently, drop with a warning (default), or fail the file",
    )


def _files(paths: list[str]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.dcm") if p.is_file())
        else:
            yield path


def _n(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _report_table(record: DoseReport) -> Table:
    from rich.table import Table

    title = f"{record.source}: {record.manufacturer or '?'} {record.model or ''}".rstrip()
    table = Table(title=title, title_justify="left")
    for column in ("#", "type", "protocol", "kVp", "CTDIvol mGy", "DLP mGy.cm", "length mm"):
        table.add_column(column, justify="left" if column in ("type", "protocol") else "right")
    for i, acq in enumerate(record.acquisitions, 1):
        table.add_row(
            str(i),
            acq.acquisition_type or "?",
            acq.acquisition_protocol or "",
            "/".join(f"{k:g}" for k in acq.kvp) or "-",
            _n(acq.mean_ctdivol_mgy),
            _n(acq.dlp_mgy_cm),
            _n(acq.scanning_length_mm, 1),
        )
    return table


def _report_totals(record: DoseReport) -> str:
    events_sum = sum(a.dlp_mgy_cm or 0.0 for a in record.acquisitions)
    reported = record.total_number_of_events
    return (
        f"study {record.study_instance_uid}: {len(record.acquisitions)} events "
        f"(reported {'-' if reported is None else reported}), "
        f"DLP total reported {_n(record.dlp_total_mgy_cm)} mGy.cm, "
        f"sum of events {events_sum:.2f} mGy.cm"
    )


def _structures_table(record: StructureSet) -> Table:
    from rich.table import Table

    table = Table(title=f"{record.source}: RT Structure Set", title_justify="left")
    for column in ("ROI", "name", "type", "z min mm", "z max mm"):
        table.add_column(column, justify="left" if column in ("name", "type") else "right")
    for roi in record.rois:
        table.add_row(
            str(roi.number),
            roi.name,
            roi.interpreted_type or "",
            _n(roi.z_min_mm, 1),
            _n(roi.z_max_mm, 1),
        )
    return table


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from optimiser.dicom import read_dicom, report_to_json, structure_set_to_json
    from optimiser.errors import DicomError
    from optimiser.records import DoseReport
    from optimiser.strictness import Strictness

    strictness = Strictness(args.strictness)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    objects: list[dict[str, Any]] = []
    failed = 0
    for path in _files(args.paths):
        try:
            record = read_dicom(path, strictness=strictness)
        except DicomError as exc:
            failed += 1
            err.print(f"lowdose inspect: error: {exc}", markup=False)
            objects.append({"file": path.name, "kind": "error", "error": exc.reason})
            continue
        if isinstance(record, DoseReport):
            if args.json:
                objects.append(report_to_json(record))
                continue
            out.print(_report_table(record))
            out.print(_report_totals(record), markup=False)
        else:
            if args.json:
                objects.append(structure_set_to_json(record))
                continue
            out.print(_structures_table(record))
            out.print(f"study {record.study_instance_uid}: {len(record.rois)} ROIs", markup=False)
        for warning in record.warnings:
            out.print(f"  warning: {warning}", markup=False)
        out.print()
    if args.json:
        json.dump(objects, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
    return 1 if failed else 0
