"""What the loop does when messages fail: one injected policy object.

:class:`FailurePolicy` owns both halves of the answer. A message that cannot be decoded, or that
the pipeline rejects, goes to the bad-message policy (:mod:`streams.deadletter`: dead-letter
topic, skip or stop). A batch the pipeline rejects as a whole is split: the state is rolled back
and the items are assessed one by one, each under a savepoint, so the one that spoils the batch
is found and handed to the bad-message policy while every other item keeps its assessments and
state writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from optimiser.assessment import Assessment
from optimiser.errors import LowdoseError
from optimiser.inputs import PipelineInput
from optimiser.state import TransactionalStateStore
from streams.client import Record
from streams.deadletter import BadMessagePolicy

log = logging.getLogger("lowdose.streams.policy")

Process = Callable[[Sequence[PipelineInput]], list[Assessment]]


class Rejects(Protocol):
    def reject(self, record: Record, error: Exception, stage: str) -> None: ...


class FailurePolicy:
    """Split-and-retry of a failing batch plus the bad-message policy, injected as one."""

    def __init__(self, bad_messages: BadMessagePolicy) -> None:
        self.bad_messages = bad_messages
        self.rejected = 0
        self.split_batches = 0

    def reject(self, record: Record, error: Exception, stage: str) -> None:
        """A message that failed at ``stage`` (decode | assess): to the bad-message policy."""
        self.rejected += 1
        self.bad_messages.handle(record, error, stage)

    def assess(
        self,
        process: Process,
        store: TransactionalStateStore,
        items: list[PipelineInput],
        records: list[Record],
    ) -> list[Assessment]:
        """Assess ``items`` (decoded from ``records``, same order) in one call, else one by one."""
        if not items:
            return []
        try:
            return list(process(items))
        except LowdoseError:
            store.rollback()
        self.split_batches += 1
        out: list[Assessment] = []
        for item, record in zip(items, records, strict=True):
            store.savepoint()
            try:
                out.extend(process([item]))
            except LowdoseError as exc:
                store.rollback_to_savepoint()
                self.reject(record, exc, "assess")
                continue
            except Exception as exc:  # a pipeline bug must not stop the feed for everyone
                store.rollback_to_savepoint()
                log.exception(
                    "pipeline failed on one message",
                    extra={
                        "event": "pipeline_error",
                        "source": f"{record.topic}/{record.partition}@{record.offset}",
                    },
                )
                self.reject(record, exc, "assess")
                continue
            store.release_savepoint()
        return out
