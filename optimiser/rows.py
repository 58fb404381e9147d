"""Inputs to kernel rows: each protocol event, dose report and structure set becomes the
:class:`~optimiser.dose_model.AcquisitionRow` objects the batch kernel assesses.

Each row is built once from its parts, one helper per part and source: identity (copied from
the message), geometry (the placement on the table axis), exposure (technique and dose, a
report's made consistent) and context (site protocol, N, diagnostic intent, notes; the same
helper for both sources).

This is the first stage of the pipeline (:mod:`optimiser.pipeline`): it reads and updates the
per-study state (a dose report is placed against its study's earlier protocol event and
structure set), resolves the site protocol and the needed range N, and places each acquisition
on the table axis. The model and its sources are :mod:`optimiser.dose_model`'s
(../shared/reference/planning-ct.md sections 4 and 5).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optimiser import repeats
from optimiser.dose_model import (
    AcquisitionRow,
    Exposure,
    Needed,
    RowContext,
    RowExposure,
    RowGeometry,
    RowIdentity,
    is_helical,
    match_planned,
    needed_from_planning,
    needed_from_structure_set,
    report_exposure,
    rois_as_dict,
)
from optimiser.events import PlannedAcquisition, ProtocolEvent
from optimiser.records import CtAcquisition, DoseReport, StructureSet
from optimiser.ssde import HeadFit, ssde_mgy
from optimiser.state import StudyState, StudyStateStore
from optimiser.strictness import Problems, Strictness
from protocols.library import SiteLibrary, SiteProtocol
from protocols.site_ids import GENERIC_SITE

# Study Instance UID -> (D_w mm, note) from CT images given alongside (lowdose assess).
ImageSizes = dict[str, tuple[float, str]]


class RowBuilder:
    """Turns inputs into rows, keeping the study state in ``store`` up to date."""

    def __init__(
        self,
        library: SiteLibrary,
        store: StudyStateStore,
        strictness: Strictness,
        image_sizes: ImageSizes,
    ) -> None:
        self.library = library
        self.store = store
        self.strictness = strictness
        self.image_sizes = image_sizes

    # --- state and site -----------------------------------------------------------------------

    def state(self, study_uid: str) -> StudyState:
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
            (
                f"needed range is the {protocol.site} default length "
                f"{protocol.coverage.default_needed_length_mm:g} mm (no protocol event)",
            ),
        )

    # --- inputs -------------------------------------------------------------------------------

    def event_rows(self, event: ProtocolEvent) -> list[AcquisitionRow]:
        """One row per planned non-localizer acquisition (the planned range is widened by the
        modelled over-ranging in the kernel)."""
        problems = Problems(f"protocol event {event.event_id}", self.strictness)
        study = event.study
        state = self.state(study.study_instance_uid)
        # The state (and so the changelog topic) keeps no patient identifier (issue 10).
        state.protocol_event = event.without_identifiers()
        self.store.put(state)
        notes: list[str] = []
        protocol = self._protocol(event.planning.site, problems, notes)
        scans = [a for a in event.acquisitions if a.type != "localizer"]
        if not scans:
            return []
        planned = [a.z_range_mm for a in scans]  # once each: a property computing min and max
        centre = 0.5 * (min(r[0] for r in planned) + max(r[1] for r in planned))
        needed = self._needed(state, protocol, event, centre)
        names = protocol.diagnostic_names
        size = self.image_sizes.get(study.study_instance_uid)
        if size is not None:
            notes.append(size[1])
        row_notes = (*notes, *needed.notes, *problems.warnings)  # the same on every row
        rows = []
        for acq, (lo, hi) in zip(scans, planned, strict=True):
            intent = _event_intent(
                study.purpose, names.match(acq.series_description, study.study_description)
            )
            rows.append(
                AcquisitionRow(
                    _identity_from_event(event, acq),
                    _geometry_from_event(acq, lo, hi),
                    _exposure_from_event(acq, protocol, size),
                    _context(
                        protocol,
                        needed,
                        intent,
                        study.labelled_planning,
                        row_notes,
                        repeats.from_event(acq),
                    ),
                )
            )
        return rows

    def report_rows(self, report: DoseReport) -> list[AcquisitionRow]:
        """One row per reported non-localizer irradiation event not assessed before (cumulative
        reports resend events), placed by the report's z, else by the planned acquisition it
        matches, else centred on N (then the excess is a lower bound). The planned range is
        the Top/Bottom Z of Scanning Length, else the scanning length so placed, with the real
        over-ranging DLP / CTDIvol minus it (:func:`_report_geometry`, :func:`_report_range`)."""
        source = report.sop_instance_uid or report.source
        problems = Problems(f"dose report {report.source}", self.strictness)
        state = self.state(report.study_instance_uid)
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
        needed = self._needed(state, protocol, event, _report_centre(event, scans))
        n_centre = 0.5 * (needed.z_mm[0] + needed.z_mm[1])
        purpose = event.study.purpose if event is not None else None
        referral = event.study.study_description if event is not None else None
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
            intent = _report_intent(
                purpose,
                report.has_intent == "diagnostic",
                protocol.diagnostic_names.match(acq.acquisition_protocol, referral),
            )
            # The notes in the order the steps add them: Dose Check configuration, the report
            # made consistent, the placement, the SSDE, then the malformed items.
            row_notes = [*notes, *needed.notes]
            dose_checks = _dose_checks(acq, row_notes)
            exposure = report_exposure(acq)
            row_notes.extend(exposure.notes)
            geometry = _report_geometry(acq, exposure, ordinal, planned, n_centre, row_notes)
            row_exposure = _exposure_from_report(
                acq, exposure, dose_checks, size, protocol.ssde.head_fit, row_notes
            )
            row_notes.extend(problems.warnings)
            rows.append(
                AcquisitionRow(
                    _identity_from_report(report, source, acq),
                    geometry,
                    row_exposure,
                    _context(
                        protocol,
                        needed,
                        intent,
                        labelled,
                        tuple(row_notes),
                        repeats.from_report(acq, ordinal, planned),
                    ),
                )
            )
            state.assessed_event_uids.append(acq.irradiation_event_uid)
            assessed.add(acq.irradiation_event_uid)
        self.store.put(state)
        return rows

    def structure_set(self, structure_set: StructureSet) -> None:
        """Record the ROI extents: later inputs of the study take N from them."""
        state = self.state(structure_set.study_instance_uid)
        extents, types = rois_as_dict(structure_set.rois)
        state.structure_set_rois = extents
        state.structure_set_roi_types = types
        self.store.put(state)


class _Intent(NamedTuple):
    """Why an acquisition looks diagnostic (None: it does not) and whether that is corroborated."""

    reason: str | None
    corroborated: bool


def _event_intent(purpose: str, name: str | None) -> _Intent:
    """Diagnostic intent of a planned acquisition: the event's study purpose says so (a
    warning), or only a protocol/series or referral name reads diagnostic (info)."""
    if purpose == "diagnostic":
        return _Intent("the study purpose is diagnostic", True)
    if name is not None:
        return _Intent(f"the name {name} reads diagnostic", False)
    return _Intent(None, False)


def _report_intent(purpose: str | None, has_intent: bool, name: str | None) -> _Intent:
    """Diagnostic intent of a reported event (severity rule 10): the RDSR's Has Intent =
    diagnostic is a vendor default on most scanners, RT simulators included, so alone it is
    info; the protocol event's purpose, or a protocol or referral name that reads diagnostic
    (``[diagnostic_names]``), corroborates it."""
    if purpose == "diagnostic":
        return _event_intent(purpose, None)
    if has_intent and name is not None:
        return _Intent(
            f"the dose report's Has Intent is diagnostic and the name {name} reads diagnostic", True
        )
    if has_intent:
        return _Intent("the dose report's Has Intent is diagnostic", False)
    return _event_intent("", name)


# --- the parts of a row, one helper per part and source -----------------------------------------


def _identity_from_event(event: ProtocolEvent, acq: PlannedAcquisition) -> RowIdentity:
    study = event.study
    return RowIdentity(
        input_kind="protocol_event",
        input_id=event.event_id,
        study_instance_uid=study.study_instance_uid,
        accession_number=study.accession_number,
        acquisition_index=acq.index,
        acquisition_type=acq.type,
        description=acq.series_description,
        scanner_model=event.scanner.model,
        station_name=event.scanner.station_name,
        performed_at=event.emitted_at,
    )


def _identity_from_report(report: DoseReport, source: str, acq: CtAcquisition) -> RowIdentity:
    return RowIdentity(
        input_kind="dose_report",
        input_id=source,
        study_instance_uid=report.study_instance_uid,
        accession_number=report.accession_number,
        irradiation_event_uid=acq.irradiation_event_uid,
        acquisition_type=acq.acquisition_type,
        description=acq.acquisition_protocol,
        scanner_model=report.model,
        station_name=report.station_name,
        performed_at=report.start_of_irradiation,
    )


def _geometry_from_event(acq: PlannedAcquisition, lo: float, hi: float) -> RowGeometry:
    """The planned range ``lo``..``hi`` (the kernel widens it by the modelled over-ranging)."""
    return RowGeometry(
        lo_mm=lo,
        hi_mm=hi,
        is_planned=True,
        helical=is_helical(acq.type),
        total_collimation_mm=acq.total_collimation_mm,
        pitch_factor=acq.pitch,
        placement="planned",
    )


def _exposure_from_event(
    acq: PlannedAcquisition, protocol: SiteProtocol, size: tuple[float, str] | None
) -> RowExposure:
    """The planned exposure; SSDE and D_w from the study's CT images when given."""
    # No phantom in the event: the site library's (head for brain; issue 9 defect 6).
    phantom = acq.phantom or protocol.phantom
    return RowExposure(
        ctdivol_mgy=acq.ctdivol_mgy,
        mas=acq.mas,
        kvp=(acq.kvp,),
        slice_thickness_mm=acq.slice_thickness_mm,
        phantom=phantom,
        ssde_mgy=None
        if size is None
        else ssde_mgy(acq.ctdivol_mgy, size[0], phantom, protocol.ssde.head_fit),
        water_equivalent_diameter_mm=None if size is None else round(size[0], 1),
        contrast=acq.contrast,
    )


