"""``lowdose store``: the sink consumer that fills the review desk's store from Kafka.

Its own consumer group (default ``lowdose-store``) on ``lowdose.assessments.v1`` and
``lowdose.alerts.v1``; rows are committed before offsets (streams/sink.py), so a killed sink
restarts without losing or doubling a row. Broker settings as for ``lowdose run``
(docs/configuration.md).
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from lowdose.commands.storeopt import add_store_argument

HELP = "consume assessments and alerts from Kafka into the review desk's store"


def configure(parser: argparse.ArgumentParser) -> None:
    add_store_argument(parser)
    parser.add_argument("--config", type=Path, help="settings file, as for lowdose run")
    parser.add_argument("--bootstrap-servers", help="host:port[,host:port]")
    parser.add_argument("--group-id", default="lowdose-store", help="default: lowdose-store")
    parser.add_argument(
        "--max-batch", type=int, default=500, metavar="N", help="records per poll (default 500)"
    )
    parser.add_argument(
        "--idle-stop",
        type=float,
        metavar="SECONDS",
        help="stop after this many seconds without a record (for one-shot runs)",
    )


def run(args: argparse.Namespace) -> int:
    from store import open_store
    from streams.client import KafkaConsumerClient
    from streams.settings import load
    from streams.sink import run_sink

    settings = load(args.config, bootstrap_servers=args.bootstrap_servers)
    # The sink loop is streams/sink.py over streams.client's consumer (the one module that
    # imports kafka); it writes through store/, which knows nothing of Kafka.
    consumer = KafkaConsumerClient(
        **settings.kafka_common(),
        group_id=args.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=args.max_batch,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        max_poll_interval_ms=settings.max_poll_interval_ms,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    db = open_store(args.store)
    try:
        stats = run_sink(
            consumer,
            db,
            stop=stop,
            topics=settings.topics,
            max_records=args.max_batch,
            idle_stop_s=args.idle_stop,
        )
    finally:
        consumer.close(timeout_ms=5000)
        db.close()
    print(
        f"lowdose store: {stats.records} records, {stats.rows_written} rows written, "
        f"{stats.bad_records} not assessments, into {db.url}"
    )
    return 0
