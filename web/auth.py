"""Who may see and do what: the login session, the CSRF token and the role rules.

:class:`AccessMiddleware` runs before every route: a request without an active user's session
is refused (a page GET is sent to the login page, anything else gets 401), except the login page
and the static files; a POST by a ``viewer`` is refused with 403 (logout excepted). Every POST
handler reads its form through :func:`checked_form`, which refuses a missing or wrong CSRF token.

Optional single sign-on (:class:`ProxyAuth`, off unless configured): a reverse proxy that has
authenticated the user names them in one request header. The header is read only when the
request's peer address (the TCP connection's, ``scope["client"]``) is one of the trusted proxies;
from anyone else it is ignored and the request needs the usual login session. The user it names
must be a local, enabled user, whose role applies as at a password login; CSRF tokens are still
checked on every POST (they live in the session cookie either way).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from optimiser.errors import ConfigurationError
from store import Store
from store.users import active_user

ANY_ROLE_POSTS = ("/logout",)
SESSION_USER = "user"
SESSION_CSRF = "csrf"
HEADER_ENV = "LOWDOSE_REVIEW_PROXY_USER_HEADER"
PROXIES_ENV = "LOWDOSE_REVIEW_TRUSTED_PROXIES"
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # an HTTP token (RFC 9110 5.6.2)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ProxyAuth:
    """Single sign-on by a trusted reverse proxy: ``header`` (any case) names the user when
    the request's peer address is in one of ``proxies``."""

    header: str
    proxies: tuple[Network, ...]

    @classmethod
    def parse(cls, header: str, proxies: str) -> ProxyAuth:
        """From the header name and a comma-separated list of proxy addresses or networks
        (``10.0.0.5``, ``10.0.0.0/29``, ``fd00::1``)."""
        header = header.strip()
        if not _HEADER_NAME.match(header):
            raise ConfigurationError(
                f"{HEADER_ENV}={header!r}: not an HTTP header name (letters, digits and - only); "
                "give the header your proxy sets, e.g. X-Remote-User"
            )
        nets: list[Network] = []
        for item in (p.strip() for p in proxies.split(",")):
            if not item:
                continue
            try:
                net = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigurationError(
                    f"{PROXIES_ENV}: {item!r} is not an IP address or network; list the reverse "
                    "proxy's own addresses (e.g. 10.0.0.5,fd00::5), not host names"
                ) from None
            if net.prefixlen == 0:
                raise ConfigurationError(
                    f"{PROXIES_ENV}: {item!r} trusts any address, so anyone could name any user "
                    "in the header; list only the reverse proxy's addresses"
                )
            nets.append(net)
        if not nets:
            raise ConfigurationError(
                f"{HEADER_ENV} is set but {PROXIES_ENV} lists no address: the header would be "
                "trusted from nobody; list the reverse proxy's addresses (comma-separated)"
            )
        return cls(header, tuple(nets))

    def trusts(self, client: tuple[str, int] | None) -> bool:
        """Whether the peer ``client`` (``scope["client"]``) is a trusted proxy."""
        if not client:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:  # not an IP (a Unix socket, a test client's name): not trusted
            return False
        return any(address in net for net in self.proxies)


def proxy_auth_from(environ: Mapping[str, str]) -> ProxyAuth | None:
    """The single sign-on settings in ``environ`` ($LOWDOSE_REVIEW_PROXY_USER_HEADER and
    $LOWDOSE_REVIEW_TRUSTED_PROXIES); ``None`` (off) when neither is set."""
    header = environ.get(HEADER_ENV, "").strip()
    proxies = environ.get(PROXIES_ENV, "").strip()
    if not header and not proxies:
        return None
    if not header:
        raise ConfigurationError(
            f"{PROXIES_ENV} is set but {HEADER_ENV} is not: name the header in which the proxy "
            "passes the user name (e.g. X-Remote-User), or unset both"
        )
    return ProxyAuth.parse(header, proxies)


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

    def __init__(self, app: ASGIApp, store: Store, proxy_auth: ProxyAuth | None = None) -> None:
        self.app = app
        self.store = store
        self.proxy_auth = proxy_auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = request.url.path
        if path == "/login" or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        user: tuple[str, str] | None = None
        values = self._proxy_values(scope, request)
        if len(values) > 1:  # a proxy that appends would pass the client's own value first
            await self._refuse(
                scope, receive, send,
                f"single sign-on: header {self._header} came more than once; the proxy must set "
                "it once, replacing any value the client sent",
            )  # fmt: skip
            return
        named = values[0].strip() if values else ""
        if named:  # a trusted proxy names the user: the session's user is not used
            user = await run_in_threadpool(self._active, named)
            if user is None:
                await self._refuse(
                    scope, receive, send,
                    f"single sign-on: user {named!r} (header {self._header}) is unknown or "
                    "disabled on this desk; an administrator adds it with `lowdose users add "
                    f"{named} --role physicist|viewer` (or enables it)",
                )  # fmt: skip
                return
        else:
            username = request.session.get(SESSION_USER)
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

    @property
    def _header(self) -> str:
        return self.proxy_auth.header if self.proxy_auth else ""

    def _proxy_values(self, scope: Scope, request: Request) -> list[str]:
        """The single sign-on header's values: none when single sign-on is off or the peer is
        not a trusted proxy (the header is then ignored, whatever it says)."""
        sso = self.proxy_auth
        if sso is None or not sso.trusts(scope.get("client")):
            return []
        return request.headers.getlist(sso.header)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
        await PlainTextResponse(message, status_code=403)(scope, receive, send)

    def _active(self, username: str) -> tuple[str, str] | None:
        with self.store.sessions() as session:
            user = active_user(session, username)
            return None if user is None else (user.username, user.role)


def safe_next(value: str | None) -> str:
    """A local path to go to after login (never another host)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"
