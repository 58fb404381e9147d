"""Folders where the browser tests kept their screenshots (the terminal summary names them)."""

from __future__ import annotations

from pathlib import Path

SCREENSHOT_DIRS: list[Path] = []
