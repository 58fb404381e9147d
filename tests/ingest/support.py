"""Test support for the DICOM listener: a recording publisher, listeners on free ports, files."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ingest.metrics import IngestMetrics
from ingest.publisher import Headers, PublishFailed
from ingest.scp import StorageSCP
from ingest.settings import DicomSettings
from tests.paths import SHARED

RDSR_DIR = SHARED / "data" / "rdsr"
RTSTRUCT = SHARED / "data" / "ct" / "rtstruct.dcm"
CT_IMAGE = SHARED / "data" / "ct" / "CT_small.dcm"
SCU_AE = "CT_SIM1"


def shared_reports() -> list[Path]:
    return sorted(RDSR_DIR.glob("*.dcm"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RecordingPublisher:
    """Keeps what it was given; ``fail`` makes it refuse like a broker that is down."""

    destination = "memory"

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes, dict[str, bytes]]] = []
        self.fail = False
        self._lock = threading.Lock()

    def publish(self, key: bytes, value: bytes, headers: Headers) -> None:
        if self.fail:
            raise PublishFailed("broker unavailable (test)")
        with self._lock:
            self.records.append((key, value, dict(headers)))

    def close(self) -> None:
        return None


def dicom_settings(**overrides: Any) -> DicomSettings:
    values: dict[str, Any] = {
        "ae_title": "LOWDOSE",
        "bind_address": "127.0.0.1",
        "port": 0,
        "allowed_calling_aes": [SCU_AE, "ORTHANC"],
        "network_timeout_s": 30.0,
        **overrides,
    }
    return DicomSettings(**values)


@contextmanager
def listening(publisher: Any, **overrides: Any) -> Iterator[StorageSCP]:
    scp = StorageSCP(dicom_settings(**overrides), publisher, metrics=IngestMetrics())
    with scp:
        yield scp


def part10(path: Path, body: bytes, *, sop_class: str, ts: str = "1.2.840.10008.1.2.1") -> Path:
    """Write a Part 10 file: a valid file meta header followed by ``body`` as it is (any bytes)."""
    from io import BytesIO

    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ts
    buffer = BytesIO()
    buffer.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    path.write_bytes(buffer.getvalue() + body)
    return path


def dataset_of(path: Path) -> Any:
    from pydicom import dcmread
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    ds = dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:  # a bare data set (the structure set)
        implicit = ds.original_encoding[0] if ds.original_encoding else False
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        )
    return ds


@contextmanager
def scu(port: int, *, calling: str = SCU_AE, chunked: bool = False, **kwargs: Any) -> Iterator[Any]:
    """An established pynetdicom association to the listener (asserted established)."""
    from pynetdicom import AE, _config

    from ingest.scp import STORAGE_CLASSES, VERIFICATION

    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for sop_class in STORAGE_CLASSES:
        # Explicit VR first: chunked sending cannot convert, and part10() writes explicit VR.
        ae.add_requested_context(sop_class, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    ae.add_requested_context(VERIFICATION)
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage (not accepted)
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = chunked
    assoc = ae.associate("127.0.0.1", port, ae_title="LOWDOSE", **kwargs)
    try:
        yield assoc
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
        if assoc.is_established:
            assoc.release()
