"""``lowdose dicom-listen`` as a process: the command a department runs, with a real broker and
DCMTK as the scanner; its metrics endpoint; SIGTERM ends it cleanly."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.request

import pytest

from tests.ingest.support import RTSTRUCT, SCU_AE, free_port
from tests.realparts import require_tool
from tests.support.kafka import drain, settings_env, settings_for

pytestmark = [pytest.mark.kafka, pytest.mark.realdata, pytest.mark.timeout(240)]


def test_dicom_listen_command_stores_into_kafka_and_serves_metrics(kafka_bootstrap: str) -> None:
    storescu = require_tool("storescu", "dcmtk")
    settings = settings_for(kafka_bootstrap)
    metrics_port = free_port()
    env = {**os.environ, **settings_env(settings), "LOWDOSE_DICOM_PORT": "0"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lowdose.main",
            "--log-level",
            "INFO",
            "dicom-listen",
            "--allow",
            SCU_AE,
            "--metrics-port",
            str(metrics_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True
    ).start()
    try:
        try:
            first = lines.get(timeout=120)
        except queue.Empty:
            proc.kill()
            pytest.fail(f"dicom-listen did not start: {proc.stderr.read() if proc.stderr else ''}")
        match = re.search(r"listening on port (\d+)", first)
        assert match, first
        port = match.group(1)
        sent = subprocess.run(
            [storescu, "-aet", SCU_AE, "-aec", "LOWDOSE", "127.0.0.1", port, str(RTSTRUCT)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30) as r:
            text = r.read().decode()
        assert "lowdose_dicom_published_total 1.0" in text
        # The largest object carried: the DICOM topic's max.message.bytes (16 MiB as created),
        # read from the broker.
        assert "lowdose_dicom_max_record_bytes 1.6777216e+07" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
    records = drain(kafka_bootstrap, settings.topics.rdsr, until=lambda r: len(r) >= 1)
    assert len(records) == 1
