"""``lowdose run`` with ``LOWDOSE_METRICS_PORT``: Prometheus metrics and health over HTTP while it
consumes a real feed from a real broker (issue 10, Operations)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from simulator import simulate_feed, write_feed
from streams.broker import free_port
from tests.support.kafka import producer, run_lowdose, settings_env, settings_for

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(400)]

REPO = Path(__file__).resolve().parents[2]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def _values(text: str) -> dict[str, float]:
    """Sample name with its labels -> value, e.g. ``lowdose_consumed_total{topic=x}``."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def _wait(condition: object, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.3)
    raise AssertionError(f"{what}: {log.read_text()[-3000:]}")


def test_run_serves_metrics_and_health_while_consuming(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = settings_for(kafka_bootstrap, partitions=2)
    port = free_port()
    env = {**settings_env(settings), "LOWDOSE_METRICS_PORT": str(port)}
    feed = tmp_path / "feed"
    write_feed(feed, simulate_feed(3, seed=91))
    log = tmp_path / "run.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lowdose.main", "--log-level", "INFO", "run"],
            cwd=REPO,
            env={**os.environ, **env, "PYTHONPATH": str(REPO)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(lambda: _get(port, "/healthz")[0] == 200, "no liveness", proc, log)
        _wait(lambda: _get(port, "/readyz")[0] == 200, "never ready", proc, log)
        rc, text, _ = run_lowdose(["publish", "--quiet", str(feed)], env)
        assert rc == 0, text[-2000:]
        p = producer(kafka_bootstrap)
        p.send(settings.topics.protocol, key=b"bad", value=b"{ not json").get(timeout=60)
        p.close()

        def done() -> bool:
            v = _values(_get(port, "/metrics")[1])
            consumed = sum(x for k, x in v.items() if k.startswith("lowdose_consumed_total"))
            return consumed >= 7 and v.get("lowdose_dead_letters_total{stage=decode}", 0) >= 1

        _wait(done, "metrics never showed the feed", proc, log)
        v = _values(_get(port, "/metrics")[1])
        assert v[f"lowdose_consumed_total{{topic={settings.topics.protocol}}}"] == 4
        assert v[f"lowdose_consumed_total{{topic={settings.topics.rdsr}}}"] == 3
        assert v["lowdose_assessed_total"] >= 6  # each event's acquisitions and each report
        assert "lowdose_alerts_total" in v
        assert v["lowdose_batch_seconds_count"] >= 1
        assert v["lowdose_ready"] == 1
        assert "lowdose_state_studies" in v and v["lowdose_state_studies"] >= 3
        lags = {k: x for k, x in v.items() if k.startswith("lowdose_consumer_lag")}
        assert lags and all(x >= 0 for x in lags.values()), v
        assert v["process_resident_memory_bytes"] > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert _get(port, "/healthz")[0] == 0  # the server went with the process
