"""The department's own dose levels from its assessed history, in ICRP Publication 135 terms.

Sources (../shared/reference/planning-ct.md section 9, ICRP Publication 135):
- typical value: the median of one facility's distribution, used where there are too few rooms
  for a local DRL, as in a department with one or two CT simulators;
- local DRL: the 75th percentile of the distribution over a reasonable number (e.g. 10-20) of
  rooms; ICRP 135 moved from means to medians;
- DRL quantities are per examination: the exam DLP is the sum over the study's acquisitions.

From assessments (JSON lines, as ``lowdose assess --json`` or the ``lowdose.assessments.v1`` /
``lowdose.alerts.v1`` topics write them) this module computes, per site and scanner model, the
median and 75th percentile of CTDIvol (per acquisition, stationary and free acquisitions left
out: their own dose class) and of the exam DLP (per study), with n, the number of rooms
(distinct station names) and the period, and with two or more rooms the 75th percentile of the
room medians (ICRP 135's local DRL once there are ``[department] local_drl_min_rooms`` rooms).
A study's delivered doses (its dose-report assessments) are used when the history holds them,
else its planned ones (protocol events);
duplicates (the same ``assessment_id``, at-least-once delivery) count once; the generic site
(site unknown) is left out. Percentiles are numpy's linear interpolation.

:func:`with_department_levels` hands them to the library: exceeding the department's typical
value is then info, and a site with ``[department] promote_p75_to_warning = true`` (in a
department override file) gets a warning above the department's 75th percentile. Levels from
fewer than ``[department] min_exams`` exams are shown but not used.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import ValidationError

from optimiser.assessment import Assessment
from optimiser.errors import InputError
from optimiser.findings import OWN_CLASS_TYPES
from protocols.library import DepartmentLevel, SiteLibrary
from protocols.site_ids import GENERIC_SITE


def read_history(path: Path) -> list[Assessment]:
    """Assessments from a file of JSON lines (one assessment, or an array, per line) or one
    JSON array (``lowdose assess --json``). Raises :class:`InputError` naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"--history = {str(path)!r}: cannot read it ({exc}); give a file of assessment JSON "
            "lines"
        ) from exc
    stripped = text.lstrip()
    chunks = [(1, stripped)] if stripped.startswith("[") else list(enumerate(text.splitlines(), 1))
    out: list[Assessment] = []
    for number, chunk in chunks:
        if not chunk.strip():
            continue
        try:
            doc = json.loads(chunk)
            docs = doc if isinstance(doc, list) else [doc]
            out.extend(Assessment.model_validate(d) for d in docs)
        except (json.JSONDecodeError, ValidationError) as exc:
            raise InputError(
                f"--history {path} line {number}: not a lowdose.assessment/1 document "
                f"({str(exc).splitlines()[0]}); give the JSON that lowdose assess --json or the "
                "assessments topic writes"
            ) from exc
    return out


@dataclass(frozen=True, slots=True)
class _Study:
    site: str
    scanner_model: str
    stations: frozenset[str]
    dates: tuple[str, ...]
    ctdivol_mgy: tuple[float, ...]
    exam_dlp_mgy_cm: float


def _studies(history: Iterable[Assessment]) -> list[_Study]:
    unique = {a.assessment_id: a for a in history}
    by_study: dict[str, list[Assessment]] = {}
    for a in unique.values():
        by_study.setdefault(a.study_instance_uid, []).append(a)
    out: list[_Study] = []
    for group in by_study.values():
        delivered = [a for a in group if a.input_kind == "dose_report"]
        chosen = delivered or group
        site = chosen[0].site
        if site == GENERIC_SITE:
            continue
        models = [a.scanner_model for a in chosen if a.scanner_model]
        out.append(
            _Study(
                site=site,
                scanner_model=models[0] if models else "",
                stations=frozenset(a.station_name for a in chosen if a.station_name),
                dates=tuple(a.performed_at.date().isoformat() for a in chosen if a.performed_at),
                ctdivol_mgy=tuple(
                    a.ctdivol_mgy
                    for a in chosen
                    if a.ctdivol_mgy is not None and a.acquisition_type not in OWN_CLASS_TYPES
                ),
                exam_dlp_mgy_cm=sum(a.dlp_mgy_cm for a in chosen),
            )
        )
    return out


