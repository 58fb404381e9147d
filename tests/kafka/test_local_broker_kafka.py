"""``lowdose broker stop`` keeps data and address; ``lowdose broker reset`` deletes (issue 10,
defect 7).

``stop`` used to delete the data directory and the next ``start`` picked new ports, so running
services retried a dead address forever and every message was gone. The test runs the real
commands on a private cache folder: a message written before ``stop`` is read after ``start``
on the same address; ``reset`` is the explicit way to delete.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.broker import jars_root, missing_tools
from tests.support.kafka import drain, producer, run_lowdose

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]


def _topic(bootstrap: str, name: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()


def _address(out: str) -> str:
    found = re.findall(r"^(127\.0\.0\.1:\d+)$", out, flags=re.MULTILINE)
    assert len(found) == 1, out[-2000:]
    return str(found[0])


def test_stop_then_start_keeps_the_address_and_the_messages(tmp_path: Path) -> None:
    if missing := missing_tools():
        pytest.skip(f"{missing} not on PATH")
    env = {"LOWDOSE_CACHE_DIR": str(tmp_path / "cache")}
    # The jars are resolved once per user; reuse them instead of a second Maven download.
    env["LOWDOSE_JARS_DIR"] = str(jars_root())
    try:
        rc, out, _ = run_lowdose(["broker", "start"], env, timeout_s=300)
        assert rc == 0, out[-2000:]
        first = _address(out)
        _topic(first, "kept")
        p = producer(first)
        p.send("kept", key=b"k", value=b"still here").get(timeout=60)
        p.close()

        rc, out, _ = run_lowdose(["broker", "stop"], env, timeout_s=180)
        assert rc == 0, out[-2000:]
        data = tmp_path / "cache" / "broker" / "run" / "data"
        assert data.is_dir() and any(data.iterdir()), "stop deleted the data"
        rc, out, _ = run_lowdose(["broker", "status"], env)
        assert rc == 3 and "stopped" in out and first in out, out

        rc, out, _ = run_lowdose(["broker", "start"], env, timeout_s=300)
        assert rc == 0, out[-2000:]
        assert _address(out) == first  # same address after a restart
        records = drain(first, "kept", until=lambda rs: len(rs) >= 1, timeout_s=60)
        assert [bytes(r.value) for r in records] == [b"still here"]

        rc, out, _ = run_lowdose(["broker", "reset"], env, timeout_s=180)
        assert rc == 0, out[-2000:]
        assert not data.exists()
        rc, out, _ = run_lowdose(["broker", "status"], env)
        assert rc == 3 and "not running" in out, out
    finally:
        run_lowdose(["broker", "reset"], env, timeout_s=180)
