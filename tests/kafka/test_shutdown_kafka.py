"""SIGTERM while the broker is down mid-batch (issue 10, defect 5), on a real broker.

Before: ``lowdose run`` sat 59.5 s in ``producer.send`` waiting for metadata, then longer in the
flush. Now every wait on the broker is sliced and gives up once the stop grace has passed: the
process exits within seconds and commits nothing whose outputs were not flushed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from simulator import simulate_feed
from streams.broker import Broker
from streams.topics import ensure_topics
from tests.support.kafka import drain, producer, settings_env, settings_for

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(400)]

REPO = Path(__file__).resolve().parents[2]
EXIT_DEADLINE_S = 15.0  # stop grace 2 s + bounded closes; was over 60 s


def _events(n: int) -> list[tuple[bytes, bytes, str]]:
    base = [s.protocol_event for s in simulate_feed(50, seed=61)]
    out = []
    for i in range(n):
        event = base[i % len(base)].model_copy(update={"event_id": f"sd-{i}"})
        out.append((event.study.study_instance_uid.encode(), event.to_json().encode(), f"sd-{i}"))
    return out


def _committed(bootstrap: str, group: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return int(c.committed(TopicPartition(topic, 0)) or 0)
    finally:
        c.close(autocommit=False)


def test_sigterm_with_broker_down_mid_batch_exits_fast_and_commits_only_flushed(
    kafka_bootstrap: str, kafka_broker: Broker | None, tmp_path: Path
) -> None:
    if kafka_broker is None:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS names an external cluster: not stopping it")
    settings = settings_for(kafka_bootstrap, partitions=1, max_batch=500)
    events = _events(12_000)
    ensure_topics(settings)
    p = producer(kafka_bootstrap, linger_ms=20, batch_size=256 * 1024)
    futures = [p.send(settings.topics.protocol, key=k, value=v) for k, v, _ in events[:10]]
    p.flush()
    log = tmp_path / "run.log"
    with log.open("ab") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lowdose.main", "--log-level", "INFO", "run"],
            cwd=REPO,
            env={**os.environ, **settings_env(settings), "PYTHONPATH": str(REPO)},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        try:
            drain(kafka_bootstrap, settings.topics.assessments, until=lambda rs: len(rs) >= 10)
            futures += [p.send(settings.topics.protocol, key=k, value=v) for k, v, _ in events[10:]]
            p.flush()
            offsets = {f.get(timeout=60).offset: events[i][2] for i, f in enumerate(futures)}
            p.close()
            # Mid-stream: outputs of the big feed are flowing; take the broker away.
            drain(kafka_bootstrap, settings.topics.assessments, until=lambda rs: len(rs) >= 800)
            kafka_broker._terminate()
            time.sleep(1.0)  # the batch in flight now waits on a broker that is gone
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(EXIT_DEADLINE_S + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait(10)
            took = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
            kafka_broker._launch(90.0)
    text = log.read_text(errors="replace")
    assert took < EXIT_DEADLINE_S, f"exit took {took:.1f} s (rc {rc}): {text[-2000:]}"
    committed = _committed(kafka_bootstrap, settings.group_id, settings.topics.protocol)
    wanted = {offsets[o] for o in range(committed)}
    outputs = drain(
        kafka_bootstrap,
        settings.topics.assessments,
        until=lambda rs: {json.loads(r.value)["input_id"] for r in rs} >= wanted,
        timeout_s=60,
    )
    got: set[Any] = {json.loads(r.value)["input_id"] for r in outputs}
    assert wanted <= got, f"{len(wanted - got)} committed input(s) without their assessments"
    interrupted = '"event": "interrupted"' in text
    print(
        f"\nSIGTERM with the broker down: exit after {took:.1f} s (rc {rc}); committed "
        f"{committed} of {len(events)} events, all with their assessments; interrupted "
        f"mid-batch: {interrupted}"
    )
