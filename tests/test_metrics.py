"""/metrics, /healthz and /readyz over real HTTP, and the systemd notify protocol (issue 10).

The service-level proof (``lowdose run`` with ``LOWDOSE_METRICS_PORT`` on a real broker) is in
tests/kafka/test_operations_kafka.py.
"""

from __future__ import annotations

import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams import metrics


def _get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def ops() -> Iterator[tuple[metrics.Metrics, metrics.Health, metrics.OpsServer]]:
    m = metrics.Metrics(process=False)
    h = metrics.Health(stale_after_s=0.5)
    server = metrics.OpsServer(0, metrics=m, health=h).start()
    try:
        yield m, h, server
    finally:
        server.close()


def test_metrics_are_served_in_prometheus_text_format(
    ops: tuple[metrics.Metrics, metrics.Health, metrics.OpsServer],
) -> None:
    m, _h, server = ops
    m.consumed(7, "lowdose.protocol.v1")
    m.consumed(3, "lowdose.rdsr.v1")
    m.assessed(9)
    m.alerts(2)
    m.dead_lettered("decode", truncated=True)
    m.dead_lettered("assess")
    m.batch_done(0.03)
    m.batch_done(3.0)
    m.lag("lowdose.protocol.v1", 1, highwater=120, position=100)
    m.lag("lowdose.protocol.v1", 2, highwater=None, position=5)  # unknown: not reported
    m.state_size(42)
    status, ctype, body = _get(server.port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    s = _samples(body)
    assert s[("lowdose_consumed_total", (("topic", "lowdose.protocol.v1"),))] == 7
    assert s[("lowdose_consumed_total", (("topic", "lowdose.rdsr.v1"),))] == 3
    assert s[("lowdose_assessed_total", ())] == 9
    assert s[("lowdose_alerts_total", ())] == 2
    assert s[("lowdose_dead_letters_total", (("stage", "decode"),))] == 1
    assert s[("lowdose_dead_letters_truncated_total", ())] == 1
    assert s[("lowdose_batch_seconds_count", ())] == 2
    assert s[("lowdose_batch_seconds_bucket", (("le", "0.05"),))] == 1
    lag = ("lowdose_consumer_lag", (("partition", "1"), ("topic", "lowdose.protocol.v1")))
    assert s[lag] == 20
    assert not any(k[0] == "lowdose_consumer_lag" and ("partition", "2") in k[1] for k in s)
    assert s[("lowdose_state_studies", ())] == 42
    m.rebalanced()  # partitions may have moved: their lag is no longer ours
    s = _samples(_get(server.port, "/metrics")[2])
    assert lag not in s and s[("lowdose_rebalances_total", ())] == 1


def test_liveness_follows_the_loop_and_readiness_needs_both(
    ops: tuple[metrics.Metrics, metrics.Health, metrics.OpsServer],
) -> None:
    m, h, server = ops
    h.tick()
    assert _get(server.port, "/healthz")[0] == 200
    assert _get(server.port, "/readyz")[0] == 503  # alive but not assigned yet
    h.set_ready(True, m)
    assert _get(server.port, "/readyz")[0] == 200
    assert _samples(_get(server.port, "/metrics")[2])[("lowdose_ready", ())] == 1
    deadline = time.monotonic() + 10
    while _get(server.port, "/healthz")[0] == 200 and time.monotonic() < deadline:
        time.sleep(0.1)  # the loop stopped ticking: stale after 0.5 s
    assert _get(server.port, "/healthz")[0] == 503
    assert _get(server.port, "/readyz")[0] == 503
    h.tick()
    assert _get(server.port, "/readyz")[0] == 200
    h.stopping(m)
    assert _get(server.port, "/readyz")[0] == 503
    assert _get(server.port, "/nope")[0] == 404


def test_systemd_notify_messages_reach_the_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        h = metrics.Health(watchdog_every_s=0.0)
        h.set_ready(True, metrics.Metrics(process=False))
        assert sock.recv(100) == b"READY=1"
        h.tick()
        assert sock.recv(100) == b"WATCHDOG=1"
        h.stopping(metrics.Metrics(process=False))
        assert sock.recv(100) == b"STATUS=not ready"
        assert sock.recv(100) == b"STOPPING=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert metrics.sd_notify("READY=1") is False  # not under systemd: nothing to do


def test_a_skipped_state_record_is_logged_with_study_and_partition_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = metrics.Metrics(process=False)
    with caplog.at_level(logging.ERROR, logger="lowdose.streams.metrics"):
        metrics.state_record_skipped("1.2.3.4", 2, "unreadable", m)
    [record] = caplog.records
    assert record.__dict__["study_instance_uid"] == "1.2.3.4"
    assert record.__dict__["partition"] == 2
    assert m.state_records_skipped_total.labels(reason="unreadable")._value.get() == 1
