"""The protocol-event generator: one planning study per draw, with its delivered acquisitions.

Values are drawn around the figures of ../shared/reference/planning-ct.md (see
:mod:`simulator.department`); reference levels, margins and tolerances come from the
protocol library. A configurable share of studies carries each problem the optimiser flags
(planning-ct.md sections 1 and 8), each a departure a physicist would flag at warning or alert
(issue 9's severity rules); the rest are clean: planned on the needed range N (which includes the
site margins) within the site's tolerance, delivered with the scanner's real over-ranging. The
study records which problems were injected so that tests and the demo can check what the
optimiser finds.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from optimiser.errors import ConfigurationError
from optimiser.events import PlannedAcquisition, Planning, ProtocolEvent, Scanner, Study
from protocols.library import Coverage, builtin_library
from simulator.delivered import DeliveredAcquisition, DoseCheck
from simulator.department import (
    NCTDIW_120KV,
    SCANNERS,
    SITE_IDS,
    SITE_WEIGHTS,
    SITES,
    ScannerModel,
    SiteModel,
    Structure,
    is_typical_value,
    over_ranging_mm,
)
from simulator.rates import ProblemRates, draw_injected
from simulator.rdsr_writer import RdsrContext, write_rdsr

DEFAULT_START = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)
UID_NAMESPACE = "lowdose-simulator/1"

# Share of studies that send target + organs + isocentre but no needed range.
DERIVED_NEEDED_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class SimulatedStudy:
    """One simulated planning study: the protocol event sent before exposure, the dose report
    sent after it, and the simulator's truth (injected problems, delivered events, needed range)."""

    study_instance_uid: str
    site: str
    protocol_event: ProtocolEvent
    rdsr_bytes: bytes
    injected: frozenset[str]
    delivered: tuple[DeliveredAcquisition, ...] = ()
    needed_z_mm: tuple[float, float] = (0.0, 0.0)  # the simulator's truth, also when not sent
    sop_instance_uid: str = ""


def sim_uid(seed: int, *parts: object) -> str:
    """A deterministic DICOM UID under the UUID-derived root 2.25 (PS3.5 B.2): <= 44 chars."""
    text = "\x1f".join([UID_NAMESPACE, str(seed), *map(str, parts)])
    return "2.25." + str(int(hashlib.sha256(text.encode()).hexdigest()[:32], 16))


def _place(s: Structure, lo: float, hi: float, rng: random.Random) -> tuple[float, float]:
    length = hi - lo
    jitter = 0.02 * length
    a = lo + s.lo * length + rng.uniform(-jitter, jitter)
    b = lo + s.hi * length + rng.uniform(-jitter, jitter)
    return (round(max(lo, min(a, b)), 1), round(min(hi, max(a, b)), 1))


# The AAPM 2011 accumulated CTDIvol alert value (planning-ct.md section 7, unverified): what a
# simulated console has configured beside the library's notification values.
ACCUMULATED_ALERT_CTDIVOL_MGY = 1000.0


def notification_ctdivol_mgy(site: str, phantom: str) -> float:
    """The CTDIvol notification value the library holds for ``phantom`` (AAPM 2011 defaults)."""
    t = builtin_library().get(site).thresholds
    return t.notification_ctdivol_head_mgy if phantom == "head" else t.notification_ctdivol_body_mgy


# Pitch of the free-breathing 3D scan that accompanies a 4DCT.
FREE_BREATHING_PITCH = 0.9


def _derived_needed(
    target: tuple[float, float],
    organs: Mapping[str, tuple[float, float]],
    isocentre: float,
    coverage: Coverage,
) -> tuple[float, float]:
    """N of a study that sends no ``needed_z_mm``: one range over the target with the site's
    margins, the whole organs and the image-guidance field about the isocentre (planning-ct.md
    section 4; the library's coverage values, as the optimiser derives it)."""
    half = coverage.image_guidance_field_mm / 2.0
    pieces = [
        (target[0] - coverage.margin_inferior_mm, target[1] + coverage.margin_superior_mm),
        *organs.values(),
        (isocentre - half, isocentre + half),
    ]
    return (round(min(p[0] for p in pieces), 1), round(max(p[1] for p in pieces), 1))


