"""A dose report waits for its study's protocol event: alignment of the input topics.

Which input topic waits for which says the table of inputs (:func:`streams.inputs.waiting`):
the dose-report topic waits for the protocol topic. Protocol events and dose reports of a study
arrive on co-numbered partitions of two topics, so a report may be fetched before its event when
the protocol partition lags. A report on partition
*p* with timestamp *T* is ready once protocol partition *p* has been read past *T* (its events
are timestamped in order), or has no unread record left according to a fresh log-end offset (the
fetch high-water mark can be stale) and the report is older than ``grace_ms`` (an event sent
just before its report may become readable just after it: different partitions of one produce
request). A waiting report partition is sought back to its first waiting record, so it is fetched
again later (no buffering, no pause/resume: a resumed partition sometimes stayed silent with
kafka-python 3.0.12); it waits at most ``max_defer_s``, then is assessed as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from streams.client import Consumer, Record, TopicPartition, tp_of
from streams.errors import BrokerError


class Alignment:
    """Splits polled records into those ready now and report partitions that must wait.

    ``waiting`` maps each input topic that waits to the topic whose co-numbered partition it
    waits for (``{rdsr: protocol}``).
    """

    def __init__(
        self,
        consumer: Consumer,
        waiting: Mapping[str, str],
        *,
        max_defer_s: float = 60.0,
        grace_ms: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], float] = lambda: time.time() * 1000.0,
    ) -> None:
        self.consumer = consumer
        self.waiting = dict(waiting)
        self.max_defer_s = max_defer_s
        self.grace_ms = grace_ms
        self.monotonic = monotonic
        self.wall_ms = wall_ms
        self.owned: set[TopicPartition] = set()
        # Report partitions waiting for their protocol partition, with when the wait began.
        self.waiting_since: dict[TopicPartition, float] = {}
        # Timestamp of the newest record read, per partition, of each topic waited for.
        self.lead_ts: dict[str, dict[int, int]] = {lead: {} for lead in self.waiting.values()}
        self.deferred = 0  # records sent back to wait, in total

    def reset(self, owned: set[TopicPartition]) -> None:
        """After a rebalance: fetch positions restart from the committed offsets."""
        self.owned = set(owned)
        self.waiting_since = {}
        self.lead_ts = {lead: {} for lead in self.waiting.values()}

    def split(self, records: Sequence[Record]) -> list[Record]:
        """Records ready now, in poll order; waiting report partitions are sought back."""
        waiting, lead_ts = self.waiting, self.lead_ts
        for r in records:
            seen = lead_ts.get(r.topic)
            if seen is not None and r.timestamp > seen.get(r.partition, -1):
                seen[r.partition] = r.timestamp
        now = self.monotonic()
        ready: list[Record] = []
        rewind: dict[TopicPartition, int] = {}
        caught_up: dict[TopicPartition, bool] = {}
        for record in records:
            lead = waiting.get(record.topic)
            if lead is not None:
                tp = tp_of(record)
                if tp in rewind:
                    continue
                p = record.partition
                since = self.waiting_since.get(tp)
                expired = since is not None and now - since > self.max_defer_s
                if not expired and lead_ts[lead].get(p, -1) < record.timestamp:
                    lead_tp = TopicPartition(lead, p)
                    if lead_tp not in caught_up:
                        caught_up[lead_tp] = self._caught_up(lead_tp)
                    young = self.wall_ms() - record.timestamp < self.grace_ms
                    if young or not caught_up[lead_tp]:
                        rewind[tp] = record.offset
                        self.waiting_since.setdefault(tp, now)
                        continue
                self.waiting_since.pop(tp, None)
            ready.append(record)
        for tp, offset in rewind.items():
            self.consumer.seek(tp, offset)
            self.deferred += 1
        return ready

    def _caught_up(self, tp: TopicPartition) -> bool:
        """True when partition ``tp`` (waited for) has no record this consumer has not read."""
        if tp not in self.owned:
            return True
        try:
            end = self.consumer.end_offsets([tp], timeout_ms=2000).get(tp)
            position = self.consumer.position(tp, timeout_ms=2000)
        except BrokerError:  # unknown (e.g. a slow broker): wait; max_defer_s bounds the wait
            return False
        return end is None or position is None or position >= end
