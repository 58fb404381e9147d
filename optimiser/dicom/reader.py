"""Public entry points: read a dose report or a structure set from a path or from bytes.

Whatever the input, these functions return a record or raise
:class:`~optimiser.errors.DicomError` naming the input and the reason. Nothing else escapes: the
byte reader is bounded by construction, and anything unforeseen (a bug, ``RecursionError``,
``MemoryError``) is wrapped with ``raise ... from`` so the caller's one ``except`` holds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from optimiser.dicom import bytereader
from optimiser.dicom import codes as C
from optimiser.dicom.structure_set import build_structure_set
from optimiser.dicom.tid10011 import KNOWN_SOP_CLASSES, build_report, check_dose_report
from optimiser.errors import DicomError
from optimiser.records import DoseReport, StructureSet
from optimiser.strictness import Problems, Strictness

DicomInput = bytes | bytearray | memoryview | str | os.PathLike[str]

KEEP: Final = frozenset(
    {
        0x00020002,  # Media Storage SOP Class UID
        C.SpecificCharacterSet,
        C.SOPClassUID,
        C.SOPInstanceUID,
        C.AccessionNumber,
        C.Modality,
        C.Manufacturer,
        C.StationName,
        C.ManufacturerModelName,
        C.PatientID,
        C.DeviceSerialNumber,
        C.StudyInstanceUID,
        C.FrameOfReferenceUID,
        C.CodeValue,
        C.CodingSchemeDesignator,
        C.CodeMeaning,
        C.LongCodeValue,
        C.URNCodeValue,
        C.MeasurementUnitsCodeSequence,
        C.ConceptNameCodeSequence,
        C.DateTime,
        C.PersonName,
        C.UID,
        C.TextValue,
        C.ConceptCodeSequence,
        C.MeasuredValueSequence,
        C.NumericValue,
        C.ContentSequence,
        C.ReferencedFrameOfReferenceSequence,
        C.StructureSetROISequence,
        C.ROINumber,
        C.ROIName,
        C.ROIContourSequence,
        C.ContourSequence,
        C.ContourData,
        C.RTROIObservationsSequence,
        C.ReferencedROINumber,
        C.RTROIInterpretedType,
    }
)
# Implicit VR data cannot say which elements are sequences: these are the ones lowdose reads.
SEQUENCES: Final = frozenset(
    {
        C.MeasurementUnitsCodeSequence,
        C.ConceptNameCodeSequence,
        C.ConceptCodeSequence,
        C.MeasuredValueSequence,
        C.ContentSequence,
        C.ContentTemplateSequence,
        C.ReferencedFrameOfReferenceSequence,
        C.StructureSetROISequence,
        C.ROIContourSequence,
        C.ContourSequence,
        C.RTROIObservationsSequence,
        0x00081199,  # Referenced SOP Sequence
        0x00400555,  # Acquisition Context Sequence
        0x0040A370,  # Referenced Request Sequence
        0x0040A375,  # Current Requested Procedure Evidence Sequence
        0x0040A385,  # Pertinent Other Evidence Sequence
        0x0040A525,  # Identical Documents Sequence
        0x0040A078,  # Author Observer Sequence
        0x0040A07A,  # Participant Sequence
        0x0040A07C,  # Custodial Organization Sequence
        0x00400260,  # Performed Protocol Code Sequence
        0x30060012,  # RT Referenced Study Sequence
        0x30060014,  # RT Referenced Series Sequence
        0x30060016,  # Contour Image Sequence
        0x300600B0,  # ROI Physical Properties Sequence
    }
)


def _load(data: DicomInput, source: str | None) -> tuple[bytes, str]:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data), source or "<bytes>"
    path = Path(data)
    name = source or path.name
    try:
        return path.read_bytes(), name
    except OSError as exc:
        raise DicomError(f"cannot read the file: {exc.strerror or exc}", source=name) from exc


def _parse(raw: bytes, source: str) -> tuple[bytereader.Dataset, str | None]:
    if not raw:
        raise DicomError("empty file (0 bytes)", source=source)
    try:
        parsed = bytereader.parse(raw, KEEP, SEQUENCES)
    except DicomError as exc:
        raise DicomError(getattr(exc, "reason", str(exc)), source=source) from None
    except (RecursionError, MemoryError, Exception) as exc:
        raise DicomError(f"unreadable: {type(exc).__name__}: {exc}", source=source) from exc
    ds = parsed.dataset
    sop_class = ds.get(C.SOPClassUID) or parsed.meta.get(0x00020002)
    return ds, sop_class if isinstance(sop_class, str) and sop_class else None


def _guard_dose(
    ds: bytereader.Dataset, sop_class: str | None, source: str, strictness: Strictness
) -> DoseReport:
    problems = Problems(source, Strictness(strictness))
    try:
        check_dose_report(ds, sop_class)
        return build_report(ds, source=source, sop_class=sop_class or "", problems=problems)
    except DicomError as exc:
        if exc.source is None:
            raise type(exc)(exc.reason, source=source) from None
        raise
    except (RecursionError, MemoryError, Exception) as exc:
        raise DicomError(
            f"cannot interpret the dose report: {type(exc).__name__}: {exc}", source=source
        ) from exc


def _guard_structures(ds: bytereader.Dataset, source: str, strictness: Strictness) -> StructureSet:
    problems = Problems(source, Strictness(strictness))
    try:
        return build_structure_set(ds, source=source, problems=problems)
    except DicomError as exc:
        if exc.source is None:
            raise type(exc)(exc.reason, source=source) from None
        raise
    except (RecursionError, MemoryError, Exception) as exc:
        raise DicomError(
            f"cannot interpret the structure set: {type(exc).__name__}: {exc}", source=source
        ) from exc


def read_dose_report(
    data: DicomInput, *, source: str | None = None, strictness: Strictness = Strictness.WARN
) -> DoseReport:
    """Read a CT Radiation Dose SR (TID 10011) from a path or from the file's bytes.

    ``source`` names the input in warnings and errors (default: the file name). Malformed items
    are handled per ``strictness``; warnings land in ``DoseReport.warnings``.
    """
    raw, name = _load(data, source)
    ds, sop_class = _parse(raw, name)
    return _guard_dose(ds, sop_class, name, strictness)


def read_structure_set(
    data: DicomInput, *, source: str | None = None, strictness: Strictness = Strictness.WARN
) -> StructureSet:
    """Read an RT Structure Set: ROI numbers, names, RT ROI Interpreted Type and z-extents."""
    raw, name = _load(data, source)
    ds, sop_class = _parse(raw, name)
    if sop_class != C.RT_STRUCTURE_SET:
        raise DicomError(_not_wanted(sop_class, "an RT Structure Set"), source=name)
    return _guard_structures(ds, name, strictness)


def read_dicom(
    data: DicomInput, *, source: str | None = None, strictness: Strictness = Strictness.WARN
) -> DoseReport | StructureSet:
    """Read a dose report or a structure set, whichever the SOP Class UID says the file is."""
    raw, name = _load(data, source)
    ds, sop_class = _parse(raw, name)
    if sop_class == C.RT_STRUCTURE_SET:
        return _guard_structures(ds, name, strictness)
    if sop_class in C.DOSE_SR_CLASSES:
        return _guard_dose(ds, sop_class, name, strictness)
    raise DicomError(_not_wanted(sop_class, "a CT dose report or an RT Structure Set"), source=name)


def warm_up() -> None:
    """Compile (or load from numba's cache) the tokenizer kernel now.

    The first read otherwise pays it: seconds without a cache. Call before a consumer joins its
    group, as for every kernel (../shared/reference/kafka-and-numba.md).
    """
    # A bare data set of one element: (0008,0016) UI "1.2" padded to 4 bytes.
    bytereader.parse(b"\x08\x00\x16\x00UI\x04\x001.2\x00", KEEP, SEQUENCES, engine="numba")


def _not_wanted(sop_class: str | None, wanted: str) -> str:
    if sop_class is None:
        return f"not {wanted}: no SOP Class UID (0008,0016); is this a DICOM file?"
    kind = KNOWN_SOP_CLASSES.get(sop_class)
    return f"not {wanted}: SOP Class UID {sop_class}" + (f" ({kind})" if kind else "")
