"""The one module that imports ``kafka`` (kafka-python 3.0.12): typed wrappers for the service.

The rest of ``streams/`` sees only the protocols below (:class:`Record`, :class:`Consumer`,
:class:`Producer`, :class:`Delivery`) and the stream errors of :mod:`streams.errors`; the fake
client (:mod:`tests.support.fake`) implements the same protocols in memory for the unit tests.

Waiting on a broker that is down must not outlast a stop request (issue 10, defect 5: 59.5 s
blocked in ``send`` waiting for metadata after SIGTERM). So every wait here is sliced: ``send``
blocks at most ``SEND_BLOCK_MS`` per attempt, ``flush`` and ``commit`` wait in slices of at most
``WAIT_SLICE_S``, and between slices the ``stop`` event is checked; when it is set they raise
:class:`streams.errors.Interrupted` and leave the rest undone (nothing is committed after an
interrupted flush). ``close`` is bounded too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import kafka
import kafka.errors as kerrors
from kafka.partitioner.default import DefaultPartitioner, murmur2

from streams.errors import BrokerError, Interrupted, RebalancedError
from streams.partitions import TopicPartition as TopicPartition

log = logging.getLogger("lowdose.streams.client")

# Longest single block inside kafka-python before the stop event is looked at again.
SEND_BLOCK_MS = 500
WAIT_SLICE_S = 0.25


class StopFlag(Protocol):
    """Set when waits must give up (``threading.Event`` fits)."""

    def is_set(self) -> bool: ...


class Record(Protocol):
    """A consumed record (kafka-python's ``ConsumerRecord`` fits it as it is: no conversion)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...  # epoch milliseconds
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]] | None: ...


def tp_of(record: Record) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)


class Delivery(Protocol):
    """The outcome of one ``send`` (kafka-python's ``FutureRecordMetadata`` fits it)."""

    @property
    def is_done(self) -> bool: ...
    @property
    def exception(self) -> BaseException | None: ...
    def failed(self) -> bool: ...


Headers = Sequence[tuple[str, bytes]]
PartitionsCallback = Callable[[set[TopicPartition]], None]


class Consumer(Protocol):
    """What the service loop, the alignment, the checkpoint and the store sink use of a consumer."""

    def subscribe(
        self, topics: Sequence[str], on_assigned: PartitionsCallback, on_revoked: PartitionsCallback
    ) -> None: ...
    def poll(self, timeout_ms: int, max_records: int) -> Mapping[TopicPartition, Sequence[Record]]:
        """Records fetched since the last poll; rebalance callbacks run inside this call."""
        ...

    def seek(self, tp: TopicPartition, offset: int) -> None: ...
    def seek_to_beginning(self, tps: Iterable[TopicPartition]) -> None: ...
    def position(self, tp: TopicPartition, timeout_ms: int) -> int | None: ...
    def end_offsets(
        self, tps: Sequence[TopicPartition], timeout_ms: int
    ) -> dict[TopicPartition, int]: ...
    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_ms: int, stop: StopFlag
    ) -> None:
        """Commit ``offsets`` (next offset to read) synchronously; raises
        :class:`RebalancedError` when no longer a member, :class:`BrokerError` on a retriable
        failure or timeout, :class:`Interrupted` when ``stop`` is set while waiting."""
        ...

    def assignment(self) -> set[TopicPartition]: ...
    def paused(self) -> set[TopicPartition]: ...
    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's last known log-end offset (from fetches; no broker call)."""
        ...

    def close(self, timeout_ms: int) -> None: ...


class Producer(Protocol):
    """What the loop, the checkpoint, the changelog and the bad-message policy use."""

    def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = (),
        partition: int | None = None,
        stop: StopFlag | None = None,
    ) -> Delivery: ...
    def flush(self, stop: StopFlag | None, timeout_s: float) -> None:
        """Wait until every record sent so far is acknowledged or failed; raises
        :class:`Interrupted` (stop) or :class:`BrokerError` (``timeout_s`` passed)."""
        ...

    def close(self, timeout_s: float) -> None: ...


