"""The desk's pages and actions. Handlers run the database work in a thread (sync SQLAlchemy);
every value from the request reaches the database only as a bound parameter and the page only
through Jinja2's autoescaping."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import plotly
from jinja2 import Environment
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from optimiser.errors import InputError
from optimiser.finding_codes import FINDING_CODES
from protocols.library import SiteLibrary, SiteProtocol, builtin_library
from store import Store, stats
from store import assessments as repo
from store.models import AuditRow
from store.review import Action as ReviewAction
from store.review import ConflictError, NotFoundError, apply, audit_of, recent_audit
from store.users import authenticate
from web.auth import SESSION_USER, checked_form, csrf_token, safe_next
from web.csvout import csv_response
from web.plots import trend_figures, z_axis_figure

PAGE_SIZE = 50
LEVELS_TTL_S = 300.0
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _date(value: str | None, name: str, notes: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        notes.append(f"{name} {value!r} is not a date (YYYY-MM-DD); that filter is not applied")
        return None


def queue_filter(request: Request, notes: list[str]) -> repo.QueueFilter:
    q = request.query_params
    status = q.get("status", "open")
    if status not in repo.QUEUE_STATUSES:
        notes.append(f"status {status!r} is not one of {', '.join(repo.QUEUE_STATUSES)}")
        status = "open"
    return repo.QueueFilter(
        status=status,
        site=q.get("site") or None,
        scanner=q.get("scanner") or None,
        severity=q.get("severity") or None,
        code=q.get("code") or None,
        date_from=_date(q.get("from"), "from", notes),
        date_to=_date(q.get("to"), "to", notes),
    )


@dataclass
class Desk:
    store: Store
    env: Environment
    library: SiteLibrary | None = None
    _choices: tuple[float, dict[str, list[str]]] | None = None
    # Local levels per (site, scanner): percentiles over months of data, recomputed at most
    # every LEVELS_TTL_S (a sort over the site's rows; a trend page must not pay it each time).
    _level_cache: dict[tuple[str, str | None], tuple[float, list[stats.LocalLevel]]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        if self.library is None:
            self.library = builtin_library()

    # --- helpers ----------------------------------------------------------------------------

    def render(self, request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        state = request.scope.get("state", {})
        html = self.env.get_template(name).render(
            user=state.get("user"),
            role=state.get("role"),
            csrf=csrf_token(request),
            path=request.url.path,
            **ctx,
        )
        return HTMLResponse(html, status_code=status)

    def protocol(self, site: str) -> SiteProtocol | None:
        assert self.library is not None
        try:
            return self.library.get(site)
        except Exception:  # unknown site in an old store: no bands, no cited level
            return None

    def choices(self) -> dict[str, list[str]]:
        """Filter choices (sites, scanners, codes), refreshed at most every 30 s."""
        now = time.monotonic()
        if self._choices is None or now - self._choices[0] > 30:
            with self.store.sessions() as s:
                values = repo.distinct_values(s)
            values["code"] = sorted(set(values["code"]) | set(FINDING_CODES))
            self._choices = (now, values)
        return self._choices[1]

    def cached_levels(
        self, session: Session, site: str, scanner: str | None
    ) -> list[stats.LocalLevel]:
        now = time.monotonic()
        hit = self._level_cache.get((site, scanner))
        if hit is None or now - hit[0] > LEVELS_TTL_S:
            hit = (now, stats.local_levels_for(session, site=site, scanner=scanner))
            self._level_cache[(site, scanner)] = hit
        return hit[1]

    async def error_page(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", str(exc))
        return self.render(request, "error.html", status=status, status_code=status, detail=detail)

    async def plotly_js(self, request: Request) -> Response:
        return FileResponse(PLOTLY_JS, media_type="application/javascript")

    # --- login ------------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        return self.render(request, "login.html", next=safe_next(request.query_params.get("next")))

    async def login(self, request: Request) -> Response:
        form = await checked_form(request)
        username = str(form.get("username", ""))
        password = str(form.get("password", ""))
        target = safe_next(str(form.get("next", "/")))

        def check() -> tuple[str, str] | None:
            with self.store.sessions() as s:
                user = authenticate(s, username, password)
                return None if user is None else (user.username, user.role)

        found = await run_in_threadpool(check)
        if found is None:
            return self.render(
                request, "login.html", status=401, next=target,
                error="unknown user, wrong password or disabled account",
            )  # fmt: skip
        request.session.clear()  # a new session (and CSRF token) at login
        request.session[SESSION_USER] = found[0]
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request) -> Response:
        await checked_form(request)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # --- queue ------------------------------------------------------------------------------

    def _queue(self, request: Request) -> dict[str, Any]:
        notes: list[str] = []
        f = queue_filter(request, notes)
        try:
            page = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            page = 1
        with self.store.sessions() as s:
            result = repo.queue(s, f, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        return {"f": f, "page": page, "result": result, "notes": notes,
                "params": f.as_params(), "page_size": PAGE_SIZE}  # fmt: skip

    async def queue_page(self, request: Request) -> Response:
        ctx = await run_in_threadpool(self._queue, request)
        choices = await run_in_threadpool(self.choices)
        return self.render(request, "queue.html", choices=choices, **ctx)

    async def queue_rows(self, request: Request) -> Response:
        """The queue's table body and counts, for the page's live refresh."""
        ctx = await run_in_threadpool(self._queue, request)
        return self.render(request, "queue_rows.html", **ctx)

    async def queue_csv(self, request: Request) -> Response:
        def rows() -> list[list[object]]:
            f = queue_filter(request, [])
            with self.store.sessions() as s:
                return [
                    [
                        r.assessment_id,
                        r.occurred_at,
                        r.site,
                        r.scanner_model,
                        r.station_name,
                        r.study_instance_uid,
                        r.accession_number,
                        r.description,
                        {-1: "", 0: "info", 1: "warning", 2: "alert"}[r.severity_rank],
                        r.finding_codes,
                        r.ctdivol_mgy,
                        r.dlp_mgy_cm,
                        r.avoidable_excess_dlp_mgy_cm,
                        r.dlp_saving_mgy_cm,
                        r.status,
                        r.assignee,
                        r.justification,
                    ]
                    for r in repo.queue_all(s, f)
                ]

        header = ["assessment_id", "performed_utc", "site", "scanner_model", "station_name",
                  "study_instance_uid", "accession_number", "description", "severity",
                  "finding_codes", "ctdivol_mgy", "dlp_mgy_cm", "avoidable_excess_dlp_mgy_cm",
                  "dlp_saving_mgy_cm", "status", "assignee", "justification"]  # fmt: skip
        return csv_response("lowdose-queue.csv", header, await run_in_threadpool(rows))

    # --- one acquisition --------------------------------------------------------------------

    def _acquisition(self, assessment_id: str) -> dict[str, Any]:
        with self.store.sessions() as s:
            row = repo.get(s, assessment_id)
            if row is None:
                raise HTTPException(404, f"no assessment {assessment_id!r} in the store")
            findings = repo.findings_of(s, assessment_id)
            trail = audit_of(s, assessment_id)
        doc = repo.document(row)
        protocol = self.protocol(row.site)
        figure = z_axis_figure(doc, protocol)
        return {"row": row, "doc": doc, "findings": findings, "trail": trail,
                "figure": figure, "protocol": protocol,
                "evidence": [(f, (doc.get("findings") or [{}] * (i + 1))[i].get("evidence", {}))
                             for i, f in enumerate(findings)]}  # fmt: skip

    async def acquisition_page(self, request: Request) -> Response:
        ctx = await run_in_threadpool(self._acquisition, request.path_params["assessment_id"])
        return self.render(request, "acquisition.html", **ctx)

    async def act(self, request: Request) -> Response:
        form = await checked_form(request)
        aid = request.path_params["assessment_id"]
        try:
            seen = int(str(form.get("version", "")))
        except ValueError:
            raise HTTPException(400, "the form lacks the version you saw; reload") from None
        action = ReviewAction(
            action=str(form.get("action", "")),
            username=request.scope["state"]["user"],
            seen_version=seen,
            reason=_text(form.get("reason")),
            assignee=_text(form.get("assignee")),
            comment=_text(form.get("comment")),
        )

        def do() -> None:
            with self.store.sessions.begin() as s:
                apply(s, aid, action)

        try:
            await run_in_threadpool(do)
        except ConflictError as exc:
            ctx = await run_in_threadpool(self._acquisition, aid)
            return self.render(request, "acquisition.html", status=409, conflict=str(exc), **ctx)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        except InputError as exc:
            ctx = await run_in_threadpool(self._acquisition, aid)
            return self.render(request, "acquisition.html", status=400, problem=str(exc), **ctx)
        return RedirectResponse(f"/a/{aid}", status_code=303)

    async def audit_csv(self, request: Request) -> Response:
        aid = request.path_params["assessment_id"]

        def rows() -> list[AuditRow]:
            with self.store.sessions() as s:
                return audit_of(s, aid)

        return _audit_csv(f"lowdose-audit-{aid}.csv", await run_in_threadpool(rows))

    def _recent(self) -> list[AuditRow]:
        with self.store.sessions() as s:
            return recent_audit(s, 500)

    async def audit_page(self, request: Request) -> Response:
        trail = await run_in_threadpool(self._recent)
        return self.render(request, "audit.html", trail=trail)

    async def all_audit_csv(self, request: Request) -> Response:
        return _audit_csv("lowdose-audit.csv", await run_in_threadpool(self._recent))

    # --- trends and levels ------------------------------------------------------------------

    def _trends(self, request: Request) -> dict[str, Any]:
        choices = self.choices()
        site = request.query_params.get("site") or (choices["site"][0] if choices["site"] else "")
        scanner = request.query_params.get("scanner") or None
        with self.store.sessions() as s:
            points = stats.trend(s, site=site or None, scanner=scanner)
            recent = stats.recent_points(s, site=site or None, scanner=scanner)
            levels = self.cached_levels(s, site, scanner) if site else []
        protocol = self.protocol(site) if site else None
        local = levels[0] if len(levels) == 1 else None
        figures = trend_figures(
            points,
            recent,
            cited_ctdivol=protocol.reference_ctdivol_mgy.value
            if protocol and protocol.reference_ctdivol_mgy else None,
            cited_dlp=protocol.reference_dlp_mgy_cm.value
            if protocol and protocol.reference_dlp_mgy_cm else None,
            local_ctdivol=local.p75_ctdivol_mgy if local else None,
            local_dlp=local.p75_dlp_mgy_cm if local else None,
        )  # fmt: skip
        return {"site": site, "scanner": scanner, "points": points, "figures": figures,
                "choices": choices, "protocol": protocol, "local": local}  # fmt: skip

    async def trends_page(self, request: Request) -> Response:
        ctx = await run_in_threadpool(self._trends, request)
        return self.render(request, "trends.html", **ctx)

    async def trends_csv(self, request: Request) -> Response:
        ctx = await run_in_threadpool(self._trends, request)
        header = ["site", "scanner_model", "month", "n", "mean_ctdivol_mgy", "mean_dlp_mgy_cm",
                  "avoidable_excess_dlp_mgy_cm", "flagged", "share_flagged"]  # fmt: skip
        rows = [[ctx["site"], ctx["scanner"] or "(all)", p.month, p.n, p.mean_ctdivol_mgy,
                 p.mean_dlp_mgy_cm, p.excess_dlp_mgy_cm, p.flagged, p.share_flagged]
                for p in ctx["points"]]  # fmt: skip
        return csv_response("lowdose-trends.csv", header, rows)

    def _levels(self) -> list[tuple[stats.LocalLevel, SiteProtocol | None]]:
        with self.store.sessions() as s:
            levels = stats.local_levels(s)
        return [(lv, self.protocol(lv.site)) for lv in levels]

    async def levels_page(self, request: Request) -> Response:
        rows = await run_in_threadpool(self._levels)
        return self.render(request, "levels.html", rows=rows)

    async def levels_csv(self, request: Request) -> Response:
        header = ["site", "scanner_model", "n", "first_utc", "last_utc", "local_p75_ctdivol_mgy",
                  "local_p75_dlp_mgy_cm", "cited_ctdivol_mgy", "cited_dlp_mgy_cm",
                  "cited_statistic", "cited_source"]  # fmt: skip
        rows = []
        for lv, p in await run_in_threadpool(self._levels):
            c = p.reference_ctdivol_mgy if p else None
            d = p.reference_dlp_mgy_cm if p else None
            rows.append([lv.site, lv.scanner_model, lv.n, lv.first, lv.last, lv.p75_ctdivol_mgy,
                         lv.p75_dlp_mgy_cm, c.value if c else None, d.value if d else None,
                         c.statistic if c else None, c.source if c else None])  # fmt: skip
        return csv_response("lowdose-levels.csv", header, rows)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _audit_csv(name: str, trail: list[AuditRow]) -> Response:
    header = ["id", "assessment_id", "at_utc", "user", "action", "before", "after", "comment"]
    return csv_response(
        name,
        header,
        [
            [a.id, a.assessment_id, a.at, a.username, a.action, a.before, a.after, a.comment]
            for a in trail
        ],
    )


def figure_json(figure: dict[str, Any] | None) -> str:
    return json.dumps(figure, allow_nan=False, default=str)
