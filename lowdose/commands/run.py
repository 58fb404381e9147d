"""``lowdose run``: the Kafka consumer service (at-least-once, bad messages to the DLQ)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "consume protocol events and dose reports from Kafka, assess them, produce assessments"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="settings file (TOML, or .env of LOWDOSE_* lines)"
    )
    parser.add_argument(
        "--bootstrap-servers", help="host:port[,host:port] (default $KAFKA_BOOTSTRAP_SERVERS)"
    )
    parser.add_argument("--group-id", help="consumer group (default $LOWDOSE_GROUP_ID or lowdose)")
    parser.add_argument("--max-batch", type=int, help="records per batch (default 500)")
    parser.add_argument(
        "--on-bad-message",
        choices=["dlq", "skip", "stop"],
        default="dlq",
        help="undecodable messages: to the dead-letter topic (default), skip with a log line, "
        "or stop the service",
    )
    parser.add_argument(
        "--idle-stop",
        type=float,
        metavar="SECONDS",
        help="stop after this many seconds without a record (for one-shot runs)",
    )


def run(args: argparse.Namespace) -> int:
    import faulthandler
    import signal

    from streams import deadletter
    from streams.client import Producer
    from streams.logs import configure_json_logging
    from streams.metrics import start_ops_server
    from streams.service import Service
    from streams.settings import load

    configure_json_logging(args.log_level)
    settings = load(
        args.config,
        bootstrap_servers=args.bootstrap_servers,
        group_id=args.group_id,
        max_batch=args.max_batch,
    )

    def policy(producer: Producer) -> deadletter.BadMessagePolicy:
        if args.on_bad_message == "skip":
            return deadletter.SkipPolicy()
        if args.on_bad_message == "stop":
            return deadletter.StopPolicy()
        return deadletter.dead_letter_policy(producer, settings)

    service = Service(settings, policy_factory=policy)
    ops = start_ops_server(settings)  # /metrics, /healthz, /readyz when LOWDOSE_METRICS_PORT is set

    def stop(signum: int, frame: object) -> None:
        service.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # `kill -USR1 <pid>` dumps every thread's stack to stderr: where is a stuck service waiting?
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        stats = service.run(idle_stop_s=args.idle_stop)
    finally:
        if ops is not None:
            ops.close()
    # Logs go to stderr as JSON lines; one human summary line goes to stdout at exit.
    print(
        f"consumed {stats.consumed} message(s) in {stats.batches} batch(es): "
        f"{stats.assessed} assessment(s), {stats.alerts} alert(s), {stats.bad} to the "
        f"dead-letter topic, {stats.commits} commit(s)"
    )
    return 0
