"""Suite-wide: tests marked ``realdata`` need ../shared (tests/paths.py says where it is looked
for). Collection never needs it. Without it those tests skip loudly, naming the folder, except
under CI, where shared/ is always laid beside the clone: there they run and fail."""

from __future__ import annotations

import sys

import pytest

from tests.paths import SHARED
from tests.realparts import in_ci


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SHARED.is_dir() or in_ci():
        return
    marked = [item for item in items if item.get_closest_marker("realdata") is not None]
    message = f"shared test data not found at {SHARED} (set LOWDOSE_SHARED_DIR)"
    if marked:
        print(f"\n*** SKIPPING {len(marked)} realdata tests: {message} ***", file=sys.stderr)
    for item in marked:
        item.add_marker(pytest.mark.skip(reason=message))
