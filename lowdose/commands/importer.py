"""``lowdose import DIR... [--store URL]``: bulk-load an archive of CT dose reports into the store.

Folders are searched recursively for DICOM files (``*.dcm``, and files without a suffix, as
archives often name them). Each file is read on its own: one that cannot be read is reported
with its reason and counted, and the import goes on. Reports are assessed in batches by the
same :class:`optimiser.pipeline.Pipeline` as ``lowdose assess`` and written in one transaction
per batch (idempotent by assessment id: importing an archive twice leaves one row each).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lowdose.commands.storeopt import add_store_argument
from optimiser.errors import ConfigurationError

if TYPE_CHECKING:
    from optimiser.inputs import PipelineInput
    from optimiser.pipeline import Pipeline
    from store import Store

HELP = "bulk-load an archive of CT dose reports (folders searched recursively) into the store"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="DIR", help="folders (or files) to import")
    add_store_argument(parser)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=256,
        metavar="N",
        help="reports per pipeline batch and per transaction (default: 256)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (for logs and scripts)"
    )


def dicom_files(paths: list[str]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.is_file() and (p.suffix.lower() == ".dcm" or p.suffix == ""):
                    yield p
        elif path.is_file():
            yield path
        else:
            raise ConfigurationError(f"{name!r}: no such file or folder; give an archive folder")


@dataclass
class ImportResult:
    files: int = 0
    reports: int = 0
    stored: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


def import_files(
    files: list[Path],
    db: Store,
    *,
    batch_size: int = 256,
    show_progress: bool = True,
    pipeline: Pipeline | None = None,
) -> ImportResult:
    """Read, assess and store ``files``; per-file errors are collected, never raised."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from optimiser.dicom import read_dicom
    from optimiser.errors import LowdoseError
    from optimiser.pipeline import Pipeline
    from store.assessments import write_assessments

    pipe = pipeline or Pipeline()
    result = ImportResult(files=len(files))
    console = Console(stderr=True, highlight=False)
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[errors]} errors"),
        TimeRemainingColumn(),
        console=console,
        disable=not show_progress,
    ) as progress:
        task = progress.add_task("import", total=len(files), errors=0)

        def fail(source: str, reason: str) -> None:
            result.errors.append((source, reason))
            progress.console.print(f"[red]error[/red] {source}: {reason}", soft_wrap=True)
            progress.update(task, errors=len(result.errors))

        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            items: list[tuple[Path, PipelineInput]] = []
            for path in chunk:
                try:
                    items.append((path, read_dicom(path)))
                except (LowdoseError, OSError, ValueError) as exc:
                    fail(str(path), str(exc))
            result.reports += len(items)
            try:
                assessments = pipe.process([item for _, item in items])
            except LowdoseError:
                # One bad item fails the batch call: assess one by one to name it.
                assessments = []
                for path, item in items:
                    try:
                        assessments += pipe.process([item])
                    except LowdoseError as exc:
                        fail(str(path), str(exc))
            result.stored += write_assessments(db, assessments)
            progress.advance(task, len(chunk))
    return result


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ConfigurationError(f"--batch-size {args.batch_size}: must be 1 or more; e.g. 256")
    from store import open_store

    files = list(dicom_files(args.paths))
    db = open_store(args.store)
    try:
        result = import_files(
            files, db, batch_size=args.batch_size, show_progress=not args.no_progress
        )
    finally:
        db.close()
    print(
        f"imported {result.files} files into {db.url}: {result.reports} reports read, "
        f"{result.stored} assessments stored, {len(result.errors)} files with errors"
    )
    if result.errors:
        print(
            f"lowdose import: {len(result.errors)} of {result.files} files could not be imported "
            "(each is named above with its reason)",
            file=sys.stderr,
        )
        return 1
    return 0
