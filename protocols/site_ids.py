"""The built-in treatment sites of the protocol library, by id: the one list of them.

Each id names a file ``sites/<id>.toml`` (a test checks that the two agree). This module imports
nothing, so the command line can name the sites in its help without loading the library. The
order is the display order (reports, the simulator's draws) with the ``generic`` fallback last.
"""

from __future__ import annotations

GENERIC_SITE = "generic"

# The planning sites, in display order; the generic fallback is not a planning site.
PLANNING_SITES: tuple[str, ...] = (
    "brain",
    "head_neck",
    "breast",
    "lung_3d",
    "lung_4dct",
    "prostate",
    "prostate_nodes",
)

BUILTIN_SITES: tuple[str, ...] = (*PLANNING_SITES, GENERIC_SITE)
