"""The dose model's Python side: needed range N, placement of the irradiated range X, site tables.

The per-acquisition arithmetic (over-ranging, DLP over X, excess outside N, slab integration of
effective dose by region bands) runs in :mod:`optimiser.kernels`; this module decides the inputs.
A kernel row (:class:`AcquisitionRow`) is frozen and holds the parts its sources fill: identity,
geometry (the placement on the table axis), exposure and context (site protocol and N).

Sources (../shared/reference/planning-ct.md):
- section 4: needed range = target extent plus margins, united with whole-organ extents and the
  image-guidance field about the isocentre; the margins and default lengths are departmental
  conventions held in the site library; irradiated length = DLP / CTDIvol when a report has both;
- section 5: k by body region (the library's region bands), slab by slab (Huda et al. 2008).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from optimiser.events import ContrastPhase, Phantom, PlannedAcquisition, Planning, ZRange
from optimiser.kernels import OVERRANGING_PARAMS, RowResult, SiteTables
from optimiser.records import CtAcquisition, RoiExtent
from optimiser.repeats import RecordedReason
from protocols.library import SiteLibrary, SiteProtocol


def site_tables(lib: SiteLibrary) -> SiteTables:
    """The library's per-site arrays in the kernel's layout (row = ``lib.site_index``)."""
    bands = lib.band_tables()
    over = np.array(
        [[getattr(s.overranging, name) for name in OVERRANGING_PARAMS] for s in lib.sites.values()],
        dtype=np.float64,
    )
    return SiteTables(
        over,
        bands.inside_frac,
        bands.inside_k,
        bands.above_end,
        bands.above_k,
        bands.below_end,
        bands.below_k,
    )


@dataclass(frozen=True, slots=True)
class Needed:
    """The needed range N and how it was obtained."""

    z_mm: ZRange
    basis: str  # given | target_margins | site_default | structure_set
    notes: tuple[str, ...] = ()


def _hull(ranges: list[ZRange]) -> ZRange:
    return (min(r[0] for r in ranges), max(r[1] for r in ranges))


def _organ_matches(name: str, organs: list[str]) -> bool:
    key = name.strip().lower().replace(" ", "_")
    return any(key == o or key.startswith(o) for o in organs)


_HULL_NOTE = (
    "needed range = one continuous range covering the target with margins, the listed whole "
    "organs and the image-guidance field"
)


def needed_from_planning(planning: Planning, protocol: SiteProtocol, centre: float) -> Needed:
    """N from a protocol event's planning block (model step 1).

    ``centre`` places the site's default length when the event gives neither N nor a target
    (the planned range's centre, or the isocentre when known).
    """
    cov = protocol.coverage
    if planning.needed_z_mm is not None:
        return Needed(planning.needed_z_mm, "given")
    if planning.target_z_mm is not None:
        lo, hi = planning.target_z_mm
        parts: list[ZRange] = [(lo - cov.margin_inferior_mm, hi + cov.margin_superior_mm)]
        parts.extend(planning.organs_z_mm.values())
        if planning.isocentre_z_mm is not None and cov.image_guidance_field_mm > 0:
            half = cov.image_guidance_field_mm / 2.0
            parts.append((planning.isocentre_z_mm - half, planning.isocentre_z_mm + half))
        notes = (_HULL_NOTE,) if len(parts) > 1 else ()
        return Needed(_hull(parts), "target_margins", notes)
    if planning.isocentre_z_mm is not None:
        centre = planning.isocentre_z_mm
    half = cov.default_needed_length_mm / 2.0
    return Needed(
        (centre - half, centre + half),
        "site_default",
        (
            f"needed range is the {protocol.site} default length "
            f"{cov.default_needed_length_mm:g} mm centred at z = {centre:g} mm (no target given)",
        ),
    )


def needed_from_structure_set(
    rois: dict[str, ZRange], roi_types: dict[str, str], protocol: SiteProtocol
) -> Needed | None:
    """N from the RT Structure Set (retrospective audit): PTV extents plus the site margins,
    united with whole organs of the site and the image-guidance field about an ISOCENTER ROI.
    None when the structure set holds no PTV or site organ."""
    cov = protocol.coverage
    parts: list[ZRange] = []
    organs = [o.lower() for o in cov.whole_organs]
    iso: list[float] = []
    targets: list[str] = []
    whole: list[str] = []
    for name, (lo, hi) in rois.items():
        kind = (roi_types.get(name) or "").upper()
        if kind == "PTV" or name.upper().startswith("PTV"):
            parts.append((lo - cov.margin_inferior_mm, hi + cov.margin_superior_mm))
            targets.append(name)
        elif _organ_matches(name, organs):
            parts.append((lo, hi))
            whole.append(name)
        elif kind == "ISOCENTER":
            iso.append(0.5 * (lo + hi))
    if not parts:
        return None
    basis = []
    if targets:
        basis.append(
            f"{', '.join(targets)} with the {protocol.site} margins {cov.margin_superior_mm:g} mm "
            f"superior and {cov.margin_inferior_mm:g} mm inferior (a department setting: "
            "[coverage] of the site library)"
        )
    if whole:
        basis.append(f"whole organs {', '.join(whole)}")
    if iso and cov.image_guidance_field_mm > 0:
        half = cov.image_guidance_field_mm / 2.0
        parts.extend((z - half, z + half) for z in iso)
        basis.append(f"the {cov.image_guidance_field_mm:g} mm image-guidance field")
    return Needed(
        _hull(parts),
        "structure_set",
        (f"needed range from the RT Structure Set: {'; '.join(basis)}",),
    )


def rois_as_dict(rois: list[RoiExtent]) -> tuple[dict[str, ZRange], dict[str, str]]:
    extents = {r.name: (r.z_min_mm, r.z_max_mm) for r in rois}
    types = {r.name: r.interpreted_type for r in rois if r.interpreted_type}
    return extents, types


def is_helical(acquisition_type: str | None) -> bool:
    return acquisition_type == "spiral"


@dataclass(slots=True)
class Exposure:
    """What a dose report says about one irradiation event, made consistent.

    ``length_mm`` is the irradiated length; ``planned_length_mm`` the scanning length when the
    report gives one (at most the irradiated length when that was measured); ``overrange_mm``
    the real over-ranging, irradiated minus scanning length, when both were reported (None: use
    the model).
    """

    ctdivol_mgy: float
    dlp_mgy_cm: float
    length_mm: float
    notes: list[str] = field(default_factory=list)
    planned_length_mm: float | None = None
    overrange_mm: float | None = None
    measured: bool = False  # the irradiated length is DLP / CTDIvol or the exposed range


def report_exposure(acq: CtAcquisition) -> Exposure:
    """Irradiated length of a reported event: DLP / CTDIvol when both are there (this includes
    over-ranging), else the exposed range, else the scanning length (planning-ct.md section 4).

    When the irradiated length was measured (DLP / CTDIvol or the exposed range) and the report
    gives the Scanning Length, their difference is the real over-ranging (section 9). A scanning
    length above the irradiated one (some vendors report the table travel, or a DLP without the
    over-ranged ends) gives over-ranging 0 and a planned length equal to the irradiated one.
    """
    notes: list[str] = []
    ctdi = acq.mean_ctdivol_mgy
    dlp = acq.dlp_mgy_cm
    scan = acq.scanning_length_mm if acq.scanning_length_mm and acq.scanning_length_mm > 0 else None
    if ctdi is not None and ctdi > 0 and dlp is not None and dlp > 0:
        out = Exposure(ctdi, dlp, dlp / ctdi * 10.0)
        measured = True
    else:
        measured = bool(acq.exposed_range_mm)
        length = acq.exposed_range_mm or acq.scanning_length_mm
        if length is None and acq.top_z_mm is not None and acq.bottom_z_mm is not None:
            length = abs(acq.top_z_mm - acq.bottom_z_mm)
        length = float(length or 0.0)
        if dlp is not None and dlp > 0 and length > 0:
            notes.append("no CTDIvol in the report: CTDIvol = DLP / irradiated length")
            out = Exposure(dlp / (length / 10.0), dlp, length, notes)
        elif ctdi is not None and ctdi > 0:
            notes.append("no DLP in the report: DLP = CTDIvol x reported length")
            out = Exposure(ctdi, ctdi * length / 10.0, length, notes)
        else:
            notes.append(
                "the report gives no CTDIvol and no DLP for this event: dose taken as zero"
            )
            out = Exposure(0.0, 0.0, length, notes)
    out.measured = measured
    if scan is not None:
        out.planned_length_mm = scan
        if measured:
            if scan > out.length_mm:
                out.notes.append(
                    f"the scanning length {scan:.1f} mm exceeds the irradiated length "
                    f"{out.length_mm:.1f} mm (DLP / CTDIvol): over-ranging taken as 0"
                )
                out.planned_length_mm = out.length_mm
            out.overrange_mm = out.length_mm - out.planned_length_mm
    return out


def match_planned(
    acq_type: str | None, order: int, length_mm: float, planned: list[PlannedAcquisition]
) -> PlannedAcquisition | None:
    """The planned acquisition a reported event corresponds to: same type and order among the
    non-localizer acquisitions, else the one of that type with the closest length."""
    candidates = [p for p in planned if p.type != "localizer"]
    same_type = [p for p in candidates if acq_type is None or p.type == acq_type]
    if order < len(same_type):
        return same_type[order]
    pool = same_type or candidates
    if not pool:
        return None

    def gap(p: PlannedAcquisition) -> float:
        return abs((p.z_range_mm[1] - p.z_range_mm[0]) - length_mm)

    return min(pool, key=gap)


class RowIdentity(NamedTuple):
    """Which acquisition a row is: copied from the input message (protocol event or dose report)
    and its acquisition, never computed. DICOM names where they exist (PS3.16 TID 10011/10013)."""

    input_kind: Literal["protocol_event", "dose_report"]
    input_id: str
    study_instance_uid: str
    accession_number: str | None = None
    acquisition_index: int | None = None  # a protocol event's acquisition
    irradiation_event_uid: str | None = None  # a dose report's irradiation event
    acquisition_type: str | None = None  # CT Acquisition Type: spiral, sequenced, ...
    description: str | None = None  # series description, or the report's Acquisition Protocol
    scanner_model: str | None = None  # Manufacturer's Model Name
    station_name: str | None = None
    performed_at: datetime | None = None  # the event's time, or Start of X-Ray Irradiation


class RowGeometry(NamedTuple):
    """Where the acquisition lies on the table axis and what sets its over-ranging: the kernel's
    placement inputs, filled by the row builder's placement step (:mod:`optimiser.rows`).

    ``lo_mm``..``hi_mm`` is the planned range when ``is_planned``, else the irradiated range X
    (the kernel takes the modelled over-ranging off it). ``placement`` says how it was placed:
    planned | report_z | protocol_event | aligned_with_needed.
    """

    lo_mm: float
    hi_mm: float
    is_planned: bool
    helical: bool
    total_collimation_mm: float | None  # (Nominal) Total Collimation Width
    pitch_factor: float | None  # (Spiral) Pitch Factor
    placement: str
    # The range was centred on N (no z, no matching plan): the excess is a lower bound.
    excess_is_lower_bound: bool = False
    # Real total over-ranging of a reported event (irradiated minus planned); None: the model.
    known_overrange_mm: float | None = None
    # The row can be placed against others (repeat and multiphase checks).
    comparable_placement: bool = True


class RowExposure(NamedTuple):
    """How the acquisition was exposed and what dose it reports: technique factors, CT Dose
    (CTDIvol, DLP, phantom, SSDE, water-equivalent diameter, Dose Check) and contrast phase,
    from the acquisition, made consistent by :func:`report_exposure` for a dose report."""

    ctdivol_mgy: float  # Mean CTDIvol
    mas: float | None = None
    kvp: tuple[float, ...] = ()
    slice_thickness_mm: float | None = None
    reported_dlp_mgy_cm: float | None = None  # a dose report's DLP
    phantom: Phantom | None = None  # CTDIw Phantom Type
    ssde_mgy: float | None = None  # Size Specific Dose Estimation
    water_equivalent_diameter_mm: float | None = None
    dose_checks: tuple[tuple[str, str], ...] = ()  # (kind, text) of each Dose Check exceeded
    contrast: ContrastPhase | None = None  # None: unknown (a report without Procedure Context)


class RowContext(NamedTuple):
    """What the study and the site library say of the acquisition: the site protocol, the
    needed range N, the diagnostic intent its names and purpose show, the study's planning
    label, the notes gathered while the row was built, and the recorded reason for a repeat."""

    site: str
    protocol: SiteProtocol
    needed: Needed
    diagnostic_intent: str | None = None  # why the study looks diagnostic, when it does
    diagnostic_corroborated: bool = False  # more than the RDSR's (vendor-default) Has Intent
    labelled_planning: bool = True
    notes: tuple[str, ...] = ()
    # Why the acquisition repeats an earlier one, where its input records it (optimiser.repeats).
    repeat_reason: RecordedReason | None = None


@dataclass(frozen=True, slots=True)
class AcquisitionRow:
    """One acquisition prepared for the batch kernel, with what findings need to know of it.

    Built once by :mod:`optimiser.rows` from the parts each source fills, never changed after:
    the pipeline derives a new row (``dataclasses.replace``) when :func:`optimiser.batch.unusable`
    says its numbers cannot be modelled, and so does the batch when CT images give CTDIvol(z).
    The parts are named tuples, immutable and as cheap to build as a mutable record: a frozen
    dataclass sets each field through ``object.__setattr__``, about 2.5 times the cost, and
    every event builds its rows on the service's hot path.
    """

    identity: RowIdentity
    geometry: RowGeometry
    exposure: RowExposure
    context: RowContext
    unusable: str | None = None  # why the numbers cannot be modelled (set by the pipeline)


def clip_profile(edges: npt.NDArray[np.float64], lo: float, hi: float) -> npt.NDArray[np.float64]:
    """Slab edges of a profile cut to [lo, hi]; the end slabs stretch to reach lo and hi (the
    over-ranged ends take the nearest image's value)."""
    out = np.clip(edges, lo, hi)
    out[0] = lo
    out[-1] = hi
    return out


def row_profiles(
    z_mm: npt.NDArray[np.float64],
    weight: npt.NDArray[np.float64],
    ctdivol_mgy: float,
    scale: float,
    res: RowResult,
) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """The (actual, proposed) CTDIvol(z) profiles of one acquisition from per-image weights:
    the actual one spans X with a length-weighted mean of ``ctdivol_mgy`` (so the DLP is the
    reported one); the proposal keeps the shape over its own range, scaled by ``scale``."""
    from optimiser.profile_kernel import profile_from_images

    edges, rel = profile_from_images(z_mm, weight, 1.0)
    x_edges = clip_profile(edges, res.x_lo, res.x_hi)
    length = res.x_hi - res.x_lo
    mass = float(np.sum(rel * np.diff(x_edges)))
    values = rel * (ctdivol_mgy * length / mass) if mass > 0 else np.full_like(rel, ctdivol_mgy)
    half = 0.5 * res.overrange
    p_lo, p_hi = res.proposal_lo - half, res.proposal_hi + half
    return [(x_edges, values), (clip_profile(edges, p_lo, p_hi), values * scale)]
