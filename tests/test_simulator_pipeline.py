"""The simulator's injected problems are what the optimiser finds (same pipeline as the service,
in-process): no clean study is flagged and no injected problem is missed."""

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
    flagged: dict[str, set[str]] = {s.study_instance_uid: set() for s in studies}
    dlp_driven: set[str] = set()  # studies flagged above the reference by exam DLP alone
    for row in report.rows:
        found[row.study_instance_uid].update(row.codes)
        for f in row.findings:
            if f.severity != "info":  # info is not a flag (a typical value exceeded)
                flagged[row.study_instance_uid].add(f.code)
            if f.code == "above_reference_level" and f.evidence.get("quantity") == "dlp_mgy_cm":
                dlp_driven.add(row.study_instance_uid)
    dlp_causes = {"excess_coverage", "repeat_acquisition", "multiphase_contrast"}
    for study in studies:
        expected = set(study.injected)
        uid = study.study_instance_uid
        if expected & dlp_causes and uid in dlp_driven:
            # extra length or a surplus acquisition can push the exam DLP over the site's
            # DLP level: a consequence of the injected problem, not a separate one
            expected.add("above_reference_level")
        # every injected problem is found (at its own severity; against a typical value
        # above_reference_level is info), and nothing else is a warning or alert
        assert expected <= found[uid], (study.site, sorted(study.injected))
        assert flagged[uid] <= expected, (study.site, sorted(study.injected))
    assert any(s.injected for s in studies) and any(not s.injected for s in studies)
