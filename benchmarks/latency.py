"""Only the produce-to-alert latency of ``lowdose run``, repeated: the goal holds in *every* run.

    .venv/bin/python -m benchmarks.latency --runs 3 --seconds 10     # full mode's window
    .venv/bin/python -m benchmarks.latency --runs 5 --seconds 2      # quick mode's window

Each run is the service benchmark's measurement (``bench_service._latency_of_a_running_service``:
a fresh ``lowdose run`` process, 3 s warm-up discarded, then a steady 500 events/s) on its own
topics, printed as one JSON line with the machine's load average and the service's CPU. Uses the
cluster of ``KAFKA_BOOTSTRAP_SERVERS`` or starts a local broker (as the Kafka tests do).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from benchmarks.bench_service import GOAL_P99_MS, _latency_of_a_running_service
from streams.topics import ensure_topics
from tests.support.kafka import settings_for, shared_broker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="sampling window per run")
    args = parser.parse_args(argv)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or shared_broker().bootstrap_servers
    over = 0
    for run in range(args.runs):
        settings = settings_for(bootstrap, partitions=1, max_batch=500)
        ensure_topics(settings)
        figures = _latency_of_a_running_service(bootstrap, settings, args.seconds)
        over += figures["latency_p99_ms"] >= GOAL_P99_MS
        print(json.dumps({"run": run, "at": time.strftime("%H:%M:%S"), **figures}), flush=True)
    print(f"{over} of {args.runs} runs at or above the p99 goal of {GOAL_P99_MS:.0f} ms")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
