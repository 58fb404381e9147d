"""Interpret the content tree of a CT Radiation Dose SR (PS3.16 TID 10011, 10013, 10014, 10015).

Input is the data set as read by :mod:`optimiser.dicom.bytereader` (tags to text or to lists of
items); output is a :class:`~optimiser.records.DoseReport`. Concepts are matched by code value and
scheme only (../shared/reference/planning-ct.md section 2). A malformed item is handed to
:class:`~optimiser.strictness.Problems`, which drops it with a warning, drops it silently or raises,
per the strictness setting; a non-UCUM unit with a clear meaning (``mGycm``) is repaired: the value
is kept, and the warning (or the error in ``raise`` mode) names the unit.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Final

from optimiser.dicom import codes as C
from optimiser.dicom.bytereader import CodeTuple, Dataset, Value
from optimiser.dicom.units import normalise
from optimiser.errors import DicomError
from optimiser.records import (
    Code,
    CtAcquisition,
    DoseCheckDetails,
    DoseReport,
    Intent,
    Phantom,
    SourceParameters,
)
from optimiser.strictness import Problems

_DS: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DT: Final = re.compile(
    r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?"
)

# Plausibility limits: beyond them a number is a unit or encoding error, not a measurement.
MAX_EXPOSURE_TIME_S: Final = 3600.0  # one CT acquisition lasting an hour or more
MAX_ROTATION_TIME_S: Final = 10.0
MAX_KVP: Final = 200.0  # CT tubes run 70-150 kV

# Concepts that are pure structure or not used: their items are skipped without comment.
KNOWN_SOP_CLASSES: Final = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    C.RT_STRUCTURE_SET: "RT Structure Set Storage",
    "1.2.840.10008.5.1.4.1.1.481.2": "RT Dose Storage",
    "1.2.840.10008.5.1.4.1.1.481.5": "RT Plan Storage",
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.68": "Radiopharmaceutical Radiation Dose SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.73": "Patient Radiation Dose SR Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
}


def _s(ds: Dataset, tag: int) -> str | None:
    value = ds.get(tag)
    return value if isinstance(value, str) and value else None


def _seq(ds: Dataset, tag: int) -> list[Dataset]:
    value: Value | None = ds.get(tag)
    return value if isinstance(value, list) else []


_NO_CODE: Final = ("", "", "")


def _code(ds: Dataset, tag: int) -> CodeTuple:
    value: Value | None = ds.get(tag)
    return value if isinstance(value, tuple) else _NO_CODE


def concept(item: Dataset) -> C.Concept | None:
    """The concept name of a content item as (code value, scheme)."""
    value = item.get(C.ConceptNameCodeSequence)
    if isinstance(value, tuple) and value[0] and value[1]:
        return value[0], value[1]
    return None


def _name(key: C.Concept, item: Dataset) -> str:
    meaning = _code(item, C.ConceptNameCodeSequence)[2]
    return f"{meaning or 'item'} ({key[0]}, {key[1]})"


class _Reader:
    """Walks one report; ``where`` prefixes item names so warnings say which event they concern."""

    __slots__ = ("problems", "where")

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.where = ""

    def code(self, key: C.Concept, item: Dataset) -> Code | None:
        value, scheme, meaning = _code(item, C.ConceptCodeSequence)
        if not value or not scheme:
            shown = {"value": value or None, "scheme": scheme or None}
            self.problems.report(
                self.where + _name(key, item),
                shown if value or scheme else None,
                "CODE content item without a code value and scheme (PS3.3 C.17.3.2.1: Concept "
                "Code Sequence is type 1); the item is ignored",
            )
            return None
        return Code(value, scheme, meaning)

    def number(
        self,
        key: C.Concept,
        item: Dataset,
        quantity: str | None,
        low: float | None = 0.0,
        high: float | None = None,
    ) -> float | None:
        """The NUM value in lowdose's unit, or None (absent or malformed: reported)."""
        text, unit_value, _ = _code(item, C.MeasuredValueSequence)
        if not text:
            return None  # an empty NUM is allowed (PS3.3 C.18.1): no value, no comment
        if not _DS.fullmatch(text):
            self.problems.report(
                self.where + _name(key, item),
                text,
                "Numeric Value is not a decimal string (PS3.5 DS, one value); the item is ignored",
            )
            return None
        value = float(text)
        if quantity is not None:
            unit = unit_value or None
            value_or_none, problem = normalise(value, unit, quantity)
            if problem is not None:
                self.problems.report(self.where + _name(key, item), f"{text} {unit}", problem)
            if value_or_none is None:
                return None
            value = value_or_none
        if not math.isfinite(value) or (low is not None and value < low):
            self.problems.report(
                self.where + _name(key, item),
                text,
                f"must be a finite number >= {low}; the item is ignored",
            )
            return None
        if high is not None and value > high:
            self.problems.report(
                self.where + _name(key, item),
                f"{value:g} {quantity}",
                f"implausible: above {high:g} {quantity}; the item is ignored",
            )
            return None
        return value

    def count(self, key: C.Concept, item: Dataset) -> int | None:
        value = self.number(key, item, None)
        if value is None:
            return None
        if value != int(value):
            self.problems.report(
                self.where + _name(key, item), value, "a count must be a whole number"
            )
            return None
        return int(value)

    def datetime(self, key: C.Concept, item: Dataset) -> datetime | None:
        text = _s(item, C.DateTime)
        if text is None:
            return None
        parsed = _parse_dt(text)
        if parsed is None:
            self.problems.report(
                self.where + _name(key, item),
                text,
                "not a DICOM DT value YYYYMMDDHHMMSS.FFFFFF&ZZXX; the item is ignored",
            )
        return parsed


