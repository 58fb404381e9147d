"""The end of every batch: flush outputs, then the state changelog, then commit the offsets.

Each step runs only when the one before it succeeded, which is what makes the service
at-least-once with state that never runs ahead of its outputs:

1. **Outputs** (assessments, alerts, dead letters, all sent by the loop): ``flush`` waits until
   every one is acknowledged or failed. The producer itself retries delivery for
   ``delivery_timeout_ms`` (5 minutes: a broker restart is survived). *Failure*: a record failed
   after those retries, or the flush outlasted ``flush_timeout_s`` -> :class:`DeliveryError`;
   the batch's state is rolled back and its partitions are sought back to the batch's first
   offsets, so it is reprocessed (outputs already delivered come again with the same
   ``assessment_id``).
2. **State changelog**: the batch's buffered state writes (``store.changelog_records()``) are
   sent and flushed, with the same retries and the same failure mode as step 1; on success the
   writes are applied to the in-memory store (``store.commit()``).
3. **Offsets**: a synchronous commit of the next offset per partition, retried
   ``commit_attempts`` times with a growing pause on a retriable broker error. *Failure*:
   :class:`RebalancedError` (the group moved on) is counted and logged, not raised: the new
   owner reprocesses from the last commit; other errors after all attempts raise
   :class:`CommitError` (the service stops; outputs and state are flushed, so a restart
   reproduces the same outputs).

A stop request is honoured in every wait (issue 10, defect 5): :class:`Interrupted` is raised,
the state is rolled back and nothing is committed that was not flushed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streams.changelog import ChangelogStateStore
from streams.client import Consumer, Delivery, Producer, Record, StopFlag, TopicPartition, tp_of
from streams.errors import (
    BrokerError,
    CommitError,
    DeliveryError,
    Interrupted,
    RebalancedError,
)

log = logging.getLogger("lowdose.streams.checkpoint")


@dataclass
class CheckpointStats:
    commits: int = 0
    commit_failures: int = 0
    redone: int = 0  # batches rewound after a delivery failure
    state_writes: int = 0


def next_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    """The offset to commit per partition: one past the last record of the batch."""
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = tp_of(r)
        if offsets.get(tp, -1) < r.offset + 1:
            offsets[tp] = r.offset + 1
    return offsets


def first_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    first: dict[TopicPartition, int] = {}
    for r in records:
        tp = tp_of(r)
        if tp not in first or r.offset < first[tp]:
            first[tp] = r.offset
    return first


class Checkpoint:
    """Runs the three steps for one batch (see the module docstring)."""

    def __init__(
        self,
        consumer: Consumer,
        producer: Producer,
        store: ChangelogStateStore,
        stop: StopFlag,
        *,
        flush_timeout_s: float = 330.0,
        commit_timeout_ms: int = 15_000,
        commit_attempts: int = 10,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.stop = stop
        self.flush_timeout_s = flush_timeout_s
        self.commit_timeout_ms = commit_timeout_ms
        self.commit_attempts = commit_attempts
        self.sleep = sleep
        self.stats = CheckpointStats()

    def __call__(self, records: Sequence[Record], outputs: Sequence[Delivery]) -> bool:
        """Checkpoint a processed batch; True when its offsets were committed.

        Raises :class:`DeliveryError` (batch rewound, state rolled back), :class:`Interrupted`
        (state rolled back, nothing committed) or :class:`CommitError`.
        """
        try:
            self._deliver(outputs, "outputs")
            changelog = [
                self.producer.send(
                    self.store.topic,
                    key=r.key,
                    value=r.value,
                    partition=r.partition,
                    stop=self.stop,
                )
                for r in self.store.changelog_records()
            ]
            if changelog:
                self._deliver(changelog, "state changelog")
        except DeliveryError:
            self.abandon(records)
            self.seek_back(records)
            self.stats.redone += 1
            raise
        except (Interrupted, BrokerError):
            self.abandon(records)
            raise
        self.stats.state_writes += len(changelog)
        self.store.commit()
        return self._commit(next_offsets(records))

    def abandon(self, records: Sequence[Record]) -> None:
        """Undo the batch's state writes (its offsets stay uncommitted)."""
        self.store.rollback()

    def seek_back(self, records: Sequence[Record]) -> None:
        """Fetch the batch again from its first record on every partition."""
        for tp, offset in first_offsets(records).items():
            self.consumer.seek(tp, offset)

    def _deliver(self, deliveries: Sequence[Delivery], what: str) -> None:
        try:
            self.producer.flush(self.stop, self.flush_timeout_s)
        except Interrupted:
            raise
        except BrokerError as exc:
            raise DeliveryError(f"{what} not delivered: {exc}") from exc
        failed = [d for d in deliveries if d.failed()]
        if failed:
            raise DeliveryError(
                f"{len(failed)} {what} record(s) could not be delivered "
                f"({failed[0].exception!r}); offsets not committed, the batch is reprocessed"
            )

    def _commit(self, offsets: dict[TopicPartition, int]) -> bool:
        for attempt in range(self.commit_attempts):
            try:
                self.consumer.commit(offsets, self.commit_timeout_ms, self.stop)
                self.stats.commits += 1
                return True
            except RebalancedError as exc:
                self.stats.commit_failures += 1
                log.warning(
                    "commit refused after a rebalance; the new owner reprocesses (duplicates "
                    "with the same assessment ids, nothing lost)",
                    extra={"event": "commit_failed", "error": str(exc)[:300]},
                )
                return False
            except Interrupted:
                raise
            except BrokerError as exc:
                self.stats.commit_failures += 1
                log.warning(
                    "commit failed, retrying",
                    extra={"event": "commit_retry", "attempt": attempt, "error": str(exc)[:300]},
                )
                pause = min(5.0, 0.5 * (attempt + 1))
                slept = 0.0
                while slept < pause:
                    if self.stop.is_set():
                        raise Interrupted("stop requested between commit attempts") from exc
                    self.sleep(0.1)
                    slept += 0.1
        raise CommitError(
            f"could not commit offsets after {self.commit_attempts} attempts; the outputs are "
            "flushed and will be reproduced (same assessment ids) on restart; check the broker"
        )
