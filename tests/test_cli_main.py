"""The ``lowdose`` dispatcher: every subcommand is installed, errors are one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lowdose import main as cli


def test_every_subcommand_is_a_registered_module() -> None:
    for name, module in cli.COMMANDS.items():
        assert callable(module.run) and callable(module.configure) and module.HELP, name
    assert set(cli.COMMANDS) >= {"demo", "simulate", "inspect", "assess", "protocols"}
    assert set(cli.COMMANDS) >= {"run", "publish", "broker"}


def test_help_does_not_import_the_kafka_client() -> None:
    code = (
        "import sys; from lowdose import main; main.build_parser(); print('kafka' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_subcommand_is_a_one_line_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lowdose.main", "frobnicate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("lowdose: error:")
    assert "Traceback" not in proc.stderr
