"""Entry point of the ``lowdose`` command.

Each subcommand is a module exposing ``HELP`` (one line), ``configure(parser)`` and
``run(args) -> int``, registered below by importing it (a missing or renamed module fails at
import, not at run time). Modules import their heavy dependencies (numba, kafka) inside ``run``
so that ``lowdose --help`` and argument errors answer at once. This is the front door: it may
import every layer, and nothing imports it (docs/architecture.md); the Kafka client itself is
imported only inside the stream commands' ``run``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, Protocol, cast

from lowdose.commands import (
    assess,
    broker,
    demo,
    dicom_listen,
    importer,
    inspect,
    protocols,
    publish,
    review,
    simulate,
    storesink,
    users,
    validate,
)
from lowdose.commands import run as run_service
from optimiser import __version__
from optimiser.errors import LowdoseError


class _Command(Protocol):
    HELP: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``lowdose: error: ...`` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


COMMANDS: dict[str, _Command] = {
    "demo": cast(_Command, demo),
    "simulate": cast(_Command, simulate),
    "inspect": cast(_Command, inspect),
    "assess": cast(_Command, assess),
    "protocols": cast(_Command, protocols),
    "validate": cast(_Command, validate),
    "run": cast(_Command, run_service),
    "publish": cast(_Command, publish),
    "broker": cast(_Command, broker),
    "dicom-listen": cast(_Command, dicom_listen),
    "import": cast(_Command, importer),
    "users": cast(_Command, users),
    "review": cast(_Command, review),
    "store": cast(_Command, storesink),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lowdose",
        description="Event-driven low-dose protocol optimiser for radiotherapy planning CT.",
    )
    parser.add_argument("--version", action="version", version=f"lowdose {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("LOWDOSE_LOG_LEVEL", "WARNING"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level on stderr (default: WARNING, or $LOWDOSE_LOG_LEVEL)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an unexpected error"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module in COMMANDS.items():
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args._run(args))
    except LowdoseError as exc:
        print(f"lowdose {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"lowdose {args.command}: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(
                ": "
            ),
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"lowdose {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"lowdose {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(rerun with --debug for the traceback and please report it)",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
