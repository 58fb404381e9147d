"""Operations signals of ``lowdose run``: Prometheus metrics, health endpoints, systemd notify.

- :class:`Metrics` holds the metric objects (prometheus-client) in its own registry; the loop
  calls its small methods (``consumed(n)`` after a poll, ``batch_done(seconds)`` after a commit,
  ...). :data:`METRICS` is the process's instance.
- :class:`Health` answers liveness (the loop went round recently) and readiness (subscribed,
  partitions assigned and their state rebuilt, loop alive).
- :class:`OpsServer` serves ``/metrics`` (Prometheus text format), ``/healthz`` (liveness) and
  ``/readyz`` (readiness) over HTTP from a daemon thread, on ``LOWDOSE_METRICS_PORT``.
- :func:`sd_notify` speaks the systemd notify protocol (``READY=1``, ``WATCHDOG=1``,
  ``STOPPING=1``) when ``$NOTIFY_SOCKET`` is set, so a ``Type=notify`` unit with ``WatchdogSec=``
  restarts a stuck service (docs/operations.md).

Labels carry topics and partition numbers only, never a study or patient identifier (a label per
study would also grow without bound).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from optimiser.errors import ConfigurationError
from streams.settings import StreamSettings

# The classic text format (0.0.4): what generate_latest writes, read by every Prometheus version.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

log = logging.getLogger("lowdose.streams.metrics")

# Batch wall time from poll return to commit: a batch of 500 takes tens of milliseconds on this
# project's 2-core reference machine; the long buckets show commit retries and stalls.
BATCH_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The service's metric objects, in one registry (tests make their own instance)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        if process:
            ProcessCollector(registry=r)  # resident memory, CPU, open files of this process
        self.consumed_total = Counter(
            "lowdose_consumed", "Input records consumed", ["topic"], registry=r
        )
        self.assessed_total = Counter(
            "lowdose_assessed", "Assessments produced to the assessments topic", registry=r
        )
        self.alerts_total = Counter(
            "lowdose_alerts", "Assessments produced to the alerts topic", registry=r
        )
        self.dead_letters_total = Counter(
            "lowdose_dead_letters",
            "Bad messages handled by the bad-message policy (DLQ, skip)",
            ["stage"],
            registry=r,
        )
        self.dead_letters_truncated_total = Counter(
            "lowdose_dead_letters_truncated",
            "Dead letters whose value was cut to fit the size limit",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "lowdose_batch_seconds",
            "Wall time of one batch, poll return to commit",
            buckets=BATCH_BUCKETS_S,
            registry=r,
        )
        self.commit_failures_total = Counter(
            "lowdose_commit_failures",
            "Offset commits that failed (retried or rebalanced)",
            registry=r,
        )
        self.rebalances_total = Counter(
            "lowdose_rebalances", "Partition assignment changes seen by the loop", registry=r
        )
        self.consumer_lag = Gauge(
            "lowdose_consumer_lag",
            "Records between the consumer position and the partition's high-water mark",
            ["topic", "partition"],
            registry=r,
        )
        self.state_studies = Gauge(
            "lowdose_state_studies", "Studies held in the in-memory state store", registry=r
        )
        self.state_records_skipped_total = Counter(
            "lowdose_state_records_skipped",
            "Changelog records that could not be restored (study assessed without its state)",
            ["reason"],
            registry=r,
        )
        self.ready_gauge = Gauge(
            "lowdose_ready", "1 when the service is ready (see /readyz), else 0", registry=r
        )

    # -- the calls the loop makes ---------------------------------------------------------------

    def consumed(self, n: int, topic: str = "") -> None:
        self.consumed_total.labels(topic=topic).inc(n)

    def assessed(self, n: int) -> None:
        self.assessed_total.inc(n)

    def alerts(self, n: int) -> None:
        self.alerts_total.inc(n)

    def dead_lettered(self, stage: str, *, truncated: bool = False) -> None:
        self.dead_letters_total.labels(stage=stage).inc()
        if truncated:
            self.dead_letters_truncated_total.inc()

    def batch_done(self, seconds: float) -> None:
        self.batch_seconds.observe(seconds)

    def commit_failed(self) -> None:
        self.commit_failures_total.inc()

    def rebalanced(self) -> None:
        """Assignment changed: forget the lag of partitions that may have moved away."""
        self.rebalances_total.inc()
        self.consumer_lag.clear()

    def lag(self, topic: str, partition: int, highwater: int | None, position: int | None) -> None:
        """Record ``highwater - position`` for one partition (ignored while either is unknown)."""
        if highwater is None or position is None:
            return
        self.consumer_lag.labels(topic=topic, partition=str(partition)).set(
            max(0, highwater - position)
        )

    def state_size(self, studies: int) -> None:
        self.state_studies.set(studies)

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS = Metrics()


def state_record_skipped(
    study_instance_uid: str, partition: int, reason: str, metrics: Metrics = METRICS
) -> None:
    """Never skip a state record silently (issue 10, defect 3): log the study and the changelog
    partition, count it. For the changelog restore's ``except`` branch. The reason is a short
    category (``unreadable``, ``invalid``), not the record's content."""
    metrics.state_records_skipped_total.labels(reason=reason).inc()
    log.error(
        "state record could not be restored; the study is assessed without its earlier state",
        extra={
            "event": "state_record_skipped",
            "study_instance_uid": study_instance_uid,
            "partition": partition,
            "reason": reason,
        },
    )


