"""A state record that cannot be restored is logged with its study and partition and counted
(issue 10, defect 3): before, an Infinity written as ``null`` made the record unreadable and the
restore skipped it with a bare warning, so the study was assessed against the generic site."""

from __future__ import annotations

import logging

import pytest

from optimiser.state import StudyState
from streams.changelog import ChangelogStateStore
from streams.metrics import METRICS
from tests.support.fake import FakeBroker, FakeReader


def test_an_unreadable_state_record_is_logged_with_study_and_partition_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = StudyState(study_instance_uid="1.2.3.1").to_json()
    broken = good.replace(b'"1.2.3.1"', b'"1.2.3.2"').replace(
        b'"updated_at":', b'"updated_at":null,"x":'
    )
    broker = FakeBroker()
    broker.create("state", 3)
    broker.append("state", good, key=b"1.2.3.1", partition=2)
    broker.append("state", broken, key=b"1.2.3.2", partition=2)
    store = ChangelogStateStore("state", 3, lambda: FakeReader(broker))
    counter = METRICS.state_records_skipped_total.labels(reason="unreadable")
    before = counter._value.get()
    with caplog.at_level(logging.ERROR, logger="lowdose.streams.metrics"):
        loaded = store.rebuild([2])
    assert loaded == 1 and store.get("1.2.3.1") is not None
    [record] = [r for r in caplog.records if r.__dict__.get("event") == "state_record_skipped"]
    assert record.__dict__["study_instance_uid"] == "1.2.3.2"
    assert record.__dict__["partition"] == 2
    assert counter._value.get() == before + 1
