"""``lowdose broker start|stop|status|reset``: a local single-node Kafka broker for trying lowdose.

``stop`` ends the broker and keeps its data and address: the next ``start`` listens on the same
ports with the same topics and messages. ``reset`` stops it and deletes the data.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.local import LocalBroker

HELP = (
    "start, stop (data kept), reset (data deleted) or show a local single-node Kafka 4 broker "
    "(KRaft) for trying lowdose"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["start", "stop", "status", "reset"],
        help="start (same address and data as before a stop), stop (keeps data), status, "
        "reset (stops and deletes the data)",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for start/stop (default 120)"
    )


def run(args: argparse.Namespace) -> int:
    import logging

    # Readiness polling fails until the broker is up: those client errors are expected noise.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    action: str = args.action
    if action == "start":
        return _start(args.timeout)
    if action == "stop":
        return _stop(args.timeout)
    if action == "reset":
        return _reset(args.timeout)
    return _status()


def _start(timeout_s: float) -> int:
    from streams import local
    from streams.broker import Broker

    running = local.running_broker()
    if running is not None:
        print(running.bootstrap_servers)
        return 0
    workdir = local.state_dir() / "run"
    previous = local.read_state()
    if previous is not None and previous.controller_port and Path(previous.workdir).is_dir():
        # A restart: same ports, same data (topics, messages, committed offsets).
        broker = Broker(
            Path(previous.workdir),
            detach=True,
            host=previous.host,
            port=previous.port,
            controller_port=previous.controller_port,
        )
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        broker = Broker(workdir, detach=True)
    try:
        bootstrap = broker.start(timeout_s=timeout_s)
    except BaseException:
        broker.close(keep=True)  # never delete data on a failed start; `reset` does that
        raise
    assert broker.pid is not None
    local.write_state(
        local.LocalBroker(broker.pid, bootstrap, str(broker.workdir), broker.controller_port)
    )
    print(bootstrap)
    return 0


def _terminate(state: LocalBroker, timeout_s: float) -> None:
    from streams import local

    if local.pid_alive(state.pid):
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while local.pid_alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if local.pid_alive(state.pid):
            os.kill(state.pid, signal.SIGKILL)


def _stop(timeout_s: float) -> int:
    from streams import local

    state = local.read_state()
    if state is None:
        print("no local broker recorded")
        return 0
    _terminate(state, timeout_s)
    print(
        f"stopped broker {state.bootstrap_servers} (pid {state.pid}); data kept in "
        f"{state.workdir}: `lowdose broker start` resumes on the same address, "
        "`lowdose broker reset` deletes it"
    )
    return 0


def _reset(timeout_s: float) -> int:
    from streams import local

    state = local.read_state()
    if state is not None:
        _terminate(state, timeout_s)
        shutil.rmtree(Path(state.workdir), ignore_errors=True)
    shutil.rmtree(local.state_dir() / "run", ignore_errors=True)
    local.clear_state()
    print("local broker stopped and its data deleted" if state else "no local broker recorded")
    return 0


def _status() -> int:
    from streams import local
    from streams.broker import wait_for_broker

    state = local.running_broker()
    if state is None:
        recorded = local.read_state()
        if recorded is not None:
            print(
                f"stopped ({recorded.bootstrap_servers}, data in {recorded.workdir}; "
                "`lowdose broker start` resumes it)"
            )
        else:
            print("not running")
        return 3
    ready = wait_for_broker(state.bootstrap_servers, timeout_s=5.0)
    print(f"{state.bootstrap_servers} pid {state.pid} {'ready' if ready else 'not answering'}")
    return 0 if ready else 1