def _birth_date(rng: random.Random) -> str:
    return f"{rng.randint(1940, 1990)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def _ctdivol_to_mas(ctdivol: float, kvp: float, pitch: float, phantom: str) -> float:
    # CTDIvol = nCTDIw(kV) * mAs / pitch, nCTDIw scaling roughly as kV^2.5.
    ncdtiw = NCTDIW_120KV[phantom] * float((kvp / 120.0) ** 2.5)
    return ctdivol * pitch / ncdtiw


@dataclass(slots=True)
class _Plan:
    """One acquisition as planned, before it is turned into event and report form."""

    kind: str
    lo: float
    hi: float
    kvp: float
    ctdivol: float
    pitch: float
    slice_mm: float
    contrast: bool
    description: str


class _StudyBuilder:
    def __init__(self, seed: int, n: int, site: SiteModel, scanner: ScannerModel) -> None:
        self.seed = seed
        self.n = n
        self.site = site
        self.scanner = scanner

    def uid(self, *parts: object) -> str:
        return sim_uid(self.seed, self.n, *parts)


# Injected excess coverage: the avoidable excess DLP as a share of the acquisition's DLP, drawn
# well above the 10% warning fraction so that any plausible modelled over-ranging keeps it there.
EXCESS_FRACTION = (0.15, 0.40)
# Injected CTDIvol as a multiple of a DRL-type level (warning above 1, alert from 1.5) and of a
# typical value (a median or mean: a warning only from 2x, issue 9 / planning-ct.md section 9).
ABOVE_DRL = (1.15, 2.0)
ABOVE_TYPICAL = (2.1, 2.6)


def _draw_plans(
    site: SiteModel,
    scanner: ScannerModel,
    injected: frozenset[str],
    clean_lo: float,
    clean_hi: float,
    rng: random.Random,
) -> list[_Plan]:
    """The non-localizer acquisitions of one study: planning-grade (planning-ct.md section 8)
    unless a problem is injected."""
    # Clean: planned on N (which holds the margins), each end within half the site's tolerance.
    tol = builtin_library().get(site.site).coverage.tolerance_mm
    pitch = round(rng.uniform(*site.pitch), 3)
    lo = round(clean_lo - rng.uniform(0.0, 0.5 * tol), 1)
    hi = round(clean_hi + rng.uniform(0.0, 0.5 * tol), 1)
    if "excess_coverage" in injected:
        # Avoidable length A beyond N + tolerance with A / (planned + A + over-ranging) = f.
        f = rng.uniform(*EXCESS_FRACTION)
        over = over_ranging_mm(pitch, scanner)
        avoidable = f * (clean_hi - clean_lo + over) / (1.0 - f)
        ends = rng.choice(("sup", "inf", "both"))
        share = {"sup": (0.0, 1.0), "inf": (1.0, 0.0), "both": (0.5, 0.5)}[ends]
        lo = round(clean_lo - tol - share[0] * avoidable, 1) if share[0] else lo
        hi = round(clean_hi + tol + share[1] * avoidable, 1) if share[1] else hi

    level = site.reference
    ref = level.value
    ctdivol = ref * rng.uniform(*site.clean_ctdivol_share)
    if "above_reference_level" in injected:
        ctdivol = ref * rng.uniform(*(ABOVE_TYPICAL if is_typical_value(level) else ABOVE_DRL))
        # Kept under the console's Dose Check notification value (its own problem) where the
        # level allows it; a typical value of 41 mGy (brain) does not: 2 x 41 > 80.
        limit = 0.95 * notification_ctdivol_mgy(site.site, site.phantom)
        if ctdivol > limit >= ref * (2.0 if is_typical_value(level) else 1.0) * 1.05:
            ctdivol = limit
    kvp = 120.0
    if "kv_not_calibrated" in injected:
        kvp = rng.choice((80.0, 100.0))
    slice_mm = rng.choice((2.0, 2.5, 3.0))
    if "thin_reconstruction" in injected:
        slice_mm = rng.choice((0.5, 0.6, 0.75))
    base_contrast = "multiphase_contrast" not in injected and rng.random() < site.contrast_share
    # A repeat is of a non-contrast scan: two enhanced acquisitions over one range are extra
    # contrast phases (multiphase_contrast), never a repeat (issue 9).
    base_contrast = base_contrast and "repeat_acquisition" not in injected
    label = "4DCT" if site.site == "lung_4dct" else "Helical"

    plans = [
        _Plan(
            "spiral",
            lo,
            hi,
            kvp,
            round(ctdivol, 2),
            pitch,
            slice_mm,
            base_contrast,
            f"{label} {slice_mm:g}mm" + (" C+" if base_contrast else ""),
        )
    ]
    if site.site == "lung_4dct":
        # A 4DCT is paired with a free-breathing 3D scan over the same range (the library
        # allows two acquisitions per range for it).
        pitch_3d = FREE_BREATHING_PITCH
        ctdivol_3d = SITES["lung_3d"].reference_ctdivol_mgy * rng.uniform(
            *SITES["lung_3d"].clean_ctdivol_share
        )
        plans.append(
            _Plan(
                "spiral",
                lo,
                hi,
                kvp,
                round(ctdivol_3d, 2),
                pitch_3d,
                slice_mm,
                base_contrast,
                f"FB 3D {slice_mm:g}mm",
            )
        )
    if "multiphase_contrast" in injected:
        plans.append(
            _Plan("spiral", lo, hi, kvp, round(ctdivol, 2), pitch, slice_mm, True, "Post contrast")
        )
    if "repeat_acquisition" in injected:
        first = plans[0]
        shift = rng.uniform(-3.0, 3.0)
        plans.append(
            _Plan(
                "spiral",
                round(first.lo + shift, 1),
                round(first.hi + shift, 1),
                first.kvp,
                first.ctdivol,
                first.pitch,
                first.slice_mm,
                first.contrast,
                f"{first.description} repeat",
            )
        )
    return plans


