"""Dose model inputs: needed range N, report exposure, matching, and region-banded dose."""

from __future__ import annotations

import pytest

from optimiser.dose_model import (
    match_planned,
    needed_from_planning,
    needed_from_structure_set,
    report_exposure,
    site_tables,
)
from optimiser.events import PlannedAcquisition, Planning
from optimiser.kernels import COL, BatchInput, assess_batch
from optimiser.records import CtAcquisition
from protocols.library import builtin_library

LIB = builtin_library()


def test_needed_given_wins() -> None:
    n = needed_from_planning(
        Planning(site="breast", needed_z_mm=(300.0, 10.0), target_z_mm=(0.0, 5.0)),
        LIB.get("breast"),
        0.0,
    )
    assert (n.z_mm, n.basis) == ((10.0, 300.0), "given")


def test_needed_from_target_margins_only() -> None:
    # breast margins 30 mm each way: target 100..250 -> 70..280
    n = needed_from_planning(
        Planning(site="breast", target_z_mm=(100.0, 250.0)), LIB.get("breast"), 0.0
    )
    assert (n.z_mm, n.basis) == ((70.0, 280.0), "target_margins")
    assert n.notes == ()


def test_needed_default_centred_on_isocentre_when_given() -> None:
    # brain default 225 mm about the isocentre 500: 387.5..612.5
    n = needed_from_planning(Planning(site="brain", isocentre_z_mm=500.0), LIB.get("brain"), 0.0)
    assert (n.z_mm, n.basis) == ((387.5, 612.5), "site_default")


def test_needed_from_structure_set() -> None:
    prostate = LIB.get("prostate")
    rois = {
        "PTV 78": (10.0, 70.0),
        "Bladder": (40.0, 120.0),
        "Femur_L": (-100.0, 30.0),  # not a whole organ of the prostate site: ignored
        "Iso": (35.0, 35.0),
        "BODY": (-400.0, 400.0),
    }
    types = {"PTV 78": "PTV", "Bladder": "ORGAN", "Iso": "ISOCENTER", "BODY": "EXTERNAL"}
    n = needed_from_structure_set(rois, types, prostate)
    # PTV 10..70 with 30 mm margins = -20..100; bladder 40..120; image-guidance field 160 mm
    # about 35 = -45..115: union -45..120.
    assert n is not None
    assert (n.z_mm, n.basis) == ((-45.0, 120.0), "structure_set")
    # the note names its basis: which targets with which margins, which organs (issue 20)
    assert n.notes == (
        "needed range from the RT Structure Set: PTV 78 with the prostate margins 30 mm superior "
        "and 30 mm inferior (a department setting: [coverage] of the site library); whole organs "
        "Bladder; the 160 mm image-guidance field",
    )
    # only a body and isocentre: the structure set gives no N
    assert needed_from_structure_set({"BODY": (-1.0, 1.0)}, {"BODY": "EXTERNAL"}, prostate) is None


def test_report_exposure_rules() -> None:
    # DLP / CTDIvol: 480 / 16 = 30 cm
    e = report_exposure(CtAcquisition("a", mean_ctdivol_mgy=16.0, dlp_mgy_cm=480.0))
    assert (e.ctdivol_mgy, e.dlp_mgy_cm, e.length_mm) == (16.0, 480.0, 300.0)
    # no CTDIvol: DLP 100 over an exposed range of 200 mm -> 5 mGy
    e = report_exposure(CtAcquisition("b", dlp_mgy_cm=100.0, exposed_range_mm=200.0))
    assert e.ctdivol_mgy == pytest.approx(5.0) and e.notes
    # no DLP: CTDIvol 10 over a 150 mm scanning length -> 150 mGy.cm
    e = report_exposure(CtAcquisition("c", mean_ctdivol_mgy=10.0, scanning_length_mm=150.0))
    assert e.dlp_mgy_cm == pytest.approx(150.0) and e.notes
    e = report_exposure(CtAcquisition("d"))
    assert (e.ctdivol_mgy, e.dlp_mgy_cm) == (0.0, 0.0) and e.notes


