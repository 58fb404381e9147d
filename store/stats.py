"""Trends and local reference levels, computed in the database (SQL aggregates over indexed
columns: per month, per site or scanner).

The local level is the 75th percentile (nearest-rank) of CTDIvol and DLP per site and scanner
model, with its n and period; the issue asks for local P75 values beside the cited ones
(ICRP Publication 135 describes levels as percentiles of a dose distribution; the cited values
and their statistic come from the site library, planning-ct.md section 3). Until
``optimiser/levels.py`` (department levels, another issue) lands, this module is where they are
computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from store.models import AssessmentRow


@dataclass(frozen=True)
class MonthPoint:
    month: str
    n: int
    mean_ctdivol_mgy: float | None
    mean_dlp_mgy_cm: float
    excess_dlp_mgy_cm: float
    flagged: int

    @property
    def share_flagged(self) -> float:
        return self.flagged / self.n if self.n else 0.0


def trend(
    session: Session, *, site: str | None = None, scanner: str | None = None
) -> list[MonthPoint]:
    """One point per month of the acquisitions of ``site`` and/or ``scanner``."""
    a = AssessmentRow
    flagged = func.sum(case((a.severity_rank >= 1, 1), else_=0))
    query = select(
        a.month,
        func.count(),
        func.avg(a.ctdivol_mgy),
        func.avg(a.dlp_mgy_cm),
        func.sum(a.avoidable_excess_dlp_mgy_cm),
        flagged,
    )
    if site:
        query = query.where(a.site == site)
    if scanner is not None and scanner != "":
        query = query.where(a.scanner_model == scanner)
    rows = session.execute(query.group_by(a.month).order_by(a.month)).all()
    return [
        MonthPoint(
            month=str(m),
            n=int(n),
            mean_ctdivol_mgy=None if c is None else float(c),
            mean_dlp_mgy_cm=float(d or 0.0),
            excess_dlp_mgy_cm=float(x or 0.0),
            flagged=int(f or 0),
        )
        for m, n, c, d, x, f in rows
    ]


def recent_points(
    session: Session, *, site: str | None, scanner: str | None, limit: int = 2000
) -> list[tuple[datetime, float | None, float, int]]:
    """The newest acquisitions (time, CTDIvol, DLP, severity rank) for the scatter."""
    a = AssessmentRow
    query = select(a.occurred_at, a.ctdivol_mgy, a.dlp_mgy_cm, a.severity_rank)
    if site:
        query = query.where(a.site == site)
    if scanner is not None and scanner != "":
        query = query.where(a.scanner_model == scanner)
    rows = session.execute(query.order_by(a.occurred_at.desc()).limit(limit)).all()
    return [(t, c, float(d), int(s)) for t, c, d, s in reversed(rows)]


@dataclass(frozen=True)
class LocalLevel:
    site: str
    scanner_model: str
    n: int
    first: datetime | None
    last: datetime | None
    p75_ctdivol_mgy: float | None
    n_ctdivol: int
    p75_dlp_mgy_cm: float | None


def _nearest_rank(n: int, q: float = 0.75) -> int:
    """Zero-based index of the nearest-rank percentile q of n sorted values."""
    return max(0, math.ceil(q * n) - 1)


def _percentile(
    session: Session, column: InstrumentedAttribute[Any], where: list[Any], n: int
) -> float | None:
    if n == 0:
        return None
    value = session.scalar(
        select(column)
        .where(*where, column.is_not(None))
        .order_by(column)
        .limit(1)
        .offset(_nearest_rank(n))
    )
    return None if value is None else float(value)


def _level(session: Session, site: str, scanner: str | None) -> LocalLevel | None:
    a = AssessmentRow
    where: list[Any] = [a.site == site]
    if scanner is not None:
        where.append(a.scanner_model == scanner)
    n, n_ctdi, first, last = session.execute(
        select(func.count(), func.count(a.ctdivol_mgy), func.min(a.occurred_at),
               func.max(a.occurred_at)).where(*where)
    ).one()  # fmt: skip
    if not n:
        return None
    return LocalLevel(
        site=site,
        scanner_model="(all scanners)" if scanner is None else scanner,
        n=int(n),
        first=first,
        last=last,
        p75_ctdivol_mgy=_percentile(session, a.ctdivol_mgy, where, int(n_ctdi)),
        n_ctdivol=int(n_ctdi),
        p75_dlp_mgy_cm=_percentile(session, a.dlp_mgy_cm, where, int(n)),
    )


def local_levels_for(session: Session, *, site: str, scanner: str | None) -> list[LocalLevel]:
    """The local level of one site, over one scanner model or all of them."""
    level = _level(session, site, scanner)
    return [] if level is None else [level]


def local_levels(session: Session) -> list[LocalLevel]:
    """P75 of CTDIvol and DLP per site and scanner model, with n and the period covered."""
    a = AssessmentRow
    groups = session.execute(
        select(a.site, a.scanner_model).distinct().order_by(a.site, a.scanner_model)
    ).all()
    return [lv for site, scanner in groups if (lv := _level(session, site, scanner)) is not None]
