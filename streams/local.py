"""The broker behind ``lowdose broker start``: where its state file lives and whether it runs.

One local broker per user, recorded in ``<cache>/broker/state.json`` (pid, bootstrap address,
controller port, work folder) so that ``stop`` and ``status`` in a later shell, and ``lowdose run``
without ``KAFKA_BOOTSTRAP_SERVERS``, find it. The record outlives ``stop``: the next ``start``
reuses the same ports and the same data (services configured with the address reconnect and no
message is lost); ``reset`` deletes data and record.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from streams.broker import cache_root


@dataclass(frozen=True)
class LocalBroker:
    pid: int
    bootstrap_servers: str
    workdir: str
    controller_port: int = 0  # 0 in records written before issue 10: new ports then

    @property
    def port(self) -> int:
        return int(self.bootstrap_servers.rpartition(":")[2])

    @property
    def host(self) -> str:
        return self.bootstrap_servers.rpartition(":")[0]


def state_dir() -> Path:
    return cache_root() / "broker"


def state_file() -> Path:
    return state_dir() / "state.json"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); its /proc status says so.
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "State:\tZ" not in status


def read_state() -> LocalBroker | None:
    try:
        data = json.loads(state_file().read_text())
        return LocalBroker(
            pid=int(data["pid"]),
            bootstrap_servers=str(data["bootstrap_servers"]),
            workdir=str(data["workdir"]),
            controller_port=int(data.get("controller_port", 0)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_state(broker: LocalBroker) -> None:
    state_dir().mkdir(parents=True, exist_ok=True)
    tmp = state_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(broker)))
    tmp.replace(state_file())


def clear_state() -> None:
    state_file().unlink(missing_ok=True)


def running_broker() -> LocalBroker | None:
    """The recorded local broker if its process is still alive."""
    state = read_state()
    if state is None or not pid_alive(state.pid):
        return None
    return state
