"""The study state keeps no patient identifier (issue 10, defect 6): it is written to the
`lowdose.state.v1` changelog, so the Patient ID and accession number of the protocol event are
removed before the state is stored; a later dose report still finds its event (by Study
Instance UID) and is assessed against the event's site."""

from __future__ import annotations

from optimiser.dicom import read_dose_report
from optimiser.events import ProtocolEvent
from optimiser.pipeline import Pipeline
from simulator import SimulatedStudy, simulate_feed


def _with_identifiers(study: SimulatedStudy, patient_id: str, accession: str) -> ProtocolEvent:
    """The study's protocol event carrying this Patient ID and accession number."""
    event = study.protocol_event
    return event.model_copy(
        update={
            "study": event.study.model_copy(
                update={"patient_id": patient_id, "accession_number": accession}
            )
        }
    )


def test_state_holds_no_patient_id_or_accession_and_reports_still_find_their_event() -> None:
    [study] = simulate_feed(1, seed=4)
    event = _with_identifiers(study, "PAT-SECRET-123", "ACC-SECRET-9")
    pipeline = Pipeline()
    from_event = pipeline.process([event])
    assert from_event and all(a.accession_number == "ACC-SECRET-9" for a in from_event)
    state = pipeline.store.get(event.study.study_instance_uid)
    assert state is not None and state.protocol_event is not None
    record = state.to_json()
    assert b"PAT-SECRET-123" not in record and b"ACC-SECRET-9" not in record
    assert state.protocol_event.planning == event.planning  # what assessment needs is kept

    report = read_dose_report(study.rdsr_bytes, source="sim")
    from_report = pipeline.process([report])
    assert from_report and {a.site for a in from_report} == {event.planning.site}


def test_without_identifiers_is_what_model_copy_gives_and_leaves_the_event_alone() -> None:
    [study] = simulate_feed(1, seed=6)
    event = _with_identifiers(study, "PAT-1", "ACC-1")
    before = event.to_json()
    stripped = event.without_identifiers()
    twin_study = event.study.model_copy(update={"patient_id": None, "accession_number": None})
    twin = event.model_copy(update={"study": twin_study})
    assert stripped == twin and stripped.study == twin_study
    assert stripped.to_json() == twin.to_json() and "PAT-1" not in stripped.to_json()
    assert stripped.model_fields_set == twin.model_fields_set
    assert stripped.study.model_fields_set == twin_study.model_fields_set
    assert repr(stripped.study.__dict__) == repr(twin_study.__dict__)
    assert event.to_json() == before and event.study.patient_id == "PAT-1"
