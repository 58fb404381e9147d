"""Reference levels as a physicist reads them (issue 9, severity rules 3, 5, 10, 11).

DRL (75th-percentile type) against typical value (median or mean), ICRP Publication 135 terms
(planning-ct.md section 9); levels from planning-ct.md section 3; exam-level DLP; proposals that
stop at the DRL; diagnostic intent that needs corroboration; the generic site; TG-293 for heads.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimiser.assessment import Assessment
from optimiser.dicom import read_dose_report
from optimiser.dose_model import AcquisitionRow, Needed
from optimiser.events import ProtocolEvent
from optimiser.findings import above_reference_level, diagnostic_intent, exam_dlp_finding
from optimiser.kernels import RowResult
from optimiser.pipeline import Pipeline
from optimiser.proposal import build_proposal, exposure_scale
from optimiser.records import CtAcquisition, DoseReport, SourceParameters
from optimiser.ssde import ssde_mgy
from optimiser.strictness import Strictness
from protocols.library import builtin_library, load_library
from tests.paths import SHARED
from tests.support.rows import make_row

LIB = builtin_library()
# The finding codes these rules govern (excess_coverage and dose_check_exceeded have their own
# rules and tests).
MINE = {
    "above_reference_level",
    "diagnostic_intent",
    "thin_reconstruction",
    "kv_not_calibrated",
    "unlabelled_planning_scan",
}
UID = "1.2.826.0.1.3680043.9.7777.9"


def row(site: str = "breast", **kw: Any) -> AcquisitionRow:
    base: dict[str, Any] = {
        "input_kind": "protocol_event",
        "input_id": "e",
        "study_instance_uid": UID,
        "site": site,
        "protocol": LIB.get(site),
        "needed": Needed((0.0, 200.0), "given"),
        "lo_mm": 0.0,
        "hi_mm": 200.0,
        "is_planned": True,
        "helical": True,
        "total_collimation_mm": None,
        "pitch_factor": None,
        "ctdivol_mgy": 10.0,
        "placement": "planned",
        "acquisition_type": "spiral",
        "kvp": (120.0,),
        "mas": 100.0,
    }
    base.update(kw)
    return make_row(**base)


def result(c: float, lo: float = 0.0, hi: float = 200.0) -> RowResult:
    """A kernel result for a scan planned and irradiated on [lo, hi] with no excess."""
    dlp = c * (hi - lo) / 10
    return RowResult(
        x_lo=lo,
        x_hi=hi,
        dlp=dlp,
        excess_length=0.0,
        excess_dlp=0.0,
        effective_dose=0.0,
        excess_effective_dose=0.0,
        planned_lo=lo,
        planned_hi=hi,
        avoidable_length=0.0,
        avoidable_dlp=0.0,
        avoidable_effective_dose=0.0,
        overrange=0.0,
        proposal_lo=lo,
        proposal_hi=hi,
        proposal_dlp=dlp,
        proposal_effective_dose=0.0,
    )


def severity(f: Any) -> str | None:
    return None if f is None else str(f.severity)


# --- DRL against typical value (severity rule 5) -------------------------------------------------


@pytest.mark.parametrize(
    ("ctdivol", "expected", "statistic"),
    [
        (8.0, None, None),  # below the 9 mGy breast median
        (12.0, "info", "typical"),  # above the median, below the 26 mGy DRL
        (20.0, "info", "typical"),  # 2.2 x the median: the DRL is the investigation level
        (26.0, "info", "typical"),  # at the DRL: not above it
        (30.0, "warning", "drl"),  # 1.15 x the Irish national DRL
        (39.0, "alert", "drl"),  # 1.5 x the DRL
    ],
)
def test_breast_ctdivol_against_the_national_drl_and_the_median(
    ctdivol: float, expected: str | None, statistic: str | None
) -> None:
    f = above_reference_level(row(ctdivol_mgy=ctdivol), result(ctdivol))
    assert severity(f) == expected
    if f is not None:
        assert f.evidence["statistic"] == statistic
        assert ("DRL (75th-percentile type)" in f.message) == (statistic == "drl")
        assert ("typical value (median or mean" in f.message) == (statistic == "typical")


@pytest.mark.parametrize(
    ("ctdivol", "expected"),
    [(12.0, None), (12.1, "info"), (23.9, "info"), (24.0, "warning"), (100.0, "warning")],
)
def test_typical_value_alone_warns_only_at_twice_it_and_never_alerts(
    ctdivol: float, expected: str | None
) -> None:
    # lung_3d: 12 mGy, the Hubbard 3D-lung mean, is its only CTDIvol level
    f = above_reference_level(row("lung_3d", ctdivol_mgy=ctdivol), result(ctdivol))
    assert severity(f) == expected


def test_typical_ratio_is_a_site_setting(tmp_path: Path) -> None:
    (tmp_path / "lung_3d.toml").write_text(
        "[thresholds]\nabove_typical_warning_ratio = 1.5\nsource = 'department audit'\n"
    )
    lib = load_library(tmp_path)
    r = row("lung_3d", protocol=lib.get("lung_3d"), ctdivol_mgy=18.0)
    assert severity(above_reference_level(r, result(18.0))) == "warning"


# --- exam-level DLP ------------------------------------------------------------------------------


def event(acqs: list[dict[str, Any]], site: str = "prostate", **study: Any) -> ProtocolEvent:
    base = {"kvp": 120, "mas": 200, "ctdivol_mgy": 16.0, "type": "sequenced"}
    return ProtocolEvent.model_validate(
        {
            "schema": "lowdose.protocol/1",
            "event_id": "evt-ref",
            "emitted_at": "2026-11-26T07:00:00Z",
            "scanner": {"station_name": "CTSIM1", "model": "SimScan 16"},
            "study": {"study_instance_uid": UID, **study},
            "planning": {"site": site, "needed_z_mm": [0, 540]},
            "acquisitions": [{"index": i, **base, **a} for i, a in enumerate(acqs)],
        }
    )


# Two sequenced (no over-ranging) acquisitions of 16 mGy over 270 mm: 432 mGy.cm each.
TWO_432 = [{"z_start_mm": 0, "z_end_mm": 270}, {"z_start_mm": 270, "z_end_mm": 540}]


def exam_findings(assessments: list[Assessment]) -> list[list[tuple[str, str]]]:
    return [
        [
            (f.severity, str(f.evidence["statistic"]))
            for f in a.findings
            if f.code == "above_reference_level" and f.evidence.get("level") == "exam"
        ]
        for a in assessments
    ]


def test_exam_dlp_two_acquisitions_over_the_prostate_median_is_info() -> None:
    out = Pipeline().process([event(TWO_432)])
    assert [a.dlp_mgy_cm for a in out] == [pytest.approx(432.0), pytest.approx(432.0)]
    # 864 mGy.cm: above the 813 median (info), below the 999.7 pelvis DRL; on the second
    assert exam_findings(out) == [[], [("info", "typical")]]
    [f] = [f for f in out[1].findings if f.code == "above_reference_level"]
    assert "exam DLP to 864.0 mGy.cm" in f.message and f.evidence["exam_dlp_before_mgy_cm"] == 432.0


def test_exam_dlp_two_acquisitions_over_a_drl_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "prostate.toml").write_text(
        "[reference_dlp_mgy_cm]\nvalue = 813.0\nkind = 'drl'\n"
        "statistic = 'local DRL, 75th percentile'\nsource = 'regional audit'\n"
        "[typical_dlp_mgy_cm]\nvalue = 600.0\nkind = 'typical'\nstatistic = 'median'\n"
        "source = 'regional audit'\n"
    )
    out = Pipeline(load_library(tmp_path)).process([event(TWO_432)])
    assert exam_findings(out) == [[], [("warning", "drl")]]


def test_one_acquisition_under_the_level_has_no_exam_finding() -> None:
    out = Pipeline().process([event(TWO_432[:1])])
    assert exam_findings(out) == [[]]


def _report(n: int, dlp: float, sop: str) -> DoseReport:
    return DoseReport(
        source=sop,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67",
        sop_instance_uid=sop,
        study_instance_uid=UID,
        has_intent="therapeutic",
        acquisitions=[
            CtAcquisition(
                irradiation_event_uid=f"{UID}.{n}",
                acquisition_type="sequenced",
                mean_ctdivol_mgy=16.0,
                dlp_mgy_cm=dlp,
                top_z_mm=270.0 * n,
                bottom_z_mm=270.0 * (n - 1),
            )
        ],
    )


def test_exam_dlp_adds_up_across_reports_in_the_study_state() -> None:
    p = Pipeline()
    p.process([event(TWO_432)])
    first = p.process([_report(1, 432.0, "1.2.3.1")])
    second = p.process([_report(2, 432.0, "1.2.3.2")])
    assert exam_findings(first) == [[]]
    assert exam_findings(second) == [[("info", "typical")]]
    state = p.store.get(UID)
    assert state is not None and state.reported_exam_dlp_mgy_cm == pytest.approx(864.0)
    # a cumulative report resending the events adds nothing
    assert p.process([_report(2, 432.0, "1.2.3.3")]) == []
    assert state.reported_exam_dlp_mgy_cm == pytest.approx(864.0)


def test_exam_dlp_escalation_goes_on_the_acquisition_that_crosses() -> None:
    r = row("breast")  # DLP DRL 732 (alert from 1098), median 355
    assert exam_dlp_finding(r, 0.0, 300.0) is None
    assert severity(exam_dlp_finding(r, 300.0, 400.0)) == "info"
    assert exam_dlp_finding(r, 400.0, 700.0) is None  # still info: nothing new
    assert severity(exam_dlp_finding(r, 700.0, 800.0)) == "warning"
    assert severity(exam_dlp_finding(r, 800.0, 1100.0)) == "alert"


# --- proposals stop at the DRL (severity rule 3) -------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    site=st.sampled_from(["brain", "head_neck", "breast", "lung_3d", "lung_4dct", "prostate"]),
    ctdivol=st.floats(min_value=0.5, max_value=150.0),
)
def test_reassessing_a_proposal_gives_no_ctdivol_warning(site: str, ctdivol: float) -> None:
    r = row(site, ctdivol_mgy=ctdivol)
    scale = exposure_scale(r)
    p = build_proposal(r, result(ctdivol), scale)
    assert p.ctdivol_mgy is not None
    again = above_reference_level(row(site, ctdivol_mgy=p.ctdivol_mgy), result(p.ctdivol_mgy))
    before = above_reference_level(r, result(ctdivol))
    if before is not None and before.evidence["statistic"] == "drl":
        assert severity(again) not in ("warning", "alert")
    floor = LIB.get(site).image_quality
    assert floor is not None
    # never below the exposure floor (a published centre's median planning CTDIvol), never
    # raised, never against a median
    assert p.ctdivol_mgy >= min(ctdivol, floor.min_ctdivol_mgy) - 1e-3
    assert p.ctdivol_mgy <= ctdivol + 1e-3
    if LIB.get(site).drl("ctdivol_mgy") is None:
        assert scale == 1.0
    if scale < 1.0:
        assert any("review exposure" in c for c in p.changes)


def test_typical_value_warning_asks_for_review_without_a_number() -> None:
    # prostate 40 mGy: 2.35 x the 17 mGy median (warning), no DRL: review, no scaling
    r = row("prostate", ctdivol_mgy=40.0)
    p = build_proposal(r, result(40.0), exposure_scale(r))
    assert p.ctdivol_mgy == pytest.approx(40.0)
    assert any("review exposure" in c and "no exposure is proposed" in c for c in p.changes)
    quiet = row("prostate", ctdivol_mgy=30.0)  # 1.76 x: info only, nothing to review
    assert build_proposal(quiet, result(30.0), exposure_scale(quiet)).changes == []


def test_floor_above_the_drl_is_refused(tmp_path: Path) -> None:
    (tmp_path / "breast.toml").write_text(
        "[image_quality]\nmin_ctdivol_mgy = 30.0\nsource = 'image-quality review'\n"
    )
    with pytest.raises(Exception, match="min_ctdivol_mgy"):
        load_library(tmp_path)


# --- diagnostic intent needs corroboration (severity rule 10) ------------------------------------

GE_RT16 = SHARED / "data" / "rdsr" / "CT-RDSR-GEPixelMed.dcm"


def _ge_with_event(**study: Any) -> list[Assessment]:
    report = read_dose_report(GE_RT16, strictness=Strictness.IGNORE)
    ev = ProtocolEvent.model_validate(
        {
            "schema": "lowdose.protocol/1",
            "event_id": "evt-ge",
            "emitted_at": "2013-03-13T07:00:00Z",
            "scanner": {"model": "LightSpeed RT16"},
            "study": {"study_instance_uid": report.study_instance_uid, **study},
            "planning": {"site": "brain"},
            "acquisitions": [
                {"index": 0, "type": "spiral", "z_start_mm": 0, "z_end_mm": 200, "kvp": 120,
                 "mas": 300, "ctdivol_mgy": 40.0, "phantom": "head"},
            ],
        }
    )  # fmt: skip
    p = Pipeline()
    p.process([ev])
    return p.process([report])


@pytest.mark.realdata
def test_vendor_default_diagnostic_intent_of_the_rt16_simulator_is_info() -> None:
    assert GE_RT16.is_file(), GE_RT16
    assert read_dose_report(GE_RT16, strictness=Strictness.IGNORE).has_intent == "diagnostic"
    out = _ge_with_event()
    intents = [f for a in out for f in a.findings if f.code == "diagnostic_intent"]
    assert intents and {f.severity for f in intents} == {"info"}
    # without any protocol event (generic site) it is info too
    report = read_dose_report(GE_RT16, strictness=Strictness.IGNORE)
    alone = Pipeline().process([report])
    assert {f.severity for a in alone for f in a.findings if f.code in MINE} <= {"info"}


@pytest.mark.realdata
def test_diagnostic_intent_corroborated_by_purpose_or_name_is_a_warning() -> None:
    out = _ge_with_event(purpose="diagnostic")
    assert {f.severity for a in out for f in a.findings if f.code == "diagnostic_intent"} == {
        "warning"
    }
    referred = _ge_with_event(study_description="CT head staging")
    assert {f.severity for a in referred for f in a.findings if f.code == "diagnostic_intent"} == {
        "warning"
    }


def test_diagnostic_name_alone_is_info_and_planning_names_are_silent() -> None:
    ev = event([{"z_start_mm": 0, "z_end_mm": 270, "series_description": "CTA pelvis"}])
    [a] = Pipeline().process([ev])
    assert [(f.code, f.severity) for f in a.findings if f.code == "diagnostic_intent"] == [
        ("diagnostic_intent", "info")
    ]
    names = LIB.get("prostate").diagnostic_names
    assert names.match("RT Pelvis planning", "RADIOTHERAPY QA", "Helical 2.5mm") is None
    assert names.match("Abdomen_Staging") is not None
    r = row("prostate", diagnostic_intent="x", diagnostic_corroborated=False)
    assert severity(diagnostic_intent(r)) == "info"


# --- no protocol event: generic site -------------------------------------------------------------


def test_generic_site_findings_are_info_only_and_have_no_levels() -> None:
    report = DoseReport(
        source="g",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67",
        sop_instance_uid="1.2.3.99",
        study_instance_uid="1.2.3.4.5",
        has_intent="diagnostic",
        acquisitions=[
            CtAcquisition(
                irradiation_event_uid="1.2.3.4.5.1",
                acquisition_type="spiral",
                mean_ctdivol_mgy=90.0,
                dlp_mgy_cm=4000.0,
                acquisition_protocol="Abdomen staging",
                sources=[SourceParameters(kvp=80.0)],
            )
        ],
    )
    [a] = Pipeline().process([report])
    assert a.site == "generic"
    mine = [f for f in a.findings if f.code in MINE]
    # RDSR intent with a diagnostic name and 80 kV would be warnings on a planning site
    assert {f.code for f in mine} == {"diagnostic_intent", "kv_not_calibrated"}
    assert all(f.severity == "info" for f in mine), mine
    assert not [f for f in a.findings if f.code == "above_reference_level"]
    generic = LIB.get("generic")
    assert generic.levels("ctdivol_mgy") == [] and generic.levels("dlp_mgy_cm") == []


@pytest.mark.realdata
def test_stationary_and_free_acquisitions_are_not_compared_with_planning_levels() -> None:
    for kind in ("stationary", "free"):
        r = row("breast", acquisition_type=kind, helical=False, ctdivol_mgy=222.6)
        assert above_reference_level(r, result(222.6)) is None
        assert exposure_scale(r) == 1.0
    # the GE RT16 report's stationary event (222.59 mGy) raises no CTDIvol level finding
    out = _ge_with_event()
    stationary = [a for a in out if a.acquisition_type == "stationary"]
    assert stationary
    assert not [
        f
        for f in stationary[0].findings
        if f.code == "above_reference_level" and f.evidence["level"] == "acquisition"
    ]


# --- SSDE fit (severity rule 11) -----------------------------------------------------------------


def test_ssde_tg293_for_head_scans_only_tg204_16cm_for_neck() -> None:
    # D_w 15 cm: TG-293 f = 1.9852 exp(-0.0486 x 15);
    # TG-204 16 cm f = 1.874799 exp(-0.03871313 x 15)
    tg293 = 1.9852 * math.exp(-0.0486 * 15.0)
    tg204 = 1.874799 * math.exp(-0.03871313 * 15.0)
    assert ssde_mgy(10.0, 150.0, "head", "tg293") == pytest.approx(10 * tg293)
    assert ssde_mgy(10.0, 150.0, "head", "tg204_16cm") == pytest.approx(10 * tg204)
    assert LIB.get("brain").ssde.head_fit == "tg293"
    assert LIB.get("head_neck").ssde.head_fit == "tg204_16cm"
    for site, factor in (("brain", tg293), ("head_neck", tg204)):
        p = Pipeline()
        p.image_sizes[UID] = (150.0, "D_w 150 mm (test)")
        ev = event(
            [{"z_start_mm": 0, "z_end_mm": 270, "phantom": "head", "ctdivol_mgy": 10.0}], site
        )
        [a] = p.process([ev])
        assert a.ssde_mgy == pytest.approx(10 * factor, abs=1e-3), site


@settings(max_examples=40, deadline=None)
@given(
    site=st.sampled_from(["head_neck", "breast", "prostate", "lung_3d"]),
    ctdivol=st.floats(min_value=1.0, max_value=120.0),
)
def test_reassessed_proposal_event_has_no_ctdivol_level_warning(site: str, ctdivol: float) -> None:
    # a protocol event, its proposal sent back as a protocol event: the CTDIvol comparison of
    # the proposal is never a warning or alert (exam DLP is the study's, see docs/findings.md)
    acq = {"z_start_mm": 0, "z_end_mm": 300, "type": "spiral", "ctdivol_mgy": ctdivol,
           "pitch": 1.0, "total_collimation_mm": 40.0}  # fmt: skip
    [a] = Pipeline().process([event([acq], site)])
    assert a.proposal is not None and a.proposal.ctdivol_mgy is not None
    lo, hi = a.proposal.z_mm
    again = {**acq, "z_start_mm": lo, "z_end_mm": hi, "ctdivol_mgy": a.proposal.ctdivol_mgy,
             "mas": a.proposal.mas}  # fmt: skip
    [b] = Pipeline().process([event([again], site)])
    bad = [
        f
        for f in b.findings
        if f.code == "above_reference_level"
        and f.evidence["level"] == "acquisition"
        and f.severity != "info"
        and f.evidence["statistic"] == "drl"
    ]
    assert bad == []


def test_diagnostic_keywords_match_whole_words_however_written() -> None:
    """A department's keyword is normalised like the names it is looked for in: a hyphen or
    underscore in either reads as a space, case is ignored, and only whole words match."""
    from protocols.library import DiagnosticKeywords

    names = DiagnosticKeywords(keywords=["multi-phase", "Triple  Phase", "cta"], source="test")
    assert names.match("MULTI_PHASE abdomen") == "'MULTI_PHASE abdomen' (multi-phase)"
    assert names.match(None, "", "liver triple-phase") == "'liver triple-phase' (Triple  Phase)"
    assert names.match("RT thorax planning", "actual planning") is None  # no "cta" inside a word
    assert names.match("Thorax CTA") == "'Thorax CTA' (cta)"