def _parse_dt(text: str) -> datetime | None:
    m = _DT.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, offset = m.groups()
    try:
        tz = None
        if offset:
            sign = -1 if offset[0] == "-" else 1
            tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            min(int(second or 0), 59),  # leap second 60 is legal DT
            int((frac or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError:
        return None


def check_dose_report(ds: Dataset, sop_class: str | None) -> None:
    """Raise :class:`DicomError` unless ``ds`` is an SR document holding TID 10011 (CT)."""
    if sop_class not in C.DOSE_SR_CLASSES:
        kind = KNOWN_SOP_CLASSES.get(sop_class or "", "")
        raise DicomError(
            f"not a CT dose report: SOP Class UID {sop_class!r}"
            + (f" ({kind})" if kind else "")
            + " is not X-Ray Radiation Dose SR (1.2.840.10008.5.1.4.1.1.88.67) nor an "
            "Enhanced/Comprehensive SR"
        )
    root = concept(ds)
    if root != C.DOSE_REPORT:
        raise DicomError(
            f"not a CT dose report: an SR of another template, root concept {root} is not "
            "X-Ray Radiation Dose Report (113701, DCM) of TID 10011"
        )
    for item in _seq(ds, C.ContentSequence):
        key = concept(item)
        if key == C.PROCEDURE_REPORTED:
            found = _code(item, C.ConceptCodeSequence)
            if (found[0], found[1]) in C.PROJECTION_XRAY:
                raise DicomError(
                    "not a CT dose report: a projection X-ray dose report (TID 10001, Procedure "
                    "reported 113704 DCM); lowdose reads CT reports (TID 10011) only"
                )
        elif key == C.CT_ACCUMULATED_DOSE_DATA or key == C.CT_ACQUISITION:
            return
    raise DicomError(
        "not a CT dose report: no CT Accumulated Dose Data (113811) and no CT Acquisition "
        "(113819) in the content tree (a projection X-ray or another dose template)"
    )


def build_report(ds: Dataset, *, source: str, sop_class: str, problems: Problems) -> DoseReport:
    """Read the study-level fields and every CT Acquisition of a checked TID 10011 document."""
    study_uid = _s(ds, C.StudyInstanceUID)
    if study_uid is None:
        raise DicomError(
            "Study Instance UID (0020,000D) is missing or empty; cannot file the report"
        )
    report = DoseReport(
        source=source,
        sop_class_uid=sop_class,
        sop_instance_uid=_s(ds, C.SOPInstanceUID),
        study_instance_uid=study_uid,
        accession_number=_s(ds, C.AccessionNumber),
        patient_id=_s(ds, C.PatientID),
        station_name=_s(ds, C.StationName),
        manufacturer=_s(ds, C.Manufacturer),
        model=_s(ds, C.ManufacturerModelName),
        device_serial=_s(ds, C.DeviceSerialNumber),
    )
    r = _Reader(problems)
    observer: dict[C.Concept, str] = {}
    for item in _seq(ds, C.ContentSequence):
        key = concept(item)
        if key is None:
            continue
        if key == C.CT_ACQUISITION:
            acquisition = _acquisition(r, item, len(report.acquisitions) + 1)
            if acquisition is not None:
                report.acquisitions.append(acquisition)
        elif key == C.CT_ACCUMULATED_DOSE_DATA:
            r.where = "CT Accumulated Dose Data: "
            for child in _seq(item, C.ContentSequence):
                ckey = concept(child)
                if ckey == C.CT_DLP_TOTAL:
                    report.dlp_total_mgy_cm = r.number(ckey, child, "mGy.cm")
                elif ckey == C.TOTAL_NUMBER_OF_EVENTS:
                    report.total_number_of_events = r.count(ckey, child)
            r.where = ""
        elif key == C.PROCEDURE_REPORTED:
            for child in _seq(item, C.ContentSequence):
                ckey = concept(child)
                if ckey in C.HAS_INTENT:
                    found = r.code(ckey, child)
                    intent = C.INTENTS.get((found.value, found.scheme)) if found else None
                    report.has_intent = _intent(intent)
        elif key in _OBSERVER:
            text = _s(item, C.TextValue)
            if text:
                observer[key] = text
        elif key == C.START_OF_IRRADIATION:
            report.start_of_irradiation = r.datetime(key, item)
        elif key == C.END_OF_IRRADIATION:
            report.end_of_irradiation = r.datetime(key, item)
        elif key == C.SOURCE_OF_DOSE_INFORMATION:
            report.source_of_dose_information = r.code(key, item)
    # The header's General Equipment module wins; the Device Observer context fills its gaps.
    report.station_name = report.station_name or observer.get(C.DEVICE_OBSERVER_NAME)
    report.manufacturer = report.manufacturer or observer.get(C.DEVICE_OBSERVER_MANUFACTURER)
    report.model = report.model or observer.get(C.DEVICE_OBSERVER_MODEL)
    report.device_serial = report.device_serial or observer.get(C.DEVICE_OBSERVER_SERIAL)
    report.warnings = problems.warnings
    return report


_OBSERVER: Final = frozenset(
    {
        C.DEVICE_OBSERVER_NAME,
        C.DEVICE_OBSERVER_MANUFACTURER,
        C.DEVICE_OBSERVER_MODEL,
        C.DEVICE_OBSERVER_SERIAL,
    }
)


def _intent(value: str | None) -> Intent | None:
    if value == "diagnostic":
        return "diagnostic"
    if value == "therapeutic":
        return "therapeutic"
    if value == "guidance":
        return "guidance"
    return None


def _yes_no(
    pair: C.Concept | None, yes: frozenset[C.Concept], no: frozenset[C.Concept]
) -> bool | None:
    if pair in yes:
        return True
    if pair in no:
        return False
    return None


def _phantom(value: str | None) -> Phantom | None:
    if value == "head":
        return "head"
    if value == "body":
        return "body"
    return None


# NUM concepts of one acquisition: concept -> (field, quantity, lowest value, highest value)
_ACQ_NUMBERS: Final[dict[C.Concept, tuple[str, str | None, float | None, float | None]]] = {
    C.EXPOSURE_TIME: ("exposure_time_s", "s", 0.0, MAX_EXPOSURE_TIME_S),
    C.SCANNING_LENGTH: ("scanning_length_mm", "mm", 0.0, None),
    C.EXPOSED_RANGE: ("exposed_range_mm", "mm", 0.0, None),
    C.TOP_Z_SCANNING_LENGTH: ("top_z_mm", "mm", None, None),
    C.BOTTOM_Z_SCANNING_LENGTH: ("bottom_z_mm", "mm", None, None),
    C.NOMINAL_SINGLE_COLLIMATION: ("nominal_single_collimation_mm", "mm", 0.0, None),
    C.NOMINAL_TOTAL_COLLIMATION: ("nominal_total_collimation_mm", "mm", 0.0, None),
    C.PITCH_FACTOR: ("pitch_factor", None, 0.0, None),
    C.MEAN_CTDIVOL: ("mean_ctdivol_mgy", "mGy", 0.0, None),
    C.DLP: ("dlp_mgy_cm", "mGy.cm", 0.0, None),
    C.SSDE: ("ssde_mgy", "mGy", 0.0, None),
    C.WATER_EQUIVALENT_DIAMETER: ("water_equivalent_diameter_mm", "mm", 0.0, None),
}
_RECON_Z: Final = {C.TOP_Z_RECONSTRUCTABLE: "top", C.BOTTOM_Z_RECONSTRUCTABLE: "bottom"}
_SOURCE_NUMBERS: Final[dict[C.Concept, tuple[str, str, float | None]]] = {
    C.KVP: ("kvp", "kV", MAX_KVP),
    C.MAX_TUBE_CURRENT: ("max_tube_current_ma", "mA", None),
    C.TUBE_CURRENT: ("mean_tube_current_ma", "mA", None),
    C.EXPOSURE_TIME_PER_ROTATION: ("exposure_time_per_rotation_s", "s", MAX_ROTATION_TIME_S),
}


def _acquisition(r: _Reader, item: Dataset, index: int) -> CtAcquisition | None:
    content = _seq(item, C.ContentSequence)
    uid = None
    for child in content:
        if concept(child) == C.IRRADIATION_EVENT_UID:
            uid = _s(child, C.UID)
            break
    r.where = f"CT Acquisition {index}" + (f" ({uid})" if uid else "") + ": "
    if uid is None:
        r.problems.report(
            r.where + "Irradiation Event UID (113769, DCM)",
            None,
            "every CT Acquisition must carry an Irradiation Event UID (TID 10013, type M); "
            "the event is ignored",
        )
        r.where = ""
        return None
    acq = CtAcquisition(irradiation_event_uid=uid)
    recon: dict[str, float] = {}
    _walk(r, acq, content, recon, 0)
    if acq.top_z_mm is None and acq.bottom_z_mm is None and recon:
        acq.top_z_mm = recon.get("top")
        acq.bottom_z_mm = recon.get("bottom")
    for n, source in enumerate(acq.sources, 1):
        mean, peak = source.mean_tube_current_ma, source.max_tube_current_ma
        if mean is not None and peak is not None and mean > peak * (1 + 1e-6):
            r.problems.report(
                r.where + f"X-Ray Tube Current (113734, DCM) of source {n}",
                mean,
                f"mean tube current above the Maximum X-Ray Tube Current {peak:g} mA; "
                "the mean is ignored",
            )
            source.mean_tube_current_ma = None
    r.where = ""
    return acq


def _walk(
    r: _Reader, acq: CtAcquisition, content: list[Dataset], recon: dict[str, float], depth: int
) -> None:
    for child in content:
        key = concept(child)
        if key is None:
            continue
        spec = _ACQ_NUMBERS.get(key)
        if spec is not None:
            field_name, quantity, low, high = spec
            if getattr(acq, field_name) is None:
                setattr(acq, field_name, r.number(key, child, quantity, low, high))
        elif key == C.CT_SOURCE_PARAMETERS:
            acq.sources.append(_source(r, child))
        elif key == C.CT_ACQUISITION_TYPE:
            found = r.code(key, child)
            if found is not None:
                kind = C.ACQUISITION_TYPES.get((found.value, found.scheme))
                if kind is None:
                    r.problems.report(
                        r.where + _name(key, child),
                        f"{found.value} {found.scheme}",
                        "not a CT Acquisition Type of CID 10013; the type is left unknown",
                    )
                acq.acquisition_type = kind
        elif key == C.ACQUISITION_PROTOCOL:
            acq.acquisition_protocol = _s(child, C.TextValue)
        elif key == C.COMMENT and depth == 0:
            # TID 10013's own Comment (a child of CT Acquisition, not of its containers); an
            # empty one is no comment, several are joined in document order.
            text = (_s(child, C.TextValue) or "").strip()
            if text:
                acq.comment = text if acq.comment is None else f"{acq.comment}; {text}"
        elif key == C.TARGET_REGION:
            acq.target_region = r.code(key, child)
        elif key in C.PROCEDURE_CONTEXT:
            found = r.code(key, child)
            if found is not None:
                pair = (found.value, found.scheme)
                with_contrast = _yes_no(pair, C.WITH_CONTRAST, C.WITHOUT_CONTRAST)
                # "with contrast" names no phase: enhanced, phase unspecified.
                acq.contrast = (
                    None if with_contrast is None else "with" if with_contrast else "none"
                )
        elif key == C.NUMBER_OF_SOURCES:
            acq.number_of_sources = r.count(key, child)
        elif key == C.FRAME_OF_REFERENCE_UID:
            acq.frame_of_reference_uid = _s(child, C.UID)
        elif key == C.CTDIW_PHANTOM_TYPE:
            found = r.code(key, child)
            if found is not None:
                acq.phantom = _phantom(C.PHANTOMS.get((found.value, found.scheme)))
        elif key in _RECON_Z:
            value = r.number(key, child, "mm", None)
            if value is not None:
                recon[_RECON_Z[key]] = value
        elif key == C.DOSE_CHECK_ALERT or key == C.DOSE_CHECK_NOTIFICATION:
            acq.dose_check.append(_dose_check(r, key, child))
        elif depth < 4 and key in _CONTAINERS:
            _walk(r, acq, _seq(child, C.ContentSequence), recon, depth + 1)


_CONTAINERS: Final = frozenset({C.CT_ACQUISITION_PARAMETERS, C.CT_DOSE})


def _source(r: _Reader, item: Dataset) -> SourceParameters:
    source = SourceParameters()
    for child in _seq(item, C.ContentSequence):
        key = concept(child)
        if key is None:
            continue
        spec = _SOURCE_NUMBERS.get(key)
        if spec is not None:
            field_name, quantity, high = spec
            setattr(source, field_name, r.number(key, child, quantity, 0.0, high))
        elif key == C.SOURCE_IDENTIFICATION:
            source.identification = _s(child, C.TextValue)
    return source


def _dose_check(r: _Reader, key: C.Concept, item: Dataset) -> DoseCheckDetails:
    """One TID 10015 container. The person authorising is TID 1020: a Person Name (113870)
    whose Person Role in Procedure (113875, a HAS PROPERTIES child) is Irradiation Authorizing
    (113850); some writers put the role beside the name instead of under it, which is read the
    same way. A name in another role, or an empty name, authorises nothing."""
    details = DoseCheckDetails(kind="alert" if key == C.DOSE_CHECK_ALERT else "notification")
    content = _seq(item, C.ContentSequence)
    beside = _role(r, content)
    for child in content:
        ckey = concept(child)
        if ckey is None:
            continue
        flag = C.DOSE_CHECK_FLAGS.get(ckey)
        number = C.DOSE_CHECK_NUMBERS.get(ckey)
        if flag is not None:
            found = r.code(ckey, child)
            pair = (found.value, found.scheme) if found else None
            setattr(details, flag, _yes_no(pair, C.YES, C.NO))
        elif number is not None:
            setattr(details, number[0], r.number(ckey, child, number[1]))
        elif ckey == C.REASON_FOR_PROCEEDING:
            details.reason_for_proceeding = (_s(child, C.TextValue) or "").strip() or None
        elif ckey == C.PERSON_NAME:
            name = (_s(child, C.PersonName) or "").strip(" ^=")
            role = _role(r, _seq(child, C.ContentSequence)) or beside
            if name and role == C.IRRADIATION_AUTHORIZING:
                details.authorizing_persons.append(_s(child, C.PersonName) or name)
    return details


def _role(r: _Reader, content: list[Dataset]) -> C.Concept | None:
    for child in content:
        if concept(child) == C.PERSON_ROLE_IN_PROCEDURE:
            found = r.code(C.PERSON_ROLE_IN_PROCEDURE, child)
            return None if found is None else (found.value, found.scheme)
    return None