class Reader(Protocol):
    """A group-less consumer for replaying the state changelog."""

    def assign(self, tps: Sequence[TopicPartition]) -> None: ...
    def seek_to_beginning(self, tps: Iterable[TopicPartition]) -> None: ...
    def end_offsets(
        self, tps: Sequence[TopicPartition], timeout_ms: int
    ) -> dict[TopicPartition, int]: ...
    def position(self, tp: TopicPartition, timeout_ms: int) -> int | None: ...
    def poll(
        self, timeout_ms: int, max_records: int
    ) -> Mapping[TopicPartition, Sequence[Record]]: ...
    def close(self, timeout_ms: int) -> None: ...


def record_size(key: bytes | None, value: bytes | None, headers: Headers = ()) -> int:
    """The bytes one record takes at most in a record batch of its own (magic v2, no
    compression): what kafka-python compares with ``max_request_size`` before it sends, and
    what the broker compares with the topic's ``max.message.bytes`` (a batch's size)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers)))


def too_large(error: BaseException | None) -> bool:
    """A produce error saying the record (or its batch) is larger than the topic or the
    producer takes: sending the same record again cannot succeed."""
    return isinstance(error, kerrors.MessageSizeTooLargeError | kerrors.RecordListTooLargeError)


def default_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (murmur2, positive modulo)."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


def key_hash_partitioner(max_keys: int = 100_000) -> Any:
    """Kafka's default partitioner (murmur2 of the key, positive modulo the partition count)
    with each key's hash remembered: a study's outputs and alerts share its key, and pure-Python
    murmur2 costs about 8 us a call. Same partition as ``DefaultPartitioner`` for every key."""

    class KeyHashPartitioner(DefaultPartitioner):  # type: ignore[misc]
        def __init__(self) -> None:
            self.hashes: dict[bytes, int] = {}

        def partition(
            self,
            topic: str,
            key: Any,
            serialized_key: bytes | None,
            value: Any,
            serialized_value: Any,
            cluster: Any,
        ) -> int:
            partitions = cluster.partitions_for_topic(topic)
            if serialized_key is None or not partitions:
                return int(
                    super().partition(topic, key, serialized_key, value, serialized_value, cluster)
                )
            h = self.hashes.get(serialized_key)
            if h is None:
                if len(self.hashes) >= max_keys:
                    self.hashes.clear()
                h = self.hashes[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
            ordered = sorted(partitions)
            return int(ordered[h % len(ordered)])

    return KeyHashPartitioner()


def _ktps(tps: Iterable[TopicPartition]) -> list[Any]:
    return [kafka.TopicPartition(tp.topic, tp.partition) for tp in tps]


def _own(tps: Iterable[Any]) -> set[TopicPartition]:
    return {TopicPartition(tp.topic, tp.partition) for tp in tps}


def _broker_error(operation: str, exc: Exception) -> BrokerError:
    return BrokerError(
        f"{operation} failed: {type(exc).__name__}: {exc}; check that the broker is reachable "
        "(bootstrap_servers) and healthy"
    )


class KafkaConsumerClient:
    """:class:`Consumer` (and :class:`Reader`) over ``kafka.KafkaConsumer``."""

    def __init__(self, **config: Any) -> None:
        try:
            self._consumer = kafka.KafkaConsumer(**config)
        except kerrors.KafkaError as exc:
            raise _broker_error("creating the consumer", exc) from exc

    def subscribe(
        self, topics: Sequence[str], on_assigned: PartitionsCallback, on_revoked: PartitionsCallback
    ) -> None:
        class Listener(kafka.ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                on_revoked(_own(revoked))

            def on_partitions_assigned(self, assigned: Any) -> None:
                on_assigned(_own(assigned))

            def on_partitions_lost(self, lost: Any) -> None:
                on_revoked(_own(lost))

        self._consumer.subscribe(list(topics), listener=Listener())

    def wait_for_partitions(self, counts: Mapping[str, int], timeout_s: float = 60.0) -> None:
        """Wait until the metadata shows every partition of ``counts``' topics.

        Seen under load right after topic creation: the group leader assigned with metadata that
        lacked the new topics ("No partition metadata for topic"), so the group got no partitions
        until the next metadata refresh minutes later.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            known = {t: len(self._consumer.partitions_for_topic(t) or ()) for t in counts}
            if all(known[t] >= n for t, n in counts.items()):
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"input topic metadata incomplete after {timeout_s:.0f} s: partitions known "
                    f"{known}, expected {dict(counts)}; check the broker's health"
                )
            time.sleep(0.2)

    def poll(self, timeout_ms: int, max_records: int) -> Mapping[TopicPartition, Sequence[Record]]:
        # kafka-python's TopicPartition keys equal ours (both namedtuples of topic, partition).
        polled: Mapping[TopicPartition, Sequence[Record]] = self._consumer.poll(
            timeout_ms=timeout_ms, max_records=max_records
        )
        return polled

    def assign(self, tps: Sequence[TopicPartition]) -> None:
        self._consumer.assign(_ktps(tps))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(kafka.TopicPartition(tp.topic, tp.partition), offset)

    def seek_to_beginning(self, tps: Iterable[TopicPartition]) -> None:
        self._consumer.seek_to_beginning(*_ktps(tps))

    def position(self, tp: TopicPartition, timeout_ms: int) -> int | None:
        try:
            p = self._consumer.position(
                kafka.TopicPartition(tp.topic, tp.partition), timeout_ms=timeout_ms
            )
        except kerrors.KafkaError as exc:
            raise _broker_error(f"position of {tp.topic}/{tp.partition}", exc) from exc
        return None if p is None else int(p)

    def end_offsets(
        self, tps: Sequence[TopicPartition], timeout_ms: int
    ) -> dict[TopicPartition, int]:
        try:
            ends = self._consumer.end_offsets(_ktps(tps), timeout_ms=timeout_ms)
        except kerrors.KafkaError as exc:
            raise _broker_error("reading log-end offsets", exc) from exc
        return {TopicPartition(tp.topic, tp.partition): int(o) for tp, o in ends.items()}

    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_ms: int, stop: StopFlag
    ) -> None:
        meta = {
            kafka.TopicPartition(tp.topic, tp.partition): kafka.OffsetAndMetadata(o, "", -1)
            for tp, o in offsets.items()
        }
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            if stop.is_set():
                raise Interrupted("stop requested before the offsets were committed")
            slice_ms = int(max(1.0, min(WAIT_SLICE_S * 4, deadline - time.monotonic()) * 1000))
            try:
                self._consumer.commit(offsets=meta, timeout_ms=slice_ms)
                return
            except kerrors.CommitFailedError as exc:
                raise RebalancedError(
                    f"commit refused after a rebalance ({exc}); the new owner reprocesses from "
                    "the last commit"
                ) from exc
            except kerrors.KafkaTimeoutError as exc:
                if time.monotonic() >= deadline:
                    raise _broker_error("committing offsets", exc) from exc
            except kerrors.KafkaError as exc:
                raise _broker_error("committing offsets", exc) from exc

    def assignment(self) -> set[TopicPartition]:
        return _own(self._consumer.assignment())

    def paused(self) -> set[TopicPartition]:
        return _own(self._consumer.paused())

    def highwater(self, tp: TopicPartition) -> int | None:
        value = self._consumer.highwater(kafka.TopicPartition(tp.topic, tp.partition))
        return value if isinstance(value, int) else None

    def close(self, timeout_ms: int) -> None:
        """Leave the group without committing, waiting at most ``timeout_ms`` on the broker."""
        self._consumer.close(autocommit=False, timeout_ms=timeout_ms)


