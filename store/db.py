"""Opening the store: the URL from settings, the engine, and the migrations run on open.

``LOWDOSE_STORE_URL`` (or ``--store``) names the store: a SQLAlchemy URL
(``postgresql+psycopg://user@host/db``, ``sqlite:///path.db``) or a plain file path for SQLite.
The default is ``lowdose.db`` in the working directory (docs/configuration.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from optimiser.errors import ConfigurationError

ENV_URL = "LOWDOSE_STORE_URL"
DEFAULT_PATH = "lowdose.db"
MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: the PostgreSQL advisory lock two processes opening one store at once take.
_MIGRATION_LOCK = 7_107_011


def resolve_url(value: str | None = None) -> str:
    """The store URL: ``value`` (a URL or a SQLite file path), else $LOWDOSE_STORE_URL, else
    ``sqlite:///lowdose.db`` in the working directory."""
    chosen = value or os.environ.get(ENV_URL) or DEFAULT_PATH
    if "://" in chosen:
        if chosen.startswith("postgresql://"):
            chosen = "postgresql+psycopg://" + chosen.removeprefix("postgresql://")
        return chosen
    return f"sqlite:///{Path(chosen).expanduser().resolve()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (the desk) beside a writer (the sink)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


@dataclass
class Store:
    """An open store: the engine and a session factory."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """Open (and by default migrate to the newest schema) the store at ``url``."""
    resolved = resolve_url(url)
    if resolved.startswith("sqlite:///"):
        folder = Path(resolved.removeprefix("sqlite:///")).parent
        if not folder.is_dir():
            raise ConfigurationError(
                f"store {resolved!r}: folder {str(folder)!r} does not exist; create it or give "
                f"another --store / ${ENV_URL}"
            )
    try:
        if resolved.startswith("sqlite"):
            engine = create_engine(resolved, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(resolved, pool_pre_ping=True, pool_size=10, max_overflow=10)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise ConfigurationError(
            f"store URL {resolved!r}: {exc}; give sqlite:///FILE, a file path or "
            "postgresql+psycopg://USER@HOST/DB (--store or $LOWDOSE_STORE_URL)"
        ) from exc
    store = Store(resolved, engine, sessionmaker(engine, expire_on_commit=False))
    if migrate:
        try:
            _migrate(store)
        except SQLAlchemyError as exc:
            engine.dispose()
            raise ConfigurationError(
                f"store {resolved!r}: cannot open or migrate ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0]}); check that the database is reachable and writable"
            ) from exc
    return store


def _migrate(store: Store) -> None:
    head = head_revision()
    with store.engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        cfg = _alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