def _make_study(
    seed: int,
    n: int,
    site_id: str,
    rates: ProblemRates,
    emitted_at: datetime,
    rng: random.Random,
) -> SimulatedStudy:
    site = SITES[site_id]
    scanner = SCANNERS[rng.randrange(len(SCANNERS))]
    b = _StudyBuilder(seed, n, site, scanner)
    injected = draw_injected(rates, rng)

    # Geometry: table z increases towards the head; the vertex sits near z = +200 mm.
    vertex = rng.uniform(150.0, 250.0)
    needed_hi = round(vertex - site.superior_below_vertex_mm, 1)
    needed_lo = round(needed_hi - rng.uniform(*site.needed_length_mm), 1)
    target = _place(site.target, needed_lo, needed_hi, rng)
    organs = {o.name: _place(o, needed_lo, needed_hi, rng) for o in site.organs}
    isocentre = round((target[0] + target[1]) / 2.0, 1)
    send_needed = rng.random() >= DERIVED_NEEDED_SHARE
    if send_needed:
        clean_lo, clean_hi = needed_lo, needed_hi
    else:
        coverage = builtin_library().get(site.site).coverage
        clean_lo, clean_hi = _derived_needed(target, organs, isocentre, coverage)

    plans = _draw_plans(site, scanner, injected, clean_lo, clean_hi, rng)

    diagnostic = "diagnostic_intent" in injected
    labelled = "unlabelled_planning_scan" not in injected
    study_uid = b.uid("study")
    accession = f"SIM{seed % 10000:04d}{n + 1:04d}"
    patient_id = f"SIMPAT{seed % 1000:03d}{n + 1:05d}"
    description = (
        f"CT {site.target_region.meaning}"
        if not labelled
        else ("CT " if diagnostic else "RT Planning CT ") + site.target_region.meaning
    )

    scout_lo = round(min(p.lo for p in plans) - rng.uniform(40.0, 80.0), 1)
    scout_hi = round(max(p.hi for p in plans) + rng.uniform(40.0, 80.0), 1)
    scout_ctdivol = round(rng.uniform(0.05, 0.3), 2)
    planned = [
        PlannedAcquisition(
            index=0,
            type="localizer",
            z_start_mm=scout_hi,
            z_end_mm=scout_lo,
            kvp=120.0,
            mas=round(rng.uniform(20.0, 50.0), 1),
            ctdivol_mgy=scout_ctdivol,
            phantom="head" if site.phantom == "head" else "body",
            series_description="Topogram",
        )
    ]
    for i, p in enumerate(plans, start=1):
        planned.append(
            PlannedAcquisition(
                index=i,
                type="spiral",
                z_start_mm=p.hi,  # scans run head to feet: start at the superior end
                z_end_mm=p.lo,
                kvp=p.kvp,
                mas=round(_ctdivol_to_mas(p.ctdivol, p.kvp, p.pitch, site.phantom), 1),
                ctdivol_mgy=p.ctdivol,
                phantom="head" if site.phantom == "head" else "body",
                pitch=p.pitch,
                total_collimation_mm=scanner.total_collimation_mm,
                rotation_time_s=site.rotation_time_s,
                slice_thickness_mm=p.slice_mm,
                kernel="B30f" if scanner.manufacturer == "SIEMENS" else "STANDARD",
                contrast="with" if p.contrast else "none",
                tube_current_modulation=site.phantom == "body",
                series_description=p.description,
            )
        )

    event = ProtocolEvent(
        schema_="lowdose.protocol/1",
        event_id=f"sim-{seed}-{n + 1:05d}",
        emitted_at=emitted_at,
        scanner=Scanner(
            station_name=scanner.station_name,
            manufacturer=scanner.manufacturer,
            model=scanner.model,
            device_serial=scanner.device_serial,
        ),
        study=Study(
            study_instance_uid=study_uid,
            accession_number=accession,
            patient_id=patient_id,
            study_description=description,
            purpose="diagnostic" if diagnostic else "rt_planning",
            labelled_planning=labelled,
        ),
        planning=Planning(
            site=site.site,
            needed_z_mm=(needed_lo, needed_hi) if send_needed else None,
            target_z_mm=target,
            isocentre_z_mm=isocentre,
            organs_z_mm=organs,
        ),
        acquisitions=planned,
    )

    delivered = _deliver(b, event, plans, scout_lo, scout_hi, scout_ctdivol, injected, rng)
    sop_uid = b.uid("rdsr")
    context = RdsrContext(
        study_instance_uid=study_uid,
        series_instance_uid=b.uid("series"),
        sop_instance_uid=sop_uid,
        device_observer_uid=sim_uid(seed, "device", scanner.station_name),
        frame_of_reference_uid=b.uid("frame-of-reference"),
        accession_number=accession,
        patient_id=patient_id,
        patient_name=f"SIM^PATIENT{n + 1:04d}",
        patient_sex=rng.choice(("F", "M")) if "prostate" not in site.site else "M",
        patient_birth_date=_birth_date(rng),
        study_description=description,
        study_datetime=emitted_at,
        scanner=scanner,
        intent="diagnostic" if diagnostic else "therapeutic",
        target_region=site.target_region,
    )
    rdsr = write_rdsr(context, delivered)
    return SimulatedStudy(
        study_instance_uid=study_uid,
        site=site.site,
        protocol_event=event,
        rdsr_bytes=rdsr,
        injected=injected,
        delivered=tuple(delivered),
        needed_z_mm=(needed_lo, needed_hi) if send_needed else (clean_lo, clean_hi),
        sop_instance_uid=sop_uid,
    )


