"""Labelling findings from PACS series: detection and silence (no PACS needed)."""

from __future__ import annotations

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
