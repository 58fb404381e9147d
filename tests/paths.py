"""Where the real test data lives: ../shared beside the repository (also in CI).

``LOWDOSE_SHARED_DIR`` points elsewhere, e.g. for a clone that does not sit beside shared/.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LOWDOSE_SHARED_DIR") or REPO.parent / "shared")