def _deliver(
    b: _StudyBuilder,
    event: ProtocolEvent,
    plans: list[_Plan],
    scout_lo: float,
    scout_hi: float,
    scout_ctdivol: float,
    injected: frozenset[str],
    rng: random.Random,
) -> list[DeliveredAcquisition]:
    """The acquisitions as the scanner delivered them (planning-ct.md section 4: irradiated
    length = planned length + helical over-ranging; DLP = CTDIvol x irradiated length)."""
    scanner, site = b.scanner, b.site
    scout_ma = round(rng.uniform(20.0, 50.0))
    scout_len_cm = (scout_hi - scout_lo) / 10.0
    out = [
        DeliveredAcquisition(
            index=0,
            acquisition_type="localizer",
            protocol=f"{site.protocol_name} Topogram",
            contrast=False,
            irradiation_event_uid=b.uid("event", 0),
            top_z_mm=scout_hi,
            bottom_z_mm=scout_lo,
            exposure_time_s=round(scout_len_cm / 10.0, 2),  # topogram table speed ~100 mm/s
            single_collimation_mm=scanner.single_collimation_mm,
            total_collimation_mm=scanner.single_collimation_mm,
            pitch=None,
            kvp=120.0,
            max_tube_current_ma=scout_ma,
            mean_tube_current_ma=scout_ma,
            rotation_time_s=site.rotation_time_s,
            ctdivol_mgy=scout_ctdivol,
            phantom=site.phantom,
            dlp_mgy_cm=round(scout_ctdivol * scout_len_cm, 2),
        )
    ]
    check_index = rng.randrange(len(plans))
    accumulated_dlp = out[0].dlp_mgy_cm
    accumulated_ctdivol = 0.0
    notification = notification_ctdivol_mgy(site.site, site.phantom)
    for i, p in enumerate(plans, start=1):
        planned = event.acquisitions[i]
        # Top/Bottom Z of the scanning length are the planned range; the exposed range adds the
        # scanner's real over-ranging, and the DLP follows it (planning-ct.md section 4).
        over = over_ranging_mm(p.pitch, scanner) * rng.uniform(0.95, 1.05)
        exposed_mm = round(p.hi - p.lo + over, 1)
        dlp = round(p.ctdivol * exposed_mm / 10.0, 2)
        accumulated_dlp += dlp
        accumulated_ctdivol += p.ctdivol
        rotations = exposed_mm / (p.pitch * scanner.total_collimation_mm)
        mean_ma = planned.mas / site.rotation_time_s
        # What real reports routinely carry: the configured values only (no event).
        checks: tuple[DoseCheck, ...] = (
            DoseCheck("notification", ctdivol_value_mgy=notification, dlp_value_mgy_cm=None),
            DoseCheck(
                "alert", ctdivol_value_mgy=ACCUMULATED_ALERT_CTDIVOL_MGY, dlp_value_mgy_cm=None
            ),
        )
        if "dose_check_exceeded" in injected and i - 1 == check_index:
            # Configured values the scan overran: the console warned and the operator proceeded.
            # A notification is per series (this scan's estimates), an alert accumulated.
            kind = "alert" if rng.random() < 0.5 else "notification"
            alert = kind == "alert"
            checks = (
                DoseCheck(
                    kind=kind,
                    ctdivol_value_mgy=round(p.ctdivol * 0.8, 1),
                    dlp_value_mgy_cm=float(round(dlp * 0.8)),
                    ctdivol_forward_estimate_mgy=round(
                        accumulated_ctdivol if alert else p.ctdivol, 2
                    ),
                    dlp_forward_estimate_mgy_cm=round(accumulated_dlp if alert else dlp, 2),
                    reason_for_proceeding="Planning protocol; physicist informed",
                ),
            )
        out.append(
            DeliveredAcquisition(
                index=i,
                acquisition_type="spiral",
                protocol=f"{site.protocol_name} {p.description}",
                contrast=p.contrast,
                irradiation_event_uid=b.uid("event", i),
                top_z_mm=p.hi,
                bottom_z_mm=p.lo,
                exposure_time_s=round(rotations * site.rotation_time_s, 2),
                single_collimation_mm=scanner.single_collimation_mm,
                total_collimation_mm=scanner.total_collimation_mm,
                pitch=p.pitch,
                kvp=p.kvp,
                max_tube_current_ma=round(
                    mean_ma * (1.4 if planned.tube_current_modulation else 1.0)
                ),
                mean_tube_current_ma=round(mean_ma),
                rotation_time_s=site.rotation_time_s,
                ctdivol_mgy=p.ctdivol,
                phantom=site.phantom,
                dlp_mgy_cm=dlp,
                dose_checks=checks,
                exposed_range_mm=exposed_mm,
            )
        )
    return out


