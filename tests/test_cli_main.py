"""The ``lowdose`` dispatcher: every subcommand is installed, errors are one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from optimiser.cli import main as cli


def test_every_documented_subcommand_is_installed() -> None:
    missing = [m for m in cli.COMMANDS.values() if not cli._available(m)]
    assert missing == []


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_subcommand_is_a_one_line_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "optimiser.cli.main", "frobnicate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("lowdose: error:")
    assert "Traceback" not in proc.stderr
