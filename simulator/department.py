"""The simulated CT-sim department: sites, scanners, and the published figures behind them.

Every number here is a simulation input, not an authority. Sources, from
../shared/reference/planning-ct.md:

- needed lengths: section 4 (departmental conventions: brain 20-25 cm, head & neck 30-40 cm,
  breast 25-35 cm, lung 30-35 cm, prostate 20-25 cm, prostate and nodes about 30 cm);
- planning reference levels: not held here; read from the protocol library
  (:mod:`protocols.library`, section 3 of the reference sheet), as is the site list;
- planning-grade parameters: section 8 (120 kV, 2-3 mm reconstructions, one helical acquisition,
  4DCT at low pitch);
- helical over-ranging: sections 4 and 9 (the "real" over-ranging of each simulated scanner model,
  see :func:`over_ranging_mm`).
"""

from __future__ import annotations

from dataclasses import dataclass

from optimiser.records import Code
from protocols.library import ReferenceValue, builtin_library
from protocols.site_ids import GENERIC_SITE, PLANNING_SITES

# The simulated department plans every named site of the library (not the generic fallback).
SITE_IDS: tuple[str, ...] = PLANNING_SITES

# Share of a day's planning list per site (a typical UK CT-sim mix; a simulation input).
SITE_WEIGHTS: dict[str, float] = {
    "brain": 0.10,
    "head_neck": 0.15,
    "breast": 0.25,
    "lung_3d": 0.12,
    "lung_4dct": 0.10,
    "prostate": 0.18,
    "prostate_nodes": 0.10,
}

# Normalised CTDIw per mAs at 120 kV (mGy/mAs), typical of 16-64 slice scanners; CTDIvol =
# nCTDIw * mAs / pitch. Used only to make mAs and mA consistent with the CTDIvol drawn.
NCTDIW_120KV: dict[str, float] = {"head": 0.19, "body": 0.085}


@dataclass(frozen=True, slots=True)
class Structure:
    """A target or whole organ placed by fractions of the needed range (0 = inferior end)."""

    name: str
    lo: float
    hi: float


@dataclass(frozen=True, slots=True)
class SiteModel:
    site: str
    protocol_name: str
    target_region: Code
    phantom: str  # head | body
    needed_length_mm: tuple[float, float]
    # Distance of the superior end of the needed range below the vertex (mm).
    superior_below_vertex_mm: float
    clean_ctdivol_share: tuple[float, float]  # clean scans draw CTDIvol as this share of reference
    pitch: tuple[float, float]
    rotation_time_s: float
    target: Structure
    organs: tuple[Structure, ...]
    contrast_share: float = 0.0  # clean single-phase contrast for delineation

    @property
    def reference(self) -> ReferenceValue:
        """The site's CTDIvol reference level, from the protocol library (generic when absent)."""
        lib = builtin_library()
        ref = lib.get(self.site).reference_ctdivol_mgy
        return ref if ref is not None else _generic_reference()

    @property
    def reference_ctdivol_mgy(self) -> float:
        return self.reference.value


def _generic_reference() -> ReferenceValue:
    ref = builtin_library().get(GENERIC_SITE).reference_ctdivol_mgy
    if ref is None:  # the library always sets it; a department override could remove it
        return ReferenceValue(
            value=17.0, kind="typical", statistic="simulation default", source="none"
        )
    return ref


def is_typical_value(ref: ReferenceValue) -> bool:
    """True when a level is a typical value (a median or mean) rather than a 75th-percentile-type
    DRL (ICRP 135 terms, planning-ct.md section 9), as the library marks it."""
    return ref.kind == "typical"


_HEAD = Code("69536005", "SCT", "Head")
_HEAD_NECK = Code("774007", "SCT", "Head and Neck")
_CHEST = Code("51185008", "SCT", "Chest")
_BREAST = Code("76752008", "SCT", "Breast")
_PELVIS = Code("12921003", "SCT", "Pelvis")

