"""The review desk's store and pages (issue 11), side by side in one run.

- ``import_into_store``: ``lowdose import``'s work (:func:`lowdose.commands.importer.import_files`:
  read each file, assess in batches with the pipeline, upsert into SQLite) on the shared real
  dose reports repeated to 10,000 files (each copy with its own SOP Instance UID, so every file
  is a distinct report and a distinct row); rate in reports/s. Baseline: the parse alone
  (:func:`optimiser.dicom.read_dicom` of the same files). Goal: ratio >= 0.5.
- ``queue_page_1m``, ``queue_code_filter_1m``, ``queue_status_all_1m`` and ``trend_page_1m``: the
  desk's filtered queue (``/?site=..&severity=alert``, ``/?code=..``, ``/?status=all``) and a trend
  page (``/trends?site=..``) through the whole app in process (middleware, session,
  SQL, templates) over a SQLite store of 1,000,000 assessments; median and p99 of single
  requests are reported (goal: p99 < 200 ms; reported, not gated: absolute times depend on the
  machine's load). The 1M fixture is bulk-inserted (indexes dropped and rebuilt) and rows carry a
  short placeholder document; only full mode builds it: quick mode (``make test``) uses 20,000
  rows and 300 files and says so in the results.
"""

from __future__ import annotations

import io
import random
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pydicom
import pytest
from sqlalchemy import Table
from starlette.testclient import TestClient

from benchmarks.conftest import Bench
from lowdose.commands.importer import import_files
from optimiser.dicom import read_dicom
from optimiser.pipeline import Pipeline
from store import Store, open_store
from store.models import AssessmentRow
from store.users import add_user
from tests.paths import SHARED
from web.app import create_app

RDSR = SHARED / "data" / "rdsr"
SITES = ("prostate", "prostate_nodes", "lung_3d", "lung_4dct", "head_neck", "breast", "brain")
SCANNERS = ("LightSpeed RT16", "Brilliance Big Bore", "SOMATOM go.Open Pro", "Aquilion LB")
CODES = ("excess_coverage", "above_reference_level", "repeat_acquisition", "multiphase_contrast")


def _full(request: pytest.FixtureRequest) -> bool:
    return not request.config.getoption("benchmark_quick")


# --- import ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    n = 10_000 if _full(request) else 300
    sources = sorted(RDSR.glob("*.dcm"))
    assert sources, f"no dose reports in {RDSR}"
    folder = tmp_path_factory.mktemp("archive")
    raws = [p.read_bytes() for p in sources]
    uids = [_uids(r) for r in raws]
    files = []
    for i in range(n):
        k = i % len(raws)
        path = folder / f"{i // 1000:02d}" / f"report-{i:05d}.dcm"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(_copy(raws[k], uids[k], i))
        files.append(path)
    return files


