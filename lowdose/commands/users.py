"""``lowdose users add|list|disable``: the review desk's local users (Argon2id hashes)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from lowdose.commands.storeopt import add_store_argument
from optimiser.errors import InputError

HELP = "manage the review desk's local users: add, list, disable, enable"
PASSWORD_ENV = "LOWDOSE_NEW_PASSWORD"


def configure(parser: argparse.ArgumentParser) -> None:
    add_store_argument(parser)
    sub = parser.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add a user (the password is asked for twice)")
    add.add_argument("username")
    add.add_argument("--role", choices=["physicist", "viewer"], required=True)
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input (for scripts)",
    )
    sub.add_parser("list", help="list users with role and state")
    for name, text in (("disable", "refuse this user's logins"), ("enable", "allow again")):
        p = sub.add_parser(name, help=text)
        p.add_argument("username")


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise InputError("the two passwords differ; nothing was changed")
    return first


def run(args: argparse.Namespace) -> int:
    from store import open_store
    from store.users import add_user, list_users, set_disabled

    db = open_store(args.store)
    try:
        with db.sessions.begin() as session:
            if args.users_command == "add":
                add_user(session, args.username, read_password(args.password_stdin), args.role)
                print(f"added {args.username} ({args.role}) to {db.url}")
            elif args.users_command == "list":
                for u in list_users(session):
                    state = "disabled" if u.disabled else "active"
                    print(f"{u.username}\t{u.role}\t{state}\t{u.created_at:%Y-%m-%d}")
            else:
                disable = args.users_command == "disable"
                set_disabled(session, args.username, disable)
                print(f"{args.username}: {'disabled' if disable else 'enabled'}")
    finally:
        db.close()
    return 0
