"""``lowdose simulate``: writes the feed; bad invocations are one-line errors, never tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lowdose.commands.simulate import parse_rates
from lowdose.main import main
from optimiser.errors import ConfigurationError
from optimiser.events import parse_protocol_event


def _lowdose(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lowdose.main", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_simulate_writes_a_feed(tmp_path: Path) -> None:
    out = tmp_path / "feed"
    argv = ["simulate", "--out", str(out), "--studies", "4", "--seed", "9"]
    assert main([*argv, "--sites", "breast", "lung_4dct", "--problem-rate", "all=0"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 9
    assert set(manifest["problem_rates"].values()) == {0.0}
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(folders) == 4
    for folder, entry in zip(folders, manifest["studies"], strict=True):
        assert entry["site"] in ("breast", "lung_4dct") and entry["injected"] == []
        event = parse_protocol_event((folder / "protocol.json").read_bytes())
        assert event.study.study_instance_uid == entry["study_instance_uid"]
        assert (folder / "rdsr.dcm").read_bytes()[128:132] == b"DICM"


def test_same_seed_same_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert (
            main(["simulate", "--out", str(tmp_path / name), "--studies", "2", "--seed", "4"]) == 0
        )
    for path in sorted((tmp_path / "a").rglob("*.*")):
        twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
        assert path.read_bytes() == twin.read_bytes(), path.name


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--studies", "-3"], "--studies -3"),
        (["--sites", "knee"], "site 'knee'"),
        (["--problem-rate", "excess_coverage=1.5"], "between 0 and 1"),
        (["--problem-rate", "not_a_code=0.1"], "'not_a_code'"),
        (["--problem-rate", "excess_coverage"], "CODE=SHARE"),
    ],
)
def test_bad_invocations_are_one_line_errors(
    argv: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--out", str(tmp_path / "x"), *argv]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert fragment in err and "Traceback" not in err
    assert err.startswith("lowdose simulate: error:")


def test_unwritable_output_paths(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out, fragment in ((blocker, "not a directory"), (blocker / "sub", "cannot write there")):
        proc = _lowdose("simulate", "--out", str(out), "--studies", "1")
        assert proc.returncode != 0
        assert proc.stderr.count("\n") == 1 and fragment in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_argument_type_errors_are_one_line() -> None:
    proc = _lowdose("simulate", "--out", "x", "--studies", "many")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_parse_rates() -> None:
    assert parse_rates(["excess_coverage=0.2", "thin_reconstruction=0"]) == {
        "excess_coverage": 0.2,
        "thin_reconstruction": 0.0,
    }
    assert parse_rates(["all=0.1"])["dose_check_exceeded"] == 0.1
    with pytest.raises(ConfigurationError, match="CODE=SHARE"):
        parse_rates(["=0.1"])
    with pytest.raises(ConfigurationError, match="CODE=SHARE"):
        parse_rates(["excess_coverage=lots"])
