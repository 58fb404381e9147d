"""An in-memory stand-in for the Kafka client, for unit tests of the service loop.

:class:`FakeBroker` holds partitioned topics and committed group offsets; :class:`FakeConsumer`,
:class:`FakeProducer` and :class:`FakeReader` implement the protocols of :mod:`streams.client`
over it, with the faults the loop must survive injectable: failed deliveries, a flush that hangs
until a stop, commit failures, a rebalance (scheduled for the next poll, optionally refusing the
commit in flight), a partition held back (a lagging fetch) or stalled (a fetcher that returns
nothing until its position is sought again). Every append and commit gets a sequence number in
:attr:`FakeBroker.log`, so tests can check the checkpoint order.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from streams.client import Headers, PartitionsCallback, StopFlag, TopicPartition
from streams.errors import BrokerError, Interrupted, RebalancedError


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()


@dataclass
class FakeBroker:
    partitions: dict[str, list[list[FakeRecord]]] = field(default_factory=dict)
    committed: dict[str, dict[TopicPartition, int]] = field(default_factory=dict)
    log: list[tuple[str, str]] = field(default_factory=list)  # ("append" | "commit", topic)
    clock_ms: int = 1_000_000

    def create(self, topic: str, partitions: int) -> None:
        self.partitions.setdefault(topic, [[] for _ in range(partitions)])

    def append(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int = 0,
        timestamp: int | None = None,
        headers: Sequence[tuple[str, bytes | None]] = (),
    ) -> FakeRecord:
        log = self.partitions[topic][partition]
        if timestamp is None:
            self.clock_ms += 1
            timestamp = self.clock_ms
        record = FakeRecord(topic, partition, len(log), timestamp, key, value, tuple(headers))
        log.append(record)
        self.log.append(("append", topic))
        return record

    def records(self, topic: str) -> list[FakeRecord]:
        return [r for p in self.partitions.get(topic, []) for r in p]

    def end(self, tp: TopicPartition) -> int:
        return len(self.partitions[tp.topic][tp.partition])


@dataclass
class FakeDelivery:
    is_done: bool = False
    exception: BaseException | None = None

    def failed(self) -> bool:
        return self.exception is not None


class FakeProducer:
    """Sends land on the broker at ``flush``. ``fail_deliveries`` fails that many, ``hang``
    makes ``flush`` wait until the stop flag is set (a broker that went away). ``fatal`` set to
    an error fails every delivery from then on with it, as kafka-python's idempotent producer
    does once a produce error left it in its fatal state (``fatal_error`` reports it);
    ``fatal_on_flush`` puts it in that state during the next flush (the broker's answer to the
    records being flushed)."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.fail_deliveries = 0
        self.hang = False
        self.fatal: BaseException | None = None
        self.fatal_on_flush: BaseException | None = None
        self.closed = False
        self._pending: list[tuple[FakeDelivery, str, bytes | None, bytes | None, Headers, int]] = []

    def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = (),
        partition: int | None = None,
        stop: StopFlag | None = None,
    ) -> FakeDelivery:
        delivery = FakeDelivery()
        if partition is None:
            partition = sum(key or b"") % len(self.broker.partitions[topic])
        self._pending.append((delivery, topic, key, value, headers, partition))
        return delivery

    def flush(self, stop: StopFlag | None, timeout_s: float) -> None:
        if self.hang:
            deadline = time.monotonic() + min(timeout_s, 5.0)
            while stop is None or not stop.is_set():
                if time.monotonic() > deadline:
                    raise BrokerError("injected: flush timed out (broker unreachable)")
                time.sleep(0.001)
            raise Interrupted("stop requested while flushing the outputs")
        pending, self._pending = self._pending, []
        if self.fatal_on_flush is not None and pending:
            self.fatal, self.fatal_on_flush = self.fatal_on_flush, None
        for delivery, topic, key, value, headers, partition in pending:
            delivery.is_done = True
            if self.fatal is not None:
                delivery.exception = self.fatal
                continue
            if self.fail_deliveries > 0:
                self.fail_deliveries -= 1
                delivery.exception = BrokerError("injected delivery failure")
                continue
            self.broker.append(topic, value, key=key, partition=partition, headers=headers)

    def fatal_error(self) -> BaseException | None:
        return self.fatal

    def close(self, timeout_s: float) -> None:
        self._pending = []
        self.closed = True


