"""The over-ranging model against the real shared dose reports (issue 9 defect 3).

Where a report carries DLP, CTDIvol and the Scanning Length, DLP / CTDIvol minus the scanning
length is the scanner's real over-ranging (planning-ct.md section 9). Of the shared reports only
the GE Optima CT660 gives a positive difference; the Siemens and Toshiba reports give a scanning
length *longer* than DLP / CTDIvol (their Scanning Length is the table travel, or their DLP
leaves the over-ranged ends out), so they measure nothing about over-ranging: for them the
pipeline must take over-ranging as 0, never negative.

Band: measured within 0.5x to 1.5x the model. Why: the model is the middle of van der Molen &
Geleijns 2007's four 16-slice scanners, and their spread about that middle at one pitch is
1.99-4.04 (0.66x-1.34x of 3.02) extra rotations at the lowest pitch and 0.93-2.59 (0.53x-1.47x
of 1.76) at the highest: a scanner within the published spread lies within 0.5x-1.5x.
"""

from __future__ import annotations

import json

import pytest

from optimiser.dicom import read_dicom
from optimiser.dose_model import report_exposure
from optimiser.pipeline import Pipeline
from optimiser.records import CtAcquisition, DoseReport
from optimiser.reference import overrange_mm
from protocols.library import builtin_library
from tests.paths import SHARED

pytestmark = pytest.mark.realdata

RDSR = SHARED / "data" / "rdsr"
GENERIC = builtin_library().get("generic").overranging
PARAMS = (
    GENERIC.intercept_widths,
    GENERIC.rotations_of_feed,
    GENERIC.unknown_total_mm,
    GENERIC.dynamic_collimation_reduction,
)
BAND = (0.5, 1.5)
FASTEST_ROTATION_S = 0.25  # no clinical CT gantry turns faster
# GE Optima CT660: 64 x 0.625 mm detector (the report's 5.0 mm total collimation is not the beam
# width, see test_ge_optima_overranging_is_within_the_band).
CT660_COLLIMATION_MM = 40.0


def _helical_events() -> list[tuple[str, DoseReport, CtAcquisition]]:
    if not RDSR.is_dir():
        pytest.skip(f"shared dose reports not found at {RDSR}")
    out = []
    for path in sorted(RDSR.glob("*.dcm")):
        report = read_dicom(path)
        assert isinstance(report, DoseReport)
        for acq in report.acquisitions:
            if (
                acq.acquisition_type == "spiral"
                and acq.mean_ctdivol_mgy
                and acq.dlp_mgy_cm
                and acq.scanning_length_mm
                and acq.nominal_total_collimation_mm
                and acq.pitch_factor
            ):
                out.append((path.name, report, acq))
    return out


def _irradiated(acq: CtAcquisition) -> float:
    assert acq.dlp_mgy_cm is not None and acq.mean_ctdivol_mgy is not None
    return acq.dlp_mgy_cm / acq.mean_ctdivol_mgy * 10.0


def test_measured_against_modelled_table() -> None:
    events = _helical_events()
    assert len(events) >= 8
    lines = ["file | scanner | W mm | pitch | SL mm | DLP/CTDIvol mm | measured mm | model mm"]
    for name, report, acq in events:
        w, p, sl = acq.nominal_total_collimation_mm, acq.pitch_factor, acq.scanning_length_mm
        assert w is not None and p is not None and sl is not None
        model = overrange_mm(w, p, True, *PARAMS)
        lines.append(
            f"{name} | {report.model} | {w:g} | {p:g} | {sl:g} | {_irradiated(acq):.1f} | "
            f"{_irradiated(acq) - sl:.1f} | {model:.1f}"
        )
    print("\n".join(lines))
    # The monotone model never goes negative; only GE's reports measure a positive value.
    positive = {n for n, _, a in events if _irradiated(a) - (a.scanning_length_mm or 0) > 1.0}
    assert positive == {"CT-ESR-GE_Optima.dcm"}


def test_ge_optima_overranging_is_within_the_band() -> None:
    ge = [(n, r, a) for n, r, a in _helical_events() if n == "CT-ESR-GE_Optima.dcm"]
    assert len(ge) == 2
    rotations = []
    for _, _, acq in ge:
        assert acq.exposure_time_s and acq.pitch_factor and acq.scanning_length_mm
        # Table speed = irradiated length / exposure time = pitch x W / rotation time. At the
        # reported W = 5 mm a rotation would take 5 x 1.38 x 5.27 / 482.9 = 0.075 s: impossible,
        # so 5.0 mm is not the beam width; at the CT660's 40 mm both events give 0.60 s.
        per_w = acq.pitch_factor * acq.exposure_time_s / _irradiated(acq)
        assert (acq.nominal_total_collimation_mm or 0) * per_w < FASTEST_ROTATION_S
        rotations.append(CT660_COLLIMATION_MM * per_w)
        measured = _irradiated(acq) - acq.scanning_length_mm
        model = overrange_mm(CT660_COLLIMATION_MM, acq.pitch_factor, True, *PARAMS)
        print(
            f"GE CT660 pitch {acq.pitch_factor:g}: measured {measured:.1f} mm, model "
            f"{model:.1f} mm, ratio {measured / model:.2f} (band {BAND[0]}-{BAND[1]})"
        )
        assert BAND[0] * model <= measured <= BAND[1] * model
    assert rotations[0] == pytest.approx(rotations[1], rel=0.02)
    assert 0.35 <= rotations[0] <= 1.0


def test_reports_measure_no_negative_overranging() -> None:
    # The Siemens and Toshiba scanning lengths exceed DLP / CTDIvol: over-ranging 0, planned
    # length = the irradiated length, the reported DLP kept.
    for name, _, acq in _helical_events():
        exposure = report_exposure(acq)
        assert exposure.overrange_mm is not None and exposure.overrange_mm >= 0.0
        assert exposure.planned_length_mm is not None
        assert exposure.planned_length_mm <= exposure.length_mm + 1e-9
        if name != "CT-ESR-GE_Optima.dcm":
            assert exposure.overrange_mm == 0.0, name
            assert any("exceeds the irradiated length" in n for n in exposure.notes)


def test_pipeline_uses_the_reported_overranging() -> None:
    expected = {e["file"]: e for e in json.loads((RDSR / "expected.json").read_text())}
    name = "CT-ESR-GE_Optima.dcm"
    out = Pipeline().process([read_dicom(RDSR / name)])
    spirals = [e for e in expected[name]["events"] if e["acquisition_type"] == "spiral"]
    assert len(out) == len(spirals) == 2
    for a, ev in zip(out, spirals, strict=True):
        irradiated = ev["dlp_mgy_cm"] / ev["ctdivol_mgy"] * 10.0
        assert a.overranging_mm == pytest.approx(irradiated - ev["scanning_length_mm"], abs=0.01)
        assert a.dlp_mgy_cm == pytest.approx(ev["dlp_mgy_cm"], rel=1e-3)
        # no protocol event: N is a guess, so coverage findings are info only
        assert all(f.severity == "info" for f in a.findings if f.code == "excess_coverage")
