"""Labelling findings from PACS series: detection and silence (no PACS needed)."""

from __future__ import annotations

from typing import Any

from ingest.pacs import SeriesLabel, unlabelled_planning_findings
from ingest.settings import DEFAULT_PLANNING_LABELS


def test_unlabelled_ct_series_is_flagged_with_its_description() -> None:
    series = [
        SeriesLabel("1.1", "CT", "Thorax 1.0 B31f"),
        SeriesLabel("1.2", "CT", "RT PLANNING CT"),
        SeriesLabel("1.3", "SR", "Dose Report"),  # not an image series: never flagged
        SeriesLabel("1.4", "RTSTRUCT", "Contours"),
    ]
    found = unlabelled_planning_findings(series, DEFAULT_PLANNING_LABELS)
    assert [(f.code, f.severity) for f in found] == [("unlabelled_planning_scan", "warning")]
    assert found[0].evidence["series_description"] == "Thorax 1.0 B31f"
    assert found[0].evidence["series_instance_uid"] == "1.1"


def test_labelled_planning_series_are_silent() -> None:
    series = [SeriesLabel("2.1", "CT", "Pelvis planning 2mm"), SeriesLabel("2.2", "CT", "RTP H&N")]
    assert unlabelled_planning_findings(series, DEFAULT_PLANNING_LABELS) == []


def test_department_labels_replace_the_defaults() -> None:
    series = [SeriesLabel("3.1", "CT", "SIM CT Brain")]
    assert unlabelled_planning_findings(series, ["sim ct"]) == []
    assert len(unlabelled_planning_findings(series, ["planning"])) == 1


def test_the_pacs_answer_replaces_the_event_flag_and_goes_on_the_first_assessment() -> None:
    from ingest.pacs import apply_labelling
    from optimiser.pipeline import Pipeline
    from simulator import simulate_feed

    [study] = simulate_feed(1, seed=6)
    event = study.protocol_event.model_copy(
        update={"study": study.protocol_event.study.model_copy(update={"labelled_planning": False})}
    )
    assessed = Pipeline().process([event])
    assert len(assessed) >= 1
    uid = event.study.study_instance_uid

    def codes(a: Any) -> list[str]:
        return [f.code for f in a.findings if f.code == "unlabelled_planning_scan"]

    assert all(codes(a) for a in assessed)  # the event's own flag, on every acquisition
    # PACS: every CT series labelled -> the event's flag is gone (one source speaks).
    assert not any(codes(a) for a in apply_labelling(assessed, {uid: []}))
    # PACS: one unlabelled series -> one finding, on the first assessment only.
    series = [SeriesLabel("1.2.3", "CT", "Thorax 1.0 B31f")]
    with_pacs = apply_labelling(assessed, {uid: unlabelled_planning_findings(series, ["rtp"])})
    assert [len(codes(a)) for a in with_pacs] == [1] + [0] * (len(assessed) - 1)
    # A study not queried is left as it was.
    assert apply_labelling(assessed, {}) == assessed
