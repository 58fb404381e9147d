"""What the wheel ships imports without the development extras (issue 17): test support lives
under tests/, never in a shipped package.

A subprocess blocks every dev-only distribution of ``pyproject.toml``'s ``dev`` extra (pytest,
hypothesis, playwright, ...) and imports every module of the shipped packages.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib

from tests.paths import REPO

# Import names of the dev extra's distributions (pyproject.toml [project.optional-dependencies]).
DEV_ONLY = (
    "pytest",
    "_pytest",
    "pytest_benchmark",
    "pytest_timeout",
    "hypothesis",
    "mypy",
    "ruff",
    "rdsr_navigator",
    "playwright",
    "httpx",
    "importlinter",
)


def _shipped() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(p.rstrip("*") for p in patterns)


def test_shipped_packages_are_the_top_level_packages_less_tests() -> None:
    found = sorted(
        p.parent.name for p in REPO.glob("*/__init__.py") if p.parent.name != "benchmarks"
    )
    assert _shipped() == found
    assert "tests" not in _shipped()


def test_every_shipped_module_imports_without_the_dev_extras() -> None:
    code = f"""
import importlib, importlib.abc, pkgutil, sys
BLOCKED = {DEV_ONLY!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"dev-only module {{name}} imported by a shipped module")
        return None
for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]
sys.meta_path.insert(0, Block())
n = 0
for top in {_shipped()!r}:
    pkg = importlib.import_module(top)
    n += 1
    for m in pkgutil.walk_packages(pkg.__path__, top + "."):
        # Alembic's env.py runs only inside a migration; __main__ modules run a command.
        if m.name.startswith("store.migrations.") or m.name.endswith(".__main__"):
            continue
        importlib.import_module(m.name)
        n += 1
print(n)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=240
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.strip()) > 90  # every module of the nine packages was imported
