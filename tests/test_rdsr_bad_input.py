"""Bad input raises DicomError naming the file and the reason: a CT image, a projection X-ray
dose report, an SR of another template, random bytes, empty and truncated files."""

from __future__ import annotations

import random
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from optimiser.dicom import read_dicom, read_dose_report, read_structure_set
from optimiser.errors import DicomError, MalformedItemError
from tests.paths import SHARED

RDSR = SHARED / "data" / "rdsr"
CT_IMAGE = SHARED / "data" / "ct" / "CT_small.dcm"
REPORT = RDSR / "CT-RDSR-Siemens-Multi-2.dcm"

pytestmark = pytest.mark.realdata


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _saved(ds: Dataset) -> bytes:
    out = BytesIO()
    ds.save_as(out)
    return out.getvalue()


def _projection_report() -> bytes:
    """A real report turned into a projection X-ray one (TID 10001): procedure 113704, no CT."""
    ds = pydicom.dcmread(REPORT)
    keep = []
    for item in ds.ContentSequence:
        code = item.ConceptNameCodeSequence[0].CodeValue
        if code == "121058":
            item.ConceptCodeSequence = [_code("113704", "DCM", "Projection X-Ray")]
        if code not in ("113811", "113819"):
            keep.append(item)
    accumulated = Dataset()
    accumulated.RelationshipType, accumulated.ValueType = "CONTAINS", "CONTAINER"
    accumulated.ConceptNameCodeSequence = [_code("113702", "DCM", "Accumulated X-Ray Dose Data")]
    ds.ContentSequence = [*keep, accumulated]
    return _saved(ds)


def _other_template() -> bytes:
    ds = pydicom.dcmread(REPORT)
    ds.ConceptNameCodeSequence = [_code("126000", "DCM", "Imaging Measurement Report")]
    return _saved(ds)


def _error(data: bytes | Path, source: str = "x.dcm") -> DicomError:
    with pytest.raises(DicomError) as info:
        if isinstance(data, Path):
            read_dicom(data)
        else:
            read_dicom(data, source=source)
    assert not isinstance(info.value, MalformedItemError)
    return info.value


def test_ct_image_is_not_a_dose_report() -> None:
    error = _error(CT_IMAGE)
    assert error.source == "CT_small.dcm"
    assert "CT Image Storage" in error.reason
    with pytest.raises(DicomError, match="CT Image Storage"):
        read_dose_report(CT_IMAGE)


def test_projection_xray_report_is_refused() -> None:
    error = _error(_projection_report())
    assert "projection X-ray" in error.reason
    assert str(error).startswith("x.dcm: ")


def test_sr_of_another_template_is_refused() -> None:
    assert "another template" in _error(_other_template()).reason


def test_empty_file() -> None:
    assert "empty" in _error(b"").reason


def test_random_bytes() -> None:
    rng = random.Random(3)
    for size in (1, 7, 131, 132, 1000):
        error = _error(bytes(rng.randrange(256) for _ in range(size)))
        assert error.source == "x.dcm" and error.reason


@pytest.mark.parametrize("cut", [10, 128, 132, 140, 300, 1000, 5000, -100, -9, -1])
def test_truncated_report(cut: int) -> None:
    data = REPORT.read_bytes()[:cut]
    error = _error(data)
    assert error.reason


def test_missing_file_names_the_file() -> None:
    with pytest.raises(DicomError, match=r"no-such\.dcm: cannot read the file"):
        read_dose_report(Path("no-such.dcm"))


def test_dose_report_is_not_a_structure_set() -> None:
    with pytest.raises(DicomError, match="not an RT Structure Set"):
        read_structure_set(REPORT)


def test_explicit_length_past_the_end_is_caught() -> None:
    data = bytearray(REPORT.read_bytes())
    # Find the Content Sequence header (0040,A730) SQ and give it an absurd length.
    at = bytes(data).find(b"\x40\x00\x30\xa7SQ\x00\x00")
    assert at > 0
    data[at + 8 : at + 12] = (0x7FFFFFF0).to_bytes(4, "little")
    assert "past the end" in _error(bytes(data)).reason


def test_deep_nesting_is_bounded() -> None:
    # (0040,A730) SQ of undefined length, one undefined-length item, 10,000 levels deep
    level = b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    data = b"\x08\x00\x16\x00UI\x1e\x001.2.840.10008.5.1.4.1.1.88.67\x00" + level * 10_000
    assert "nested deeper" in _error(data).reason
