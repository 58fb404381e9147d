"""``lowdose validate``: the labelled clinical validation set through the pipeline.

Prints, per finding code, how many of the findings the cases expect were detected, and the false
warning/alert rate on the clean cases (correctly planned scans), with each failing case; exits
1 unless detection is 100% and no case raised a warning or alert it does not expect. The cases
and the comparison are :mod:`lowdose.validation`'s.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

HELP = "run the labelled clinical validation set: detection per finding and false alert rate"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cases",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of lowdose.clinical-case/1 files (default: the repository's "
        "tests/clinical/cases)",
    )
    parser.add_argument(
        "--shared",
        type=Path,
        default=None,
        metavar="DIR",
        help="shared data folder holding data/rdsr (default: $LOWDOSE_SHARED_DIR, else "
        "shared/ beside the repository)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")


def run(args: argparse.Namespace) -> int:
    from lowdose.validation import (
        DEFAULT_CASES_DIR,
        load_cases,
        run_cases,
        summary_lines,
    )

    cases = load_cases(args.cases if args.cases is not None else DEFAULT_CASES_DIR)
    # The real reports' malformed items are known and counted in their cases; keep the
    # parser's per-item warnings out of the figures unless asked for.
    input_log = logging.getLogger("lowdose.input")
    if input_log.getEffectiveLevel() >= logging.WARNING:
        input_log.setLevel(logging.ERROR)
    summary = run_cases(cases, args.shared)
    if args.json:
        print(json.dumps(summary.as_dict(), indent=1))
    else:
        print("\n".join(summary_lines(summary)))
    return 0 if summary.passed else 1