UID_KEYWORDS = ("UID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


def _uids(raw: bytes) -> list[str]:
    """The instance, study, series and irradiation event UIDs of a report (the assessment id
    is made from them), longest first."""
    found: set[str] = set()

    def visit(_: pydicom.Dataset, elem: pydicom.DataElement) -> None:
        if elem.VR == "UI" and elem.keyword in UID_KEYWORDS and elem.value:
            found.add(str(elem.value))

    pydicom.dcmread(io.BytesIO(raw)).walk(visit)
    return sorted(found, key=len, reverse=True)


def _renumbered(uid: str, i: int) -> str:
    """``uid`` with the last 5 digits of its longest component replaced by copy number ``i``
    (same length, so the file's bytes can be edited in place; the component keeps its
    non-zero first digit)."""
    parts = uid.split(".")
    k = max(range(len(parts)), key=lambda n: len(parts[n]))
    if len(parts[k]) < 6:
        raise ValueError(f"UID {uid}: no component of 6+ digits to renumber")
    parts[k] = parts[k][:-5] + f"{i:05d}"
    return ".".join(parts)


def _copy(raw: bytes, uids: list[str], i: int) -> bytes:
    for uid in uids:
        raw = raw.replace(uid.encode(), _renumbered(uid, i).encode())
    return raw


def _parse(files: list[Path]) -> int:
    return sum(1 for p in files if read_dicom(p) is not None)


@pytest.mark.realdata
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("role", ["subject", "baseline"])
def test_import_into_store(
    bench: Bench, archive: list[Path], tmp_path: Path, role: str, request: pytest.FixtureRequest
) -> None:
    db = open_store(f"sqlite:///{tmp_path / 'import.db'}")
    pipeline = Pipeline()
    pipeline.warm_up()
    result = import_files(archive[:50], db, show_progress=False, pipeline=pipeline)
    assert not result.errors and result.stored > 0
    try:
        if role == "subject":
            m = 3 * len(list(RDSR.glob("*.dcm")))
            ids = {getattr(read_dicom(p), "sop_instance_uid", None) for p in archive[:m]}
            assert len(ids) == m  # every copy is its own report
            bench(
                lambda: import_files(archive, db, show_progress=False, pipeline=pipeline),
                subject="import_into_store", role=role, items=len(archive),
                rounds=3, warmup_rounds=0, files=len(archive),
            )  # fmt: skip
            with db.sessions() as s:
                assert s.query(AssessmentRow).count() >= len(archive)
        else:
            bench(_parse, archive, subject="import_into_store", role=role, items=len(archive),
                  rounds=3, warmup_rounds=0)  # fmt: skip
    finally:
        db.close()


# --- pages over a large store ----------------------------------------------------------------


def bulk_fill(db: Store, n: int, seed: int = 11) -> None:
    """``n`` assessments (15% flagged, 5% alerts) over two years, inserted in bulk with the
    indexes dropped and rebuilt; documents are short placeholders."""
    rng = random.Random(seed)
    table = cast(Table, AssessmentRow.__table__)
    start = datetime(2024, 1, 1)
    now = datetime(2026, 1, 1)
    columns = [c.name for c in table.columns]
    insert_rows = (
        f"INSERT INTO assessments ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    )
    insert_findings = (
        "INSERT INTO findings (assessment_id, position, code, severity, message) "
        "VALUES (?, ?, ?, ?, ?)"
    )
    insert_codes = (  # what store.assessments.upsert_assessments writes beside the findings
        "INSERT INTO assessment_codes (code, assessment_id, status, severity_rank, occurred_at, "
        "site, scanner_model) VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
    with db.engine.begin() as conn:
        for index in table.indexes:
            index.drop(conn)
        raw: Any = conn.connection.driver_connection
        for chunk in range(0, n, 100_000):
            rows: list[tuple[Any, ...]] = []
            findings: list[tuple[Any, ...]] = []
            codes: list[tuple[Any, ...]] = []
            for i in range(chunk, min(n, chunk + 100_000)):
                site = SITES[i % len(SITES)]
                when = start + timedelta(minutes=i * (730 * 24 * 60) // n)
                u = rng.random()
                rank = 2 if u < 0.05 else 1 if u < 0.15 else -1
                code = CODES[i % len(CODES)] if rank >= 1 else ""
                aid = f"asm-b{i:031d}"
                ctdi = round(rng.uniform(5, 30), 2)
                dlp = round(ctdi * rng.uniform(25, 45), 1)
                rows.append((aid, "dose_report", f"1.2.3.{i}", f"1.2.826.{i // 3}", f"ACC{i}", 1,
                             site, "Planning CT", SCANNERS[i % len(SCANNERS)], "CTSIM1", when,
                             when, when.strftime("%Y-%m"), ctdi, dlp, dlp * 0.1, dlp * 0.05,
                             dlp * 0.015, dlp * 0.05 if rank >= 1 else None, rank, code,
                             '{"bench": true}', "open" if rank >= 1 else "none", None, None, 1,
                             now, now))  # fmt: skip
                if rank >= 1:
                    findings.append((aid, 0, code, "alert" if rank == 2 else "warning", "bench"))
                    codes.append((code, aid, "open", rank, when, site, SCANNERS[i % len(SCANNERS)]))
            raw.executemany(insert_rows, rows)
            raw.executemany(insert_findings, findings)
            raw.executemany(insert_codes, codes)
        for index in table.indexes:
            index.create(conn)
        conn.exec_driver_sql("ANALYZE")


@pytest.fixture(scope="module")
def big_desk(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, int]]:
    n = 1_000_000 if _full(request) else 20_000
    db = open_store(f"sqlite:///{tmp_path_factory.mktemp('bigstore') / 'big.db'}")
    t0 = time.perf_counter()
    bulk_fill(db, n)
    built_s = time.perf_counter() - t0
    print(f"\nbench_store: {n:,} assessments bulk-loaded in {built_s:.1f} s"
          + ("" if n == 1_000_000 else " (quick mode: not the 1,000,000 of full mode)"),
          file=sys.stderr)  # fmt: skip
    with db.sessions.begin() as s:
        add_user(s, "bench", "bench password", "physicist")
    client = TestClient(create_app(db, secret="bench"), follow_redirects=False)
    page = client.get("/login").text
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    r = client.post(
        "/login", data={"csrf": csrf, "username": "bench", "password": "bench password"}
    )
    assert r.status_code == 303
    yield client, n
    db.close()


def _timed(client: TestClient, path: str, count: int) -> list[float]:
    out = []
    for _ in range(count):
        t = time.perf_counter()
        r = client.get(path)
        out.append(time.perf_counter() - t)
        assert r.status_code == 200, (path, r.status_code)
    return out


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


@pytest.mark.parametrize(
    ("subject", "path"),
    [
        ("queue_page_1m", "/?site=prostate&severity=alert"),
        ("queue_code_filter_1m", "/?code=repeat_acquisition"),
        ("queue_status_all_1m", "/?status=all"),
        ("trend_page_1m", "/trends?site=prostate"),
    ],
)
def test_desk_pages_over_a_large_store(
    bench: Bench, big_desk: tuple[TestClient, int], subject: str, path: str,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    client, n = big_desk
    first = client.get(path)
    assert (first.status_code == 200 and "asm-b" in first.text) or "trend-ctdivol" in first.text
    count = 200 if _full(request) else 40
    samples = _timed(client, path, count)
    median_ms, p99_ms = statistics.median(samples) * 1000, _p99(samples) * 1000
    print(
        f"\nbench_store: {subject} {path} over {n:,} rows: median {median_ms:.1f} ms, "
        f"p99 {p99_ms:.1f} ms ({count} requests; goal p99 < 200 ms)",
        file=sys.stderr,
    )
    bench(client.get, path, subject=subject, role="subject", items=1,
          rounds=10, warmup_rounds=1, rows=n, median_ms=round(median_ms, 1),
          p99_ms=round(p99_ms, 1), requests=count)  # fmt: skip
