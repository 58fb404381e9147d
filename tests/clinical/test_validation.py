"""The clinical validation gate: every labelled case in tests/clinical/cases, through the pipeline.

One test per case (so a failure names it) and one gate over the whole set: 100% detection and
no false warning or alert. Cases whose expected behaviour lands with the core changes of issue 9
(other branches) are listed in ``KNOWN_FAILING`` with the severity rule they wait for, and marked
``xfail(strict=True)``: when a merge makes one pass, its test fails until it leaves the list.
The shared real dose reports are read from ../shared through tests/paths.py, never copied.
"""

from __future__ import annotations

import os

import pytest

from lowdose.validation import (
    DEFAULT_CASES_DIR,
    ClinicalCase,
    load_cases,
    run_case,
    run_cases,
    summary_lines,
)
from tests.paths import SHARED

# Case id -> the rule of docs/severity-rules.md (issue 9) the case waits for. Empty this list as the
# core changes are merged; never weaken a case's expectation to take it off.
KNOWN_FAILING: dict[str, str] = {}

CASES: list[ClinicalCase] = load_cases(DEFAULT_CASES_DIR)
SHARED_RDSR = SHARED / "data" / "rdsr"


def _needs_shared(case: ClinicalCase) -> bool:
    return any(i.shared_rdsr is not None for i in case.inputs)


def _skip_without_shared() -> None:
    if not SHARED_RDSR.is_dir():
        message = f"shared dose reports not found at {SHARED_RDSR} (set LOWDOSE_SHARED_DIR)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"mandatory under CI: {message}")
        pytest.skip(message)


def _param(case: ClinicalCase) -> object:
    marks = [pytest.mark.realdata] if _needs_shared(case) else []
    if case.id in KNOWN_FAILING:
        marks.append(pytest.mark.xfail(strict=True, reason=f"waits for {KNOWN_FAILING[case.id]}"))
    return pytest.param(case, id=case.id, marks=marks)


def test_the_set_is_large_and_covers_every_site_code_and_real_report() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert set(KNOWN_FAILING) <= {c.id for c in CASES}, "KNOWN_FAILING names no case"
    from optimiser.finding_codes import FINDING_CODES
    from protocols.site_ids import BUILTIN_SITES, GENERIC_SITE

    expected_codes = {f.code for c in CASES for e in c.expect for f in e.findings}
    assert expected_codes == set(FINDING_CODES)
    clean_sites = {
        str(i.protocol_event["planning"]["site"])  # type: ignore[index]
        for c in CASES
        if c.clean
        for i in c.inputs
        if i.protocol_event is not None
    }
    assert clean_sites == set(BUILTIN_SITES) - {GENERIC_SITE}
    shared = {i.shared_rdsr for c in CASES for i in c.inputs if i.shared_rdsr is not None}
    if SHARED_RDSR.is_dir():
        assert shared == {p.name for p in SHARED_RDSR.glob("*.dcm")}
    for case in CASES:
        assert case.rule.startswith("severity rule") and case.source and case.rationale


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_case(case: ClinicalCase) -> None:
    if _needs_shared(case):
        _skip_without_shared()
    result = run_case(case, SHARED)
    assert result.passed, "\n".join([*result.problems, *result.unexpected])


@pytest.mark.skipif(
    bool(KNOWN_FAILING),
    reason=f"{len(KNOWN_FAILING)} case(s) in KNOWN_FAILING wait for the core changes of issue 9 "
    "(severity rules 1, 5, 10); the gate runs once the list is empty",
)
def test_gate_full_detection_and_no_false_warnings_or_alerts() -> None:
    _skip_without_shared()
    summary = run_cases(CASES, SHARED)
    detected, expected = summary.detected
    flagged, _ = summary.clean_false
    assert detected == expected, "\n".join(summary_lines(summary))
    assert flagged == 0 and summary.unexpected_total == 0, "\n".join(summary_lines(summary))
    assert summary.passed
