"""Malformed items under each strictness: dropped silently, dropped with a warning naming the
file, the item and the value, or raised. Also unit normalisation. Defects are planted in a real,
clean Siemens report with pydicom (in memory)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from io import BytesIO
from typing import Any

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from optimiser.dicom import read_dose_report
from optimiser.errors import MalformedItemError
from optimiser.records import CtAcquisition, DoseReport
from optimiser.strictness import Strictness
from tests.paths import SHARED

CLEAN = SHARED / "data" / "rdsr" / "CT-RDSR-Siemens-Multi-2.dcm"
NAME = "planted.dcm"

pytestmark = pytest.mark.realdata


def _walk(items: Any) -> Iterator[Dataset]:
    for item in items:
        yield item
        if "ContentSequence" in item:
            yield from _walk(item.ContentSequence)


def _code(item: Dataset) -> str:
    return str(item.ConceptNameCodeSequence[0].CodeValue)


def _spiral(ds: Dataset) -> Dataset:
    """The second CT Acquisition (the spiral: 8.13 mGy, 69.81 mGy.cm, 92 mm)."""
    spiral: Dataset = [i for i in ds.ContentSequence if _code(i) == "113819"][1]
    return spiral


def _find(root: Dataset, code: str) -> Dataset:
    return next(i for i in _walk(root.ContentSequence) if _code(i) == code)


def _planted(change: Callable[[Dataset], None]) -> bytes:
    ds = pydicom.dcmread(CLEAN)
    with pydicom.config.disable_value_validation():
        change(_spiral(ds))
        out = BytesIO()
        ds.save_as(out)
    return out.getvalue()


def _set_number(code: str, text: str) -> Callable[[Dataset], None]:
    def change(acq: Dataset) -> None:
        # A raw element: pydicom would refuse to hold a malformed DS as a number.
        raw = text.encode() + (b" " if len(text) % 2 else b"")
        mv = _find(acq, code).MeasuredValueSequence[0]
        tag = Tag(0x0040A30A)
        mv._dict[tag] = RawDataElement(tag, "DS", len(raw), raw, 0, False, True)

    return change


def _set_unit(code: str, unit: str) -> Callable[[Dataset], None]:
    def change(acq: Dataset) -> None:
        _find(acq, code).MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue = unit

    return change


def _empty_target_code(acq: Dataset) -> None:
    _find(acq, "123014").ConceptCodeSequence[0].CodeValue = ""


def _read(data: bytes, strictness: Strictness) -> DoseReport:
    return read_dose_report(data, source=NAME, strictness=strictness)


def _acq(report: DoseReport) -> CtAcquisition:
    return report.acquisitions[1]


# defect -> (planting function, read-back of the affected value, text the warning must show)
DEFECTS: dict[str, tuple[Callable[[Dataset], None], Callable[[CtAcquisition], object], str]] = {
    "slash number": (
        _set_number("113830", "10.50/ 15.00"),
        lambda a: a.mean_ctdivol_mgy,
        "10.50/ 15.00",
    ),
    "empty code": (_empty_target_code, lambda a: a.target_region, "123014"),
    "wrong unit": (_set_unit("113838", "mGy"), lambda a: a.dlp_mgy_cm, "69.81 mGy"),
    "mean mA above max": (
        _set_number("113734", "9999"),
        lambda a: a.sources[0].mean_tube_current_ma,
        "9999",
    ),
    "exposure time of hours": (
        _set_number("113824", "7200"),
        lambda a: a.exposure_time_s,
        "7200 s",
    ),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_malformed_item_is_dropped_with_a_warning_in_warn_mode(defect: str) -> None:
    plant, value_of, shown = DEFECTS[defect]
    report = _read(_planted(plant), Strictness.WARN)
    assert value_of(_acq(report)) is None
    assert len(report.warnings) == 1
    warning = report.warnings[0]
    assert warning.startswith(NAME + ": CT Acquisition 2 (")
    assert shown in warning
    # the rest of the event survives
    assert _acq(report).scanning_length_mm == 92.0


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_malformed_item_is_dropped_silently_in_ignore_mode(defect: str) -> None:
    plant, value_of, _ = DEFECTS[defect]
    report = _read(_planted(plant), Strictness.IGNORE)
    assert value_of(_acq(report)) is None
    assert report.warnings == []


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_malformed_item_raises_in_raise_mode(defect: str) -> None:
    plant, _, shown = DEFECTS[defect]
    with pytest.raises(MalformedItemError) as info:
        _read(_planted(plant), Strictness.RAISE)
    assert str(info.value).startswith(NAME + ": ")
    assert shown in str(info.value)
    assert info.value.source == NAME


def test_units_of_the_same_dimension_are_converted() -> None:
    def to_cm_and_gy(acq: Dataset) -> None:
        _set_unit("113825", "cm")(acq)
        _set_number("113825", "9.2")(acq)
        _set_unit("113830", "Gy")(acq)
        _set_number("113830", "0.00813")(acq)

    report = _read(_planted(to_cm_and_gy), Strictness.RAISE)
    # 9.2 cm = 92 mm; 0.00813 Gy = 8.13 mGy
    assert _acq(report).scanning_length_mm == pytest.approx(92.0)
    assert _acq(report).mean_ctdivol_mgy == pytest.approx(8.13)
    assert report.warnings == []


def test_misspelt_unit_is_repaired_and_named() -> None:
    report = _read(_planted(_set_unit("113838", "mGycm")), Strictness.WARN)
    assert _acq(report).dlp_mgy_cm == 69.81
    assert "'mGycm'" in report.warnings[0] and "mGy.cm" in report.warnings[0]


def test_negative_dose_is_dropped() -> None:
    report = _read(_planted(_set_number("113838", "-5")), Strictness.WARN)
    assert _acq(report).dlp_mgy_cm is None
    assert ">= 0" in report.warnings[0]


def test_missing_event_uid_drops_the_event_with_a_warning() -> None:
    def drop_uid(acq: Dataset) -> None:
        acq.ContentSequence = [i for i in acq.ContentSequence if _code(i) != "113769"]

    report = _read(_planted(drop_uid), Strictness.WARN)
    assert len(report.acquisitions) == 1
    assert "Irradiation Event UID" in report.warnings[0]
