"""RT Structure Set (PS3.3 C.8.8.5, C.8.8.6, C.8.8.8): ROI names, numbers, types and z-extents.

The optimiser needs, after contouring, the cranio-caudal extent of each target and organ: the
needed range of a planning scan is built from them (../shared/reference/planning-ct.md section
4). Contour Data holds x, y, z triplets in the patient coordinate system (mm); z is every third.
"""

from __future__ import annotations

import numpy as np

from optimiser.dicom import codes as C
from optimiser.dicom.bytereader import Dataset, Value
from optimiser.errors import DicomError
from optimiser.records import RoiExtent, StructureSet
from optimiser.strictness import Problems


def _s(ds: Dataset, tag: int) -> str | None:
    value = ds.get(tag)
    return value if isinstance(value, str) and value else None


def _seq(ds: Dataset, tag: int) -> list[Dataset]:
    value: Value | None = ds.get(tag)
    return value if isinstance(value, list) else []


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def z_extent(contour_data: str) -> tuple[float, float]:
    """(min z, max z) of one Contour Data value ``x1\\y1\\z1\\x2...``; ValueError when malformed."""
    parts = contour_data.split("\\")
    if len(parts) < 3 or len(parts) % 3:
        raise ValueError(f"{len(parts)} numbers, not a positive multiple of 3")
    z = np.array(parts[2::3], dtype=np.float64)
    if not np.all(np.isfinite(z)):
        raise ValueError("non-finite coordinate")
    return float(z.min()), float(z.max())


def build_structure_set(ds: Dataset, *, source: str, problems: Problems) -> StructureSet:
    study_uid = _s(ds, C.StudyInstanceUID)
    if study_uid is None:
        raise DicomError("Study Instance UID (0020,000D) is missing or empty")
    frames = _seq(ds, C.ReferencedFrameOfReferenceSequence)
    frame_uid = _s(frames[0], C.FrameOfReferenceUID) if frames else None
    names: dict[int, str] = {}
    for item in _seq(ds, C.StructureSetROISequence):
        number = _int(_s(item, C.ROINumber))
        if number is None:
            problems.report(
                "Structure Set ROI Sequence: ROI Number (3006,0022)",
                _s(item, C.ROINumber),
                "must be an integer (IS); the ROI is ignored",
            )
            continue
        names[number] = _s(item, C.ROIName) or f"ROI {number}"
    types: dict[int, str] = {}
    for item in _seq(ds, C.RTROIObservationsSequence):
        number = _int(_s(item, C.ReferencedROINumber))
        kind = _s(item, C.RTROIInterpretedType)
        if number is not None and kind is not None:
            types[number] = kind
    extents: dict[int, tuple[float, float]] = {}
    for item in _seq(ds, C.ROIContourSequence):
        number = _int(_s(item, C.ReferencedROINumber))
        if number is None:
            continue
        for contour in _seq(item, C.ContourSequence):
            data = _s(contour, C.ContourData)
            if data is None:
                continue
            try:
                lo, hi = z_extent(data)
            except ValueError as exc:
                problems.report(
                    f"ROI {number} ({names.get(number, '?')}): Contour Data (3006,0050)",
                    data[:40],
                    f"must be x\\y\\z decimal triplets ({exc}); the contour is ignored",
                )
                continue
            old = extents.get(number)
            extents[number] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    result = StructureSet(
        source=source, study_instance_uid=study_uid, frame_of_reference_uid=frame_uid
    )
    for number, name in names.items():
        extent = extents.get(number)
        if extent is None:
            problems.note(f"ROI {number} ({name}) has no contour points; no z-extent")
            continue
        result.rois.append(
            RoiExtent(
                number=number,
                name=name,
                z_min_mm=extent[0],
                z_max_mm=extent[1],
                interpreted_type=types.get(number),
            )
        )
    result.warnings = problems.warnings
    return result
