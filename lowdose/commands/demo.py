"""``lowdose demo``: a simulated CT-sim day through the service's pipeline, in-process, no broker.

The same :class:`optimiser.pipeline.Pipeline` the Kafka consumer runs gets the day in batches
(protocol events, then the dose reports parsed from the simulated RDSR bytes); the flagged
acquisitions are printed as a table with a summary and written as a self-contained HTML report.
The closing line compares the findings with what the simulator injected: the share of injected
problems detected at warning or alert, and the share of clean studies (correctly planned) that
got a warning or an alert anyway. Both are computed from the day's assessments, never assumed;
the command exits 0 whatever they are (``lowdose validate`` is the gate).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from optimiser.errors import ConfigurationError

if TYPE_CHECKING:
    from rich.table import Table

    from optimiser.assessment import Assessment
    from report.model import Report
    from simulator import SimulatedStudy

HELP = "simulate a CT-sim department day, assess it in-process and write an HTML report"

# A day of 40 studies whose injected problems show a finding of every kind (checked by
# tests/test_demo.py): the demo should show everything the optimiser can say.
DEFAULT_SEED = 1
DEFAULT_STUDIES = 40
DEFAULT_OUT = Path("demo-out")
REPORT_NAME = "lowdose-report.html"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"output folder for the report and the simulated feed (default: ./{DEFAULT_OUT})",
    )
    parser.add_argument(
        "--studies",
        type=int,
        default=DEFAULT_STUDIES,
        metavar="N",
        help=f"studies in the day (default: {DEFAULT_STUDIES})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        metavar="S",
        help=f"simulation seed (default: {DEFAULT_SEED}, a day with findings of every kind)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        metavar="N",
        help="studies per pipeline batch (default: 8)",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help="the review desk's store to fill (default: DIR/lowdose.db, a SQLite file in --out)",
    )


def _check_out(out: Path) -> None:
    """Fail before any work when the output folder cannot be used."""
    if out.exists() and not out.is_dir():
        raise ConfigurationError(
            f"--out {str(out)!r}: exists and is not a directory; give a folder path"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".lowdose-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigurationError(
            f"--out {str(out)!r}: cannot write there ({exc.strerror or exc}); "
            "give a writable folder"
        ) from exc


def assess_day(
    studies: list[SimulatedStudy], *, batch_size: int = 8, show_progress: bool = True
) -> tuple[list[Assessment], dict[str, float]]:
    """Run the studies through the pipeline in batches; returns the assessments and the site
    reference CTDIvol values the pipeline's library holds."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from optimiser.dicom import read_dose_report
    from optimiser.pipeline import Pipeline

    pipeline = Pipeline()
    assessments: list[Assessment] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        transient=True,
        disable=not show_progress,
    ) as progress:
        warm = progress.add_task("compiling kernels", total=1)
        pipeline.warm_up()
        progress.advance(warm)
        task = progress.add_task("assessing studies", total=len(studies))
        for start in range(0, len(studies), batch_size):
            chunk = studies[start : start + batch_size]
            assessments += pipeline.process([s.protocol_event for s in chunk])
            reports = [
                read_dose_report(s.rdsr_bytes, source=f"{s.protocol_event.event_id}/rdsr.dcm")
                for s in chunk
            ]
            assessments += pipeline.process(reports)
            progress.advance(task, len(chunk))
    references = {}
    for site in {s.site for s in studies}:
        ref = pipeline.library.get(site).reference_ctdivol_mgy
        if ref is not None:
            references[site] = ref.value
    return assessments, references


# Columns kept when the terminal is too narrow for the whole table (the HTML report has it all).
COMPACT_COLUMNS = (
    "study",
    "site",
    "severity",
    "finding",
    "excess DLP (mGy.cm)",
    "saving DLP (mGy.cm)",
)
FULL_TABLE_WIDTH = 170


def findings_table(report: Report, *, compact: bool = False) -> Table:
    """The console table: the same cells as the HTML report's table (a subset when compact)."""
    from rich.table import Table

    from report.model import COLUMNS, FINDING_COLUMN, NUMERIC_COLUMNS, row_cells

    keep = (
        tuple(COLUMNS.index(c) for c in COMPACT_COLUMNS) if compact else tuple(range(len(COLUMNS)))
    )
    title = "Acquisitions that need review (warning or alert)" + (
        " (key columns; all in the HTML report)" if compact else ""
    )
    table = Table(title=title, show_lines=False, expand=False)
    for i in keep:
        table.add_column(
            COLUMNS[i],
            justify="right" if i in NUMERIC_COLUMNS else "left",
            overflow="fold",
            # identifiers and codes stay whole; numbers' headers and the change text wrap
            no_wrap=i in (0, 1, 3, FINDING_COLUMN),
            min_width=len(COLUMNS[i]) if i in (0, 1) else None,
            max_width=48 if COLUMNS[i] == "proposed change" else None,
        )
    styles = {"alert": "bold red", "warning": "yellow", "info": ""}
    for row in report.flagged_rows:
        cells = row_cells(row)
        if compact:  # one finding per line keeps the column narrow
            cells[FINDING_COLUMN] = cells[FINDING_COLUMN].replace(", ", "\n")
        table.add_row(*(cells[i] for i in keep), style=styles.get(row.severity or "", ""))
    return table


