"""The ``--store`` option shared by the commands that write to or read the review desk's store."""

from __future__ import annotations

import argparse
from pathlib import Path

from optimiser.errors import ConfigurationError

STORE_HELP = (
    "the review desk's store: a SQLAlchemy URL (postgresql+psycopg://USER@HOST/DB) or a SQLite "
    "file (default $LOWDOSE_STORE_URL, else ./lowdose.db)"
)


def add_store_argument(parser: argparse.ArgumentParser, *, optional_value: bool = False) -> None:
    """``--store URL``; with ``optional_value`` a bare ``--store`` means the default store."""
    if optional_value:
        parser.add_argument(
            "--store",
            nargs="?",
            const="",
            default=None,
            metavar="URL",
            help="also write the assessments to " + STORE_HELP + "; write --store=URL",
        )
    else:
        parser.add_argument("--store", default=None, metavar="URL", help=STORE_HELP)


def check_store_value(value: str | None) -> None:
    """Refuse an input file swallowed by a bare ``--store`` (``--store a.dcm b.dcm``)."""
    if value and "://" not in value and Path(value).suffix.lower() in (".dcm", ".json"):
        raise ConfigurationError(
            f"--store {value!r}: looks like an input file, not a store; write --store=URL or "
            "put --store after the input paths"
        )
