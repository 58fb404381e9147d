"""Who may see and do what: the login session, the CSRF token and the role rules.

:class:`AccessMiddleware` runs before every route: a request without an active user's session
is refused (a page GET is sent to the login page, anything else gets 401), except the login page
and the static files; a POST by a ``viewer`` is refused with 403 (logout excepted). Every POST
handler reads its form through :func:`checked_form`, which refuses a missing or wrong CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from store import Store
from store.users import active_user

ANY_ROLE_POSTS = ("/logout",)
SESSION_USER = "user"
SESSION_CSRF = "csrf"


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use)."""
    session: dict[str, Any] = request.session
    token = session.get(SESSION_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[SESSION_CSRF] = token
    return token


async def checked_form(request: Request) -> FormData:
    """The POSTed form, after checking its ``csrf`` field against the session's token."""
    form = await request.form(max_files=0, max_fields=50, max_part_size=64 * 1024)
    sent = form.get("csrf")
    expected = request.session.get(SESSION_CSRF)
    if (
        not isinstance(sent, str)
        or not isinstance(expected, str)
        or not hmac.compare_digest(sent.encode(), expected.encode())
    ):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return form


class AccessMiddleware:
    """Refuses anonymous requests and viewers' POSTs before any route runs (pure ASGI)."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = request.url.path
        if path == "/login" or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        username = request.session.get(SESSION_USER)
        user = None
        if isinstance(username, str):
            user = await run_in_threadpool(self._active, username)
        if user is None:
            request.session.pop(SESSION_USER, None)
            response: Response
            if request.method in ("GET", "HEAD"):
                target = "/login"
                if path != "/" and request.url.query == "":
                    target += "?next=" + path
                response = RedirectResponse(target, status_code=303)
            else:
                response = PlainTextResponse("log in first", status_code=401)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})
        scope["state"]["user"] = user[0]
        scope["state"]["role"] = user[1]
        acting = request.method not in ("GET", "HEAD") and path not in ANY_ROLE_POSTS
        if acting and user[1] != "physicist":
            response = PlainTextResponse(
                "your role (viewer) can read the desk but not act on it", status_code=403
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _active(self, username: str) -> tuple[str, str] | None:
        with self.store.sessions() as session:
            user = active_user(session, username)
            return None if user is None else (user.username, user.role)


def safe_next(value: str | None) -> str:
    """A local path to go to after login (never another host)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"
