"""Storage SCP logic against a real pynetdicom SCU, with a recording publisher (no broker).

The broker-backed path is in tests/ingest/test_dicom_kafka.py (real Kafka, real DCMTK).
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest

from ingest.publisher import Headers, RecordTooLarge
from ingest.scp import (
    CANNOT_UNDERSTAND,
    OUT_OF_RESOURCES,
    SUCCESS,
    TOO_LARGE,
    VERIFICATION,
)
from optimiser.dicom import codes as C
from tests.ingest.support import (
    CT_IMAGE,
    RTSTRUCT,
    RecordingPublisher,
    dataset_of,
    listening,
    part10,
    scu,
    shared_reports,
)

pytestmark = pytest.mark.realdata


def _study_uid(path: Path) -> bytes:
    return str(dataset_of(path).StudyInstanceUID).encode()


def test_echo_and_every_shared_report_and_the_structure_set_are_published_keyed_by_study() -> None:
    pub = RecordingPublisher()
    files = [*shared_reports(), RTSTRUCT]
    with listening(pub) as scp, scu(scp.port) as assoc:
        assert assoc.is_established
        assert assoc.send_c_echo().Status == SUCCESS
        statuses = [assoc.send_c_store(dataset_of(p)).Status for p in files]
    assert statuses == [SUCCESS] * len(files)
    assert [key for key, _, _ in pub.records] == [_study_uid(p) for p in files]
    for _, value, headers in pub.records:
        assert headers["content-type"] == b"application/dicom"
        assert value[128:132] == b"DICM"  # a Part 10 file, as `lowdose publish` sends
    assert scp.metrics.published_total._value.get() == len(files)


def test_broker_failure_answers_out_of_resources_and_nothing_is_claimed_published() -> None:
    pub = RecordingPublisher()
    pub.fail = True
    report = shared_reports()[0]
    with listening(pub) as scp, scu(scp.port) as assoc:
        status = assoc.send_c_store(dataset_of(report))
        assert status.Status == OUT_OF_RESOURCES
        assert "broker unavailable" in status.ErrorComment
        pub.fail = False  # the broker is back: the scanner's retry succeeds
        assert assoc.send_c_store(dataset_of(report)).Status == SUCCESS
    assert len(pub.records) == 1
    assert scp.metrics.refused_total.labels(reason="kafka")._value.get() == 1


class _LimitedPublisher(RecordingPublisher):
    """Refuses values above ``limit`` bytes as the Kafka publisher does (before sending)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def publish(self, key: bytes, value: bytes, headers: Headers) -> None:
        if len(value) > self.limit:
            raise RecordTooLarge(len(value), self.limit, "t.rdsr")
        super().publish(key, value, headers)