def test_report_exposure_real_overranging_from_the_scanning_length() -> None:
    # DLP / CTDIvol = 560 / 16 = 350 mm irradiated, scanning length 300 mm: 50 mm over-ranging.
    e = report_exposure(
        CtAcquisition("a", mean_ctdivol_mgy=16.0, dlp_mgy_cm=560.0, scanning_length_mm=300.0)
    )
    assert (e.length_mm, e.planned_length_mm, e.overrange_mm) == (350.0, 300.0, 50.0)
    # Scanning length longer than DLP / CTDIvol: over-ranging 0, planned = irradiated.
    e = report_exposure(
        CtAcquisition("b", mean_ctdivol_mgy=16.0, dlp_mgy_cm=480.0, scanning_length_mm=320.0)
    )
    assert (e.length_mm, e.planned_length_mm, e.overrange_mm) == (300.0, 300.0, 0.0)
    assert any("exceeds the irradiated length" in n for n in e.notes)
    # Only a scanning length: it is the planned length, over-ranging left to the model.
    e = report_exposure(CtAcquisition("c", mean_ctdivol_mgy=10.0, scanning_length_mm=150.0))
    assert (e.planned_length_mm, e.overrange_mm, e.measured) == (150.0, None, False)
    # No scanning length: nothing planned is known.
    e = report_exposure(CtAcquisition("d", mean_ctdivol_mgy=16.0, dlp_mgy_cm=480.0))
    assert (e.planned_length_mm, e.overrange_mm, e.measured) == (None, None, True)


def _planned(index: int, kind: str, lo: float, hi: float) -> PlannedAcquisition:
    return PlannedAcquisition.model_validate(
        {"index": index, "type": kind, "z_start_mm": lo, "z_end_mm": hi, "kvp": 120, "mas": 1,
         "ctdivol_mgy": 1}
    )  # fmt: skip


def test_match_planned_by_type_and_order_then_length() -> None:
    plan = [
        _planned(0, "localizer", 0, 600),
        _planned(1, "spiral", 0, 300),
        _planned(2, "sequenced", 100, 120),
        _planned(3, "spiral", 0, 100),
    ]
    assert match_planned("spiral", 0, 999.0, plan) is plan[1]
    assert match_planned("spiral", 1, 999.0, plan) is plan[3]
    # a third spiral: the spiral of the closest length (95 mm -> the 100 mm one)
    assert match_planned("spiral", 2, 95.0, plan) is plan[3]
    assert match_planned("free", 0, 20.0, plan) is plan[2]  # no free planned: closest length
    assert match_planned("spiral", 0, 1.0, plan[:1]) is None


def test_head_neck_effective_dose_by_bands_hand_worked() -> None:
    # head & neck, N = 0..400 mm (superior end at 400), X = N exactly, CTDIvol 10 mGy.
    # Inside bands from the superior end: head 50% (200 mm), neck 35% (140 mm), chest 15%
    # (60 mm). E = 10 x (20.0 x 0.0019 + 14.0 x 0.0051 + 6.0 x 0.0145)
    #           = 10 x (0.038 + 0.0714 + 0.087) = 1.964 mSv.
    # Extending X 50 mm below N (chest band, k 0.0145): excess E = 10 x 5.0 x 0.0145 = 0.725.
    tables = site_tables(LIB)
    b = BatchInput.empty(2)
    b.lo[:] = (0.0, -50.0)
    b.hi[:] = 400.0
    b.n_hi[:] = 400.0
    b.ctdivol_mgy[:] = 10.0
    b.site[:] = LIB.site_index("head_neck")
    out = assess_batch(b, tables)
    assert out[0, COL["effective_dose"]] == pytest.approx(1.964)
    assert out[0, COL["excess_effective_dose"]] == 0.0
    assert out[1, COL["excess_effective_dose"]] == pytest.approx(0.725)
    assert out[1, COL["effective_dose"]] == pytest.approx(1.964 + 0.725)


def test_slab_split_at_a_region_boundary() -> None:
    # prostate above N: abdomen for 250 mm, then chest. X reaches 255 mm above N with 37 mm
    # slabs: the slab 222..259 is split at 250 (28 mm abdomen, 5 mm chest of its 33 mm), so
    # excess E = 1 mGy x (25.0 cm x 0.0153 + 0.5 cm x 0.0145) = 0.3825 + 0.00725 = 0.38975.
    tables = site_tables(LIB)
    b = BatchInput.empty(1)
    b.lo[:] = 100.0
    b.hi[:] = 355.0
    b.n_hi[:] = 100.0
    b.ctdivol_mgy[:] = 1.0
    b.site[:] = LIB.site_index("prostate")
    out = assess_batch(b, tables, slab_mm=37.0)
    assert out[0, COL["excess_effective_dose"]] == pytest.approx(0.38975)
