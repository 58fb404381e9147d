"""The desk's Starlette application: routes, middleware, templates, security headers."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import plotly
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store import Store
from web import views
from web.auth import AccessMiddleware, ProxyAuth

HERE = Path(__file__).parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
SECRET_ENV = "LOWDOSE_REVIEW_SECRET"
SESSION_HOURS = 8
# Plotly sets inline styles on its SVG; no script runs inline (figures are JSON data blocks).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'"
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def add(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                for name, value in (
                    ("content-security-policy", CSP),
                    ("x-content-type-options", "nosniff"),
                    ("x-frame-options", "DENY"),
                    ("referrer-policy", "same-origin"),
                    ("cache-control", "no-store"),
                ):
                    headers.append((name.encode(), value.encode()))
            await send(message)

        await self.app(scope, receive, add)


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Figures go into the page through |tojson: a NaN or infinity there is a bug, not JSON.
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "allow_nan": False}
    env.filters["when"] = views.when
    env.filters["num"] = views.num
    return env


def create_app(
    store: Store,
    *,
    secret: str | None = None,
    https_only: bool = False,
    proxy_auth: ProxyAuth | None = None,
) -> Starlette:
    """The desk on ``store``. ``secret`` signs session cookies (default $LOWDOSE_REVIEW_SECRET,
    else random per start); ``https_only`` adds the Secure flag (behind a TLS proxy);
    ``proxy_auth`` turns on single sign-on by a trusted reverse proxy's header (off when None:
    ``lowdose review`` reads it from its options and environment, web.auth.proxy_auth_from)."""
    key = secret or os.environ.get(SECRET_ENV) or secrets.token_urlsafe(32)
    desk = views.Desk(store, templates())
    routes = [
        Route("/login", desk.login_page, methods=["GET"]),
        Route("/login", desk.login, methods=["POST"]),
        Route("/logout", desk.logout, methods=["POST"]),
        Route("/", desk.queue_page, methods=["GET"]),
        Route("/queue/rows", desk.queue_rows, methods=["GET"]),
        Route("/queue.csv", desk.queue_csv, methods=["GET"]),
        Route("/a/{assessment_id}", desk.acquisition_page, methods=["GET"]),
        Route("/a/{assessment_id}/action", desk.act, methods=["POST"]),
        Route("/a/{assessment_id}/audit.csv", desk.audit_csv, methods=["GET"]),
        Route("/audit", desk.audit_page, methods=["GET"]),
        Route("/audit.csv", desk.all_audit_csv, methods=["GET"]),
        Route("/trends", desk.trends_page, methods=["GET"]),
        Route("/trends.csv", desk.trends_csv, methods=["GET"]),
        Route("/levels", desk.levels_page, methods=["GET"]),
        Route("/levels.csv", desk.levels_csv, methods=["GET"]),
        Route("/static/plotly.min.js", desk.plotly_js, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=key,
                session_cookie="lowdose_session",
                max_age=SESSION_HOURS * 3600,
                same_site="strict",
                https_only=https_only,
            ),
            Middleware(AccessMiddleware, store=store, proxy_auth=proxy_auth),
        ],
        exception_handlers={
            409: desk.error_page,
            403: desk.error_page,
            404: desk.error_page,
            400: desk.error_page,
        },
    )
