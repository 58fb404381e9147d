"""The simulator's injected problems are what the optimiser flags (same pipeline as the service,
in-process): every injected problem is raised at warning or alert, and no clean study (planned on
N within the tolerance, delivered with its scanner's real over-ranging) gets a warning or an
alert. The severity rules are issue 9's (docs/severity-rules.md).
"""

from __future__ import annotations

import pytest

from lowdose.commands.demo import assess_day, simulator_check
from simulator import ProblemRates, simulate_feed

# A consequence a physicist would also flag: an injected excess, repeat or extra phase (or the
# exposure itself) can take the exam DLP over a reference level, and a typical-value site's
# 2x level can lie above the Dose Check notification value (brain: 2 x 41 > 80 mGy).
CONSEQUENCES: dict[str, set[str]] = {
    "excess_coverage": {"above_reference_level"},
    "repeat_acquisition": {"above_reference_level"},
    "multiphase_contrast": {"above_reference_level"},
    "above_reference_level": {"dose_check_exceeded"},
}


def _flagged(seed: int) -> tuple[list[tuple[str, set[str], set[str]]], object]:
    rates = ProblemRates.from_mapping(dict.fromkeys(ProblemRates.codes(), 0.15))
    studies = simulate_feed(40, seed=seed, problem_rates=rates)
    assessments, references = assess_day(studies, batch_size=7, show_progress=False)
    assert set(references) == {s.site for s in studies}
    found: dict[str, set[str]] = {s.study_instance_uid: set() for s in studies}
    for a in assessments:
        found[a.study_instance_uid].update(f.code for f in a.findings if f.severity != "info")
    rows = [(s.site, set(s.injected), found[s.study_instance_uid]) for s in studies]
    return rows, simulator_check(assessments, studies)


@pytest.mark.parametrize("seed", [3, 17])
def test_every_injected_problem_is_a_warning_or_alert(seed: int) -> None:
    rows, check = _flagged(seed)
    for site, injected, found in rows:
        assert injected <= found, (site, sorted(injected), sorted(found))
    assert any(injected for _, injected, _ in rows)
    assert check.detected == check.injected  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", [3, 17])
def test_clean_studies_raise_no_warning_and_findings_follow_the_injected(seed: int) -> None:
    rows, _ = _flagged(seed)
    assert any(not injected for _, injected, _ in rows)
    for site, injected, found in rows:
        allowed = set(injected).union(*(CONSEQUENCES.get(c, set()) for c in injected))
        assert injected <= found <= allowed, (site, sorted(injected), sorted(found))
