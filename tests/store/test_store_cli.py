"""``lowdose import``, ``assess --store``, ``demo`` and ``users`` write to the store."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lowdose.main import main
from store import open_store
from store.models import AssessmentRow
from store.users import authenticate
from tests.paths import SHARED

RDSR = SHARED / "data" / "rdsr"
pytestmark = pytest.mark.realdata


def _rows(url: str) -> int:
    db = open_store(url)
    try:
        with db.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(AssessmentRow)) or 0)
    finally:
        db.close()


def test_import_goes_on_past_bad_files_and_counts_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "archive" / "2026" / "03"
    archive.mkdir(parents=True)
    for p in sorted(RDSR.glob("*.dcm"))[:4]:
        shutil.copy(p, archive / p.name)
    (archive / "broken.dcm").write_bytes(b"DICM but not really")
    (archive / "noext").write_bytes(b"\x00" * 10)
    (tmp_path / "archive" / "notes.txt").write_text("not DICOM, not looked at")
    db = tmp_path / "store.db"
    argv = ["import", str(tmp_path / "archive"), "--store", str(db), "--no-progress"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "imported 6 files" in out and "4 reports read" in out
    assert "2 files with errors" in out
    assert "broken.dcm" in err and "noext" in err
    first = _rows(str(db))
    assert first >= 4
    assert main(argv) == 1  # the same archive again: idempotent
    assert _rows(str(db)) == first


def test_assess_store_writes_what_it_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "a.db"
    report = str(RDSR / "CT-ESR-GE_Optima.dcm")
    assert main(["assess", report, f"--store={db}", "--json"]) == 0
    out, err = capsys.readouterr()
    printed = json.loads(out)
    assert printed
    assert f"stored {len(printed)} assessments" in err
    assert _rows(str(db)) == len(printed)


def test_a_bare_store_option_does_not_swallow_an_input(capsys: pytest.CaptureFixture[str]) -> None:
    report = str(RDSR / "CT-RDSR-Siemens-Multi-1.dcm")
    assert main(["assess", "--store", report, report]) == 1
    assert "looks like an input file" in capsys.readouterr().err


def test_demo_fills_a_store_and_prints_the_desk_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path), "--studies", "4"]) == 0
    out = capsys.readouterr().out
    db = tmp_path / "lowdose.db"
    assert f"review desk: lowdose review --store {db}" in out
    assert _rows(str(db)) > 4


def test_users_add_list_disable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "u.db")
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["users", "--store", db, "add", "ann", "--role", "viewer", "--password-stdin"]) == 0
    assert main(["users", "--store", db, "list"]) == 0
    assert "ann\tviewer\tactive" in capsys.readouterr().out
    assert main(["users", "--store", db, "disable", "ann"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "--store", db, "add", "bob", "--role", "viewer", "--password-stdin"]) == 1
    assert "at least 10 characters" in capsys.readouterr().err
    store = open_store(db)
    with store.sessions() as s:
        assert authenticate(s, "ann", "a long enough password") is None
    store.close()
