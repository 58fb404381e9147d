"""Test support shared by ``tests/kafka`` and ``benchmarks``: one broker per pytest session.

Import the fixtures into a conftest (``from tests.support.kafka import kafka_bootstrap,
kafka_broker``) or a benchmark module. Both places share one broker: it is kept in this module
and stopped when the interpreter exits. With ``KAFKA_BOOTSTRAP_SERVERS`` set, that cluster is
used instead. Without Java or Maven the Kafka tests fail under CI (``CI=true``) and skip loudly
elsewhere.

When ``openssl`` is available the session broker also has a TLS listener and a SASL_SSL (PLAIN)
listener with the user :data:`SASL_USER` (fixture ``kafka_tls``), for the security tests.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streams.broker import Broker, missing_tools
from streams.client import KafkaProducerClient
from streams.errors import BrokerError
from streams.settings import StreamSettings, Topics

_BROKER: dict[str, Broker] = {}
_LOCK = threading.Lock()

SASL_USER = "lowdose"
SASL_PASSWORD = "lowdose-test-secret"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(message: str) -> None:
    if _in_ci():
        pytest.fail(f"Kafka integration tests are mandatory under CI: {message}", pytrace=False)
    print(f"\n*** SKIPPING Kafka tests: {message} ***", file=sys.stderr)
    pytest.skip(f"Kafka tests skipped: {message}")


def shared_broker() -> Broker:
    """The session's broker, started on first use (jars fetched once into the cache)."""
    with _LOCK:
        broker = _BROKER.get("broker")
        if broker is None:
            tls = shutil.which("openssl") is not None
            broker = Broker(tls=tls, sasl_users={SASL_USER: SASL_PASSWORD} if tls else None)
            broker.start()
            _BROKER["broker"] = broker
            atexit.register(broker.close)
        return broker


@pytest.fixture(scope="session")
def kafka_broker() -> Broker | None:
    """The local broker object (None when ``KAFKA_BOOTSTRAP_SERVERS`` names a cluster)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return None
    if missing := missing_tools():
        _unavailable(
            f"{' and '.join(missing)} not found on PATH (install a Java 17+ JDK and Maven, or set "
            "KAFKA_BOOTSTRAP_SERVERS to an existing cluster)"
        )
    try:
        return shared_broker()
    except BrokerError as exc:
        pytest.fail(f"could not start the test broker: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker | None) -> str:
    """Bootstrap address of the session's cluster."""
    if kafka_broker is None:
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    return kafka_broker.bootstrap_servers


@pytest.fixture(scope="session")
def kafka_tls(kafka_broker: Broker | None) -> Broker:
    """The session broker with its TLS and SASL_SSL listeners (``.tls`` has the CA files)."""
    if kafka_broker is None or kafka_broker.tls is None:
        _unavailable(
            "the TLS tests need the session's own broker with openssl on PATH "
            "(KAFKA_BOOTSTRAP_SERVERS names an external cluster, or openssl is missing)"
        )
    assert kafka_broker is not None
    return kafka_broker


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def settings_for(bootstrap: str, name: str | None = None, **overrides: Any) -> StreamSettings:
    """Settings with this test's own topics and consumer group."""
    base = name or unique()
    topics = Topics(
        protocol=f"{base}.protocol",
        rdsr=f"{base}.rdsr",
        assessments=f"{base}.assessments",
        alerts=f"{base}.alerts",
        dlq=f"{base}.dlq",
        state=f"{base}.state",
    )
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": f"{base}.group",
        "topics": topics,
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 500,
        **overrides,
    }
    return StreamSettings(**values)


def settings_env(settings: StreamSettings) -> dict[str, str]:
    """Environment variables that give a ``lowdose run`` subprocess the same settings."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "LOWDOSE_GROUP_ID": settings.group_id,
        "LOWDOSE_PARTITIONS": str(settings.partitions),
        "LOWDOSE_MAX_BATCH": str(settings.max_batch),
        "LOWDOSE_SESSION_TIMEOUT_MS": str(settings.session_timeout_ms),
        "LOWDOSE_HEARTBEAT_INTERVAL_MS": str(settings.heartbeat_interval_ms),
    }
    for name, topic in settings.topics.model_dump().items():
        env[f"LOWDOSE_TOPICS__{name.upper()}"] = topic
    return env


def run_lowdose(
    args: list[str], env: dict[str, str], timeout_s: float = 180.0
) -> tuple[int, str, float]:
    """Run ``lowdose ARGS`` in a subprocess with ``env`` added; (exit status, output, seconds)."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "lowdose.main", *args],
        cwd=repo,
        env={**os.environ, **env, "PYTHONPATH": str(repo)},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def client_producer(bootstrap: str, **config: Any) -> KafkaProducerClient:
    """lowdose's own producer wrapper (for :func:`streams.publish.send`)."""
    return KafkaProducerClient(
        **{"bootstrap_servers": bootstrap, "acks": "all", "linger_ms": 2, **config}
    )


def producer(bootstrap: str, **config: Any) -> Any:
    """A plain kafka-python producer: the tests' scanner feed, an independent peer of lowdose
    (its futures' ``get`` gives record metadata)."""
    from kafka import KafkaProducer

    return KafkaProducer(
        **{"bootstrap_servers": bootstrap, "acks": "all", "linger_ms": 2, **config}
    )


def drain(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Any]], bool],
    timeout_s: float = 60.0,
) -> list[Any]:
    """Read ``topic`` from the beginning until ``until(records)`` holds or the timeout passes."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    records: list[Any] = []
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while not until(records) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        # A short extra read catches duplicates that arrive just after the condition holds.
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            for batch in consumer.poll(timeout_ms=100).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def header(record: Any, name: str) -> str | None:
    for key, value in record.headers or []:
        if key == name:
            return bytes(value).decode()
    return None


class ServiceThread:
    """Runs a :class:`streams.service.Service` in a thread; ``stop()`` asks it to finish."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="lowdose-service")

    def _run(self) -> None:
        try:
            self.service.run()
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> ServiceThread:
        self.thread.start()
        if not self.service.ready.wait(120):
            raise TimeoutError("service did not subscribe within 120 s")
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        self.service.request_stop()
        self.thread.join(timeout_s)
        if self.error is not None:
            raise self.error

    def __exit__(self, *exc: object) -> None:
        self.stop()


def iter_values(records: list[Any]) -> Iterator[bytes]:
    for r in records:
        yield bytes(r.value)
