"""Peers of the dose report parser for the parse benchmark: a plain pydicom walk, rdsr-navigator.

Each reads, from the bytes of a CT Radiation Dose SR, the values of expected.json (study UID, DLP
total, and per CT Acquisition the event UID, type, CTDIvol, DLP, scanning length and kVp per
source), matching concepts by code value and scheme as lowdose does, so that the three readers
are timed doing the same work and their values can be asserted equal.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pydicom

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