class KafkaProducerClient:
    """:class:`Producer` over ``kafka.KafkaProducer`` with sliced, interruptible waits."""

    def __init__(
        self, *, give_up_s: float = 300.0, stop: StopFlag | None = None, **config: Any
    ) -> None:
        self.give_up_s = give_up_s
        self.stop = stop  # used by send and flush calls that pass none (e.g. dead letters)
        config.setdefault("max_block_ms", SEND_BLOCK_MS)
        # The largest record this producer sends (the dead-letter policy cuts letters to fit).
        self.max_request_size: int = int(config.get("max_request_size", 1_048_576))
        try:
            self._producer = kafka.KafkaProducer(**config)
        except kerrors.KafkaError as exc:
            raise _broker_error("creating the producer", exc) from exc

    def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = (),
        partition: int | None = None,
        stop: StopFlag | None = None,
    ) -> Delivery:
        stop = stop or self.stop
        deadline: float | None = None
        while True:
            try:
                future: Delivery = self._producer.send(
                    topic, key=key, value=value, headers=list(headers), partition=partition
                )
                return future
            except kerrors.IllegalStateError as exc:  # closed (replaced by another thread)
                raise _broker_error(f"sending to {topic}", exc) from exc
            except kerrors.KafkaTimeoutError as exc:
                # No metadata for the topic (broker down) or the buffer is full: wait again
                # unless asked to stop; give up after give_up_s.
                now = time.monotonic()
                deadline = deadline or now + self.give_up_s
                if stop is not None and stop.is_set():
                    raise Interrupted(f"stop requested while sending to {topic}") from exc
                if now > deadline:
                    raise _broker_error(f"sending to {topic}", exc) from exc

    def flush(self, stop: StopFlag | None, timeout_s: float) -> None:
        stop = stop or self.stop
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._producer.flush(timeout=WAIT_SLICE_S)
                return
            except kerrors.KafkaTimeoutError as exc:
                if stop is not None and stop.is_set():
                    raise Interrupted("stop requested while flushing the outputs") from exc
                if time.monotonic() > deadline:
                    raise _broker_error(f"flushing within {timeout_s:.0f} s", exc) from exc

    def fatal_error(self) -> BaseException | None:
        """The error that left this producer unusable, or None.

        kafka-python's idempotent producer turns *fatal* after a produce error it cannot
        recover from; every non-retriable one counts, the broker's MESSAGE_TOO_LARGE among them
        (kafka-python 3.0.12, ``TransactionManager.classify_batch_error``). From then on it
        fails every record it is given with that error, whatever the broker does: the producer
        must be closed and a new one created. Read from its transaction manager (not public
        API: tests/ingest/test_dicom_kafka.py drives a real broker into this state).
        """
        manager = getattr(self._producer, "_transaction_manager", None)
        has_fatal = getattr(manager, "has_fatal_error", None)
        if not callable(has_fatal) or not has_fatal():
            return None
        error = getattr(manager, "last_error", None)
        return error if isinstance(error, BaseException) else kerrors.KafkaError("fatal state")

    def close(self, timeout_s: float) -> None:
        """Close, waiting at most ``timeout_s`` for unsent records (then dropped: their input
        offsets were not committed, so they are produced again after a restart)."""
        try:
            self._producer.close(timeout=timeout_s)
        except kerrors.KafkaTimeoutError:
            self._producer.close(timeout=0)


