"""``lowdose publish`` against a real broker: a simulator folder and a real dose report go to the
input topics keyed by Study Instance UID, DICOM with its content type."""

from __future__ import annotations

from pathlib import Path

import pytest

from lowdose.main import main
from simulator import simulate_feed, write_feed
from tests.paths import SHARED
from tests.support.kafka import drain, header, settings_env, settings_for

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

REAL = SHARED / "data" / "rdsr" / "CT-RDSR-Siemens-Multi-1.dcm"


def test_publish_a_simulator_folder_and_a_real_report(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(kafka_bootstrap)
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    studies = simulate_feed(5, seed=61)
    write_feed(tmp_path / "feed", studies)
    assert main(["publish", "--quiet", str(tmp_path / "feed"), str(REAL)]) == 0
    events = drain(kafka_bootstrap, settings.topics.protocol, until=lambda rs: len(rs) >= 5)
    reports = drain(kafka_bootstrap, settings.topics.rdsr, until=lambda rs: len(rs) >= 6)
    uids = {s.study_instance_uid.encode() for s in studies}
    assert {r.key for r in events} == uids
    assert len(reports) == 6
    assert all(header(r, "content-type") == "application/dicom" for r in reports)
    real = [r for r in reports if r.key not in uids]
    assert len(real) == 1 and bytes(real[0].value) == REAL.read_bytes()
    # Co-partitioned: a study's event and report share the partition number.
    event_partition = {r.key: r.partition for r in events}
    assert all(event_partition[r.key] == r.partition for r in reports if r.key in uids)
