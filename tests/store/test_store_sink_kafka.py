"""Kafka end to end for the store sink: assessments and alerts on the real broker
(tests.support.kafka fixtures), ``lowdose store`` as a subprocess, SIGKILLed mid-stream and
restarted: every assessment is one row and the desk's queue shows every alert exactly once.

Needs ``streams.client`` (issue 10's typed Kafka wrapper, the only module that imports kafka).
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from store import open_store
from store.models import AssessmentRow
from store.users import add_user
from tests.store.factory import make_assessment
from web.app import create_app

pytest.importorskip("streams.client", reason="streams.client (issue 10) is not in this tree")
from streams.topics import ensure_topics
from tests.support.kafka import (
    kafka_bootstrap,
    kafka_broker,
    producer,
    settings_env,
    settings_for,
)

__all__ = ["kafka_bootstrap", "kafka_broker"]
pytestmark = pytest.mark.kafka
N = 3000


def _rows(url: str) -> int:
    db = open_store(url)
    try:
        with db.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(AssessmentRow)) or 0)
    finally:
        db.close()


def _sink(url: str, env: dict[str, str], idle_stop: float | None) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "lowdose.main", "store", "--store", url,
            "--max-batch", "50"]  # fmt: skip
    if idle_stop is not None:
        argv += ["--idle-stop", str(idle_stop)]
    return subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _queue_ids(url: str) -> list[str]:
    """The assessment ids of the desk's queue (as its CSV export lists them), read by a
    physicist logged in through the login form."""
    db = open_store(url)
    try:
        with db.sessions.begin() as s:
            add_user(s, "ann", "a long enough password", "physicist")
        client = TestClient(create_app(db, secret="t"), follow_redirects=False)
        token = client.get("/login").text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        client.post(
            "/login",
            data={"csrf": token, "username": "ann", "password": "a long enough password"},
        )
        rows = list(csv.DictReader(io.StringIO(client.get("/queue.csv").text)))
    finally:
        db.close()
    return [r["assessment_id"] for r in rows]


def test_sigkill_mid_stream_leaves_every_assessment_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = settings_for(kafka_bootstrap, partitions=2)
    ensure_topics(settings, create=True)
    env = settings_env(settings)
    url = f"sqlite:///{tmp_path / 'sink.db'}"
    alerts = {i for i in range(N) if i % 3 == 0}
    prod = producer(kafka_bootstrap)
    for i in range(N):
        a = make_assessment(i, findings=[("excess_coverage", "alert")] if i in alerts else [])
        value = a.to_json().encode()
        key = a.study_instance_uid.encode()
        prod.send(settings.topics.assessments, key=key, value=value)
        if i in alerts:
            prod.send(settings.topics.alerts, key=key, value=value)
    prod.flush(60)
    prod.close()

    first = _sink(url, env, idle_stop=None)
    deadline = time.monotonic() + 180
    try:
        while _rows(url) < N // 10:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the sink stored nothing within 180 s"
            time.sleep(0.1)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    at_kill = _rows(url)
    assert at_kill < N, "the sink finished before the kill; the test needs more messages"

    second = _sink(url, env, idle_stop=10)
    _out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert _rows(url) == N

    ids = _queue_ids(url)
    assert len(ids) == len(set(ids)) == len(alerts)
    assert set(ids) == {make_assessment(i).assessment_id for i in alerts}


def test_feed_through_lowdose_run_and_lowdose_store_shows_every_alert_once_in_the_desk(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The issue's whole path: a simulated feed -> the stream service with the real pipeline
    (`lowdose run`, here in-process) -> `lowdose store` (a subprocess, SIGKILLed once rows
    arrive, then restarted) -> the desk: one row per assessment, every alert once."""
    from optimiser.dicom import read_dicom
    from optimiser.events import parse_protocol_event
    from optimiser.pipeline import Pipeline
    from simulator import simulate_feed
    from streams.publish import messages_from_studies, send
    from streams.service import HEADER_ASSESSMENT_ID, Service
    from tests.support.kafka import ServiceThread, client_producer, drain, header

    settings = settings_for(kafka_bootstrap, partitions=2)
    ensure_topics(settings, create=True)
    env = settings_env(settings)
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    studies = simulate_feed(120, seed=21)
    messages = list(messages_from_studies(studies))
    # What the service must produce: the same inputs through one in-process pipeline (the ids
    # derive from event ids and SOP Instance UIDs, not from where a message was read).
    items = [
        parse_protocol_event(m.value) if m.kind == "protocol" else read_dicom(m.value, source="x")
        for m in messages
    ]
    expected = Pipeline().process(items)
    assessment_ids = {a.assessment_id for a in expected}
    alert_ids = {a.assessment_id for a in expected if a.is_alert}
    assert alert_ids, "the simulated feed injects problems, so some assessments are flagged"
    with ServiceThread(Service(settings)):
        p = client_producer(kafka_bootstrap)
        send(p, settings.topics, messages)
        p.close(timeout_s=30)
        drain(
            kafka_bootstrap,
            settings.topics.assessments,
            until=lambda rs: {header(r, HEADER_ASSESSMENT_ID) for r in rs} >= assessment_ids,
            timeout_s=150,
        )

    first = _sink(url, env, idle_stop=None)
    deadline = time.monotonic() + 180
    try:
        while _rows(url) == 0:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the sink stored nothing within 180 s"
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    second = _sink(url, env, idle_stop=10)
    _out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert _rows(url) == len(assessment_ids)

    ids = _queue_ids(url)
    assert len(ids) == len(set(ids)) == len(alert_ids)
    assert set(ids) == alert_ids