def _level(
    quantity: Literal["ctdivol_mgy", "exam_dlp_mgy_cm"],
    model: str,
    per_study: list[tuple[_Study, list[float]]],
) -> DepartmentLevel | None:
    values = [v for _, vs in per_study for v in vs]
    if not values:
        return None
    studies = [s for s, vs in per_study if vs]
    dates = sorted(d for s in studies for d in s.dates)
    period = f"{dates[0]} to {dates[-1]}" if dates else "dates unknown"
    arr = np.asarray(values, dtype=np.float64)
    by_room: dict[str, list[float]] = {}
    for study, vs in per_study:
        if study.stations:  # a study's room: its (first) station name
            by_room.setdefault(min(study.stations), []).extend(vs)
    room_medians = [float(np.median(v)) for v in by_room.values() if v]
    return DepartmentLevel(
        quantity=quantity,
        scanner_model=model,
        median=round(float(np.median(arr)), 4),
        p75=round(float(np.percentile(arr, 75)), 4),
        p75_of_room_medians=round(float(np.percentile(room_medians, 75)), 4)
        if len(room_medians) >= 2
        else None,
        n=len(values),
        rooms=len(frozenset().union(*(s.stations for s in studies))),
        period=period,
    )


def department_levels(history: Iterable[Assessment]) -> dict[str, list[DepartmentLevel]]:
    """Per site: the department's median and 75th percentile of CTDIvol (per acquisition) and
    of the exam DLP (per study), one pair per scanner model ("" when the model is unknown), and
    with two or more rooms the 75th percentile of the room medians (ICRP 135's local DRL when
    there are enough rooms)."""
    groups: dict[tuple[str, str], list[_Study]] = {}
    for s in _studies(history):
        groups.setdefault((s.site, s.scanner_model), []).append(s)
    out: dict[str, list[DepartmentLevel]] = {}
    for (site, model), studies in sorted(groups.items()):
        for level in (
            _level("ctdivol_mgy", model, [(s, list(s.ctdivol_mgy)) for s in studies]),
            _level("exam_dlp_mgy_cm", model, [(s, [s.exam_dlp_mgy_cm]) for s in studies]),
        ):
            if level is not None:
                out.setdefault(site, []).append(level)
    return out


def describe(level: DepartmentLevel, min_rooms: int) -> str:
    """What the department's numbers are, in ICRP 135 terms."""
    if level.rooms >= min_rooms and level.p75_of_room_medians is not None:
        return (
            f"median of the department's exams over {level.rooms} rooms; local DRL (75th "
            f"percentile of the room medians) {level.p75_of_room_medians:g}"
        )
    return (
        f"typical value, not a local DRL ({level.rooms or 'unknown number of'} room(s); a "
        f"local DRL needs about {min_rooms}-20 rooms)"
    )


def with_department_levels(
    library: SiteLibrary, levels: dict[str, list[DepartmentLevel]]
) -> SiteLibrary:
    """A copy of ``library`` whose sites carry the department's levels (those from at least
    ``[department] min_exams`` exams), used by ``above_reference_level`` per scanner model."""
    sites = dict(library.sites)
    for site, found in levels.items():
        protocol = sites.get(site)
        if protocol is None:
            continue
        usable = tuple(lv for lv in found if lv.n >= protocol.department.min_exams)
        sites[site] = protocol.model_copy(update={"department_levels": usable})
    return SiteLibrary(sites, library.k_factors, library.provenance, library.override_dir)


def library_with_history(library: SiteLibrary, history: Path | None) -> SiteLibrary:
    """``library`` with the department's levels from the assessment history file ``history``
    (JSON lines, see :func:`read_history`), or unchanged when no file is given. This is how
    ``lowdose assess --history`` and ``lowdose run`` (``LOWDOSE_DEPARTMENT_HISTORY``) use them."""
    if history is None:
        return library
    return with_department_levels(library, department_levels(read_history(history)))
