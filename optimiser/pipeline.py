"""The assessment pipeline: protocol events, dose reports and structure sets in, assessments out.

One :meth:`Pipeline.process` call handles one batch: it walks the items in order (updating the
per-study state as it goes, so a dose report after its protocol event in the same batch finds
it), builds one struct-of-arrays input for every acquisition of the batch, calls the numba batch
kernel once, then turns each row into an :class:`~optimiser.assessment.Assessment` with its
findings and proposal. The model is issue 4's; sources are cited in :mod:`optimiser.dose_model`,
:mod:`optimiser.findings` and :mod:`optimiser.ssde` (../shared/reference/planning-ct.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from optimiser.assessment import Assessment, Finding, assessment_id
from optimiser.dose_model import (
    AcquisitionRow,
    Needed,
    RowResult,
    is_helical,
    match_planned,
    needed_from_planning,
    needed_from_structure_set,
    report_exposure,
    rois_as_dict,
    row_profiles,
    site_tables,
)
from optimiser.errors import InputError
from optimiser.events import ProtocolEvent
from optimiser.findings import Previous, acquisition_findings, study_findings
from optimiser.kernels import MAX_ABS_Z_MM, BatchInput, assess_batch, profile_batch
from optimiser.proposal import build_proposal, exposure_scale
from optimiser.records import CtAcquisition, DoseReport, StructureSet
from optimiser.ssde import ImageSize, ssde_mgy
from optimiser.state import MemoryStateStore, StudyState, StudyStateStore
from optimiser.strictness import Problems, Strictness
from optimiser.tg220 import water_equivalent_area
from protocols.library import GENERIC_SITE, SiteLibrary, SiteProtocol, builtin_library

PipelineInput = ProtocolEvent | DoseReport | StructureSet


def _r(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


class Pipeline:
    """Assess batches of inputs against the site library, keeping study state in ``store``."""

    def __init__(
        self,
        library: SiteLibrary | None = None,
        store: StudyStateStore | None = None,
        *,
        strictness: Strictness = Strictness.WARN,
    ) -> None:
        self.library = library if library is not None else builtin_library()
        self.store: StudyStateStore = store if store is not None else MemoryStateStore()
        self.strictness = strictness
        self.tables = site_tables(self.library)
        # Study Instance UID -> (D_w mm, note) from CT images given alongside (lowdose assess).
        self.image_sizes: dict[str, tuple[float, str]] = {}
        # Study Instance UID -> (image z, per-image CTDIvol or tube current): CTDIvol(z).
        self.dose_profiles: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}

    def add_image_sizes(self, sizes: Sequence[ImageSize]) -> None:
        """Use the TG-220 D_w of CT images (mean per study) for the SSDE of that study's
        acquisitions that carry no water-equivalent diameter of their own; with two or more
        images carrying z and a CTDIvol or tube current, CTDIvol(z) follows them (the images'
        z is taken to be in the frame of the table positions of events and reports)."""
        by_study: dict[str, list[ImageSize]] = {}
        for size in sizes:
            if size.study_instance_uid:
                by_study.setdefault(size.study_instance_uid, []).append(size)
        for uid, group in by_study.items():
            dw = float(np.mean([g.water_equivalent_diameter_mm for g in group]))
            notes = sorted({n for g in group for n in g.notes})
            note = f"D_w {dw:.0f} mm from {len(group)} CT image(s) (TG-220)"
            if notes:
                note += ": " + "; ".join(notes)
            self.image_sizes[uid] = (dw, note)
            points = sorted(
                (g.z_mm, g.profile_weight)
                for g in group
                if g.z_mm is not None and g.profile_weight is not None
            )
            if len({z for z, _ in points}) == len(points) >= 2:
                self.dose_profiles[uid] = (
                    np.array([z for z, _ in points]),
                    np.array([w for _, w in points]),
                )

    def warm_up(self) -> None:
        """Compile every numba kernel with the production dtypes and layouts."""
        batch = BatchInput.empty(2)
        batch.hi[:] = 100.0
        batch.n_hi[:] = 50.0
        batch.ctdivol_mgy[:] = 1.0
        batch.is_planned[0] = 1
        batch.helical[0] = 1
        assess_batch(batch, self.tables)
        profile_batch([(np.array([0.0, 1.0]), np.array([1.0]))], [0.0], [1.0], [0], self.tables)
        water_equivalent_area(
            np.zeros((1, 4, 4), np.int16), slope=1.0, intercept=-1024.0, pixel_area_mm2=1.0
        )

    # --- state --------------------------------------------------------------------------------

    def _state(self, study_uid: str) -> StudyState:
        state = self.store.get(study_uid)
        return state if state is not None else StudyState(study_instance_uid=study_uid)

    def _protocol(self, site: str, problems: Problems, notes: list[str]) -> SiteProtocol:
        protocol, found = self.library.resolve(site)
        if not found:
            problems.report(
                "planning.site", site, "not in the protocol library; the generic site is used"
            )
            notes.append(f"site {site!r} is not in the protocol library: generic site used")
        return protocol

    def _needed(
        self, state: StudyState, protocol: SiteProtocol, event: ProtocolEvent | None, centre: float
    ) -> Needed:
        if state.structure_set_rois:
            from_rois = needed_from_structure_set(
                state.structure_set_rois, state.structure_set_roi_types, protocol
            )
            if from_rois is not None:
                return from_rois
        if event is not None:
            return needed_from_planning(event.planning, protocol, centre)
        half = protocol.coverage.default_needed_length_mm / 2.0
        return Needed(
            (centre - half, centre + half),
            "site_default",
            [
                f"needed range is the {protocol.site} default length "
                f"{protocol.coverage.default_needed_length_mm:g} mm (no protocol event)"
            ],
        )

    # --- inputs to rows -----------------------------------------------------------------------

    def _event_rows(self, event: ProtocolEvent) -> list[AcquisitionRow]:
        problems = Problems(f"protocol event {event.event_id}", self.strictness)
        study = event.study
        state = self._state(study.study_instance_uid)
        state.protocol_event = event
        self.store.put(state)
        notes: list[str] = []
        protocol = self._protocol(event.planning.site, problems, notes)
        scans = [a for a in event.acquisitions if a.type != "localizer"]
        if not scans:
            return []
        centre = 0.5 * (min(a.z_range_mm[0] for a in scans) + max(a.z_range_mm[1] for a in scans))
        needed = self._needed(state, protocol, event, centre)
        intent = "the study purpose is diagnostic" if study.purpose == "diagnostic" else None
        size = self.image_sizes.get(study.study_instance_uid)
        if size is not None:
            notes.append(size[1])
        rows = []
        for acq in scans:
            lo, hi = acq.z_range_mm
            rows.append(
                AcquisitionRow(
                    input_kind="protocol_event",
                    input_id=event.event_id,
                    study_instance_uid=study.study_instance_uid,
                    accession_number=study.accession_number,
                    site=protocol.site,
                    protocol=protocol,
                    needed=needed,
                    lo=lo,
                    hi=hi,
                    is_planned=True,
                    helical=is_helical(acq.type),
                    collimation_mm=acq.total_collimation_mm,
                    pitch=acq.pitch,
                    ctdivol_mgy=acq.ctdivol_mgy,
                    placement="planned",
                    acquisition_index=acq.index,
                    acquisition_type=acq.type,
                    description=acq.series_description,
                    mas=acq.mas,
                    kvp=[acq.kvp],
                    slice_thickness_mm=acq.slice_thickness_mm,
                    contrast=acq.contrast == "with",
                    phantom=acq.phantom,
                    diagnostic_intent=intent,
                    labelled_planning=study.labelled_planning,
                    water_equivalent_diameter_mm=None if size is None else round(size[0], 1),
                    ssde_mgy=None
                    if size is None
                    else ssde_mgy(acq.ctdivol_mgy, size[0], acq.phantom),
                    notes=[*notes, *needed.notes, *problems.warnings],
                )
            )
        return rows

    def _report_rows(self, report: DoseReport) -> list[AcquisitionRow]:
        source = report.sop_instance_uid or report.source
        problems = Problems(f"dose report {report.source}", self.strictness)
        state = self._state(report.study_instance_uid)
        event = state.protocol_event
        notes: list[str] = []
        if event is not None:
            protocol = self._protocol(event.planning.site, problems, notes)
        else:
            protocol = self.library.sites[GENERIC_SITE]
            notes.append(
                "no protocol event for this study: generic site, needed range from its default"
            )
        scans = [a for a in report.acquisitions if a.acquisition_type != "localizer"]
        planned = list(event.acquisitions) if event is not None else []
        if event is not None:
            ranges = [a.z_range_mm for a in planned if a.type != "localizer"] or [
                a.z_range_mm for a in planned
            ]
            centre = 0.5 * (min(r[0] for r in ranges) + max(r[1] for r in ranges))
        else:
            zs = [
                0.5 * (a.top_z_mm + a.bottom_z_mm)
                for a in scans
                if a.top_z_mm is not None and a.bottom_z_mm is not None
            ]
            centre = float(np.mean(zs)) if zs else 0.0
        needed = self._needed(state, protocol, event, centre)
        n_centre = 0.5 * (needed.z_mm[0] + needed.z_mm[1])
        intent: str | None = None
        if event is not None and event.study.purpose == "diagnostic":
            intent = "the study purpose is diagnostic"
        elif report.has_intent == "diagnostic" and event is not None:
            # Without a protocol event nothing says the study was a planning scan.
            intent = "the dose report's Has Intent is diagnostic on a planning site"
        labelled = event.study.labelled_planning if event is not None else True
        size = self.image_sizes.get(report.study_instance_uid)

        assessed = set(state.assessed_event_uids)
        order: dict[str | None, int] = {}
        rows = []
        for acq in scans:
            ordinal = order.get(acq.acquisition_type, 0)
            order[acq.acquisition_type] = ordinal + 1
            if acq.irradiation_event_uid in assessed:
                continue
            row_notes = [*notes, *needed.notes]
            exposure = report_exposure(acq)
            row_notes.extend(exposure.notes)
            half = exposure.length_mm / 2.0
            lower_bound = False
            comparable = True
            if acq.top_z_mm is not None and acq.bottom_z_mm is not None:
                mid = 0.5 * (acq.top_z_mm + acq.bottom_z_mm)
                placement = "report_z"
            else:
                match = match_planned(acq.acquisition_type, ordinal, exposure.length_mm, planned)
                if match is not None:
                    mid = 0.5 * (match.z_range_mm[0] + match.z_range_mm[1])
                    placement = "protocol_event"
                else:
                    mid = n_centre
                    placement = "aligned_with_needed"
                    lower_bound = True
                    comparable = False
                    row_notes.append(
                        "the report gives no z positions and no planned acquisition matches: "
                        "the irradiated range is centred on the needed range, so the excess is "
                        "a lower bound"
                    )
            rows.append(
                AcquisitionRow(
                    input_kind="dose_report",
                    input_id=source,
                    study_instance_uid=report.study_instance_uid,
                    accession_number=report.accession_number,
                    site=protocol.site,
                    protocol=protocol,
                    needed=needed,
                    lo=mid - half,
                    hi=mid + half,
                    is_planned=False,
                    helical=is_helical(acq.acquisition_type),
                    collimation_mm=acq.nominal_total_collimation_mm,
                    pitch=acq.pitch_factor,
                    ctdivol_mgy=exposure.ctdivol_mgy,
                    placement=placement,
                    irradiation_event_uid=acq.irradiation_event_uid,
                    acquisition_type=acq.acquisition_type,
                    description=acq.acquisition_protocol,
                    excess_is_lower_bound=lower_bound,
                    reported_dlp_mgy_cm=acq.dlp_mgy_cm,
                    mas=_report_mas(acq),
                    kvp=acq.kvp,
                    contrast=acq.contrast,
                    phantom=acq.phantom,
                    diagnostic_intent=intent,
                    labelled_planning=labelled,
                    dose_checks=_dose_checks(acq),
                    water_equivalent_diameter_mm=acq.water_equivalent_diameter_mm
                    or (None if size is None else round(size[0], 1)),
                    ssde_mgy=_report_ssde(acq, exposure.ctdivol_mgy, row_notes, size),
                    notes=[*row_notes, *problems.warnings],
                    comparable_placement=comparable,
                )
            )
            state.assessed_event_uids.append(acq.irradiation_event_uid)
            assessed.add(acq.irradiation_event_uid)
        self.store.put(state)
        return rows

    def _structure_set(self, structure_set: StructureSet) -> None:
        state = self._state(structure_set.study_instance_uid)
        extents, types = rois_as_dict(structure_set.rois)
        state.structure_set_rois = extents
        state.structure_set_roi_types = types
        self.store.put(state)

    # --- the batch ----------------------------------------------------------------------------

    def process(self, items: Sequence[PipelineInput]) -> list[Assessment]:
        """Assess one batch; one assessment per non-localizer acquisition, in input order."""
        rows: list[AcquisitionRow] = []
        item_of: list[int] = []
        for n_item, item in enumerate(items):
            if isinstance(item, ProtocolEvent):
                new = self._event_rows(item)
            elif isinstance(item, DoseReport):
                new = self._report_rows(item)
            elif isinstance(item, StructureSet):
                self._structure_set(item)
                continue
            else:
                raise InputError(
                    f"pipeline input of type {type(item).__name__}: expected a ProtocolEvent, "
                    "DoseReport or StructureSet; parse the message first"
                )
            item_of.extend([n_item] * len(new))
            rows.extend(new)
        if not rows:
            return []
        for row in rows:
            row.unusable = _unusable(row)
            if row.unusable is not None:
                row.comparable_placement = False
        results = self._run_kernel(rows)
        cross = study_findings(rows, results, self._previous(rows, results, item_of))
        return [self._assessment(row, res, cross.get(i, [])) for i, (row, res) in enumerate(
            zip(rows, results, strict=True)
        )]  # fmt: skip

    def _previous(
        self, rows: list[AcquisitionRow], results: list[RowResult], item_of: list[int]
    ) -> list[list[Previous]]:
        """What each row is compared with for repeats: earlier rows of the same protocol event;
        for a reported event, the study's earlier reported events (state, then this batch).
        Placed reported events are then recorded in the study state for later batches."""
        out: list[list[Previous]] = []
        prior: dict[str, list[Previous]] = {}
        # Placed rows of each protocol event so far, so the batch is walked once (not per row).
        same_event: dict[int, list[Previous]] = {}
        for i, row in enumerate(rows):
            if row.input_kind == "protocol_event":
                earlier = same_event.setdefault(item_of[i], [])
                out.append(list(earlier))
                if row.comparable_placement:
                    earlier.append((results[i].x_lo, results[i].x_hi, row.contrast))
                continue
            uid = row.study_instance_uid
            if uid not in prior:
                state = self.store.get(uid)
                prior[uid] = list(state.reported_ranges) if state is not None else []
            out.append(list(prior[uid]))
            if row.comparable_placement:
                prior[uid].append((results[i].x_lo, results[i].x_hi, row.contrast))
        for uid, ranges in prior.items():
            state = self._state(uid)
            if len(ranges) != len(state.reported_ranges):
                state.reported_ranges = [(round(a, 2), round(b, 2), c) for a, b, c in ranges]
                self.store.put(state)
        return out

    def _run_kernel(self, rows: list[AcquisitionRow]) -> list[RowResult]:
        n = len(rows)
        index = {site: i for i, site in enumerate(self.library.site_ids)}
        nan = math.nan
        # Columns are gathered as lists and converted once: per-element numpy stores cost
        # about a microsecond each, a dozen per row.
        lo, hi, planned, helical = [0.0] * n, [0.0] * n, [0] * n, [0] * n
        collimation, pitch = [nan] * n, [nan] * n
        n_lo, n_hi, ctdivol, scales, tolerance = (
            [0.0] * n,
            [0.0] * n,
            [0.0] * n,
            [1.0] * n,
            [0.0] * n,
        )
        site = [0] * n
        for i, row in enumerate(rows):
            site[i] = index[row.site]
            if row.unusable is not None:
                # Left at the empty-batch defaults (zero length): one absurd message must not
                # stop the batch; its assessment says why it was not modelled.
                continue
            lo[i] = row.lo
            hi[i] = row.hi
            planned[i] = row.is_planned
            helical[i] = row.helical
            if row.collimation_mm is not None:
                collimation[i] = row.collimation_mm
            if row.pitch is not None:
                pitch[i] = row.pitch
            n_lo[i], n_hi[i] = row.needed.z_mm
            ctdivol[i] = row.ctdivol_mgy
            scales[i] = exposure_scale(row)
            tolerance[i] = row.protocol.coverage.tolerance_mm
        f64, i8 = np.float64, np.int8
        batch = BatchInput(
            np.array(lo, f64), np.array(hi, f64), np.array(planned, i8), np.array(helical, i8),
            np.array(collimation, f64), np.array(pitch, f64), np.array(n_lo, f64),
            np.array(n_hi, f64), np.array(ctdivol, f64), np.array(scales, f64),
            np.array(tolerance, f64), np.array(site, np.int64),
        )  # fmt: skip
        out = assess_batch(batch, self.tables)
        results = [RowResult(*values) for values in out.tolist()]
        if self.dose_profiles:
            self._apply_profiles(rows, results, batch.scale, index)
        return results

    def _apply_profiles(
        self,
        rows: list[AcquisitionRow],
        results: list[RowResult],
        scales: npt.NDArray[np.float64],
        index: dict[str, int],
    ) -> None:
        """Where CT images gave CTDIvol(z), integrate it instead of a constant CTDIvol: one
        profile-kernel call for every such row of the batch (actual and proposed ranges)."""
        which = [
            i
            for i, row in enumerate(rows)
            if row.study_instance_uid in self.dose_profiles and row.unusable is None
        ]
        if not which:
            return
        profiles = []
        for i in which:
            z, w = self.dose_profiles[rows[i].study_instance_uid]
            profiles.extend(row_profiles(z, w, rows[i].ctdivol_mgy, float(scales[i]), results[i]))
        n_lo = np.repeat([rows[i].needed.z_mm[0] for i in which], 2)
        n_hi = np.repeat([rows[i].needed.z_mm[1] for i in which], 2)
        sites = np.repeat([index[rows[i].site] for i in which], 2)
        out = profile_batch(profiles, n_lo, n_hi, sites, self.tables)
        for k, i in enumerate(which):
            actual, proposed = out[2 * k], out[2 * k + 1]
            if np.isnan(actual).any() or np.isnan(proposed).any():
                continue
            results[i] = replace(
                results[i],
                dlp=float(actual[0]),
                excess_dlp=float(actual[1]),
                effective_dose=float(actual[2]),
                excess_effective_dose=float(actual[3]),
                proposal_dlp=float(proposed[0]),
                proposal_effective_dose=float(proposed[2]),
            )
            rows[i].notes.append(
                "CTDIvol(z) follows the per-image CTDIvol or tube current of the study's CT "
                "images (mean kept at the acquisition's CTDIvol)"
            )

    def _assessment(self, row: AcquisitionRow, res: RowResult, cross: list[Finding]) -> Assessment:
        if row.unusable is not None:
            return self._unmodelled(row)
        notes = list(dict.fromkeys(row.notes))
        reported = row.reported_dlp_mgy_cm
        if reported is not None and reported > 0 and abs(res.dlp - reported) > 0.01 * reported:
            notes.append(
                f"modelled DLP {res.dlp:.1f} mGy.cm differs from the reported "
                f"{reported:.1f} mGy.cm by more than 1%"
            )
        findings = acquisition_findings(row, res)
        findings.extend(cross)
        scale = exposure_scale(row)
        return Assessment(
            **_identity(row),
            needed_z_mm=(_r(row.needed.z_mm[0], 2), _r(row.needed.z_mm[1], 2)),
            needed_basis=row.needed.basis,
            irradiated_z_mm=(_r(res.x_lo, 2), _r(res.x_hi, 2)),
            placement=row.placement,
            excess_is_lower_bound=row.excess_is_lower_bound,
            ctdivol_mgy=_r(row.ctdivol_mgy),
            dlp_mgy_cm=_r(res.dlp),
            scan_length_mm=_r(res.x_hi - res.x_lo, 2),
            excess_length_mm=_r(res.excess_length, 2),
            excess_dlp_mgy_cm=_r(res.excess_dlp),
            excess_fraction=_r(res.excess_fraction),
            effective_dose_msv=_r(res.effective_dose, 5),
            excess_effective_dose_msv=_r(res.excess_effective_dose, 5),
            ssde_mgy=None if row.ssde_mgy is None else _r(row.ssde_mgy),
            water_equivalent_diameter_mm=row.water_equivalent_diameter_mm,
            findings=findings,
            proposal=build_proposal(row, res, scale),
            notes=notes,
        )

    def _unmodelled(self, row: AcquisitionRow) -> Assessment:
        reported = row.reported_dlp_mgy_cm
        dlp = reported if reported is not None and math.isfinite(reported) else 0.0
        return Assessment(
            **_identity(row),
            needed_z_mm=None,
            needed_basis=row.needed.basis,
            irradiated_z_mm=None,
            placement=row.placement,
            ctdivol_mgy=None,
            dlp_mgy_cm=_r(dlp),
            scan_length_mm=0.0,
            excess_length_mm=0.0,
            excess_dlp_mgy_cm=0.0,
            excess_fraction=0.0,
            effective_dose_msv=0.0,
            excess_effective_dose_msv=0.0,
            findings=[],
            proposal=None,
            notes=[*dict.fromkeys(row.notes), f"not modelled: {row.unusable}"],
        )


# CTDIvol beyond this is not a CT exposure (the AAPM alert value is 1000 mGy accumulated).
MAX_CTDIVOL_MGY = 1.0e5


def _unusable(row: AcquisitionRow) -> str | None:
    """Why the row's numbers cannot be modelled (field, value, rule), or None when they can."""
    for name, value in (
        ("z range low end", row.lo),
        ("z range high end", row.hi),
        ("needed range low end", row.needed.z_mm[0]),
        ("needed range high end", row.needed.z_mm[1]),
    ):
        if not math.isfinite(value) or abs(value) > MAX_ABS_Z_MM:
            return (
                f"{name} = {value!r} mm is not a table position (finite, within "
                f"{MAX_ABS_Z_MM:g} mm); fix the feed's z values"
            )
    if not math.isfinite(row.ctdivol_mgy) or not 0 <= row.ctdivol_mgy <= MAX_CTDIVOL_MGY:
        return (
            f"CTDIvol = {row.ctdivol_mgy!r} mGy is outside 0..{MAX_CTDIVOL_MGY:g} mGy; "
            "fix the feed's CTDIvol"
        )
    for name, opt in (("total collimation", row.collimation_mm), ("pitch", row.pitch)):
        if opt is not None and not math.isfinite(opt):
            return f"{name} = {opt!r} is not finite; send a number or leave it out"
    return None


