"""``python -m streams.schemas [FOLDER]``: regenerate the published JSON schemas."""

from __future__ import annotations

import sys
from pathlib import Path

from streams.schemas import HERE, write

for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
    print(path)
