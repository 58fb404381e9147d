"""Kernel rows are built once from their parts and never changed after: assigning a field of
the row (a frozen dataclass) or of any part (named tuples; N a frozen dataclass) raises; the
batch derives a new row where CT images give CTDIvol(z)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields

import numpy as np
import pytest

from optimiser import batch
from optimiser.dicom import read_dose_report
from optimiser.dose_model import AcquisitionRow
from optimiser.pipeline import Pipeline
from simulator import simulate_feed


def _rows() -> list[AcquisitionRow]:
    """Rows of both sources: a simulated study's protocol event, then its dose report."""
    study = simulate_feed(1, seed=4)[0]
    pipeline = Pipeline()
    rows = pipeline.rows.event_rows(study.protocol_event)
    rows += pipeline.rows.report_rows(read_dose_report(study.rdsr_bytes, source="r.dcm"))
    assert {r.identity.input_kind for r in rows} == {"protocol_event", "dose_report"}
    return rows


def test_no_field_of_a_row_or_its_parts_can_be_assigned() -> None:
    for row in _rows():
        for f in fields(row):
            with pytest.raises(FrozenInstanceError):
                setattr(row, f.name, getattr(row, f.name))
        for part in (row.identity, row.geometry, row.exposure, row.context):
            for name in part._fields:
                with pytest.raises(AttributeError):
                    setattr(part, name, getattr(part, name))
        needed = row.context.needed
        for f in fields(needed):
            with pytest.raises(FrozenInstanceError):
                setattr(needed, f.name, getattr(needed, f.name))


def test_the_batch_notes_ctdivol_z_on_a_new_row_and_leaves_the_given_ones() -> None:
    pipeline = Pipeline()
    rows = pipeline.rows.event_rows(simulate_feed(1, seed=4)[0].protocol_event)
    uid = rows[0].identity.study_instance_uid
    profiles = {uid: (np.array([-300.0, 0.0, 300.0]), np.array([1.0, 2.0, 1.0]))}
    before = [r.context.notes for r in rows]
    run = batch.run(rows, pipeline.site_index, pipeline.tables, profiles)
    assert [r.context.notes for r in rows] == before
    for given, derived in zip(rows, run.rows, strict=True):
        assert derived is not given
        assert derived.context.notes[:-1] == given.context.notes
        assert derived.context.notes[-1].startswith("CTDIvol(z) follows the per-image CTDIvol")
        assert (derived.identity, derived.geometry, derived.exposure) == (
            given.identity,
            given.geometry,
            given.exposure,
        )
