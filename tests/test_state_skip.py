"""A state record that cannot be restored is logged with its study and partition and counted
(issue 10, defect 3): before, an Infinity written as ``null`` made the record unreadable and the
restore skipped it with a bare warning, so the study was assessed against the generic site."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest

from optimiser.state import StudyState
from streams.changelog import ChangelogStateStore
from streams.metrics import METRICS


@dataclass
class _Rec:
    key: bytes
    value: bytes | None


class _Reader:
    """A changelog partition with one good and one unreadable record (real ``from_json``)."""

    def __init__(self, records: list[_Rec]) -> None:
        self.records = records
        self.read = False

    def assign(self, tps: list[Any]) -> None:
        self.tps = tps

    def seek_to_beginning(self, *tps: Any) -> None:
        pass

    def end_offsets(self, tps: list[Any]) -> dict[Any, int]:
        return {tp: len(self.records) for tp in tps}

    def position(self, tp: Any) -> int:
        return len(self.records) if self.read else 0

    def poll(self, timeout_ms: int) -> dict[Any, list[_Rec]]:
        self.read = True
        return {self.tps[0]: self.records}

    def close(self) -> None:
        pass


def test_an_unreadable_state_record_is_logged_with_study_and_partition_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = StudyState(study_instance_uid="1.2.3.1").to_json()
    broken = good.replace(b'"1.2.3.1"', b'"1.2.3.2"').replace(
        b'"updated_at":', b'"updated_at":null,"x":'
    )
    reader = _Reader([_Rec(b"1.2.3.1", good), _Rec(b"1.2.3.2", broken)])
    store = ChangelogStateStore(None, "state", 3, lambda: reader)
    counter = METRICS.state_records_skipped_total.labels(reason="unreadable")
    before = counter._value.get()
    with caplog.at_level(logging.ERROR, logger="lowdose.streams.metrics"):
        loaded = store.rebuild([2])
    assert loaded == 1 and store.get("1.2.3.1") is not None
    [record] = [r for r in caplog.records if r.__dict__.get("event") == "state_record_skipped"]
    assert record.__dict__["study_instance_uid"] == "1.2.3.2"
    assert record.__dict__["partition"] == 2
    assert counter._value.get() == before + 1