def summary_table(report: Report) -> Table:
    from rich.table import Table

    from report.model import summary_cells

    table = Table(title="Summary", show_header=False)
    table.add_column("item")
    table.add_column("value", justify="right")
    for label, value in summary_cells(report.summary):
        table.add_row(label, value)
    return table


def finding_counts_table(report: Report) -> Table:
    from rich.table import Table

    table = Table(title="Acquisitions per finding")
    table.add_column("finding")
    table.add_column("acquisitions", justify="right")
    for code, n in report.summary.findings_by_code.items():
        table.add_row(code, str(n))
    return table


@dataclass(frozen=True, slots=True)
class SimulatorCheck:
    """What the optimiser said about the simulated day, against what the simulator injected.

    A problem counts as detected when an acquisition of its study carries a finding of that code
    at warning or alert (what reaches the physicist); a clean study counts as falsely flagged when
    any of its acquisitions carries a warning or an alert.
    """

    injected: int
    detected: int
    clean: int
    clean_flagged: int
    missed: tuple[str, ...]  # codes of the injected problems not detected, one per miss

    def line(self) -> str:
        def share(a: int, b: int) -> str:
            return f"{a / b:.0%}" if b else "-"

        return (
            f"simulator check: {self.detected} of {self.injected} injected problems detected "
            f"({share(self.detected, self.injected)}); {self.clean_flagged} of {self.clean} clean "
            f"studies with a false warning or alert ({share(self.clean_flagged, self.clean)})"
        )


def simulator_check(assessments: list[Assessment], studies: list[SimulatedStudy]) -> SimulatorCheck:
    """Compare the day's assessments with the problems the simulator injected (computed, per
    study, from the warnings and alerts of its acquisitions)."""
    flagged: dict[str, set[str]] = {}
    for a in assessments:
        codes = {f.code for f in a.findings if f.severity != "info"}
        flagged.setdefault(a.study_instance_uid, set()).update(codes)
    injected = detected = clean = clean_flagged = 0
    missed: list[str] = []
    for s in studies:
        found = flagged.get(s.study_instance_uid, set())
        if not s.injected:
            clean += 1
            clean_flagged += bool(found)
            continue
        injected += len(s.injected)
        detected += len(s.injected & found)
        missed.extend(sorted(s.injected - found))
    return SimulatorCheck(injected, detected, clean, clean_flagged, tuple(missed))


def _store_day(assessments: list[Assessment], url: str) -> None:
    """Write the day's assessments to the review desk's store (``lowdose review`` opens it)."""
    from store import open_store
    from store.assessments import write_assessments

    db = open_store(url)
    try:
        write_assessments(db, assessments)
    finally:
        db.close()


def run(args: argparse.Namespace) -> int:
    if args.studies < 1:
        raise ConfigurationError(
            f"--studies {args.studies}: a demo day needs at least 1 study; e.g. --studies 40"
        )
    if args.batch_size < 1:
        raise ConfigurationError(f"--batch-size {args.batch_size}: must be 1 or more; e.g. 8")
    out: Path = args.out
    _check_out(out)

    from datetime import datetime

    from rich.console import Console

    from optimiser.finding_codes import FINDING_CODES
    from report import build_report, write_html
    from simulator import ProblemRates, simulate_feed, write_feed

    console = Console()
    if not console.is_terminal:
        # Piped or captured output: wide enough that the table rows stay on one line each.
        console = Console(width=320)
    rates = ProblemRates()
    studies = simulate_feed(args.studies, seed=args.seed, problem_rates=rates)
    write_feed(out / "feed", studies, seed=args.seed, problem_rates=rates)
    console.print(
        f"simulated {len(studies)} planning studies (seed {args.seed}); feed in {out / 'feed'}",
        highlight=False,
        soft_wrap=True,
    )
    assessments, references = assess_day(studies, batch_size=args.batch_size)
    event_index = {d.irradiation_event_uid: d.index for s in studies for d in s.delivered}
    report = build_report(
        assessments,
        title=f"lowdose: simulated CT-sim day, {len(studies)} studies (seed {args.seed})",
        event_index=event_index,
        reference_ctdivol_mgy=references,
        notes=[
            f"Simulated feed: seed {args.seed}, problem rates "
            + ", ".join(f"{k} {v:g}" for k, v in rates.as_dict().items())
            + f"; written to {out / 'feed'}.",
        ],
    )
    console.print(findings_table(report, compact=console.width < FULL_TABLE_WIDTH))
    console.print(summary_table(report))
    console.print(finding_counts_table(report))
    missing = [c for c in FINDING_CODES if not report.summary.findings_by_code.get(c)]
    if missing:
        console.print(f"finding kinds not seen in this day: {', '.join(missing)}", highlight=False)
    check = simulator_check(assessments, studies)
    console.print(check.line(), highlight=False, soft_wrap=True)
    if check.missed:
        counts = {c: check.missed.count(c) for c in dict.fromkeys(check.missed)}
        console.print(
            "not detected at warning or alert: "
            + ", ".join(f"{c} x{n}" for c, n in counts.items()),
            highlight=False,
            soft_wrap=True,
        )
    store = args.store or str(out / "lowdose.db")
    _store_day(assessments, store)
    console.print(f"review desk: lowdose review --store {store}", highlight=False, soft_wrap=True)
    path = write_html(report, out / REPORT_NAME, generated_at=datetime.now())
    console.print(f"report: {path.resolve()}", highlight=False, soft_wrap=True)
    return 0
