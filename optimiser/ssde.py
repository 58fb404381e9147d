"""Size-specific dose estimates: AAPM TG-204, TG-220 water-equivalent diameter, TG-293 head.

Sources (../shared/reference/planning-ct.md section 6):
- TG-204 (AAPM Report 204, 2011): SSDE = f x CTDIvol, f = a exp(-b D), D in cm;
  32 cm phantom a = 3.704369, b = 0.03671937; 16 cm phantom a = 1.874799, b = 0.03871313.
- TG-220 (AAPM Report 220, 2014): A_w = sum of (HU / 1000 + 1) x pixel area over the patient,
  D_w = 2 sqrt(A_w / pi); the couch and air are excluded, a truncated outline is flagged.
- TG-293 (AAPM Report 293, 2019), head, 16 cm phantom: f = 1.9852 exp(-0.0486 D_w) (coefficients
  from an open implementation, marked unverified in the reference). TG-293 is a head report:
  it applies to head (brain) scans only. Neck and shoulders (head and neck planning) are not
  heads, so a 16 cm-phantom CTDIvol there goes through the TG-204 16 cm fit (issue 9; the
  site library's ``[ssde] head_fit`` says which applies per site).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from optimiser.errors import InputError

TG204_BODY = (3.704369, 0.03671937)
TG204_HEAD = (1.874799, 0.03871313)
TG293_HEAD = (1.9852, 0.0486)


def tg204_factor(diameter_cm: float, phantom: str = "body") -> float:
    """TG-204 conversion factor for an effective (or water-equivalent) diameter in cm."""
    a, b = TG204_BODY if phantom == "body" else TG204_HEAD
    return a * math.exp(-b * diameter_cm)


def tg293_head_factor(diameter_cm: float) -> float:
    """TG-293 head conversion factor (16 cm phantom CTDIvol) for D_w in cm."""
    a, b = TG293_HEAD
    return a * math.exp(-b * diameter_cm)


HeadFit = Literal["tg293", "tg204_16cm"]


def ssde_mgy(
    ctdivol_mgy: float, diameter_mm: float, phantom: str = "body", head_fit: HeadFit = "tg293"
) -> float:
    """SSDE in mGy. A 32 cm (body) phantom CTDIvol: TG-204 32 cm fit. A 16 cm (head) phantom
    CTDIvol: TG-293 on a head scan (``head_fit = "tg293"``), the TG-204 16 cm fit elsewhere
    (neck and shoulders: ``"tg204_16cm"``)."""
    d_cm = diameter_mm / 10.0
    if phantom != "head":
        return ctdivol_mgy * tg204_factor(d_cm, "body")
    if head_fit == "tg293":
        return ctdivol_mgy * tg293_head_factor(d_cm)
    return ctdivol_mgy * tg204_factor(d_cm, "head")


# --- CT images: pixel geometry and D_w --------------------------------------------------------

# Pixel Spacing may differ from Reconstruction Diameter / matrix by rounding; beyond this share
# the two describe different matrices (e.g. a resampled image that kept the old spacing).
SPACING_TOLERANCE = 0.02


@dataclass(frozen=True, slots=True)
class PixelGeometry:
    """The pixel size used for A_w and why."""

    row_spacing_mm: float
    column_spacing_mm: float
    basis: str  # pixel_spacing | reconstruction_diameter
    notes: tuple[str, ...] = ()

    @property
    def pixel_area_mm2(self) -> float:
        return self.row_spacing_mm * self.column_spacing_mm


def pixel_geometry(
    pixel_spacing: Sequence[float] | None,
    reconstruction_diameter_mm: float | None,
    rows: int,
    columns: int,
) -> PixelGeometry:
    """Check Pixel Spacing (0028,0030) against Reconstruction Diameter (0018,1100) / matrix.

    When they disagree by more than :data:`SPACING_TOLERANCE`, the reconstruction diameter
    wins (it describes the field actually reconstructed) and the disagreement is reported.
    """
    derived: tuple[float, float] | None = None
    if reconstruction_diameter_mm and rows > 0 and columns > 0:
        derived = (reconstruction_diameter_mm / rows, reconstruction_diameter_mm / columns)
    given: tuple[float, float] | None = None
    if pixel_spacing is not None and len(pixel_spacing) == 2:
        given = (float(pixel_spacing[0]), float(pixel_spacing[1]))
    if given is None and derived is None:
        raise InputError(
            "CT image has neither Pixel Spacing (0028,0030) nor Reconstruction Diameter "
            "(0018,1100): the pixel size is unknown, so A_w cannot be computed"
        )
    if derived is None:
        assert given is not None
        return PixelGeometry(given[0], given[1], "pixel_spacing")
    if given is None:
        return PixelGeometry(
            derived[0],
            derived[1],
            "reconstruction_diameter",
            ("no Pixel Spacing: pixel size from Reconstruction Diameter / Rows",),
        )
    if all(abs(g - d) <= SPACING_TOLERANCE * d for g, d in zip(given, derived, strict=True)):
        return PixelGeometry(given[0], given[1], "pixel_spacing")
    note = (
        f"Pixel Spacing {given[0]:g} x {given[1]:g} mm disagrees with Reconstruction Diameter "
        f"{reconstruction_diameter_mm:g} mm / {rows} x {columns} pixels = {derived[0]:.4g} mm; "
        "the latter is used"
    )
    return PixelGeometry(derived[0], derived[1], "reconstruction_diameter", (note,))


@dataclass(frozen=True, slots=True)
class ImageSize:
    """TG-220 size of the patient in one CT image."""

    water_equivalent_diameter_mm: float
    water_equivalent_area_mm2: float
    truncated: bool
    geometry: PixelGeometry
    notes: tuple[str, ...] = field(default=())
    study_instance_uid: str | None = None
    source: str = ""
    # For a dose profile along z: the image's z and its CTDIvol (0018,9345), else its X-Ray
    # Tube Current (0018,1151) (planning-ct.md section 2).
    z_mm: float | None = None
    profile_weight: float | None = None


def image_water_equivalent_diameter(path: Path | str, threshold_hu: float = -500.0) -> ImageSize:
    """D_w of the patient in one CT image file (TG-220), with the geometry check and the
    truncation flag; a truncated outline makes D_w an underestimate, said in ``notes``."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from optimiser.tg220 import water_equivalent_area

    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except (InvalidDicomError, AttributeError, ValueError, OSError) as exc:
        raise InputError(
            f"cannot read the CT image pixels ({exc}); give a CT Image Storage file with "
            "Pixel Data",
            source=str(path),
        ) from exc
    geometry = pixel_geometry(
        ds.get("PixelSpacing"),
        float(ds.ReconstructionDiameter) if "ReconstructionDiameter" in ds else None,
        int(ds.Rows),
        int(ds.Columns),
    )
    result = water_equivalent_area(
        pixels,
        slope=float(ds.get("RescaleSlope", 1.0)),
        intercept=float(ds.get("RescaleIntercept", 0.0)),
        pixel_area_mm2=geometry.pixel_area_mm2,
        threshold_hu=threshold_hu,
    )
    truncated = bool(result.truncated[0])
    notes = list(geometry.notes)
    if truncated:
        notes.append("the body outline touches the image edge (truncated): D_w is an underestimate")
    position = ds.get("ImagePositionPatient")
    z = float(position[2]) if position is not None and len(position) == 3 else None
    if z is None and "SliceLocation" in ds:
        z = float(ds.SliceLocation)
    weight = None
    for keyword in ("CTDIvol", "XRayTubeCurrent"):
        value = ds.get(keyword)
        if value is not None and float(value) > 0:
            weight = float(value)
            break
    return ImageSize(
        float(result.diameter_mm[0]),
        float(result.area_mm2[0]),
        truncated,
        geometry,
        tuple(notes),
        str(ds.get("StudyInstanceUID", "")) or None,
        Path(path).name,
        z,
        weight,
    )


CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def is_ct_image(path: Path | str) -> bool:
    """True when the file is a CT Image Storage object (read without its pixels)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except (InvalidDicomError, OSError, ValueError):
        return False
    return str(ds.get("SOPClassUID", "")) == CT_IMAGE_STORAGE
