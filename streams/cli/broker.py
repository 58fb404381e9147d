"""``lowdose broker start|stop|status``: a local single-node Kafka broker for trying lowdose."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import time
from pathlib import Path

HELP = "start, stop or show a local single-node Kafka 4 broker (KRaft) for trying lowdose"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["start", "stop", "status"], help="what to do")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for start/stop (default 120)"
    )


def run(args: argparse.Namespace) -> int:
    action: str = args.action
    if action == "start":
        return _start(args.timeout)
    if action == "stop":
        return _stop(args.timeout)
    return _status()


def _start(timeout_s: float) -> int:
    from streams import local
    from streams.broker import Broker

    running = local.running_broker()
    if running is not None:
        print(running.bootstrap_servers)
        return 0
    workdir = local.state_dir() / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    broker = Broker(workdir, detach=True)
    try:
        bootstrap = broker.start(timeout_s=timeout_s)
    except BaseException:
        broker.close()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    assert broker.pid is not None
    local.write_state(local.LocalBroker(broker.pid, bootstrap, str(workdir)))
    print(bootstrap)
    return 0


def _stop(timeout_s: float) -> int:
    from streams import local

    state = local.read_state()
    if state is None:
        print("no local broker recorded")
        return 0
    if local.pid_alive(state.pid):
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while local.pid_alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if local.pid_alive(state.pid):
            os.kill(state.pid, signal.SIGKILL)
    shutil.rmtree(Path(state.workdir), ignore_errors=True)
    local.clear_state()
    print(f"stopped broker {state.bootstrap_servers} (pid {state.pid})")
    return 0


def _status() -> int:
    from streams import local
    from streams.broker import wait_for_broker

    state = local.running_broker()
    if state is None:
        print("not running")
        return 3
    ready = wait_for_broker(state.bootstrap_servers, timeout_s=5.0)
    print(f"{state.bootstrap_servers} pid {state.pid} {'ready' if ready else 'not answering'}")
    return 0 if ready else 1
