"""Every kind of bad message straight on the input topics (issue 10, "Faults, bad input").

Each lands in ``lowdose.dlq.v1`` with a reason header, the service keeps running (the same
service instance handles all of them), and the good messages sent before, between and after
them are all assessed. The reasons name the rule (finite numbers, the field, the limit).
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest

from simulator import simulate_feed
from streams import deadletter
from streams.publish import messages_from_studies, send
from streams.service import Service
from tests.paths import SHARED
from tests.support.kafka import (
    ServiceThread,
    client_producer,
    drain,
    header,
    producer,
    settings_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

RDSR = SHARED / "data" / "rdsr" / "CT-RDSR-Siemens-Multi-1.dcm"


def _literal(event: dict[str, Any], where: tuple[str | int, ...], text: str) -> bytes:
    """The event's JSON with the value at ``where`` written as ``text`` (NaN is not JSON)."""
    target: Any = event
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = "@@PLACEHOLDER@@"
    return json.dumps(event).replace('"@@PLACEHOLDER@@"', text).encode()


def _bad_messages(
    event_json: str, topics: Any
) -> list[tuple[str, str, bytes | None, bytes | None]]:
    """(name, topic, key, value) of each kind of bad input."""
    ev = lambda: json.loads(event_json)  # noqa: E731 (a fresh copy each time)
    acq_end = ("acquisitions", 0, "z_end_mm")
    report = RDSR.read_bytes()
    gigabytes = bytearray(report)
    at = bytes(gigabytes).find(b"\x40\x00\x30\xa7SQ\x00\x00")
    gigabytes[at + 8 : at + 12] = (0xFFFFFFF0).to_bytes(4, "little")
    level = b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    nested_sr = b"\x08\x00\x16\x00UI\x1e\x001.2.840.10008.5.1.4.1.1.88.67\x00" + level * 10_000
    preamble_sr = b"\x00" * 128 + b"DICM" + nested_sr
    many = ev()
    many["acquisitions"] = [{**many["acquisitions"][0], "index": i} for i in range(4000)]
    station = ev()
    station["scanner"]["station_name"] = "@@X@@"
    non_utf8 = json.dumps(station).encode().replace(b"@@X@@", b"CT\xff\xfeSIM")
    huge = ev()
    huge["study"]["study_description"] = "x" * 1_000_000
    reversed_needed = ev()
    reversed_needed["planning"]["needed_z_mm"] = [1e9, -1e9]
    rng = random.Random(5)
    p, r = topics.protocol, topics.rdsr
    return [
        ("truncated json", p, b"k", event_json.encode()[: len(event_json) // 2]),
        ("non-utf8 json", p, b"k", non_utf8),
        ("nan", p, b"k", _literal(ev(), acq_end, "NaN")),
        ("infinity", p, b"k", _literal(ev(), ("acquisitions", 0, "ctdivol_mgy"), "Infinity")),
        ("-infinity", p, b"k", _literal(ev(), ("planning", "isocentre_z_mm"), "-Infinity")),
        ("1e400", p, b"k", _literal(ev(), acq_end, "1e400")),
        ("absurd z", p, b"k", _literal(ev(), acq_end, "1e9")),
        ("reversed absurd range", p, b"k", json.dumps(reversed_needed).encode()),
        ("10000-level nesting", p, b"k", b'{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
        ("megabyte string", p, b"k", json.dumps(huge).encode()),
        ("4000 acquisitions", p, b"k", json.dumps(many).encode()),
        ("empty value", p, b"k", b""),
        ("tombstone", p, b"k", None),
        ("null key, random bytes", p, None, rng.randbytes(300)),
        ("null key, empty value", r, None, b""),
        ("random bytes", r, b"k", rng.randbytes(5000)),
        ("truncated dicom", r, b"k", report[:700]),
        ("dicom claiming gigabytes", r, b"k", bytes(gigabytes)),
        ("deeply nested sr", r, b"k", nested_sr),
        ("deeply nested sr with preamble", r, b"k", preamble_sr),
        ("20 MB random bytes", r, b"k", os.urandom(20 * 1024 * 1024)),
    ]


def test_every_kind_of_bad_input_reaches_the_dlq_and_the_good_ones_are_assessed(
    kafka_bootstrap: str, fake_pipeline: Any
) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    settings = settings_for(kafka_bootstrap, partitions=2)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:  # input topics that take 20 MB records
        big = {"max.message.bytes": "33554432"}
        admin.create_topics([NewTopic(t, 2, 1, topic_configs=big) for t in settings.topics.inputs])
    finally:
        admin.close()
    studies = simulate_feed(10, seed=93)
    good = [m for m in messages_from_studies(studies) if m.kind == "protocol"]
    expected = {
        (s.protocol_event.event_id, a.index) for s in studies for a in s.protocol_event.acquisitions
    }
    bad = _bad_messages(studies[0].protocol_event.to_json(), settings.topics)
    service = Service(settings, pipeline_factory=fake_pipeline)
    with ServiceThread(service) as running:
        p = producer(kafka_bootstrap, max_request_size=33554432)
        c = client_producer(kafka_bootstrap, max_request_size=33554432)
        chunks = [good[i :: len(bad) // 2 + 1] for i in range(len(bad) // 2 + 1)]
        for i, (_name, topic, key, value) in enumerate(bad):
            if i % 2 == 0 and chunks:
                send(c, settings.topics, chunks.pop())
            p.send(topic, key=key, value=value).get(timeout=60)
        for chunk in chunks:
            send(c, settings.topics, chunk)
        p.close()
        c.close(timeout_s=30)
        assessments = drain(
            kafka_bootstrap,
            settings.topics.assessments,
            until=lambda rs: len(rs) >= len(expected),
            timeout_s=180,
        )
        dlq = drain(kafka_bootstrap, settings.topics.dlq, until=lambda rs: len(rs) >= len(bad))
        assert running.thread.is_alive(), f"the service stopped: {running.error!r}"
    got = {
        (json.loads(r.value)["input_id"], json.loads(r.value)["acquisition_index"])
        for r in assessments
    }
    assert got == expected, (len(got), len(expected), service.stats)
    assert len(dlq) == len(bad), [b[0] for b in bad]
    offsets = {
        tuple(
            header(r, h)
            for h in (
                deadletter.HEADER_SOURCE_TOPIC,
                deadletter.HEADER_SOURCE_PARTITION,
                deadletter.HEADER_SOURCE_OFFSET,
            )
        )
        for r in dlq
    }
    assert len(offsets) == len(bad)  # one dead letter per bad message, none twice
    for record in dlq:
        reason = header(record, deadletter.HEADER_ERROR_MESSAGE)
        assert reason and header(record, deadletter.HEADER_ERROR_TYPE) in (
            "InputError",
            "DicomError",
        ), reason
    reasons = " | ".join(header(r, deadletter.HEADER_ERROR_MESSAGE) or "" for r in dlq)
    for expected_reason in ("finite", "z_end_mm", "acquisitions", "study_description", "no value"):
        assert expected_reason in reasons, f"{expected_reason!r} not in {reasons[:3000]}"
    assert service.stats.bad == len(bad)
