"""Local users of the review desk: Argon2id password hashes (argon2-cffi), roles, disabling."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from optimiser.errors import InputError
from store.assessments import utcnow
from store.models import ROLES, UserRow

_HASHER = PasswordHasher()
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
MIN_PASSWORD = 10
# Verified against when the user does not exist, so a login takes as long either way.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


def add_user(session: Session, username: str, password: str, role: str) -> UserRow:
    if not _NAME.match(username):
        raise InputError(f"user name {username!r}: use 1 to 64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise InputError(f"role {role!r}: one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise InputError(f"password: at least {MIN_PASSWORD} characters")
    if session.get(UserRow, username) is not None:
        raise InputError(f"user {username!r} exists already")
    user = UserRow(
        username=username,
        password_hash=_HASHER.hash(password),
        role=role,
        disabled=False,
        created_at=utcnow(),
    )
    session.add(user)
    return user


def list_users(session: Session) -> list[UserRow]:
    return list(session.scalars(select(UserRow).order_by(UserRow.username)))


def set_disabled(session: Session, username: str, disabled: bool = True) -> UserRow:
    user = session.get(UserRow, username)
    if user is None:
        raise InputError(f"user {username!r}: no such user (see lowdose users list)")
    user.disabled = disabled
    return user


def authenticate(session: Session, username: str, password: str) -> UserRow | None:
    """The active user with this password, else None (same work for unknown names)."""
    user = session.get(UserRow, username) if _NAME.match(username or "") else None
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled:
        return None
    return user


def active_user(session: Session, username: str) -> UserRow | None:
    user = session.get(UserRow, username)
    return None if user is None or user.disabled else user
