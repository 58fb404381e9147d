"""Create the lowdose topics when missing and check the co-partitioning the state store needs.

The state changelog is read back partition by partition after a rebalance: partition *p* of the
changelog holds the studies whose input messages live on partition *p* of every input topic (the
table of inputs, :mod:`streams.inputs`), so all of them must have the same partition count. The
changelog is compacted (last state per study) and also deleted after the study-state expiry
(``cleanup.policy=compact,delete``). The DICOM input topic takes records up to
``rdsr_max_message_bytes`` (``max.message.bytes``, 16 MiB by default: structure sets are larger
than Kafka's 1 MB default); a topic that exists already keeps its own limit, which the DICOM
listener reads at start-up (:func:`max_message_bytes`).

Before the admin client is created, :func:`streams.preflight.probe` checks the bootstrap
addresses, so an unreachable broker, a TLS/PLAINTEXT mismatch or an untrusted certificate ends
within seconds with the cause and the setting to fix; a client that still cannot start (SASL
authentication, authorisation) is explained from its own error log lines.
"""

from __future__ import annotations

from typing import Any

from optimiser.errors import ConfigurationError
from streams.client import KafkaAdminClient
from streams.errors import BrokerError
from streams.inputs import RDSR, copartitioned
from streams.preflight import capture_client_errors, client_failure, probe
from streams.settings import StreamSettings

# The admin client's bootstrap wait once the probe passed (kafka-python's default is 30 s).
BOOTSTRAP_TIMEOUT_MS = 15_000


def topic_specs(settings: StreamSettings) -> dict[str, dict[str, Any]]:
    """The topics lowdose uses, with partition count and configs for creating them."""
    n, rf = settings.partitions, settings.replication_factor
    t = settings.topics
    state_configs = {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(int(settings.state_ttl_s * 1000)),
        "segment.ms": str(6 * 3600 * 1000),
    }
    plain: dict[str, Any] = {"num_partitions": n, "replication_factor": rf}
    specs: dict[str, dict[str, Any]] = {
        **{topic: dict(plain) for topic in t.inputs},
        t.assessments: dict(plain),
        t.alerts: dict(plain),
        t.dlq: dict(plain),
        t.state: {**plain, "configs": state_configs},
    }
    # DICOM objects: structure sets are larger than Kafka's 1 MB default (settings).
    specs[RDSR.topic(t)]["configs"] = {"max.message.bytes": str(settings.rdsr_max_message_bytes)}
    return specs


def _admin(settings: StreamSettings, logged: list[str]) -> KafkaAdminClient:
    """An admin client, after the connection probe; every failure names its cause."""
    probe(settings)
    try:
        return KafkaAdminClient(
            **settings.kafka_common(),
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            request_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
        )
    except BrokerError as exc:
        raise client_failure(settings, _cause(exc), logged) from exc


def _cause(exc: BrokerError) -> Exception:
    """The client's own error behind a wrapper's :class:`BrokerError` (its name and text are
    what :func:`streams.preflight.client_failure` reads)."""
    cause = exc.__cause__
    return cause if isinstance(cause, Exception) else exc


def max_message_bytes(settings: StreamSettings, topic: str) -> int | None:
    """The topic's ``max.message.bytes`` (None when it cannot be read): the dead-letter topic's
    for the DLQ's cut, the DICOM topic's for the listener's largest object."""
    with capture_client_errors() as logged:
        admin = _admin(settings, logged)
        try:
            return admin.max_message_bytes(topic)
        finally:
            admin.close()


def ensure_topics(settings: StreamSettings, *, create: bool | None = None) -> dict[str, int]:
    """Create missing topics (when allowed) and verify inputs and changelog are co-partitioned.

    Returns the partition count of every lowdose topic.
    """
    create = settings.create_topics if create is None else create
    specs = topic_specs(settings)
    with capture_client_errors() as logged:
        admin = _admin(settings, logged)
        try:
            existing = admin.list_topics()
            missing = {name: spec for name, spec in specs.items() if name not in existing}
            if missing and create:
                # Another instance may have created one a moment ago: not an error.
                admin.create_topics(missing)
            counts = admin.partition_counts(list(specs))
        except BrokerError as exc:
            raise client_failure(settings, _cause(exc), logged) from exc
        finally:
            admin.close()
    together = copartitioned(settings.topics)
    absent = [name for name in specs if name not in counts]
    if absent:
        raise ConfigurationError(
            f"topics {', '.join(absent)} do not exist; create them (same partition count for "
            f"{', '.join(together[:-1])} and {together[-1]}) or set LOWDOSE_CREATE_TOPICS=true"
        )
    partitions = {name: counts[name] for name in together}
    if len(set(partitions.values())) != 1:
        raise ConfigurationError(
            f"partition counts {partitions}: the input topics and the state changelog must "
            "have the same number of partitions (the changelog is co-partitioned with the "
            "inputs); add partitions to the smaller ones"
        )
    return counts