class FakeConsumer:
    """A group member that owns whatever :meth:`rebalance` hands it (all partitions at first)."""

    def __init__(self, broker: FakeBroker, group: str = "g") -> None:
        self.broker = broker
        self.group = group
        self.topics: list[str] = []
        self.owned: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}
        self._on_assigned: PartitionsCallback | None = None
        self._on_revoked: PartitionsCallback | None = None
        self._next_assignment: set[TopicPartition] | None = None
        self._after_refusal: set[TopicPartition] | None = None
        self.refuse_commit = False  # the group moved on while the batch was in flight
        self.fail_commits = 0
        self.held: set[TopicPartition] = set()  # fetched later (a lagging partition)
        self.stalled: set[TopicPartition] = set()  # fetch nothing until sought
        self.commits = 0
        self.closed = False

    # -- test controls ------------------------------------------------------------------------

    def rebalance(self, assignment: set[TopicPartition]) -> None:
        """The group moves on: the next commit is refused, the poll after it assigns
        ``assignment`` (revoking everything first: the eager protocol)."""
        self._after_refusal = set(assignment)
        self.refuse_commit = True

    def all_partitions(self) -> set[TopicPartition]:
        return {
            TopicPartition(t, p) for t in self.topics for p in range(len(self.broker.partitions[t]))
        }

    # -- Consumer -----------------------------------------------------------------------------

    def subscribe(
        self, topics: Sequence[str], on_assigned: PartitionsCallback, on_revoked: PartitionsCallback
    ) -> None:
        self.topics = list(topics)
        self._on_assigned, self._on_revoked = on_assigned, on_revoked
        self._next_assignment = self.all_partitions()

    def _follow(self) -> None:
        if self._next_assignment is None:
            return
        new, self._next_assignment = self._next_assignment, None
        if self.owned and self._on_revoked is not None:
            self._on_revoked(set(self.owned))
        self.owned = new
        committed = self.broker.committed.setdefault(self.group, {})
        self.positions = {tp: committed.get(tp, 0) for tp in new}
        if self._on_assigned is not None:
            self._on_assigned(set(new))

    def poll(
        self, timeout_ms: int, max_records: int
    ) -> Mapping[TopicPartition, Sequence[FakeRecord]]:
        self._follow()
        out: dict[TopicPartition, list[FakeRecord]] = {}
        budget = max_records
        for tp in sorted(self.owned):
            if tp in self.held or tp in self.stalled or budget <= 0:
                continue
            log = self.broker.partitions[tp.topic][tp.partition]
            start = self.positions[tp]
            got = log[start : start + budget]
            if got:
                out[tp] = got
                self.positions[tp] = start + len(got)
                budget -= len(got)
        return out

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset
        self.stalled.discard(tp)

    def seek_to_beginning(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self.seek(tp, 0)

    def position(self, tp: TopicPartition, timeout_ms: int) -> int | None:
        return self.positions.get(tp)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.broker.end(tp)

    def end_offsets(
        self, tps: Sequence[TopicPartition], timeout_ms: int
    ) -> dict[TopicPartition, int]:
        return {tp: self.broker.end(tp) for tp in tps}

    def commit(
        self, offsets: Mapping[TopicPartition, int], timeout_ms: int, stop: StopFlag
    ) -> None:
        if stop.is_set():
            raise Interrupted("stop requested before the offsets were committed")
        if self.refuse_commit:
            self.refuse_commit = False
            self._next_assignment, self._after_refusal = self._after_refusal, None
            raise RebalancedError("injected: the group rebalanced")
        if self.fail_commits > 0:
            self.fail_commits -= 1
            raise BrokerError("injected commit failure")
        self.broker.committed.setdefault(self.group, {}).update(offsets)
        self.broker.log.append(("commit", self.group))
        self.commits += 1

    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    def paused(self) -> set[TopicPartition]:
        return set()

    def close(self, timeout_ms: int) -> None:
        self.closed = True


class FakeReader:
    """A group-less reader of the broker (the changelog replay)."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.positions: dict[TopicPartition, int] = {}

    def assign(self, tps: Sequence[TopicPartition]) -> None:
        self.positions = {tp: 0 for tp in tps}

    def seek_to_beginning(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self.positions[tp] = 0

    def end_offsets(
        self, tps: Sequence[TopicPartition], timeout_ms: int
    ) -> dict[TopicPartition, int]:
        return {tp: self.broker.end(tp) for tp in tps}

    def position(self, tp: TopicPartition, timeout_ms: int) -> int | None:
        return self.positions.get(tp)

    def poll(
        self, timeout_ms: int, max_records: int
    ) -> Mapping[TopicPartition, Sequence[FakeRecord]]:
        out: dict[TopicPartition, list[FakeRecord]] = {}
        for tp, start in self.positions.items():
            got = self.broker.partitions[tp.topic][tp.partition][start : start + max_records]
            if got:
                out[tp] = got
                self.positions[tp] = start + len(got)
        return out

    def close(self, timeout_ms: int) -> None:
        pass
