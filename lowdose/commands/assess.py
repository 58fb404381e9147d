"""``lowdose assess PATH... [--json] [--site-library DIR]``: assess planning scans from files.

Protocol events (.json: one event or an array of them), CT dose reports, RT structure sets and
CT images (.dcm: their TG-220 D_w gives the study's SSDE) given together are joined by Study
Instance UID: per study, structure sets are read first
(they give the needed range exactly), then protocol events, then dose reports, so a report is
assessed against its study's planning. Folders are searched for *.json and *.dcm files.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optimiser.assessment import Assessment
    from optimiser.inputs import PipelineInput
    from optimiser.ssde import ImageSize

log = logging.getLogger("lowdose.assess")

HELP = "assess protocol events (.json), dose reports, structure sets and CT images (.dcm)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="files, or folders to search for *.json, *.dcm"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON array of assessments, one per acquisition that is not a localizer",
    )
    parser.add_argument(
        "--site-library",
        metavar="DIR",
        type=Path,
        help="folder of department override files (<site>.toml) for the protocol library",
    )
    parser.add_argument(
        "--history",
        metavar="FILE",
        type=Path,
        help="the department's assessed history (JSON lines of assessments): its own median "
        "and 75th percentile per site and scanner model join the cited levels (ICRP 135)",
    )
    parser.add_argument(
        "--pacs",
        action="store_true",
        help="ask the department PACS (LOWDOSE_DICOM_PACS__AE_TITLE/__HOST/__PORT, C-FIND) how "
        "each assessed planning study's CT series are labelled: an unlabelled series is an "
        "unlabelled_planning_scan warning with its description (docs/dicom.md)",
    )
    parser.add_argument(
        "--strictness",
        choices=["ignore", "warn", "raise"],
        default="warn",
        help="malformed items: drop silently, drop with a warning (default), or fail",
    )
    from lowdose.commands.storeopt import add_store_argument

    add_store_argument(parser, optional_value=True)


def _files(paths: list[str]) -> Iterator[tuple[Path, bool]]:
    """(file, named on the command line) pairs; folders are searched recursively."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.is_file() and p.suffix.lower() in (".json", ".dcm"):
                    yield p, False
        else:
            yield path, True


def _is_event(doc: object) -> bool:
    return isinstance(doc, dict) and str(doc.get("schema", "")).startswith("lowdose.protocol/")


def read_inputs(
    paths: list[str], strictness_name: str = "warn", images: list[ImageSize] | None = None
) -> list[PipelineInput]:
    """Read every file and order the items per study: structure sets, events, then reports.

    CT images are measured (TG-220 D_w) into ``images`` when a list is given.
    """
    from optimiser.dicom import read_dicom
    from optimiser.errors import DicomError, InputError
    from optimiser.events import ProtocolEvent, parse_protocol_event
    from optimiser.inputs import study_uid_of
    from optimiser.records import StructureSet
    from optimiser.ssde import image_water_equivalent_diameter, is_ct_image
    from optimiser.strictness import Strictness

    strictness = Strictness(strictness_name)
    items: list[PipelineInput] = []
    for path, named in _files(paths):
        if not path.exists():
            raise InputError(
                "no such file or folder; give protocol event .json or DICOM .dcm files",
                source=str(path),
            )
        if path.suffix.lower() == ".json":
            text = path.read_text(encoding="utf-8")
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"not JSON ({exc.msg} at line {exc.lineno}); a protocol event file holds "
                    "one lowdose.protocol/1 object or an array of them",
                    source=str(path),
                ) from exc
            docs = data if isinstance(data, list) else [data]
            if not named and not any(_is_event(d) for d in docs):
                # Folders hold other JSON too (expected values, settings): only events count.
                log.info("%s: not a protocol event file, skipped", path)
                continue
            for i, doc in enumerate(docs):
                where = f"{path}[{i}]" if isinstance(data, list) else str(path)
                items.append(parse_protocol_event(json.dumps(doc), source=where))
        else:
            try:
                items.append(read_dicom(path, strictness=strictness))
            except DicomError:
                if images is None or not is_ct_image(path):
                    raise
                images.append(image_water_equivalent_diameter(path))

    def rank(item: PipelineInput) -> int:
        if isinstance(item, StructureSet):
            return 0
        return 1 if isinstance(item, ProtocolEvent) else 2

    first_seen: dict[str | None, int] = {}
    for i, item in enumerate(items):
        first_seen.setdefault(study_uid_of(item), i)
    order = sorted(
        range(len(items)), key=lambda i: (first_seen[study_uid_of(items[i])], rank(items[i]), i)
    )
    return [items[i] for i in order]


