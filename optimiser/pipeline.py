"""The assessment pipeline: protocol events, dose reports and structure sets in, assessments out.

One :meth:`Pipeline.process` call handles one batch in stages, each its own module:
:mod:`optimiser.rows` turns each input into kernel rows (each input type of
:data:`optimiser.inputs.PipelineInput` through its method in :data:`INPUT_METHODS`), walking the
items in order and updating the per-study state as it goes (so a dose report after its protocol
event in the same batch finds it); a row whose numbers cannot be modelled
(:func:`optimiser.batch.unusable`) is replaced by one marked so, never placed against others;
:mod:`optimiser.batch` packs every row of the batch into one struct-of-arrays input and calls the
numba batch kernel once; :mod:`optimiser.rounding` rounds every reported number of the batch at
once (equal to ``round`` value for value);
:mod:`optimiser.assemble` turns each row into an :class:`~optimiser.assessment.Assessment` with
its findings and proposal. Study-level findings (repeats, contrast phases) compare each row with
the study's earlier acquisitions here; the surplus acquisition they flag is assembled as avoidable
as a whole, with a proposal to omit it. The model's sources are cited in
:mod:`optimiser.dose_model`, :mod:`optimiser.findings` and :mod:`optimiser.ssde`
(../shared/reference/planning-ct.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from optimiser import assemble, batch
from optimiser.assessment import Assessment, Finding
from optimiser.dose_model import AcquisitionRow, site_tables
from optimiser.errors import InputError
from optimiser.events import ProtocolEvent
from optimiser.findings import exam_dlp_finding
from optimiser.inputs import PipelineInput
from optimiser.kernels import BatchInput, RowResult, assess_batch
from optimiser.profile_kernel import profile_batch
from optimiser.records import DoseReport, StructureSet
from optimiser.rounding import rounded_rows
from optimiser.rows import RowBuilder
from optimiser.ssde import ImageSize
from optimiser.state import MemoryStateStore, StudyStateStore
from optimiser.strictness import Strictness
from optimiser.study_findings import Previous, in_study_checks, study_findings
from optimiser.tg220 import water_equivalent_area
from protocols.library import SiteLibrary, builtin_library


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
        self.site_index = {site: i for i, site in enumerate(self.library.site_ids)}
        # Study Instance UID -> (D_w mm, note) from CT images given alongside (lowdose assess).
        self.image_sizes: dict[str, tuple[float, str]] = {}
        # Study Instance UID -> (image z, per-image CTDIvol or tube current): CTDIvol(z).
        self.dose_profiles: batch.DoseProfiles = {}
        self.rows = RowBuilder(self.library, self.store, strictness, self.image_sizes)

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

    # --- the batch ----------------------------------------------------------------------------

    def process(self, items: Sequence[PipelineInput]) -> list[Assessment]:
        """Assess one batch; one assessment per non-localizer acquisition, in input order."""
        rows: list[AcquisitionRow] = []
        item_of: list[int] = []
        methods = INPUT_METHODS
        for n_item, item in enumerate(items):
            method = methods.get(type(item)) or _method_of(item)
            new = method(self, item)
            item_of.extend([n_item] * len(new))
            rows.extend(new)
        if not rows:
            return []
        for i, row in enumerate(rows):
            why = batch.unusable(row)
            if why is not None:  # an unusable row is not placed against others either
                geometry = row.geometry._replace(comparable_placement=False)
                rows[i] = replace(row, geometry=geometry, unusable=why)
        run = batch.run(rows, self.site_index, self.tables, self.dose_profiles)
        rows, results = run.rows, run.results
        cross = study_findings(rows, results, self._previous(rows, results, item_of))
        for i, found in self._exam_dlp(rows, results, item_of).items():
            cross.setdefault(i, []).append(found)
        # Every reported number of the batch rounded at once (optimiser.rounding).
        rounded = rounded_rows(rows, run.out, run.scale)
        return [
            assemble.assessment(row, res, cross.get(i, []), rd)
            for i, (row, res, rd) in enumerate(zip(rows, results, rounded, strict=True))
        ]

    # --- one method per input type (INPUT_METHODS) ----------------------------------------------

    def _event_rows(self, event: ProtocolEvent) -> list[AcquisitionRow]:
        return self.rows.event_rows(event)

    def _report_rows(self, report: DoseReport) -> list[AcquisitionRow]:
        return self.rows.report_rows(report)

    def _structure_set_rows(self, structure_set: StructureSet) -> list[AcquisitionRow]:
        """No rows: the ROI extents go to the study state, later inputs take N from them."""
        self.rows.structure_set(structure_set)
        return []

    def _exam_dlp(
        self, rows: list[AcquisitionRow], results: list[RowResult], item_of: list[int]
    ) -> dict[int, Finding]:
        """Exam-level DLP findings (DRLs are per exam, ICRP 135): the running total over the
        planned acquisitions of each protocol event, and over a study's reported events across
        reports (the total so far is kept in the study state)."""
        out: dict[int, Finding] = {}
        event_total: dict[int, float] = {}
        report_total: dict[str, float] = {}
        # The same totals without over-ranging modelled beyond the fit's collimation (issue 20
        # defect 3): a level passed only through that extrapolation raises info.
        event_sure: dict[int, float] = {}
        report_sure: dict[str, float] = {}
        for i, row in enumerate(rows):
            res = results[i]
            dlp = res.dlp if row.unusable is None else 0.0
            sure = dlp
            if row.unusable is None and res.overrange_extrapolated and row.geometry.is_planned:
                sure = dlp - row.exposure.ctdivol_mgy * res.overrange / 10.0
            if row.identity.input_kind == "dose_report":
                reported = row.exposure.reported_dlp_mgy_cm
                if reported is not None and math.isfinite(reported) and reported > 0:
                    dlp = sure = reported
                uid = row.identity.study_instance_uid
                if uid not in report_total:
                    state = self.store.get(uid)
                    report_total[uid] = state.reported_exam_dlp_mgy_cm if state else 0.0
                    report_sure[uid] = report_total[uid]
                before, sure_before = report_total[uid], report_sure[uid]
                report_total[uid] = before + dlp
                report_sure[uid] = sure_before + sure
            else:
                before = event_total.get(item_of[i], 0.0)
                sure_before = event_sure.get(item_of[i], 0.0)
                event_total[item_of[i]] = before + dlp
                event_sure[item_of[i]] = sure_before + sure
            found = exam_dlp_finding(row, before, before + dlp, sure_before, sure_before + sure)
            if found is not None:
                out[i] = found
        for uid, total in report_total.items():
            state = self.rows.state(uid)
            state.reported_exam_dlp_mgy_cm = round(total, 4)
            self.store.put(state)
        return out

    def _previous(
        self, rows: list[AcquisitionRow], results: list[RowResult], item_of: list[int]
    ) -> list[list[Previous]]:
        """What each row is compared with for repeats: earlier rows of the same protocol event;
        for a reported event, the study's earlier reported events (state, then this batch).
        Only rows in the study checks (:func:`optimiser.study_findings.in_study_checks`) are
        compared with; placed reported events are then recorded in the study state for later
        batches."""
        out: list[list[Previous]] = []
        prior: dict[str, list[Previous]] = {}
        # Placed rows of each protocol event so far, so the batch is walked once (not per row).
        same_event: dict[int, list[Previous]] = {}
        for i, row in enumerate(rows):
            if row.identity.input_kind == "protocol_event":
                earlier = same_event.setdefault(item_of[i], [])
                out.append(list(earlier))
                if in_study_checks(row):
                    earlier.append((results[i].x_lo, results[i].x_hi, row.exposure.contrast))
                continue
            uid = row.identity.study_instance_uid
            if uid not in prior:
                state = self.store.get(uid)
                prior[uid] = list(state.reported_ranges) if state is not None else []
            out.append(list(prior[uid]))
            if in_study_checks(row):
                prior[uid].append((results[i].x_lo, results[i].x_hi, row.exposure.contrast))
        for uid, ranges in prior.items():
            state = self.rows.state(uid)
            if len(ranges) != len(state.reported_ranges):
                state.reported_ranges = [(round(a, 2), round(b, 2), c) for a, b, c in ranges]
                self.store.put(state)
        return out


InputMethod = Callable[[Pipeline, Any], list[AcquisitionRow]]

# The pipeline method of each input type, one entry per member of PipelineInput (a new input:
# a member there, an entry here and its method above).
INPUT_METHODS: Mapping[type, InputMethod] = {
    ProtocolEvent: Pipeline._event_rows,
    DoseReport: Pipeline._report_rows,
    StructureSet: Pipeline._structure_set_rows,
}


def _method_of(item: object) -> InputMethod:
    """The method of a subclass of an input type; an :class:`InputError` for anything else."""
    for kind in type(item).__mro__:
        method = INPUT_METHODS.get(kind)
        if method is not None:
            return method
    names = [kind.__name__ for kind in INPUT_METHODS]
    raise InputError(
        f"pipeline input of type {type(item).__name__}: expected a {', '.join(names[:-1])} "
        f"or {names[-1]}; parse the message first"
    )
