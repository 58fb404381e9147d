"""``lowdose review [--store URL] [--host H] [--port P]``: serve the physicist's review desk.

On a store without users it asks (at a terminal) for the first physicist's account; elsewhere
it names the command that makes one. Serves on 127.0.0.1 by default; put a TLS reverse proxy
in front for a department network and pass ``--https-only`` so the cookie is marked Secure.

Single sign-on (off by default): ``--proxy-user-header`` / $LOWDOSE_REVIEW_PROXY_USER_HEADER names
the header in which the reverse proxy passes the authenticated user, ``--trusted-proxies`` /
$LOWDOSE_REVIEW_TRUSTED_PROXIES the proxy addresses it is read from (web.auth.ProxyAuth). The
desk then takes the peer address from the TCP connection only (no X-Forwarded-For rewriting).
"""

from __future__ import annotations

import argparse
import os
import sys

from lowdose.commands.storeopt import add_store_argument
from optimiser.errors import ConfigurationError

HELP = "serve the review desk (queue, acquisitions, trends, reference levels) on a local port"


def configure(parser: argparse.ArgumentParser) -> None:
    add_store_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default: 8765)")
    parser.add_argument(
        "--https-only",
        action="store_true",
        help="mark the session cookie Secure (the desk is behind an HTTPS reverse proxy)",
    )
    parser.add_argument(
        "--proxy-user-header",
        metavar="HEADER",
        help="single sign-on: the header in which a trusted reverse proxy names the user, e.g. "
        "X-Remote-User (default $LOWDOSE_REVIEW_PROXY_USER_HEADER; unset: off)",
    )
    parser.add_argument(
        "--trusted-proxies",
        metavar="ADDRESSES",
        help="single sign-on: comma-separated addresses or networks of the reverse proxy; the "
        "header is ignored from any other peer (default $LOWDOSE_REVIEW_TRUSTED_PROXIES)",
    )


def _first_user(store_url: str) -> None:
    from lowdose.commands.users import read_password
    from store import open_store
    from store.users import add_user, list_users

    db = open_store(store_url)
    try:
        with db.sessions.begin() as session:
            if list_users(session):
                return
            if not sys.stdin.isatty():
                raise ConfigurationError(
                    f"store {db.url}: no users yet; add one with "
                    f"lowdose users --store {store_url} add NAME --role physicist"
                )
            print("No users yet: create the first physicist's account.")
            name = input("user name: ").strip()
            add_user(session, name, read_password(False), "physicist")
    finally:
        db.close()


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from store import open_store, resolve_url
    from web.app import create_app
    from web.auth import HEADER_ENV, PROXIES_ENV, proxy_auth_from

    settings = dict(os.environ)
    if args.proxy_user_header is not None:
        settings[HEADER_ENV] = args.proxy_user_header
    if args.trusted_proxies is not None:
        settings[PROXIES_ENV] = args.trusted_proxies
    proxy_auth = proxy_auth_from(settings)  # checked before anything starts
    url = resolve_url(args.store)
    _first_user(url)
    db = open_store(url)
    app = create_app(db, https_only=args.https_only, proxy_auth=proxy_auth)
    print(f"review desk on http://{args.host}:{args.port}/ (store {db.url}); Ctrl-C stops it")
    if proxy_auth:
        print(f"single sign-on: header {proxy_auth.header} from "
              + ", ".join(str(n) for n in proxy_auth.proxies))  # fmt: skip
    try:
        # proxy_headers=False: the peer address is the TCP connection's, never a client-sent
        # X-Forwarded-For (the single sign-on check depends on it).
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=False)
    finally:
        db.close()
    return 0
