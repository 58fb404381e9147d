"""No patient identifiers in logs or DLQ headers at any log level (issue 10, defect 6).

kafka-python's DEBUG logging dumps requests and responses (a ProduceRequest or FetchResponse
with its record bytes) and every sent record's key and value, so ``LOWDOSE_KAFKA_LOG_LEVEL=DEBUG``
and ``lowdose --log-level DEBUG publish`` wrote each Patient ID, name and accession number.
``streams.logs`` now redacts record payloads from the client's log records at every level. These
tests run the real commands against a real broker and search everything they wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import dcmread

from simulator import simulate_feed, write_feed
from streams import deadletter
from tests.support.kafka import drain, settings_env, settings_for

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


def _identifiers(feed: Path) -> set[str]:
    ids: set[str] = set()
    for path in feed.rglob("protocol.json"):
        study = json.loads(path.read_text())["study"]
        ids |= {study["patient_id"], study["accession_number"]}
    for path in feed.rglob("*.dcm"):
        ds = dcmread(path)
        ids |= {str(ds.PatientID), str(ds.PatientName), str(ds.AccessionNumber)}
        ids |= set(str(ds.PatientName).split("^"))
    ids.discard("")
    return {i for i in ids if len(i) >= 6}  # "SIM" alone would match the station name


def _lowdose(args: list[str], env: dict[str, str], timeout_s: float = 180) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "lowdose.main", *args],
        cwd=REPO,
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_debug_logs_of_publish_and_run_carry_no_patient_identifiers(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = settings_for(kafka_bootstrap, partitions=2)
    env = settings_env(settings)
    feed = tmp_path / "feed"
    write_feed(feed, simulate_feed(3, seed=71))
    ids = _identifiers(feed)
    assert len(ids) >= 9, ids  # patient IDs, accession numbers, names of three studies

    rc, plain = _lowdose(["--log-level", "DEBUG", "publish", "--quiet", str(feed)], env)
    assert rc == 0, plain[-3000:]
    rc, client = _lowdose(
        ["--log-level", "DEBUG", "publish", "--quiet", str(feed)],
        {**env, "LOWDOSE_KAFKA_LOG_LEVEL": "DEBUG"},
    )
    assert rc == 0, client[-3000:]
    rc, run = _lowdose(
        ["--log-level", "DEBUG", "run", "--idle-stop", "10"],
        {**env, "LOWDOSE_KAFKA_LOG_LEVEL": "DEBUG"},
        timeout_s=240,
    )
    assert rc == 0, run[-3000:]
    assert "consumed 12 message(s)" in run  # two publishes of 3 events + 3 reports

    for name, text in (("publish", plain), ("publish, client DEBUG", client), ("run", run)):
        # The client's DEBUG lines are there (the test would prove nothing without them)...
        assert "kafka." in text and "Request" in text, f"{name}: no client debug lines"
        # ...and the payloads are not.
        leaked = sorted(i for i in ids if i in text)
        assert not leaked, f"{name} logged patient identifiers {leaked}"


def test_dlq_headers_carry_no_patient_identifiers(kafka_bootstrap: str, tmp_path: Path) -> None:
    from streams.service import Service
    from tests.kafka.conftest import FakePipeline
    from tests.support.kafka import ServiceThread, producer

    settings = settings_for(kafka_bootstrap, partitions=1)
    studies = simulate_feed(1, seed=72)
    event = json.loads(studies[0].protocol_event.to_json())
    pid, acc = event["study"]["patient_id"], event["study"]["accession_number"]
    wrong_type = {**event, "acquisitions": [{**event["acquisitions"][0], "kvp": pid}]}
    too_long = {**event, "study": {**event["study"], "patient_id": pid * 20}}
    bad_study = {**event, "study": {**event["study"], "purpose": acc}}
    values = [json.dumps(v).encode() for v in (wrong_type, too_long, bad_study)]
    values.append(studies[0].rdsr_bytes[:-40])  # a truncated report with the name inside
    ds = dcmread(__import__("io").BytesIO(studies[0].rdsr_bytes))
    ids = {pid, acc, str(ds.PatientName), str(ds.PatientID)}
    service = Service(settings, pipeline_factory=FakePipeline)
    with ServiceThread(service):
        p = producer(kafka_bootstrap)
        for v in values[:3]:
            p.send(settings.topics.protocol, key=b"k", value=v)
        p.send(settings.topics.rdsr, key=b"k", value=values[3])
        p.flush()
        p.close()
        dlq = drain(kafka_bootstrap, settings.topics.dlq, until=lambda rs: len(rs) >= 4)
    assert len(dlq) == 4
    for record in dlq:
        text = " ".join(f"{k}={bytes(v).decode(errors='replace')}" for k, v in record.headers)
        assert deadletter.HEADER_ERROR_MESSAGE in text
        assert not [i for i in ids if i in text], text