class Health:
    """Liveness: :meth:`tick` was called within ``stale_after_s``. Readiness: live and
    :meth:`set_ready` (subscribed, assigned, state rebuilt) and not stopping."""

    def __init__(self, stale_after_s: float = 60.0, *, watchdog_every_s: float = 5.0) -> None:
        self.stale_after_s = stale_after_s
        self.watchdog_every_s = watchdog_every_s
        self._last_tick = time.monotonic()
        self._last_watchdog = 0.0
        self._ready = False
        self._lock = threading.Lock()

    def tick(self) -> None:
        """The loop went round (call once per iteration, also when the poll returned nothing)."""
        now = time.monotonic()
        with self._lock:
            self._last_tick = now
            due = now - self._last_watchdog >= self.watchdog_every_s
            if due:
                self._last_watchdog = now
        if due:
            sd_notify("WATCHDOG=1")

    def set_ready(self, ready: bool, metrics: Metrics = METRICS) -> None:
        with self._lock:
            changed = ready != self._ready
            self._ready = ready
        metrics.ready_gauge.set(1 if ready else 0)
        if changed:
            sd_notify("READY=1" if ready else "STATUS=not ready")

    def stopping(self, metrics: Metrics = METRICS) -> None:
        self.set_ready(False, metrics)
        sd_notify("STOPPING=1")

    def alive(self) -> bool:
        with self._lock:
            return time.monotonic() - self._last_tick <= self.stale_after_s

    def ready(self) -> bool:
        with self._lock:
            ready = self._ready
        return ready and self.alive()


HEALTH = Health()


def sd_notify(message: str) -> bool:
    """Send one systemd notify message when ``$NOTIFY_SOCKET`` names a socket; else nothing."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError as exc:
        log.warning("systemd notify failed", extra={"event": "sd_notify", "error": repr(exc)})
        return False


def start_ops_server(settings: StreamSettings) -> OpsServer | None:
    """The ops HTTP server on ``settings.metrics_port`` (None when the setting is unset).

    Liveness allows a loop gap up to ``max_poll_interval_ms``: longer and the group has
    dropped the consumer anyway."""
    if settings.metrics_port is None:
        return None
    HEALTH.stale_after_s = max(30.0, settings.max_poll_interval_ms / 1000)
    try:
        server = OpsServer(settings.metrics_port, settings.metrics_host)
    except OSError as exc:
        raise ConfigurationError(
            f"setting metrics_port = {settings.metrics_port}: cannot listen on "
            f"{settings.metrics_host}:{settings.metrics_port} ({exc.strerror or exc}); choose a "
            "free port with LOWDOSE_METRICS_PORT (or LOWDOSE_METRICS_HOST)"
        ) from exc
    return server.start()


class OpsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` (port 0: any free port)."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        *,
        metrics: Metrics = METRICS,
        health: Health = HEALTH,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.metrics = metrics
        self.health = health
        # What /metrics shows: the service's registry, or another one (e.g. the DICOM
        # listener's counters when they were given a registry of their own).
        self.registry = registry if registry is not None else metrics.registry
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(ops.registry), CONTENT_TYPE)
                elif path == "/healthz":
                    ok = ops.health.alive()
                    self._reply(200 if ok else 503, b"ok\n" if ok else b"stale loop\n")
                elif path == "/readyz":
                    ok = ops.health.ready()
                    self._reply(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                else:
                    self._reply(404, b"not found: /metrics, /healthz, /readyz\n")

            def _reply(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # scrapes every few seconds are not log lines

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, daemon=True, name="lowdose-ops-http"
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> OpsServer:
        self.thread.start()
        log.info("metrics and health endpoints up", extra={"event": "ops_http", "port": self.port})
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
