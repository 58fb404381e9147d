"""Real parts the tests drive (Debian packages listed in .ci/debian-packages.txt).

Under CI (``CI=true``) a missing part fails the test that needs it: `.ci/run` installs the
packages, so a miss there is a broken set-up, not a reason to pass quietly. Elsewhere the test
skips loudly, naming the package to install.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from tests.paths import SHARED


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(executable: str, package: str) -> str:
    """The path of ``executable``; fails under CI and skips loudly elsewhere when missing."""
    path = shutil.which(executable)
    if path is not None:
        return path
    message = f"{executable} not found (Debian: apt-get install {package})"
    if in_ci():
        pytest.fail(f"real part missing under CI: {message}", pytrace=False)
    print(f"\n*** SKIPPING: {message} ***", file=sys.stderr)
    pytest.skip(message)


def skip_realdata_without_shared(items: list[pytest.Item]) -> None:
    """Tests marked ``realdata`` need ../shared (tests/paths.py says where it is looked for).
    Collection never needs it. Without it those tests skip loudly, naming the folder, except
    under CI, where shared/ is always laid beside the clone: there they run and fail."""
    if SHARED.is_dir() or in_ci():
        return
    # Both tests/ and benchmarks/ conftests call this with every item of the session: mark once.
    marked = [
        item
        for item in items
        if item.get_closest_marker("realdata") is not None
        and item.get_closest_marker("skip") is None
    ]
    message = f"shared test data not found at {SHARED} (set LOWDOSE_SHARED_DIR)"
    if marked:
        print(f"\n*** SKIPPING {len(marked)} realdata tests: {message} ***", file=sys.stderr)
    for item in marked:
        item.add_marker(pytest.mark.skip(reason=message))