def _exposure_from_report(
    acq: CtAcquisition,
    exposure: Exposure,
    dose_checks: tuple[tuple[str, str], ...],
    size: tuple[float, str] | None,
    head_fit: HeadFit,
    notes: list[str],
) -> RowExposure:
    """The reported exposure, CTDIvol made consistent (``exposure``: :func:`report_exposure`);
    ``dose_checks`` from :func:`_dose_checks`."""
    return RowExposure(
        ctdivol_mgy=exposure.ctdivol_mgy,
        mas=_report_mas(acq),
        kvp=tuple(acq.kvp),
        reported_dlp_mgy_cm=acq.dlp_mgy_cm,
        phantom=acq.phantom,
        ssde_mgy=_report_ssde(acq, exposure.ctdivol_mgy, notes, size, head_fit),
        water_equivalent_diameter_mm=acq.water_equivalent_diameter_mm
        or (None if size is None else round(size[0], 1)),
        dose_checks=dose_checks,
        contrast=acq.contrast,
    )


def _context(
    protocol: SiteProtocol,
    needed: Needed,
    intent: _Intent,
    labelled_planning: bool,
    notes: tuple[str, ...],
    repeat_reason: repeats.RecordedReason | None = None,
) -> RowContext:
    """The same for both sources: what the site library and the study say of the row."""
    return RowContext(
        site=protocol.site,
        protocol=protocol,
        needed=needed,
        diagnostic_intent=intent.reason,
        diagnostic_corroborated=intent.corroborated,
        labelled_planning=labelled_planning,
        notes=notes,
        repeat_reason=repeat_reason,
    )


