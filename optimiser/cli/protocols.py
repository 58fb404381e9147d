"""``lowdose protocols [--site SITE] [--site-library DIR] [--json]``: the planning protocol
library, every value with the file that set it and its source."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "list the planning protocol library and where each value comes from"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", help="show one site only (default: all)")
    parser.add_argument(
        "--site-library",
        metavar="DIR",
        type=Path,
        help="folder of department override files (<site>.toml) applied over the built-in ones",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    from protocols.library import load_library

    library = load_library(args.site_library)
    sites = [args.site] if args.site else library.site_ids
    for site in sites:
        library.get(site)  # raises with the list of known sites
    if args.json:
        doc = {
            "k_factors": library.k_factors.model_dump(),
            "sites": {
                site: [
                    {"key": v.key, "value": v.value, "origin": v.origin, "source": v.source}
                    for v in library.provenance[site]
                ]
                for site in sites
            },
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
    return 0
