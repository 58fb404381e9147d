"""``lowdose publish DIR``: send a simulated feed (or real files) to the input topics."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "send a simulator folder or real files (*.json protocol events, *.dcm) to the input topics"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="folders or files")
    parser.add_argument(
        "--config", type=Path, help="settings file (TOML, or .env of LOWDOSE_* lines)"
    )
    parser.add_argument(
        "--bootstrap-servers", help="host:port[,host:port] (default $KAFKA_BOOTSTRAP_SERVERS)"
    )
    parser.add_argument(
        "--send-invalid",
        action="store_true",
        help="send files that fail validation as they are (unkeyed), e.g. to exercise the DLQ",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from streams.client import KafkaProducerClient
    from streams.logs import protect_client_logs
    from streams.publish import iter_files, messages_from_files, send
    from streams.settings import load
    from streams.topics import ensure_topics

    protect_client_logs()  # `--log-level DEBUG` shows the client's logs: never its payloads
    settings = load(args.config, bootstrap_servers=args.bootstrap_servers)
    files = list(iter_files(args.paths))
    messages = list(messages_from_files(files, validate=not args.send_invalid))
    ensure_topics(settings)
    producer = KafkaProducerClient(
        **settings.kafka_common(),
        acks="all",
        linger_ms=settings.linger_ms,
        batch_size=settings.batch_size,
    )
    try:
        with Progress(disable=args.quiet, transient=False) as progress:
            task = progress.add_task("publishing", total=len(messages))
            counts = send(
                producer,
                settings.topics,
                messages,
                on_sent=lambda _m: progress.advance(task),
            )
    finally:
        producer.close(timeout_s=30)
    print(
        f"sent {counts['protocol']} protocol event(s) to {settings.topics.protocol} and "
        f"{counts['dicom']} DICOM file(s) to {settings.topics.rdsr} "
        f"on {settings.bootstrap_servers}"
    )
    return 0