def _report_centre(event: ProtocolEvent | None, scans: list[CtAcquisition]) -> float:
    """Where a site default N is centred for a report: the centre of the protocol event's
    planned (non-localizer) acquisitions, else the mean centre of the reported z ranges."""
    if event is not None:
        planned = event.acquisitions
        ranges = [a.z_range_mm for a in planned if a.type != "localizer"] or [
            a.z_range_mm for a in planned
        ]
        return 0.5 * (min(r[0] for r in ranges) + max(r[1] for r in ranges))
    zs = [
        0.5 * (a.top_z_mm + a.bottom_z_mm)
        for a in scans
        if a.top_z_mm is not None and a.bottom_z_mm is not None
    ]
    return float(np.mean(zs)) if zs else 0.0


def _report_geometry(
    acq: CtAcquisition,
    exposure: Exposure,
    ordinal: int,
    planned: list[PlannedAcquisition],
    n_centre: float,
    notes: list[str],
) -> RowGeometry:
    """A reported event on the table axis: about the centre of the report's z, else of the
    planned acquisition it matches (``ordinal``: its order among the report's events of its
    type), else of N (``n_centre``; then the excess is a lower bound and the row is not
    compared with others). The range itself is :func:`_report_range`'s."""
    lower_bound = False
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
            notes.append(
                "the report gives no z positions and no planned acquisition matches: "
                "the irradiated range is centred on the needed range, so the excess is "
                "a lower bound"
            )
    lo, hi, is_planned, known_over = _report_range(acq, exposure, mid, notes)
    return RowGeometry(
        lo_mm=lo,
        hi_mm=hi,
        is_planned=is_planned,
        helical=is_helical(acq.acquisition_type),
        total_collimation_mm=acq.nominal_total_collimation_mm,
        pitch_factor=acq.pitch_factor,
        placement=placement,
        excess_is_lower_bound=lower_bound,
        known_overrange_mm=known_over,
        comparable_placement=not lower_bound,
    )


