"""Bounds of a protocol event at the boundary (issue 10, defects 2 and 3).

- NaN and ±Infinity are refused in every float (a NaN end position gave a 30 mm scan instead of
  300 mm; an Infinity became ``null`` in the changelog and the state was skipped on restart).
- Absurd values (z beyond the table, a scan longer than any couch, kV above any tube) are
  refused with the field named.
- One event holds a bounded number of acquisitions and bounded strings, so that the state record
  holding it stays far below the producer's 1 MB request limit (4,000 acquisitions made a
  1.2 MB state record that crash-looped the service).
Each refusal is an ``InputError`` naming the field: the service sends it to the DLQ with that
reason. Correctly planned events, the largest allowed included, still pass.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from optimiser import events
from optimiser.errors import InputError
from optimiser.events import parse_protocol_event
from optimiser.state import StudyState


def _event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema": "lowdose.protocol/1",
        "event_id": "e-1",
        "emitted_at": "2026-11-29T10:00:00Z",
        "scanner": {"station_name": "CTSIM1"},
        "study": {"study_instance_uid": "1.2.3.4", "accession_number": "A1"},
        "planning": {"site": "prostate", "needed_z_mm": [-120.0, 80.0]},
        "acquisitions": [
            {
                "index": 0,
                "type": "spiral",
                "z_start_mm": -150.0,
                "z_end_mm": 150.0,
                "kvp": 120.0,
                "mas": 250.0,
                "ctdivol_mgy": 12.0,
            }
        ],
    }
    for path, value in changes.items():
        target = event
        *parents, last = path.split("__")
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        target[last] = value
    return event


def _raw(event: dict[str, Any], **literal: str) -> bytes:
    """JSON with some values written literally (NaN, Infinity are not JSON numbers)."""
    text = json.dumps(event)
    for placeholder, value in literal.items():
        text = text.replace(f'"{placeholder}"', value)
    return text.encode()


def test_a_correct_event_passes() -> None:
    event = parse_protocol_event(json.dumps(_event()))
    assert event.acquisitions[0].z_range_mm == (-150.0, 150.0)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
@pytest.mark.parametrize(
    "field",
    [
        "acquisitions__0__z_end_mm",
        "acquisitions__0__z_start_mm",
        "acquisitions__0__kvp",
        "acquisitions__0__mas",
        "acquisitions__0__ctdivol_mgy",
        "planning__isocentre_z_mm",
    ],
)
def test_non_finite_numbers_are_refused_naming_the_field(field: str, literal: str) -> None:
    data = _raw(_event(**{field: "PLACEHOLDER"}), PLACEHOLDER=literal)
    with pytest.raises(InputError, match=field.replace("__", ".")):
        parse_protocol_event(data)


@pytest.mark.parametrize("literal", ["NaN", "Infinity"])
def test_non_finite_range_ends_are_refused(literal: str) -> None:
    event = _event()
    event["planning"]["needed_z_mm"] = [-120.0, "PLACEHOLDER"]
    event["planning"]["organs_z_mm"] = {"bladder": [-50.0, -10.0]}
    with pytest.raises(InputError, match="needed_z_mm"):
        parse_protocol_event(_raw(event, PLACEHOLDER=literal))
    event = _event()
    event["planning"]["organs_z_mm"] = {"bladder": [-50.0, "PLACEHOLDER"]}
    with pytest.raises(InputError, match="organs_z_mm"):
        parse_protocol_event(_raw(event, PLACEHOLDER=literal))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("acquisitions__0__z_end_mm", 1e9),
        ("acquisitions__0__z_start_mm", -20_000.0),
        ("acquisitions__0__kvp", 5000.0),
        ("acquisitions__0__mas", 1e9),
        ("acquisitions__0__ctdivol_mgy", 1e7),
        ("acquisitions__0__pitch", 100.0),
        ("acquisitions__0__rotation_time_s", 1000.0),
        ("acquisitions__0__total_collimation_mm", 5000.0),
        ("acquisitions__0__slice_thickness_mm", 1000.0),
        ("acquisitions__0__index", 10**9),
        ("planning__isocentre_z_mm", 1e9),
        ("planning__needed_z_mm", [-1e9, 1e9]),
        ("planning__target_z_mm", [0.0, 50_000.0]),
    ],
)
def test_absurd_values_are_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(InputError, match=field.split("__")[-1]):
        parse_protocol_event(json.dumps(_event(**{field: value})))


def test_a_scan_longer_than_any_couch_is_refused() -> None:
    data = _event(acquisitions__0__z_start_mm=-4000.0, acquisitions__0__z_end_mm=4000.0)
    with pytest.raises(InputError, match="longer than"):
        parse_protocol_event(json.dumps(data))


def test_too_many_acquisitions_are_refused_with_the_limit() -> None:
    event = _event()
    one = event["acquisitions"][0]
    event["acquisitions"] = [{**one, "index": i} for i in range(events.MAX_ACQUISITIONS + 1)]
    with pytest.raises(InputError, match=f"at most {events.MAX_ACQUISITIONS}"):
        parse_protocol_event(json.dumps(event))
    event["acquisitions"] = event["acquisitions"][: events.MAX_ACQUISITIONS]
    assert len(parse_protocol_event(json.dumps(event)).acquisitions) == events.MAX_ACQUISITIONS


@pytest.mark.parametrize(
    "field",
    [
        "scanner__station_name",
        "scanner__manufacturer",
        "study__accession_number",
        "study__patient_id",
        "study__study_description",
        "planning__site",
        "acquisitions__0__kernel",
        "acquisitions__0__series_description",
    ],
)
def test_megabyte_strings_are_refused_naming_the_field(field: str) -> None:
    with pytest.raises(InputError, match=field.split("__")[-1]):
        parse_protocol_event(json.dumps(_event(**{field: "x" * 1_000_000})))


def test_too_many_organ_ranges_are_refused() -> None:
    organs = {f"organ{i}": [0.0, 1.0] for i in range(events.MAX_ORGANS + 1)}
    with pytest.raises(InputError, match="organs_z_mm"):
        parse_protocol_event(json.dumps(_event(planning__organs_z_mm=organs)))


def _largest_event() -> dict[str, Any]:
    """Every string at its maximum length, every list at its maximum count."""
    s = events.MAX_TEXT
    event = _event()
    event["event_id"] = "e" * 200
    event["scanner"] = {k: "s" * s for k in ("station_name", "manufacturer", "model")}
    event["scanner"]["device_serial"] = "d" * s
    event["study"].update(
        accession_number="a" * events.MAX_ID,
        patient_id="p" * events.MAX_ID,
        study_description="d" * s,
        study_instance_uid="1" * 64,
    )
    event["planning"]["site"] = "x" * events.MAX_NAME
    event["planning"]["organs_z_mm"] = {
        f"{i:0{events.MAX_NAME}d}": [-1000.0 - i / 7, 1000.0 + i / 7]
        for i in range(events.MAX_ORGANS)
    }
    event["schema"] = events.PROTOCOL_SCHEMA_1_1  # its optional fields too
    one = event["acquisitions"][0]
    one.update(
        kernel="k" * events.MAX_NAME,
        series_description="s" * s,
        repeat_reason="patient_motion",
        repeat_reason_text="r" * s,
        pitch=1.234567891234,
        total_collimation_mm=38.4,
        rotation_time_s=0.5,
        slice_thickness_mm=2.0,
    )
    event["acquisitions"] = [
        {**one, "index": i, "z_start_mm": -1234.567891234 - i, "mas": 123.456789123 + i}
        for i in range(events.MAX_ACQUISITIONS)
    ]
    return event


def test_the_largest_allowed_event_keeps_a_state_record_far_below_one_megabyte() -> None:
    event = parse_protocol_event(json.dumps(_largest_event()))
    size = len(StudyState(study_instance_uid="1" * 64, protocol_event=event).to_json())
    assert size <= events.MAX_EVENT_STATE_BYTES < 1_048_576 // 4, size