class KafkaAdminClient:
    """The admin calls lowdose makes: list, create and describe topics."""

    def __init__(self, **config: Any) -> None:
        try:
            self._admin = kafka.KafkaAdminClient(**config)
        except kerrors.KafkaError as exc:
            raise _broker_error("creating the admin client", exc) from exc

    def list_topics(self) -> set[str]:
        try:
            return set(self._admin.list_topics())
        except kerrors.KafkaError as exc:
            raise _broker_error("listing topics", exc) from exc

    def create_topics(self, specs: Mapping[str, Mapping[str, Any]]) -> None:
        """Create topics (``{name: {num_partitions, replication_factor, configs?}}``); one
        that exists already (another instance made it a moment ago) is not an error."""
        new = {name: dict(spec) for name, spec in specs.items()}
        try:
            self._admin.create_topics(new, raise_errors=False, wait_for_metadata=True)
        except kerrors.KafkaError as exc:
            raise _broker_error("creating topics", exc) from exc

    def partition_counts(self, names: Sequence[str]) -> dict[str, int]:
        """Partition count of each existing topic among ``names``."""
        try:
            described = self._admin.describe_topics(list(names))
        except kerrors.KafkaError as exc:
            raise _broker_error("describing topics", exc) from exc
        return {
            t["name"]: len(t["partitions"])
            for t in described
            if t.get("error_code", 0) == 0 and t.get("partitions")
        }

    def max_message_bytes(self, topic: str) -> int | None:
        """The topic's ``max.message.bytes`` (None when it cannot be read)."""
        from kafka.admin import ConfigResource, ConfigResourceType

        try:
            resource = ConfigResource(
                ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": None}
            )
            result = self._admin.describe_configs([resource], config_filter="all")
            return int(result["topic"][topic]["max.message.bytes"]["value"])
        except (kerrors.KafkaError, ValueError, TypeError, KeyError):
            return None

    def close(self) -> None:
        self._admin.close()
