"""RT Structure Set reading: ROI numbers, names, RT ROI Interpreted Type and z-extents."""

from __future__ import annotations

import pytest

from optimiser.dicom import read_dicom, read_structure_set, structure_set_to_json
from optimiser.dicom.structure_set import z_extent
from optimiser.errors import DicomError
from optimiser.records import StructureSet
from optimiser.strictness import Strictness
from tests.paths import SHARED

RTSTRUCT = SHARED / "data" / "ct" / "rtstruct.dcm"


@pytest.mark.realdata
def test_rtstruct_rois_and_z_extents() -> None:
    # rtstruct.dcm has no preamble nor file meta (pydicom needs force=True): implicit VR LE.
    structures = read_structure_set(RTSTRUCT)
    assert structures.source == "rtstruct.dcm"
    assert structures.frame_of_reference_uid == "1.2.826.0.1.3680043.8.498.2010020400001.2"
    rois = {r.number: r for r in structures.rois}
    assert sorted(rois) == [1, 2, 3]
    body = rois[1]
    # three closed planar contours at z = -200, -190 and -180 mm
    assert (body.name, body.interpreted_type) == ("patient", "EXTERNAL")
    assert (body.z_min_mm, body.z_max_mm) == (-200.0, -180.0)
    assert (rois[2].name, rois[2].interpreted_type) == ("Isocenter 1", "ISOCENTER")
    assert (rois[2].z_min_mm, rois[2].z_max_mm) == (0.0, 0.0)
    assert structures.warnings == []


@pytest.mark.realdata
def test_read_dicom_dispatches_structure_sets() -> None:
    structures = read_dicom(RTSTRUCT, strictness=Strictness.RAISE)
    assert isinstance(structures, StructureSet)
    as_json = structure_set_to_json(structures)
    assert [r["name"] for r in as_json["rois"]] == ["patient", "Isocenter 1", "Isocenter 2"]


def test_z_extent_takes_every_third_number() -> None:
    # points (1,2,3) and (4,5,-6): z values 3 and -6
    assert z_extent("1\\2\\3\\4\\5\\-6") == (-6.0, 3.0)


@pytest.mark.parametrize("bad", ["1\\2", "1\\2\\x", "1\\2\\3\\4", "1\\2\\nan"])
def test_z_extent_rejects_malformed_contour_data(bad: str) -> None:
    with pytest.raises(ValueError):
        z_extent(bad)


@pytest.mark.realdata
def test_truncated_structure_set_is_a_dicom_error() -> None:
    data = RTSTRUCT.read_bytes()[:1500]
    with pytest.raises(DicomError, match=r"^rt\.dcm: "):
        read_structure_set(data, source="rt.dcm")
