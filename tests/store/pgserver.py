"""A throwaway PostgreSQL server for the store tests: Debian's ``postgresql`` binaries
(``/usr/lib/postgresql/*/bin``) initialise a temporary data directory and serve it on a free
loopback port. PostgreSQL refuses to run as root, so under root the server runs as the
``postgres`` system user (created by the Debian package) through ``runuser``.

Under CI a missing package fails the tests that need it; elsewhere they skip loudly.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.realparts import in_ci

PACKAGE = "postgresql"


def _bin_dir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def _missing(message: str) -> None:
    if in_ci():
        pytest.fail(f"real part missing under CI: {message}", pytrace=False)
    print(f"\n*** SKIPPING: {message} ***", file=sys.stderr)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class PgServer:
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres",
            autocommit=True,
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[PgServer]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        _missing(f"PostgreSQL server binaries not found (Debian: apt-get install {PACKAGE})")
        raise AssertionError("unreachable")
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        if shutil.which("runuser") is None:
            _missing("running as root without runuser (util-linux) to start PostgreSQL")
        prefix = ["runuser", "-u", "postgres", "--"]
    data = Path(tempfile.mkdtemp(prefix="lowdose-pg-"))
    try:
        if as_root:
            shutil.chown(data, "postgres", "postgres")
        pgdata = data / "data"
        user = "lowdose"
        run = [*prefix, str(bin_dir / "initdb"), "-D", str(pgdata), "-U", user]
        subprocess.run(
            [*run, "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        port = _free_port()
        options = (
            f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off -c max_connections=60"
        )
        subprocess.run(
            [
                *prefix,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(pgdata),
                "-o",
                options,
                "-l",
                str(data / "server.log"),
                "-w",
                "-t",
                "120",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
        try:
            _wait_ready(port)
            yield PgServer(port, user)
        finally:
            subprocess.run(
                [*prefix, str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
                capture_output=True,
                timeout=120,
            )
    except subprocess.CalledProcessError as exc:
        log = data / "server.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {exc.cmd}: {exc.stderr!r} {tail}") from exc
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _wait_ready(port: int, timeout_s: float = 60.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(
                f"host=127.0.0.1 port={port} user=lowdose dbname=postgres", connect_timeout=5
            ):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
