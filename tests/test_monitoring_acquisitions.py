"""Issue 20 defects 1 and 2: a stationary or free acquisition (bolus-tracking monitoring, a
perfusion or a test-bolus level) is its own dose class (planning-ct.md section 8: one helical
acquisition, one phase, for planning). It is not a contrast phase nor a repeat of the planning
scan, and its proposal never changes its range: stretching a 10 mm monitoring level over the
needed range would add dose (a proposal never adds dose).

Both directions: the planning event with a monitoring scan raises no warning, and two enhanced
planning spirals over one range still raise ``multiphase_contrast``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from optimiser.assessment import Assessment
from optimiser.events import parse_protocol_event
from optimiser.pipeline import Pipeline

N_MM = (-200.0, 150.0)


def _acquisition(index: int, kind: str, z: tuple[float, float], **extra: Any) -> dict[str, Any]:
    acq: dict[str, Any] = {
        "index": index,
        "type": kind,
        "z_start_mm": z[1],
        "z_end_mm": z[0],
        "kvp": 120.0,
        "mas": 40.0,
        "ctdivol_mgy": 8.0,
        "phantom": "head",
        "contrast": "with",
        "series_description": f"{kind} {index}",
    }
    acq.update(extra)
    return acq


def _event(acquisitions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schema": "lowdose.protocol/1",
        "event_id": "monitoring-1",
        "emitted_at": "2026-01-05T09:00:00Z",
        "scanner": {"station_name": "CTSIM3", "manufacturer": "GE", "model": "LightSpeed RT16"},
        "study": {
            "study_instance_uid": "2.25.2020202020202020",
            "accession_number": "MON1",
            "study_description": "RT Planning CT",
            "purpose": "rt_planning",
            "labelled_planning": True,
        },
        "planning": {"site": "head_neck", "needed_z_mm": list(N_MM)},
        "acquisitions": [
            _acquisition(0, "localizer", (-300.0, 200.0), ctdivol_mgy=0.1, contrast="none"),
            *acquisitions,
        ],
    }


SPIRAL = {"pitch": 0.94, "total_collimation_mm": 20.0, "slice_thickness_mm": 2.0}


def _assess(event: dict[str, Any]) -> list[Assessment]:
    return Pipeline().process([parse_protocol_event(json.dumps(event).encode(), source="test")])


def _serious(a: Assessment) -> list[str]:
    return [f.code for f in a.findings if f.severity in ("warning", "alert")]


@pytest.mark.parametrize("kind", ["stationary", "free"])
def test_a_monitoring_level_is_not_a_phase_and_keeps_its_range(kind: str) -> None:
    monitoring = _acquisition(1, kind, (0.0, 10.0))
    planning = _acquisition(2, "spiral", N_MM, **SPIRAL)
    out = _assess(_event([monitoring, planning]))
    assert [a.acquisition_type for a in out] == [kind, "spiral"]
    for a in out:
        assert _serious(a) == [], (a.acquisition_type, a.findings)
        assert "multiphase_contrast" not in [f.code for f in a.findings]
    level = out[0]
    assert level.proposal is not None
    # The proposal keeps the 10 mm level: no range change, no dose added, nothing saved.
    assert tuple(level.proposal.z_mm) == (0.0, 10.0)
    assert not any(c.startswith("range") for c in level.proposal.changes)
    assert level.proposal.dlp_saving_mgy_cm == 0.0
    assert level.proposal.dlp_mgy_cm == level.dlp_mgy_cm


def test_a_monitoring_level_before_a_second_enhanced_spiral_does_not_hide_the_extra_phase() -> None:
    out = _assess(
        _event(
            [
                _acquisition(1, "stationary", (0.0, 10.0)),
                _acquisition(2, "spiral", N_MM, **SPIRAL),
                _acquisition(3, "spiral", N_MM, **SPIRAL, contrast="delayed"),
            ]
        )
    )
    assert [_serious(a) for a in out] == [[], [], ["multiphase_contrast"]]
    extra = next(f for f in out[2].findings if f.code == "multiphase_contrast")
    assert extra.evidence["contrast_phases"] == 2


def test_no_proposal_in_the_event_adds_dose() -> None:
    out = _assess(
        _event(
            [
                _acquisition(1, "stationary", (0.0, 10.0)),
                _acquisition(2, "free", (-40.0, -30.0)),
                _acquisition(3, "spiral", (-260.0, 190.0), **SPIRAL),
            ]
        )
    )
    for a in out:
        assert a.proposal is not None
        assert a.proposal.dlp_saving_mgy_cm >= 0.0, (a.acquisition_type, a.proposal)
    # The over-scanning spiral is still trimmed to N plus tolerance (detection kept).
    assert out[2].proposal is not None and out[2].proposal.dlp_saving_mgy_cm > 0.0
