"""``lowdose simulate``: write a simulated CT-sim department feed to a folder."""

from __future__ import annotations

import argparse

from optimiser.errors import ConfigurationError
from optimiser.finding_codes import FINDING_CODES
from protocols.site_ids import PLANNING_SITES

HELP = "write a simulated CT-sim feed: protocol events (JSON) and dose reports (DICOM RDSR)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument(
        "--studies", type=int, default=40, metavar="N", help="number of studies (default: 40)"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: 0)")
    parser.add_argument(
        "--sites",
        nargs="+",
        metavar="SITE",
        help=f"sites to draw from (default: all of {', '.join(PLANNING_SITES)})",
    )
    parser.add_argument(
        "--problem-rate",
        action="append",
        default=[],
        metavar="CODE=SHARE",
        help="share of studies carrying a problem, e.g. excess_coverage=0.2 (repeatable); "
        f"'all=0' makes every study clean. Codes: {', '.join(FINDING_CODES)}",
    )


def parse_rates(items: list[str]) -> dict[str, float]:
    """``["excess_coverage=0.2", ...]`` as a mapping; ``all=X`` sets every code."""
    from simulator.rates import ProblemRates

    rates: dict[str, float] = {}
    for item in items:
        code, sep, value = item.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = float("nan")
        if not sep or not code or share != share:
            raise ConfigurationError(
                f"--problem-rate {item!r}: expected CODE=SHARE with SHARE a number between 0 and "
                "1, e.g. excess_coverage=0.2"
            )
        if code == "all":
            rates.update(dict.fromkeys(ProblemRates.codes(), share))
        else:
            rates[code.strip()] = share
    return rates


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from simulator import ProblemRates, simulate_feed, write_feed

    if args.studies < 0:
        raise ConfigurationError(
            f"--studies {args.studies}: the number of studies must be 0 or more; e.g. --studies 40"
        )
    rates = ProblemRates.from_mapping(parse_rates(args.problem_rate))
    studies = simulate_feed(args.studies, seed=args.seed, problem_rates=rates, sites=args.sites)
    manifest = write_feed(Path(args.out), studies, seed=args.seed, problem_rates=rates)
    injected = sum(1 for s in studies if s.injected)
    Console(stderr=False).print(
        f"wrote {len(studies)} studies ({injected} with injected problems) to {args.out}; "
        f"manifest {manifest}",
        highlight=False,
        soft_wrap=True,
    )
    return 0
