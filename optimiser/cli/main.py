"""Entry point of the ``lowdose`` command.

Each subcommand is a module exposing ``HELP`` (one line), ``configure(parser)`` and
``run(args) -> int``. Modules import their heavy dependencies (numba, kafka) inside ``run`` so that
``lowdose --help`` and argument errors answer at once. The Kafka commands live in :mod:`streams`
and are imported only when invoked: the optimiser core never imports the broker client.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, Protocol, cast

from optimiser import __version__
from optimiser.errors import LowdoseError

COMMANDS: dict[str, str] = {
    "demo": "optimiser.cli.demo",
    "simulate": "optimiser.cli.simulate",
    "inspect": "optimiser.cli.inspect",
    "assess": "optimiser.cli.assess",
    "protocols": "optimiser.cli.protocols",
    "run": "streams.cli.run",
    "publish": "streams.cli.publish",
    "broker": "streams.cli.broker",
    "import": "optimiser.cli.importer",
    "users": "optimiser.cli.users",
    "review": "optimiser.cli.review",
    "store": "optimiser.cli.storesink",
}


class _Command(Protocol):
    HELP: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``lowdose: error: ...`` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _available(module_name: str) -> bool:
    """False only for a subcommand module that is not in this installation at all."""
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:
        return False


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
    for name, module_name in COMMANDS.items():
        if not _available(module_name):
            continue
        module = cast(_Command, importlib.import_module(module_name))
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