def simulate_feed(
    n_studies: int,
    *,
    seed: int = 0,
    problem_rates: ProblemRates | None = None,
    sites: Sequence[str] | None = None,
    start: datetime | None = None,
) -> list[SimulatedStudy]:
    """A deterministic CT-sim department feed of ``n_studies`` planning studies.

    Same seed, rates, sites and start give the same events and the same report bytes.
    """
    if isinstance(n_studies, bool) or not isinstance(n_studies, int) or n_studies < 0:
        raise ConfigurationError(
            f"n_studies = {n_studies!r}: the number of studies must be a whole number >= 0; "
            "give e.g. --studies 40"
        )
    chosen = tuple(sites) if sites else SITE_IDS
    unknown = [s for s in chosen if s not in SITES]
    if unknown:
        raise ConfigurationError(
            f"site {unknown[0]!r}: not a site of the simulated department; "
            f"choose from {', '.join(SITE_IDS)}"
        )
    rates = problem_rates or ProblemRates()
    rng = random.Random(seed)
    weights = [SITE_WEIGHTS[s] for s in chosen]
    when = start or DEFAULT_START
    studies = []
    for n in range(n_studies):
        site_id = rng.choices(chosen, weights=weights)[0]
        studies.append(_make_study(seed, n, site_id, rates, when, rng))
        when = when + timedelta(minutes=rng.uniform(8.0, 16.0))
    return studies
