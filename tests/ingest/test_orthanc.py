"""Orthanc (Debian's ``orthanc``) as the department's PACS: it forwards received dose reports to
the lowdose listener (its DICOM modality routing, REST ``/modalities/{id}/store``) and answers
lowdose's labelling C-FIND. Each test session runs its own Orthanc: own JSON configuration,
storage directory and free ports; never the system service.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.pacs import check_study, find_series
from ingest.settings import DEFAULT_PLANNING_LABELS, DicomNode
from tests.ingest.support import (
    CT_IMAGE,
    RecordingPublisher,
    dataset_of,
    free_port,
    listening,
    shared_reports,
)
from tests.realparts import require_tool

pytestmark = [pytest.mark.realdata, pytest.mark.timeout(240)]


class Orthanc:
    def __init__(self, http_port: int, dicom_port: int) -> None:
        self.http_port = http_port
        self.dicom_port = dicom_port

    def rest(self, method: str, path: str, body: bytes | None = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", data=body, method=method
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[tuple[Orthanc, int]]:
    """An Orthanc on free ports that knows a lowdose listener (AE LOWDOSE) on ``listen_port``."""
    exe = require_tool("Orthanc", "orthanc")
    http_port, dicom_port, listen_port = free_port(), free_port(), free_port()
    config = {
        "Name": "lowdose-test-pacs",
        "StorageDirectory": str(tmp_path / "storage"),
        "IndexDirectory": str(tmp_path / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False,
        "DicomModalities": {"lowdose": ["LOWDOSE", "127.0.0.1", listen_port]},
        "Plugins": [],
    }
    path = tmp_path / "orthanc.json"
    path.write_text(json.dumps(config))
    log = (tmp_path / "orthanc.log").open("wb")
    proc = subprocess.Popen([exe, str(path)], stdout=log, stderr=subprocess.STDOUT)
    server = Orthanc(http_port, dicom_port)
    deadline = time.monotonic() + 60
    while True:
        try:
            server.rest("GET", "/system")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"Orthanc did not start: {(tmp_path / 'orthanc.log').read_text()}")
            time.sleep(0.1)
    try:
        yield server, listen_port
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_orthanc_forwards_every_report_to_the_listener(orthanc: tuple[Orthanc, int]) -> None:
    server, listen_port = orthanc
    ids = [server.rest("POST", "/instances", p.read_bytes())["ID"] for p in shared_reports()]
    pub = RecordingPublisher()
    with listening(pub, port=listen_port):
        job = server.rest("POST", "/modalities/lowdose/store", json.dumps(ids).encode())
    assert job.get("FailedInstancesCount", 0) == 0, job
    keys = sorted(k.decode() for k, _, _ in pub.records)
    assert keys == sorted(str(dataset_of(p).StudyInstanceUID) for p in shared_reports())
    assert {h["dicom-calling-ae"] for _, _, h in pub.records} == {b"ORTHANC"}


def _ct_series(study_uid: str, description: str, tmp: Path) -> bytes:
    from pydicom.uid import generate_uid

    ds = dataset_of(CT_IMAGE)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesDescription = description
    out = tmp / f"{ds.SeriesInstanceUID}.dcm"
    ds.save_as(out, enforce_file_format=True)
    return out.read_bytes()


def test_labelling_cfind_flags_only_the_unlabelled_ct_series(
    orthanc: tuple[Orthanc, int], tmp_path: Path
) -> None:
    from pydicom.uid import generate_uid

    server, _ = orthanc
    labelled, unlabelled = generate_uid(), generate_uid()
    server.rest("POST", "/instances", _ct_series(labelled, "RT Planning CT 3mm", tmp_path))
    server.rest("POST", "/instances", _ct_series(unlabelled, "Thorax 1.0 B31f", tmp_path))
    server.rest("POST", "/instances", _ct_series(unlabelled, "RTP Pelvis", tmp_path))
    node = DicomNode(ae_title="ORTHANC", host="127.0.0.1", port=server.dicom_port)

    series = find_series(node, unlabelled, calling_ae="LOWDOSE")
    assert sorted(s.description for s in series) == ["RTP Pelvis", "Thorax 1.0 B31f"]

    flagged = check_study(node, unlabelled, calling_ae="LOWDOSE", labels=DEFAULT_PLANNING_LABELS)
    assert [f.code for f in flagged] == ["unlabelled_planning_scan"]
    assert flagged[0].evidence["series_description"] == "Thorax 1.0 B31f"
    # Silence on a correctly labelled planning study.
    assert check_study(node, labelled, calling_ae="LOWDOSE", labels=DEFAULT_PLANNING_LABELS) == []


def test_assess_with_pacs_flags_the_unlabelled_series_of_an_assessed_planning_study(
    orthanc: tuple[Orthanc, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`lowdose assess --pacs`: each assessed planning study is looked up on the PACS; its
    unlabelled CT series is one warning with the series description, on the study's first
    assessment; a correctly labelled study stays silent (issue 12)."""
    from lowdose.main import main
    from simulator import ProblemRates, simulate_feed

    server, _ = orthanc
    monkeypatch.setenv("LOWDOSE_DICOM_PACS__AE_TITLE", "ORTHANC")
    monkeypatch.setenv("LOWDOSE_DICOM_PACS__HOST", "127.0.0.1")
    monkeypatch.setenv("LOWDOSE_DICOM_PACS__PORT", str(server.dicom_port))
    unlabelled, labelled = simulate_feed(2, seed=8, problem_rates=ProblemRates.from_mapping({}))
    server.rest(
        "POST", "/instances", _ct_series(unlabelled.study_instance_uid, "Thorax 1.0 B31f", tmp_path)
    )
    server.rest(
        "POST", "/instances", _ct_series(unlabelled.study_instance_uid, "RTP Pelvis", tmp_path)
    )
    server.rest(
        "POST", "/instances", _ct_series(labelled.study_instance_uid, "Planning CT 3mm", tmp_path)
    )
    for i, study in enumerate((unlabelled, labelled)):
        (tmp_path / f"event{i}.json").write_text(study.protocol_event.to_json())

    assert main(["assess", str(tmp_path / "event0.json"), str(tmp_path / "event1.json"),
                 "--pacs", "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    flags = [
        (a["study_instance_uid"], f["evidence"].get("series_description"))
        for a in out
        for f in a["findings"]
        if f["code"] == "unlabelled_planning_scan"
    ]
    assert flags == [(unlabelled.study_instance_uid, "Thorax 1.0 B31f")]
