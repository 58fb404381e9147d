"""Dose report parse throughput: lowdose's reader beside two peers, on the real corpus.

Subjects (rates in reports/s; every reader reads the same bytes in the same run):
- ``parse_rdsr``: :func:`optimiser.dicom.read_dose_report` against a plain pydicom walk
  (``dcmread`` and a walk of the content tree by code value and scheme) reading the same values.
- ``parse_rdsr_vs_navigator``: the same against rdsr-navigator (PyPI), addressing concepts as
  ``value:scheme``.
Goal (issue 3): >= 2,000 reports/s on one core and >= 10x the plain walk, values identical:
each benchmark asserts that all readers agree on the values of expected.json before timing.
Corpus: the 11 real reports of ../shared/data/rdsr (x 5 per call in full mode).
"""

from __future__ import annotations

import logging
from io import BytesIO
from typing import Any

import pydicom
import pytest

from benchmarks.conftest import Bench
from optimiser.dicom import read_dose_report, report_to_json
from tests.paths import SHARED

REAL = [p.read_bytes() for p in sorted((SHARED / "data" / "rdsr").glob("*.dcm"))]
KEYS: tuple[str, ...] = ("irradiation_event_uid", "acquisition_type", "ctdivol_mgy")
KEYS += ("dlp_mgy_cm", "scanning_length_mm", "kvp")

pytestmark = pytest.mark.realdata

# CT Acquisition Type code value -> lowdose name (PS3.16 CID 10013)
_TYPES = {
    "116152004": "spiral",
    "P5-08001": "spiral",
    "113804": "sequenced",
    "113805": "localizer",
    "113806": "stationary",
    "113807": "free",
    "702569007": "cone_beam",
}

Summary = dict[str, Any]


def _concept(item: Any) -> str | None:
    seq = item.get("ConceptNameCodeSequence")
    if not seq:
        return None
    return f"{seq[0].get('CodeValue')}:{seq[0].get('CodingSchemeDesignator')}"


def _number(item: Any) -> float | None:
    seq = item.get("MeasuredValueSequence")
    if not seq:
        return None
    return float(seq[0].NumericValue)


def _walk_event(items: Any, event: Summary) -> None:
    for item in items:
        key = _concept(item)
        if key == "113769:DCM":
            event["irradiation_event_uid"] = str(item.UID)
        elif key == "113820:DCM":
            code = item.ConceptCodeSequence[0]
            event["acquisition_type"] = _TYPES.get(code.CodeValue)
        elif key == "113830:DCM":
            event["ctdivol_mgy"] = _number(item)
        elif key == "113838:DCM":
            event["dlp_mgy_cm"] = _number(item)
        elif key == "113825:DCM":
            event["scanning_length_mm"] = _number(item)
        elif key == "113733:DCM":
            kvp = _number(item)
            if kvp is not None:
                event["kvp"].append(kvp)
        elif key in ("113822:DCM", "113829:DCM", "113831:DCM") and "ContentSequence" in item:
            _walk_event(item.ContentSequence, event)


def pydicom_walk(data: bytes) -> Summary:
    """Plain pydicom: dcmread, then a walk of the content tree by code value and scheme."""
    ds = pydicom.dcmread(BytesIO(data))
    out: Summary = {"study_instance_uid": str(ds.StudyInstanceUID), "dlp_total_mgy_cm": None}
    events = []
    for item in ds.ContentSequence:
        key = _concept(item)
        if key == "113811:DCM":
            for child in item.ContentSequence:
                if _concept(child) == "113813:DCM":
                    out["dlp_total_mgy_cm"] = _number(child)
        elif key == "113819:DCM":
            event: Summary = {
                "irradiation_event_uid": None,
                "acquisition_type": None,
                "ctdivol_mgy": None,
                "dlp_mgy_cm": None,
                "scanning_length_mm": None,
                "kvp": [],
            }
            _walk_event(item.ContentSequence, event)
            events.append(event)
    out["events"] = events
    return out


def _nav_number(element: Any) -> float | None:
    value = element.value
    if value is None:
        return None
    number = value[0] if isinstance(value, tuple) else value
    return float(number)


def navigator(data: bytes) -> Summary:
    """rdsr-navigator (PyPI): its ``SrElement`` API, concepts addressed as ``value:scheme``."""
    import rdsr_navigator

    ds = pydicom.dcmread(BytesIO(data))
    root = rdsr_navigator.read_file(ds, warnings=False)
    accumulated = root.get("113811:DCM", warnings=False)
    out: Summary = {
        "study_instance_uid": str(ds.StudyInstanceUID),
        "dlp_total_mgy_cm": _nav_number(accumulated.get("113813:DCM", warnings=False)),
    }
    events = []
    for acq in root.get_all("113819:DCM"):
        event: Summary = {
            "irradiation_event_uid": str(acq.get("113769:DCM", warnings=False).value),
            "acquisition_type": None,
            "ctdivol_mgy": None,
            "dlp_mgy_cm": None,
            "scanning_length_mm": None,
            "kvp": [],
        }
        for kind in acq.get_all("113820:DCM"):
            code = kind._dicom_data.ConceptCodeSequence[0].CodeValue
            event["acquisition_type"] = _TYPES.get(code)
        for params in acq.get_all("113822:DCM"):
            for length in params.get_all("113825:DCM"):
                event["scanning_length_mm"] = _nav_number(length)
            for source in params.get_all("113831:DCM"):
                for kvp in source.get_all("113733:DCM"):
                    value = _nav_number(kvp)
                    if value is not None:
                        event["kvp"].append(value)
        for dose in acq.get_all("113829:DCM"):
            for ctdi in dose.get_all("113830:DCM"):
                event["ctdivol_mgy"] = _nav_number(ctdi)
            for dlp in dose.get_all("113838:DCM"):
                event["dlp_mgy_cm"] = _nav_number(dlp)
        events.append(event)
    out["events"] = events
    return out


def lowdose(data: bytes) -> Summary:
    """lowdose's reader, in its default (warn) strictness, reduced to the compared values."""
    full = report_to_json(read_dose_report(data))
    return {
        "study_instance_uid": full["study_instance_uid"],
        "dlp_total_mgy_cm": full["dlp_total_mgy_cm"],
        "events": [{k: e[k] for k in KEYS} for e in full["events"]],
    }


def _all(reader: Any, corpus: list[bytes]) -> list[Summary]:
    return [reader(data) for data in corpus]


@pytest.fixture
def corpus(request: pytest.FixtureRequest) -> list[bytes]:
    # Warnings of the defective files would be logged on every round: logging is not parsing.
    logging.getLogger("lowdose.input").setLevel(logging.ERROR)
    return REAL if request.config.getoption("benchmark_quick") else REAL * 5


def _agree(corpus: list[bytes], peer: Any) -> None:
    ours, theirs = _all(lowdose, corpus), _all(peer, corpus)
    assert ours == theirs


@pytest.mark.parametrize("role", ["subject", "baseline"])
def test_parse_rdsr(bench: Bench, corpus: list[bytes], role: str) -> None:
    _agree(REAL, pydicom_walk)
    fn = lowdose if role == "subject" else pydicom_walk
    bench(_all, fn, corpus, subject="parse_rdsr", role=role, items=len(corpus))


@pytest.mark.parametrize("role", ["subject", "baseline"])
def test_parse_rdsr_vs_navigator(bench: Bench, corpus: list[bytes], role: str) -> None:
    _agree(REAL, navigator)
    fn = lowdose if role == "subject" else navigator
    bench(_all, fn, corpus, subject="parse_rdsr_vs_navigator", role=role, items=len(corpus))
