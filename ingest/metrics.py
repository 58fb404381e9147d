"""Counters of the DICOM listener, on the Prometheus registry shared with ``lowdose run``.

The counters register on :mod:`streams.metrics`'s registry (one scrape shows the service and the
listener), served by the same ``/metrics``, ``/healthz`` and ``/readyz`` endpoint. Labels carry
AE titles and reasons, never a study or patient.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from streams.metrics import METRICS, OpsServer


def shared_registry() -> CollectorRegistry:
    """The service's registry (``streams.metrics.METRICS``)."""
    return METRICS.registry


class IngestMetrics:
    """received / published / refused objects, associations by result, bytes received, the
    largest object the DICOM topic takes and the Kafka producers replaced after a fatal error."""

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
        self.max_record_bytes = Gauge(
            "lowdose_dicom_max_record_bytes",
            "Largest record the DICOM topic takes (its max.message.bytes); larger objects are "
            "refused with reason too_large",
            registry=r,
        )
        self.producer_replaced_total = Counter(
            "lowdose_dicom_producer_replaced",
            "Kafka producers replaced after an error left them unusable, by error type",
            ["cause"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def serve(port: int, registry: CollectorRegistry, host: str = "127.0.0.1") -> OpsServer:
    """Serve ``registry`` on ``/metrics`` (with ``/healthz`` and ``/readyz``) at ``host:port``."""
    return OpsServer(port, host, registry=registry).start()


def stop(server: OpsServer) -> None:
    server.close()
