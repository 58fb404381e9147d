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
