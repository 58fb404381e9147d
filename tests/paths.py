"""Where the real test data lives: ../shared beside the repository (also in CI).

``LOWDOSE_SHARED_DIR`` points elsewhere, e.g. for a clone that does not sit beside shared/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LOWDOSE_SHARED_DIR") or REPO.parent / "shared")
RDSR_DIR = SHARED / "data" / "rdsr"


def rdsr_expected() -> list[dict[str, Any]]:
    """The shared reports' expected.json (empty without ../shared, so that collection works;
    tests/conftest.py then skips the ``realdata`` tests, or lets them fail under CI)."""
    path = RDSR_DIR / "expected.json"
    if not path.is_file():
        return []
    data: list[dict[str, Any]] = json.loads(path.read_text())
    return data