def _report_range(
    acq: CtAcquisition, exposure: Exposure, mid: float, notes: list[str]
) -> tuple[float, float, bool, float | None]:
    """(lo, hi, is_planned, known over-ranging) of a reported event placed about ``mid``.

    The planned range is the report's Top/Bottom Z of Scanning Length when given, else its
    scanning length about ``mid``; the real over-ranging is the irradiated length (DLP /
    CTDIvol) minus it (planning-ct.md section 9). Without a scanning length only the irradiated
    range is known: the kernel takes the modelled over-ranging off it (severity rule 1).
    """
    if acq.top_z_mm is not None and acq.bottom_z_mm is not None:
        lo, hi = sorted((acq.bottom_z_mm, acq.top_z_mm))
        known: float | None = None
        if exposure.measured:
            known = max(0.0, exposure.length_mm - (hi - lo))
            if exposure.length_mm < hi - lo:
                notes.append(
                    f"the irradiated length {exposure.length_mm:.1f} mm (DLP / CTDIvol) is "
                    f"shorter than the reported scanning range {hi - lo:.1f} mm: over-ranging "
                    "taken as 0"
                )
        return lo, hi, True, known
    if exposure.planned_length_mm is not None:
        half = exposure.planned_length_mm / 2.0
        return mid - half, mid + half, True, exposure.overrange_mm
    half = exposure.length_mm / 2.0
    return mid - half, mid + half, False, None


def _report_mas(acq: CtAcquisition) -> float | None:
    for s in acq.sources:
        if s.mean_tube_current_ma is not None and s.exposure_time_per_rotation_s is not None:
            return s.mean_tube_current_ma * s.exposure_time_per_rotation_s
    return None


def _dose_checks(acq: CtAcquisition, notes: list[str]) -> tuple[tuple[str, str], ...]:
    """The Dose Check containers that record an exceedance, as (kind, what was exceeded); the
    configured values of the others go to ``notes`` (configuration is not a finding: TID 10015,
    planning-ct.md section 9)."""
    out: list[tuple[str, str]] = []
    configured: list[str] = []
    for d in acq.dose_check:
        exceeded = d.exceedances()
        if exceeded:
            out.append((d.kind, f"{d.kind}: {', '.join(exceeded)}"))
        elif d.configured():
            configured.append(f"{d.kind} {', '.join(d.configured())}")
    if configured:
        notes.append(f"scanner Dose Check configured ({'; '.join(configured)}); not exceeded")
    return tuple(out)


def _report_ssde(
    acq: CtAcquisition,
    ctdivol: float,
    notes: list[str],
    size: tuple[float, str] | None,
    head_fit: HeadFit,
) -> float | None:
    """SSDE of a reported event; ``head_fit`` is the site's fit for a head-phantom CTDIvol
    (TG-293 on brain scans only, TG-204 16 cm on neck and shoulders: optimiser.ssde)."""
    if acq.water_equivalent_diameter_mm is not None and acq.water_equivalent_diameter_mm > 0:
        dw = acq.water_equivalent_diameter_mm
        return ssde_mgy(ctdivol, dw, acq.phantom or "body", head_fit)
    if size is not None:
        notes.append(size[1])
        return ssde_mgy(ctdivol, size[0], acq.phantom or "body", head_fit)
    if acq.ssde_mgy is not None:
        notes.append("SSDE as reported by the scanner (no water-equivalent diameter given)")
        return acq.ssde_mgy
    return None
