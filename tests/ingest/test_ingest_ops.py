"""Operations: one log line per association, counters on a Prometheus endpoint."""

from __future__ import annotations

import time
import urllib.request

import pytest

from ingest.metrics import IngestMetrics, serve, stop
from ingest.scp import StorageSCP
from tests.ingest.support import RTSTRUCT, RecordingPublisher, dataset_of, dicom_settings, scu

pytestmark = pytest.mark.realdata


def test_association_log_line_and_metrics_endpoint(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="lowdose.ingest.scp")
    metrics = IngestMetrics()
    pub = RecordingPublisher()
    server = serve(0, metrics.registry)
    try:
        with StorageSCP(dicom_settings(), pub, metrics=metrics) as scp:
            with scu(scp.port) as assoc:
                assert assoc.send_c_store(dataset_of(RTSTRUCT)).Status == 0
                pub.fail = True
                assert assoc.send_c_store(dataset_of(RTSTRUCT)).Status == 0xA700
            with scu(scp.port, calling="STRANGER") as assoc:
                assert assoc.is_rejected
            # The summary is written when the connection closes, just after the release.
            deadline = time.monotonic() + 30
            while not _ended(caplog) and time.monotonic() < deadline:
                time.sleep(0.02)
        port = server.port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            text = r.read().decode()
    finally:
        stop(server)
    assert "lowdose_dicom_received_total 2.0" in text
    assert "lowdose_dicom_published_total 1.0" in text
    assert 'lowdose_dicom_refused_total{reason="kafka"} 1.0' in text
    assert 'lowdose_dicom_associations_total{result="rejected"} 1.0' in text
    assert 'lowdose_dicom_associations_total{result="released"} 1.0' in text
    line = _ended(caplog)[0]
    assert line.startswith("association from CT_SIM1 (127.0.0.1:")
    assert "ended: released; 2 object(s), 1 published, 1 refused," in line


def _ended(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ended:" in r.getMessage()]
