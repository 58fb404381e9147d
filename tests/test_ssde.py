"""SSDE: TG-204 check values, TG-293 head, TG-220 D_w kernel against its twin and on CT_small."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optimiser import reference
from optimiser.errors import InputError
from optimiser.ssde import (
    image_water_equivalent_diameter,
    pixel_geometry,
    ssde_mgy,
    tg204_factor,
    tg293_head_factor,
)
from optimiser.tg220 import water_equivalent_area
from tests.paths import SHARED

CT_SMALL = SHARED / "data" / "ct" / "CT_small.dcm"


@pytest.mark.parametrize(
    ("diameter_cm", "factor"),
    [(20, 1.777), (24, 1.535), (28, 1.325), (32, 1.144), (36, 0.988), (40, 0.853)],
)
def test_tg204_reproduces_the_check_values(diameter_cm: float, factor: float) -> None:
    # planning-ct.md section 6: 32 cm phantom check values, given to 3 decimals.
    assert tg204_factor(diameter_cm, "body") == pytest.approx(factor, abs=0.0006)


def test_tg204_head_and_tg293() -> None:
    # 16 cm phantom at D = 16 cm: 1.874799 x exp(-0.61941) = 1.874799 x 0.53826 = 1.0091
    assert tg204_factor(16, "head") == pytest.approx(1.0091, abs=1e-4)
    # TG-293 at D_w = 15 cm: 1.9852 x exp(-0.729) = 1.9852 x 0.48239 = 0.95764
    assert tg293_head_factor(15) == pytest.approx(0.95764, abs=1e-4)
    # SSDE = CTDIvol x f: 10 mGy at 280 mm body -> 13.25 mGy; head uses TG-293.
    assert ssde_mgy(10.0, 280.0, "body") == pytest.approx(13.25, abs=0.01)
    assert ssde_mgy(40.0, 150.0, "head") == pytest.approx(40 * 0.95764, abs=0.01)


def test_pixel_geometry_prefers_reconstruction_diameter_when_they_disagree() -> None:
    # 338.6716 / 128 = 2.6459 mm, four times the 0.661 mm written in Pixel Spacing.
    g = pixel_geometry([0.661468, 0.661468], 338.6716, 128, 128)
    assert g.basis == "reconstruction_diameter"
    assert g.row_spacing_mm == pytest.approx(2.6459, abs=1e-4)
    assert "disagrees" in g.notes[0]
    agree = pixel_geometry([0.9766, 0.9766], 500.0, 512, 512)  # 500 / 512 = 0.97656
    assert agree.basis == "pixel_spacing"
    assert not agree.notes
    assert pixel_geometry(None, 500.0, 512, 512).basis == "reconstruction_diameter"
    with pytest.raises(InputError, match="pixel size is unknown"):
        pixel_geometry(None, None, 512, 512)


def _phantom(size: int = 64) -> np.ndarray:
    """Raw values (intercept -1024): air, a water disc of radius 20 px (HU 0) with a lung-like
    hole (HU -800), and a separate couch slab (HU 200) below it."""
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), 24, np.int16)  # HU -1000
    disc = (yy - 28) ** 2 + (xx - 32) ** 2 <= 20**2
    img[disc] = 1024
    img[(yy - 28) ** 2 + (xx - 32) ** 2 <= 4**2] = 224  # HU -800, inside the outline
    img[55:58, 4:60] = 1224  # couch: HU 200, separated from the disc by air
    return img


def test_couch_is_excluded_and_lungs_inside_count() -> None:
    img = _phantom()
    r = water_equivalent_area(img, slope=1.0, intercept=-1024.0, pixel_area_mm2=1.0)
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 28) ** 2 + (xx - 32) ** 2 <= 20**2
    hole = (yy - 28) ** 2 + (xx - 32) ** 2 <= 4**2
    # Water pixels weigh 1, hole pixels 1 - 0.8 = 0.2; the couch (weight 1.2) is left out.
    expected = (disc.sum() - hole.sum()) * 1.0 + hole.sum() * 0.2
    assert r.area_mm2[0] == pytest.approx(expected)
    # A disc of radius 20 px has D_w close to 40 px (the hole lowers it a little).
    assert 38.0 < r.diameter_mm[0] < 41.0
    assert not r.truncated[0]


def test_truncated_outline_is_flagged() -> None:
    img = np.full((32, 32), 24, np.int16)
    img[5:32, 8:20] = 1024  # body runs off the bottom edge
    r = water_equivalent_area(img, slope=1.0, intercept=-1024.0, pixel_area_mm2=1.0)
    assert r.truncated[0]
    assert r.area_mm2[0] == pytest.approx(27 * 12)


def _twin(img: np.ndarray, slope: float, intercept: float, area: float) -> tuple[float, int, bool]:
    return reference.water_equivalent_area(img.tolist(), slope, intercept, -500.0, area)


def test_kernel_agrees_with_twin_on_seeded_images_and_edges() -> None:
    rng = np.random.default_rng(7)
    images = [
        np.zeros((16, 16), np.int16),  # all air (raw 0 -> HU -1024): no patient
        np.full((16, 16), 1100, np.int16),  # all patient, truncated
        np.zeros((1, 1), np.int16),
        np.full((1, 1), 2000, np.int16),
        np.full((3, 40), 1024, np.int16),
        _phantom(),
        np.full((8, 8), np.iinfo(np.int16).max, np.int16),
        np.full((8, 8), np.iinfo(np.int16).min, np.int16),
    ]
    for _ in range(40):
        # Blobs of random sizes: several components, ties possible.
        img = (rng.random((24, 31)) < rng.uniform(0.2, 0.7)).astype(np.int16) * rng.integers(
            600, 2000
        )
        images.append(img.astype(np.int16))
    for img in images:
        for slope, intercept, area in ((1.0, -1024.0, 1.0), (0.5, -1000.0, 0.43)):
            r = water_equivalent_area(img, slope=slope, intercept=intercept, pixel_area_mm2=area)
            a_w, count, trunc = _twin(img, slope, intercept, area)
            assert r.area_mm2[0] == pytest.approx(a_w, rel=1e-9, abs=1e-9)
            assert int(r.pixel_count[0]) == count
            assert bool(r.truncated[0]) == trunc


def test_stack_is_processed_slice_by_slice() -> None:
    stack = np.stack([_phantom(), np.zeros((64, 64), np.int16), _phantom()])
    r = water_equivalent_area(stack, slope=1.0, intercept=-1024.0, pixel_area_mm2=0.25)
    assert r.area_mm2.shape == (3,)
    assert r.area_mm2[1] == 0.0
    assert r.area_mm2[0] == r.area_mm2[2] > 0


def test_bad_pixel_input_is_refused() -> None:
    with pytest.raises(InputError, match="integer slices"):
        water_equivalent_area(np.zeros((4, 4)), slope=1.0, intercept=0.0, pixel_area_mm2=1.0)
    with pytest.raises(InputError, match="must be > 0"):
        water_equivalent_area(
            np.zeros((4, 4), np.int16), slope=0.0, intercept=0.0, pixel_area_mm2=1.0
        )


def _independent_dw(hu: np.ndarray, pixel_mm: float) -> float:
    """TG-220 by other means: grow the patient from the image centre by repeated 4-neighbour
    dilation inside the HU > -500 mask (numpy), fill each row between its outer pixels, sum
    (HU / 1000 + 1) x pixel area."""
    mask = hu > -500
    region = np.zeros_like(mask)
    cy, cx = np.argwhere(mask)[np.argmin(np.sum((np.argwhere(mask) - 64) ** 2, axis=1))]
    region[cy, cx] = True
    while True:
        grown = region.copy()
        grown[1:, :] |= region[:-1, :]
        grown[:-1, :] |= region[1:, :]
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        grown &= mask
        if np.array_equal(grown, region):
            break
        region = grown
    total = 0.0
    for r in range(hu.shape[0]):
        cols = np.flatnonzero(region[r])
        if cols.size:
            total += float(np.sum(hu[r, cols[0] : cols[-1] + 1] / 1000.0 + 1.0))
    return 2.0 * math.sqrt(total * pixel_mm**2 / math.pi)


@pytest.mark.realdata
def test_ct_small_dw_geometry_and_truncation() -> None:
    import pydicom

    size = image_water_equivalent_diameter(CT_SMALL)
    # Reconstruction Diameter 338.6716 mm / 128 = 2.6459 mm, not the 0.661 mm Pixel Spacing.
    assert size.geometry.basis == "reconstruction_diameter"
    assert size.geometry.row_spacing_mm == pytest.approx(338.6716 / 128)
    assert any("disagrees" in n for n in size.notes)
    # The slice is a crop of the spine region: the body runs off every edge.
    assert size.truncated
    ds = pydicom.dcmread(CT_SMALL)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    independent = _independent_dw(hu, 338.6716 / 128)
    assert size.water_equivalent_diameter_mm == pytest.approx(independent, rel=0.02)
    # Crude bound: all pixels of the image with non-negative weights (lungs at the edges too).
    whole = 2.0 * math.sqrt(np.clip(hu / 1000 + 1, 0, None).sum() * (338.6716 / 128) ** 2 / math.pi)
    assert size.water_equivalent_diameter_mm <= whole
