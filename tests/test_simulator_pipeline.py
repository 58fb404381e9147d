"""The simulator's injected problems are exactly what the optimiser finds (same pipeline as the
service, in-process): no clean study is flagged, no injected problem is missed."""

from __future__ import annotations

import pytest

from optimiser.cli.demo import assess_day
from optimiser.report import build_report
from optimiser.simulate import ProblemRates, simulate_feed


@pytest.mark.parametrize("seed", [3, 17])
def test_findings_equal_injected_problems(seed: int) -> None:
    rates = ProblemRates.from_mapping(dict.fromkeys(ProblemRates.codes(), 0.15))
    studies = simulate_feed(40, seed=seed, problem_rates=rates)
    assessments, references = assess_day(studies, batch_size=7, show_progress=False)
    event_index = {d.irradiation_event_uid: d.index for s in studies for d in s.delivered}
    report = build_report(assessments, title="t", event_index=event_index)
    assert set(references) == {s.site for s in studies}
    found: dict[str, set[str]] = {s.study_instance_uid: set() for s in studies}
    for row in report.rows:
        found[row.study_instance_uid].update(row.codes)
    for study in studies:
        assert found[study.study_instance_uid] == set(study.injected), (study.site, study.injected)
    assert any(s.injected for s in studies) and any(not s.injected for s in studies)