# Organs are the whole organs whose dose-volume metrics need their full extent (planning-ct.md
# section 4), named as the protocol library names them.
SITES: dict[str, SiteModel] = {
    "brain": SiteModel(
        site="brain",
        protocol_name="RT Brain Planning",
        target_region=_HEAD,
        phantom="head",
        needed_length_mm=(200.0, 250.0),
        superior_below_vertex_mm=-10.0,
        clean_ctdivol_share=(0.6, 0.85),
        pitch=(0.55, 0.8),
        rotation_time_s=1.0,
        target=Structure("GTV", 0.55, 0.8),
        organs=(Structure("brainstem", 0.25, 0.45),),
    ),
    "head_neck": SiteModel(
        site="head_neck",
        protocol_name="RT Head Neck Planning",
        target_region=_HEAD_NECK,
        phantom="head",
        needed_length_mm=(300.0, 400.0),
        superior_below_vertex_mm=20.0,
        clean_ctdivol_share=(0.55, 0.8),
        pitch=(0.7, 0.9),
        rotation_time_s=1.0,
        target=Structure("PTV", 0.3, 0.6),
        organs=(
            Structure("brainstem", 0.6, 0.8),
            Structure("parotid_l", 0.5, 0.65),
            Structure("parotid_r", 0.5, 0.65),
        ),
        contrast_share=0.3,
    ),
    "breast": SiteModel(
        site="breast",
        protocol_name="RT Breast Planning",
        target_region=_BREAST,
        phantom="body",
        needed_length_mm=(250.0, 350.0),
        superior_below_vertex_mm=230.0,
        clean_ctdivol_share=(0.35, 0.6),
        pitch=(0.8, 1.0),
        rotation_time_s=0.75,
        target=Structure("PTV_Breast", 0.2, 0.65),
        organs=(
            Structure("lungs", 0.15, 0.95),
            Structure("heart", 0.2, 0.5),
        ),
    ),
    "lung_3d": SiteModel(
        site="lung_3d",
        protocol_name="RT Thorax Planning",
        target_region=_CHEST,
        phantom="body",
        needed_length_mm=(300.0, 350.0),
        superior_below_vertex_mm=250.0,
        clean_ctdivol_share=(0.55, 0.8),
        pitch=(0.8, 1.0),
        rotation_time_s=0.75,
        target=Structure("PTV", 0.45, 0.7),
        organs=(
            Structure("lungs", 0.1, 0.95),
            Structure("heart", 0.15, 0.45),
        ),
    ),
    "lung_4dct": SiteModel(
        site="lung_4dct",
        protocol_name="RT Thorax 4DCT",
        target_region=_CHEST,
        phantom="body",
        needed_length_mm=(300.0, 350.0),
        superior_below_vertex_mm=250.0,
        clean_ctdivol_share=(0.6, 0.85),
        pitch=(0.06, 0.1),
        rotation_time_s=0.5,
        target=Structure("ITV", 0.4, 0.65),
        organs=(
            Structure("lungs", 0.1, 0.95),
            Structure("heart", 0.15, 0.45),
        ),
    ),
    "prostate": SiteModel(
        site="prostate",
        protocol_name="RT Prostate Planning",
        target_region=_PELVIS,
        phantom="body",
        needed_length_mm=(200.0, 250.0),
        superior_below_vertex_mm=850.0,
        clean_ctdivol_share=(0.55, 0.8),
        pitch=(0.8, 1.0),
        rotation_time_s=0.75,
        target=Structure("PTV", 0.3, 0.5),
        organs=(
            Structure("bladder", 0.4, 0.65),
            Structure("rectum", 0.2, 0.5),
        ),
    ),
    "prostate_nodes": SiteModel(
        site="prostate_nodes",
        protocol_name="RT Pelvis Nodes Planning",
        target_region=_PELVIS,
        phantom="body",
        needed_length_mm=(280.0, 320.0),
        superior_below_vertex_mm=750.0,
        clean_ctdivol_share=(0.55, 0.8),
        pitch=(0.8, 1.0),
        rotation_time_s=0.75,
        target=Structure("PTV_Nodes", 0.2, 0.85),
        organs=(
            Structure("bladder", 0.3, 0.5),
            Structure("rectum", 0.15, 0.4),
            Structure("bowel", 0.45, 0.9),
        ),
    ),
}


@dataclass(frozen=True, slots=True)
class ScannerModel:
    station_name: str
    manufacturer: str
    model: str
    device_serial: str
    single_collimation_mm: float
    total_collimation_mm: float
    software_version: str
    # The scanner's "real" over-ranging (both ends): total collimation x (beam_widths +
    # rotations x pitch); see over_ranging_mm.
    overrange_beam_widths: float = 1.0
    overrange_rotations: float = 1.25


SCANNERS: tuple[ScannerModel, ...] = (
    # Adaptive (dynamic) z-collimation: over-ranging about halved (Schilham et al. 2010;
    # Christner et al., AJR 2010;194:W49-55).
    ScannerModel("CTSIM1", "SIEMENS", "SOMATOM Confidence", "73012", 0.6, 19.2, "VB20", 0.5, 0.75),
    ScannerModel("CTSIM2", "Philips", "Brilliance Big Bore", "8801", 1.5, 24.0, "4.1.2", 1.0, 1.25),
    ScannerModel(
        "CTSIM3", "GE MEDICAL SYSTEMS", "LightSpeed RT16", "RT16X1", 1.25, 20.0, "07MW", 1.0, 1.5
    ),
)


def over_ranging_mm(pitch: float, scanner: ScannerModel) -> float:
    """The simulated scanner's real total helical over-ranging (both ends) at ``pitch``, in mm.

    ``collimation x (beam_widths + rotations x pitch)``: the beam straddles each end of the
    planned range, and the reconstruction needs extra table travel (rotations x pitch x
    collimation). In extra rotations that is ``beam_widths / pitch + rotations``: for the 16-slice
    models (24 and 20 mm, no dynamic collimation) 2.25-2.5 at pitch 1 and 3.25-3.5 at pitch 0.5,
    within the 0.93-2.59 (highest pitch) and 1.99-4.04 (lowest pitch) extra rotations van der
    Molen & Geleijns measured on four 16-slice scanners (Radiology 2007;242:208-216), and 44-54
    mm in total at pitch 0.8-1.0, inside the 3-6 cm Schilham et al. (RadioGraphics
    2010;30:1057-1067) give for 16-slice scanners (planning-ct.md sections 4 and 9). The model
    with adaptive collimation takes about half (Schilham et al.; Christner et al. 2010): 21 mm at
    pitch 0.8 on 19.2 mm. These are simulation inputs: the scanner's truth the optimiser's own
    (modelled) over-ranging is checked against, not values the optimiser uses.
    """
    return scanner.total_collimation_mm * (
        scanner.overrange_beam_widths + scanner.overrange_rotations * pitch
    )