def _report_mas(acq: CtAcquisition) -> float | None:
    for s in acq.sources:
        if s.mean_tube_current_ma is not None and s.exposure_time_per_rotation_s is not None:
            return s.mean_tube_current_ma * s.exposure_time_per_rotation_s
    return None


def _dose_checks(acq: CtAcquisition) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for d in acq.dose_check:
        parts = []
        if d.ctdivol_forward_estimate_mgy is not None:
            parts.append(f"CTDIvol forward estimate {d.ctdivol_forward_estimate_mgy:g} mGy")
            if d.ctdivol_value_mgy is not None:
                parts[-1] += f" against {d.ctdivol_value_mgy:g} mGy"
        if d.dlp_forward_estimate_mgy_cm is not None:
            parts.append(f"DLP forward estimate {d.dlp_forward_estimate_mgy_cm:g} mGy.cm")
            if d.dlp_value_mgy_cm is not None:
                parts[-1] += f" against {d.dlp_value_mgy_cm:g} mGy.cm"
        if d.reason_for_proceeding:
            parts.append(f"reason for proceeding: {d.reason_for_proceeding}")
        out.append((d.kind, f"{d.kind} ({', '.join(parts) or 'no values recorded'})"))
    return out


def _report_ssde(
    acq: CtAcquisition, ctdivol: float, notes: list[str], size: tuple[float, str] | None
) -> float | None:
    if acq.water_equivalent_diameter_mm is not None and acq.water_equivalent_diameter_mm > 0:
        return ssde_mgy(ctdivol, acq.water_equivalent_diameter_mm, acq.phantom or "body")
    if size is not None:
        notes.append(size[1])
        return ssde_mgy(ctdivol, size[0], acq.phantom or "body")
    if acq.ssde_mgy is not None:
        notes.append("SSDE as reported by the scanner (no water-equivalent diameter given)")
        return acq.ssde_mgy
    return None


def _identity(row: AcquisitionRow) -> dict[str, Any]:
    """The fields naming what an assessment is about; the id is derived from the input."""
    key = (
        str(row.acquisition_index)
        if row.acquisition_index is not None
        else str(row.irradiation_event_uid)
    )
    return {
        "assessment_id": assessment_id(row.input_kind, row.input_id, key),
        "input_kind": row.input_kind,
        "input_id": row.input_id,
        "study_instance_uid": row.study_instance_uid,
        "accession_number": row.accession_number,
        "acquisition_index": row.acquisition_index,
        "irradiation_event_uid": row.irradiation_event_uid,
        "site": row.site,
        "acquisition_type": row.acquisition_type,
        "description": row.description,
    }
