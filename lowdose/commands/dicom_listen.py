"""``lowdose dicom-listen``: a DICOM Storage SCP that publishes dose reports and structure sets.

Configure the scanner console (or the PACS' forwarding rule) with this node's AE title, host and
port; see README "Connect a scanner" and docs/dicom.md.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import Any

HELP = "receive dose reports and structure sets over DICOM (C-STORE) into Kafka"

log = logging.getLogger("lowdose.ingest")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="Kafka settings file (as for `lowdose run`)")
    parser.add_argument(
        "--dicom-config", type=Path, help="DICOM settings TOML file ($LOWDOSE_DICOM_CONFIG)"
    )
    parser.add_argument("--ae-title", help="this node's AE title (default LOWDOSE)")
    parser.add_argument("--port", type=int, help="TCP port to listen on (default 11112)")
    parser.add_argument("--bind", dest="bind_address", help="address to bind (default 0.0.0.0)")
    parser.add_argument(
        "--allow",
        action="append",
        metavar="AE",
        help="calling AE title allowed to send (repeat for each scanner/PACS)",
    )
    parser.add_argument("--metrics-port", type=int, help="serve /metrics on this port")
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (host:port,...)")


def run(args: argparse.Namespace) -> int:
    from ingest import settings as dicom_settings
    from ingest.kafka_publisher import KafkaPublisher, record_limit
    from ingest.metrics import IngestMetrics, serve, shared_registry, stop
    from ingest.scp import StorageSCP
    from streams import settings as stream_settings
    from streams.topics import ensure_topics

    overrides: dict[str, Any] = {
        "ae_title": args.ae_title,
        "port": args.port,
        "bind_address": args.bind_address,
        "allowed_calling_aes": args.allow,
        "metrics_port": args.metrics_port,
    }
    dicom = dicom_settings.load(args.dicom_config, **overrides)
    dicom.check_usable()
    kafka = stream_settings.load(args.config, bootstrap_servers=args.bootstrap_servers)
    ensure_topics(kafka)
    registry = shared_registry()
    metrics = IngestMetrics(registry)
    # The largest object carried: what the DICOM topic takes (read from the broker).
    limit = record_limit(kafka)
    if limit > dicom.association_byte_budget:
        log.info(
            "the DICOM topic takes records up to %d bytes; association_byte_budget (%d) limits "
            "objects first",
            limit,
            dicom.association_byte_budget,
        )
    publisher = KafkaPublisher(
        kafka, ack_timeout_s=dicom.ack_timeout_s, max_bytes=limit, metrics=metrics
    )
    ops = serve(dicom.metrics_port, registry) if dicom.metrics_port is not None else None
    done = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping the DICOM listener", signum)
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    scp = StorageSCP(dicom, publisher, metrics=metrics, strictness=kafka.strictness)
    try:
        scp.start()
        # One line on stdout for whoever started us (tests, systemd logs): the bound port.
        print(f"lowdose dicom-listen: AE {dicom.ae_title} listening on port {scp.port}", flush=True)
        done.wait()
    finally:
        scp.stop()
        publisher.close()
        if ops is not None:
            stop(ops)
    return 0
