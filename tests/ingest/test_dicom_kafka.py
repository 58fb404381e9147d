"""The DICOM listener with real parts: DCMTK's echoscu/storescu as the scanner, a real Kafka
broker (tests.support.kafka), the real service assessing what arrived.

Each test has its own listener on a free port and its own topics; waits have deadlines.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ingest.kafka_publisher import KafkaPublisher
from ingest.metrics import IngestMetrics
from ingest.scp import StorageSCP
from streams.service import Service
from streams.settings import StreamSettings
from streams.topics import ensure_topics
from tests.ingest.support import RTSTRUCT, SCU_AE, dataset_of, dicom_settings, shared_reports
from tests.realparts import require_tool
from tests.support.kafka import ServiceThread, drain, settings_for

pytestmark = [pytest.mark.kafka, pytest.mark.realdata, pytest.mark.timeout(280)]

FILES = [*shared_reports(), RTSTRUCT]


@contextmanager
def kafka_listener(settings: StreamSettings, **overrides: Any) -> Iterator[StorageSCP]:
    ensure_topics(settings)
    dicom = dicom_settings(ack_timeout_s=5.0, **overrides)
    publisher = KafkaPublisher(settings, ack_timeout_s=dicom.ack_timeout_s, max_bytes=4 << 20)
    scp = StorageSCP(dicom, publisher, metrics=IngestMetrics())
    try:
        with scp:
            yield scp
    finally:
        publisher.close()


def storescu(
    port: int, files: list[Path], *, calling: str = SCU_AE, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    exe = require_tool("storescu", "dcmtk")
    return subprocess.run(
        [exe, *extra, "-aet", calling, "-aec", "LOWDOSE", "127.0.0.1", str(port)]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _sop_uid(path: Path) -> str:
    return str(dataset_of(path).SOPInstanceUID)


def test_echoscu_and_storescu_every_report_reaches_the_topic_and_is_assessed(
    kafka_bootstrap: str,
) -> None:
    settings = settings_for(kafka_bootstrap)
    with kafka_listener(settings) as scp:
        echo = subprocess.run(
            [
                require_tool("echoscu", "dcmtk"),
                "-aet",
                SCU_AE,
                "-aec",
                "LOWDOSE",
                "127.0.0.1",
                str(scp.port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert echo.returncode == 0, echo.stderr
        sent = storescu(scp.port, FILES)
        assert sent.returncode == 0, sent.stderr
    records = drain(kafka_bootstrap, settings.topics.rdsr, until=lambda r: len(r) >= len(FILES))
    keys = sorted(bytes(r.key).decode() for r in records)
    assert keys == sorted(str(dataset_of(f).StudyInstanceUID) for f in FILES)

    # The service assesses what the listener published: the same acquisitions as the pipeline
    # run in-process on the same files (what `lowdose assess` does).
    expected = _expected_events()
    with ServiceThread(Service(settings)):
        assessments = drain(
            kafka_bootstrap,
            settings.topics.assessments,
            until=lambda r: {json.loads(x.value)["irradiation_event_uid"] for x in r} >= expected,
            timeout_s=150,
        )
    assert {json.loads(r.value)["irradiation_event_uid"] for r in assessments} == expected


def _expected_events() -> set[str]:
    from optimiser.dicom import read_dicom
    from optimiser.pipeline import Pipeline

    out = Pipeline().process([read_dicom(p) for p in FILES])
    return {a.irradiation_event_uid for a in out if a.irradiation_event_uid}


def test_broker_down_storescu_sees_failure_then_resend_lands_once_or_as_harmless_duplicate(
    kafka_bootstrap: str, kafka_broker: Any
) -> None:
    if kafka_broker is None:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS names an external cluster: not stopping it")
    settings = settings_for(kafka_bootstrap)
    with kafka_listener(settings) as scp:
        first = storescu(scp.port, FILES[:3])
        assert first.returncode == 0, first.stderr
        kafka_broker.stop()
        try:
            down = storescu(scp.port, FILES)
        finally:
            kafka_broker.restart()
        assert down.returncode != 0, "storescu must see a failure status with the broker down"
        published_while_down = scp.metrics.published_total._value.get() - 3
        assert scp.metrics.refused_total.labels(reason="kafka")._value.get() >= 1
        # The scanner resends everything (it keeps what was not answered Success).
        again = storescu(scp.port, FILES)
        assert again.returncode == 0, again.stderr
    want = {_sop_uid(f) for f in FILES}
    records = drain(
        kafka_bootstrap,
        settings.topics.rdsr,
        until=lambda r: {str(dataset_of_bytes(x.value).SOPInstanceUID) for x in r} >= want,
    )
    got = [str(dataset_of_bytes(r.value).SOPInstanceUID) for r in records]
    assert set(got) == want
    # Duplicates only where an object was published before (first 3, any sent while down and
    # acknowledged) and resent: never more than the sends.
    assert len(got) <= 3 + int(published_while_down) + len(FILES)


def dataset_of_bytes(value: bytes) -> Any:
    import io

    from pydicom import dcmread

    return dcmread(io.BytesIO(bytes(value)), force=True, stop_before_pixels=True)


def test_duplicate_report_is_harmless_downstream(kafka_bootstrap: str) -> None:
    """The same report stored twice: the service's assessments carry the same ids (consumers
    upsert by assessment_id) and name each irradiation event once per distinct id."""
    settings = settings_for(kafka_bootstrap)
    report = shared_reports()[0]
    with kafka_listener(settings) as scp:
        assert storescu(scp.port, [report]).returncode == 0
        assert storescu(scp.port, [report]).returncode == 0
    service = Service(settings)
    with ServiceThread(service):
        assessments = drain(
            kafka_bootstrap,
            settings.topics.assessments,
            until=lambda r: len(r) >= 1,
            timeout_s=120,
        )
    # Seen once on a loaded machine after the broker-restart test: nothing within 120 s. Say
    # what the service did (joined? consumed? rebalanced?) if it happens again.
    assert assessments, f"no assessment within 120 s; service stats: {service.stats}"
    by_event: dict[str, set[str]] = {}
    for r in assessments:
        body = json.loads(r.value)
        by_event.setdefault(body["irradiation_event_uid"], set()).add(body["assessment_id"])
    assert by_event and all(len(ids) == 1 for ids in by_event.values()), by_event


def test_storescu_over_dicom_tls(kafka_bootstrap: str, tmp_path: Path) -> None:
    openssl = require_tool("openssl", "openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    settings = settings_for(kafka_bootstrap)
    with kafka_listener(settings, tls_certfile=cert, tls_keyfile=key) as scp:
        plain = storescu(scp.port, [RTSTRUCT])
        assert plain.returncode != 0, "a plain association to the TLS port must fail"
        # DCMTK is built with OpenSSL on Debian: anonymous client, server certificate verified.
        tls = storescu(scp.port, [RTSTRUCT], extra=("+tla", "+cf", str(cert)))
        assert tls.returncode == 0, tls.stdout + tls.stderr
    records = drain(kafka_bootstrap, settings.topics.rdsr, until=lambda r: len(r) >= 1)
    assert [bytes(r.key).decode() for r in records] == [str(dataset_of(RTSTRUCT).StudyInstanceUID)]


def test_unknown_calling_ae_refused_by_storescu(kafka_bootstrap: str) -> None:
    settings = settings_for(kafka_bootstrap)
    with kafka_listener(settings) as scp:
        refused = storescu(scp.port, [RTSTRUCT], calling="UNKNOWN_CT")
    assert refused.returncode != 0
    assert "Calling AE Title Not Recognized" in refused.stdout + refused.stderr
