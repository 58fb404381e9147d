"""Counters of the DICOM listener, on the Prometheus registry shared with ``lowdose run``.

When :mod:`streams.metrics` (the service's metrics and its ``/metrics`` endpoint) is installed,
the counters register on its registry, so one scrape shows both; otherwise on a registry of
their own, served by :func:`serve`. Labels carry AE titles and reasons, never a study or patient.
"""

from __future__ import annotations

import importlib
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest


def shared_registry() -> CollectorRegistry:
    """The service's registry (``streams.metrics.METRICS``) if present, else a new one."""
    try:
        module: Any = importlib.import_module("streams.metrics")
    except ModuleNotFoundError:
        return CollectorRegistry(auto_describe=True)
    registry: CollectorRegistry = module.METRICS.registry
    return registry


class IngestMetrics:
    """received / published / refused objects, associations by result, bytes received."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received_total = Counter(
            "lowdose_dicom_received", "DICOM objects received by C-STORE", registry=r
        )
        self.published_total = Counter(
            "lowdose_dicom_published",
            "DICOM objects acknowledged by Kafka and answered Success",
            registry=r,
        )
        self.refused_total = Counter(
            "lowdose_dicom_refused",
            "DICOM objects answered with a failure status, by reason",
            ["reason"],
            registry=r,
        )
        self.associations_total = Counter(
            "lowdose_dicom_associations",
            "DICOM associations by outcome (released, aborted, rejected)",
            ["result"],
            registry=r,
        )
        self.bytes_total = Counter(
            "lowdose_dicom_received_bytes", "P-DATA bytes received over DICOM", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def serve(port: int, registry: CollectorRegistry, host: str = "127.0.0.1") -> Any:
    """Serve ``/metrics`` on ``host:port``: the service's OpsServer when present (its ``/healthz``
    and ``/readyz`` too), else prometheus-client's own server. Returns an object with ``close``
    or ``shutdown``; see :func:`stop`."""
    try:
        module: Any = importlib.import_module("streams.metrics")
    except ModuleNotFoundError:
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host, registry=registry)
        return server
    return module.OpsServer(port, host).start()


def stop(server: Any) -> None:
    if hasattr(server, "server"):  # streams.metrics.OpsServer
        server.close()
    else:  # prometheus-client's WSGI server
        server.shutdown()
        server.server_close()