def test_an_object_too_large_for_the_topic_gets_a_permanent_failure_naming_size_and_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("WARNING", logger="lowdose.ingest.scp")
    small, large = shared_reports()[1], shared_reports()[0]  # 15.6 kB and 22.3 kB
    pub = _LimitedPublisher(limit=20_000)
    with listening(pub) as scp, scu(scp.port) as assoc:
        refused = assoc.send_c_store(dataset_of(large))
        accepted = assoc.send_c_store(dataset_of(small))
    assert refused.Status == TOO_LARGE
    assert refused.ErrorComment.startswith("too large: ")
    assert "topic limit 20000 bytes" in refused.ErrorComment
    assert accepted.Status == SUCCESS and len(pub.records) == 1
    assert scp.metrics.refused_total.labels(reason="too_large")._value.get() == 1
    assert scp.metrics.refused_total.labels(reason="kafka")._value.get() == 0
    (line,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "status 0xC100" in line and "max.message.bytes of t.rdsr" in line, line


def test_unknown_calling_ae_is_rejected_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    pub = RecordingPublisher()
    with listening(pub) as scp, scu(scp.port, calling="INTRUDER") as assoc:
        assert assoc.is_rejected
    assert "'INTRUDER'" in caplog.text and "not recognised" in caplog.text
    with listening(pub) as scp, scu(scp.port) as assoc:  # a known AE still gets in
        assert assoc.is_established


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("non-DICOM payload", b"%PDF-1.7 this is not a data set" * 20),
        ("truncated dataset", None),  # first half of a real report
        # An element header claiming 0xFFFFFFF0 bytes (~4 GB) followed by a few: must be refused
        # as truncated without allocating what it claims.
        (
            "claimed-huge element",
            b"\x08\x00\x16\x00UI\x1c\x00"
            + b"1.2.840.10008.5.1.4.1.1.88.67"
            + b"\x40\x00\x60\xa7SQ\x00\x00\xf0\xff\xff\xff"
            + b"\x00" * 64,
        ),
    ],
)
def test_bad_payload_gets_a_failure_status_and_the_listener_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, body: bytes | None
) -> None:
    if body is None:
        raw = shared_reports()[0].read_bytes()
        body = raw[len(raw) // 2 : len(raw) * 3 // 4]
    path = part10(tmp_path / "bad.dcm", body, sop_class=C.XRAY_RADIATION_DOSE_SR)
    pub = RecordingPublisher()
    with listening(pub) as scp:
        with scu(scp.port, chunked=True) as assoc:
            status = assoc.send_c_store(path)
            assert status.Status == CANNOT_UNDERSTAND, name
        with scu(scp.port) as assoc:  # still serving
            assert assoc.send_c_store(dataset_of(shared_reports()[1])).Status == SUCCESS
    assert len(pub.records) == 1
    assert "CT_SIM1" in caplog.text and "refused (status 0xC000)" in caplog.text


def test_unsupported_sop_class_is_not_accepted(tmp_path: Path) -> None:
    pub = RecordingPublisher()
    with listening(pub) as scp, scu(scp.port) as assoc:
        accepted = {cx.abstract_syntax for cx in assoc.accepted_contexts}
        assert "1.2.840.10008.5.1.4.1.1.2" not in accepted  # CT Image Storage
        assert {C.XRAY_RADIATION_DOSE_SR, C.RT_STRUCTURE_SET, VERIFICATION} <= accepted
        with pytest.raises(ValueError, match="presentation context"):
            assoc.send_c_store(dataset_of(CT_IMAGE))
    assert pub.records == []


def test_sr_that_is_not_a_dose_report_is_refused(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    ds = Dataset()
    ds.SOPClassUID = C.COMPREHENSIVE_SR
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.Modality = "SR"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    pub = RecordingPublisher()
    with listening(pub) as scp, scu(scp.port) as assoc:
        assert assoc.send_c_store(ds).Status == CANNOT_UNDERSTAND
    assert pub.records == []


def test_object_over_the_byte_budget_aborts_the_association(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The budget bounds memory: the association is aborted as the bytes arrive, long before
    the (here 3 MB) object is complete; the listener then serves the next association."""
    from pydicom import dcmread

    ds = dcmread(io.BytesIO(shared_reports()[0].read_bytes()))
    ds.add_new(0x00091010, "OB", b"\0" * 3_000_000)  # private bulk padding
    pub = RecordingPublisher()
    with listening(pub, association_byte_budget=1_000_000, max_pdu_bytes=65_536) as scp:
        with scu(scp.port) as assoc:
            status = assoc.send_c_store(ds)
            assert "Status" not in status  # no C-STORE response: the association was aborted
            deadline = time.monotonic() + 30
            while assoc.is_established and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not assoc.is_established
        assert "exceeds the byte budget" in caplog.text and "CT_SIM1" in caplog.text
        with scu(scp.port) as assoc:
            assert assoc.send_c_echo().Status == SUCCESS
    assert pub.records == []
    assert scp.metrics.refused_total.labels(reason="over_budget")._value.get() == 1


@pytest.mark.parametrize(
    "transfer_syntax",
    [
        "1.2.840.10008.1.2",  # implicit VR little endian
        "1.2.840.10008.1.2.1",  # explicit VR little endian
        "1.2.840.10008.1.2.1.99",  # deflated explicit VR little endian
        "1.2.840.10008.1.2.2",  # explicit VR big endian (retired, still sent by old consoles)
    ],
)
def test_each_transfer_syntax_is_accepted_and_published_as_received(transfer_syntax: str) -> None:
    from pynetdicom import AE

    from optimiser.dicom import read_dicom

    report = shared_reports()[0]
    ae = AE(ae_title="CT_SIM1")
    ae.add_requested_context(str(dataset_of(report).SOPClassUID), [transfer_syntax])
    pub = RecordingPublisher()
    with listening(pub) as scp:
        assoc = ae.associate("127.0.0.1", scp.port, ae_title="LOWDOSE")
        assert assoc.is_established
        assert assoc.accepted_contexts[0].transfer_syntax[0] == transfer_syntax
        assert assoc.send_c_store(_encoded_as(report, transfer_syntax)).Status == SUCCESS
        assoc.release()
    [(_key, value, _headers)] = pub.records
    assert str(dataset_of_meta(value)) == transfer_syntax
    # What the pipeline reads off the topic equals the file read directly.
    direct, received = read_dicom(report), read_dicom(value)
    assert received.study_instance_uid == direct.study_instance_uid
    assert len(getattr(received, "acquisitions", ())) == len(getattr(direct, "acquisitions", ()))


def _encoded_as(path: Path, transfer_syntax: str) -> Any:
    """The report as a data set pynetdicom can send in ``transfer_syntax`` (it converts between
    the little endian ones itself, not to big endian)."""
    from pydicom import dcmread, dcmwrite

    ds = dataset_of(path)
    if transfer_syntax != "1.2.840.10008.1.2.2":
        return ds
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, implicit_vr=False, little_endian=False, force_encoding=True)
    return dcmread(io.BytesIO(buffer.getvalue()), force=True)


def dataset_of_meta(value: bytes) -> str:
    from pydicom import dcmread

    return str(dcmread(io.BytesIO(value), stop_before_pixels=True).file_meta.TransferSyntaxUID)


def test_byte_budget_is_per_object_so_a_long_backlog_on_one_association_passes() -> None:
    """A PACS forwarding a backlog sends far more than the budget on one association, each
    object well under it: nothing is aborted."""
    pub = RecordingPublisher()
    files = shared_reports()
    total = sum(p.stat().st_size for p in files)
    budget = 65_536
    assert total > 2 * budget and all(p.stat().st_size < budget // 2 for p in files)
    with listening(pub, association_byte_budget=budget) as scp, scu(scp.port) as assoc:
        statuses = [assoc.send_c_store(dataset_of(p)).Status for p in files]
    assert statuses == [SUCCESS] * len(files)
