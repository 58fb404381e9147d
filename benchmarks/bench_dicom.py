"""C-STORE throughput of ``lowdose dicom-listen`` into Kafka against pynetdicom's minimal SCP.

DCMTK's ``storescu`` sends the shared dose reports (cycled to 1,000 objects; 100 in quick mode)
on one association, as a scanner or PACS forwarding a backlog would. Subject: the lowdose Storage
SCP, which reads each object and answers only after Kafka acknowledged it (acks=all). Baseline
(the protocol's floor): a pynetdicom SCP with the same presentation contexts whose C-STORE
handler discards the object and answers Success (with the same TCP_NODELAY socket option as the
subject, so that the floor is not a Nagle timer). Goal: subject >= 0.7 of the baseline's rate.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.conftest import Bench
from ingest.kafka_publisher import KafkaPublisher
from ingest.metrics import IngestMetrics
from ingest.scp import (
    STORAGE_CLASSES,
    TRANSFER_SYNTAXES,
    VERIFICATION,
    StorageSCP,
    tcp_nodelay,
)
from streams.topics import ensure_topics
from tests.ingest.support import dicom_settings, shared_reports
from tests.realparts import require_tool
from tests.support.kafka import kafka_bootstrap, kafka_broker, settings_for

__all__ = ["kafka_bootstrap", "kafka_broker"]

pytestmark = [pytest.mark.kafka, pytest.mark.realdata]


@pytest.fixture(scope="module")
def objects(request: pytest.FixtureRequest) -> list[Path]:
    quick = bool(request.config.getoption("benchmark_quick"))
    n = 100 if quick else 1_000
    return list(itertools.islice(itertools.cycle(shared_reports()), n))


def _send(storescu: str, port: int, files: list[Path]) -> int:
    done = subprocess.run(
        [storescu, "-aet", "CT_SIM1", "-aec", "LOWDOSE", "127.0.0.1", str(port)]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return len(files)


@pytest.fixture
def kafka_scp(kafka_bootstrap: str) -> Iterator[StorageSCP]:
    settings = settings_for(kafka_bootstrap)
    ensure_topics(settings)
    dicom = dicom_settings()
    publisher = KafkaPublisher(settings, ack_timeout_s=10.0, max_bytes=4 << 20)
    try:
        with StorageSCP(dicom, publisher, metrics=IngestMetrics()) as scp:
            yield scp
    finally:
        publisher.close()


@pytest.fixture
def discard_scp() -> Iterator[Any]:
    from pynetdicom import AE, evt

    ae = AE(ae_title="LOWDOSE")
    ae.add_supported_context(VERIFICATION)
    for sop_class in STORAGE_CLASSES:
        ae.add_supported_context(sop_class, TRANSFER_SYNTAXES)
    server = ae.start_server(
        ("127.0.0.1", 0),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000), (evt.EVT_CONN_OPEN, tcp_nodelay)],
    )
    try:
        yield server
    finally:
        server.shutdown()


def test_dicom_store_into_kafka(bench: Bench, kafka_scp: StorageSCP, objects: list[Path]) -> None:
    storescu = require_tool("storescu", "dcmtk")
    sent = bench(
        _send,
        storescu,
        kafka_scp.port,
        objects,
        subject="dicom_store",
        role="subject",
        items=len(objects),
        rounds=3,
        warmup_rounds=1,
    )
    assert sent == len(objects)
    assert kafka_scp.metrics.published_total._value.get() == 4 * len(objects)


def test_dicom_store_discard_floor(bench: Bench, discard_scp: Any, objects: list[Path]) -> None:
    storescu = require_tool("storescu", "dcmtk")
    port = int(discard_scp.server_address[1])
    sent = bench(
        _send,
        storescu,
        port,
        objects,
        subject="dicom_store",
        role="baseline",
        items=len(objects),
        rounds=3,
        warmup_rounds=1,
    )
    assert sent == len(objects)