def _table(assessments: list[Assessment]) -> None:
    from rich.console import Console
    from rich.table import Table

    # Piped output gets a fixed wide layout rather than rich's 80-column default.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 180)
    table = Table(title="lowdose assessments", show_lines=False)
    for col in ("study", "acq", "site", "needed mm", "irradiated mm", "DLP", "excess DLP",
                "E mSv", "excess E", "findings", "saving DLP"):  # fmt: skip
        table.add_column(col, overflow="fold")
    for a in assessments:
        acq = str(a.acquisition_index) if a.acquisition_index is not None else (
            (a.irradiation_event_uid or "")[-12:]
        )  # fmt: skip
        n = a.needed_z_mm
        x = a.irradiated_z_mm
        table.add_row(
            a.study_instance_uid[-16:],
            acq,
            a.site,
            f"{n[0]:.0f}..{n[1]:.0f}" if n else "-",
            f"{x[0]:.0f}..{x[1]:.0f}" if x else "-",
            f"{a.dlp_mgy_cm:.1f}",
            f"{'>=' if a.excess_is_lower_bound else ''}{a.excess_dlp_mgy_cm:.1f} "
            f"({a.excess_fraction:.0%})",
            f"{a.effective_dose_msv:.2f}",
            f"{a.excess_effective_dose_msv:.2f}",
            ", ".join(f"{f.code}:{f.severity}" for f in a.findings) or "-",
            f"{a.proposal.dlp_saving_mgy_cm:.1f}" if a.proposal else "-",
        )
    console.print(table)


def _with_pacs_labels(assessments: list[Assessment]) -> list[Assessment]:
    """The assessments with the PACS labelling check of every planning study (a study assessed
    against a named site, not the generic one) applied (ingest.pacs.apply_labelling)."""
    from ingest.pacs import apply_labelling, check_study
    from ingest.settings import load as load_dicom_settings
    from optimiser.errors import ConfigurationError
    from protocols.site_ids import GENERIC_SITE

    dicom = load_dicom_settings()
    if dicom.pacs is None:
        raise ConfigurationError(
            "--pacs needs the department PACS: set LOWDOSE_DICOM_PACS__AE_TITLE, "
            "LOWDOSE_DICOM_PACS__HOST and LOWDOSE_DICOM_PACS__PORT (docs/dicom.md)"
        )
    studies = dict.fromkeys(a.study_instance_uid for a in assessments if a.site != GENERIC_SITE)
    found = {
        uid: check_study(dicom.pacs, uid, calling_ae=dicom.ae_title, labels=dicom.planning_labels)
        for uid in studies
    }
    return apply_labelling(assessments, found)


def run(args: argparse.Namespace) -> int:
    from lowdose.commands.storeopt import check_store_value
    from optimiser.levels import library_with_history
    from optimiser.pipeline import Pipeline
    from optimiser.strictness import Strictness
    from protocols.library import load_library

    check_store_value(args.store)
    images: list[ImageSize] = []
    items = read_inputs(args.paths, args.strictness, images)
    library = library_with_history(load_library(args.site_library), args.history)
    pipeline = Pipeline(library, strictness=Strictness(args.strictness))
    pipeline.add_image_sizes(images)
    assessments = pipeline.process(items)
    if args.pacs:
        assessments = _with_pacs_labels(assessments)
    if args.json:
        print(
            json.dumps(
                [a.model_dump(mode="json", by_alias=True) for a in assessments],
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        _table(assessments)
    if args.store is not None:
        from store import open_store
        from store.assessments import write_assessments

        db = open_store(args.store or None)
        try:
            written = write_assessments(db, assessments)
        finally:
            db.close()
        print(f"stored {written} assessments in {db.url}", file=sys.stderr)
    return 0
