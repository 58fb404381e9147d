"""The pipeline builds its output models trusted (optimiser.assessment.trusted: no validation).

That is safe only while every value it passes is already what validation would make of it. For
every assessment, finding and proposal the pipeline builds from the clinical cases and from a
simulated feed (protocol events, dose reports, CT-image sizes and dose profiles, department
levels), validating the same values must give the same fields, with the same types and in the
same order, the same fields set, and the same JSON (also from the shortcuts
Assessment.to_json / json_bytes take to it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from lowdose.validation import DEFAULT_CASES_DIR, build_inputs, load_cases
from optimiser.assessment import Assessment, Finding, Proposal, trusted
from optimiser.dicom import read_dose_report
from optimiser.inputs import PipelineInput
from optimiser.levels import department_levels, with_department_levels
from optimiser.pipeline import Pipeline
from optimiser.ssde import ImageSize, PixelGeometry
from protocols.library import builtin_library
from simulator import simulate_feed
from tests.paths import SHARED


def _simulated() -> Iterator[Assessment]:
    studies = simulate_feed(40, seed=5)
    items: list[PipelineInput] = []
    for s in studies:
        items += [s.protocol_event, read_dose_report(s.rdsr_bytes, source="sim.dcm")]
    geometry = PixelGeometry(0.7, 0.7, "pixel_spacing")
    sizes = [
        ImageSize(200.0 + k, 0.0, False, geometry, study_instance_uid=s.study_instance_uid,
                  z_mm=-100.0 + 80.0 * k, profile_weight=10.0 + k)
        for s in studies[::2]
        for k in range(3)
    ]  # fmt: skip
    history: list[Assessment] = []
    for library in (builtin_library(), None):
        if library is None:
            library = with_department_levels(builtin_library(), department_levels(history))
        pipeline = Pipeline(library)
        pipeline.add_image_sizes(sizes)
        for i in range(0, len(items), 10):
            out = pipeline.process(items[i : i + 10])
            history += out
            yield from out


def _clinical() -> Iterator[Assessment]:
    for case in load_cases(DEFAULT_CASES_DIR):
        if any(i.shared_rdsr is not None for i in case.inputs) and not SHARED.is_dir():
            continue
        pipeline = Pipeline()
        for item, _ in build_inputs(case, SHARED):
            yield from pipeline.process([item])


def _same_as_validated(model: BaseModel) -> None:
    cls = type(model)
    given = {name: getattr(model, name) for name in model.model_fields_set}
    validated = cls(**given)
    assert repr(validated.__dict__) == repr(model.__dict__), cls.__name__
    assert validated.model_fields_set == model.model_fields_set
    assert validated.model_dump_json(by_alias=True) == model.model_dump_json(by_alias=True)


@pytest.mark.parametrize("source", [_simulated, _clinical], ids=["simulated", "clinical"])
def test_every_trusted_model_equals_its_validated_twin(source: object) -> None:
    assert callable(source)
    kinds: set[str] = set()
    for a in source():
        _same_as_validated(a)
        assert a.to_json() == a.model_dump_json(by_alias=True)
        assert a.json_bytes() == a.to_json().encode()
        for f in a.findings:
            _same_as_validated(f)
            kinds.add(f.code)
        if a.proposal is not None:
            _same_as_validated(a.proposal)
            kinds.add("proposal")
    assert len(kinds) >= 6  # the check saw findings of many rules and proposals


def test_the_check_sees_a_value_validation_would_change() -> None:
    """An int where the field is a float, or a list where it is a tuple, is told apart."""
    good = {"code": "excess_coverage", "severity": "info", "message": "m", "evidence": {}}
    _same_as_validated(trusted(Finding, good))
    numbers = {
        "mas": None, "ctdivol_mgy": 1.0, "dlp_mgy_cm": 2.0, "dlp_saving_mgy_cm": 0.0,
        "effective_dose_saving_msv": 0.0, "changes": [],
    }  # fmt: skip
    _same_as_validated(trusted(Proposal, {"z_mm": (1.0, 2.0), **numbers}))
    for bad in ({"z_mm": [1.0, 2.0], **numbers}, {"z_mm": (1.0, 2.0), **numbers, "mas": 3}):
        with pytest.raises(AssertionError):
            _same_as_validated(trusted(Proposal, bad))
