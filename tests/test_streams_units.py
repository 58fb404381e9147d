"""Unit tests of the Kafka edges that need no broker: settings, decoding, DLQ headers, the
changelog store's ordering and replay, schemas, logs, publishing and the launcher's pieces."""

from __future__ import annotations

import json
import logging
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest

from optimiser.errors import ConfigurationError, DicomError, InputError
from optimiser.events import ProtocolEvent
from optimiser.inputs import study_uid_of
from optimiser.state import MemoryStateStore, StudyState
from simulator import simulate_feed, write_feed
from streams import broker, deadletter, schemas, topics
from streams.changelog import ChangelogStateStore
from streams.client import default_partition
from streams.decode import Decoder
from streams.errors import BrokerError
from streams.logs import JsonFormatter
from streams.publish import messages_from_files
from streams.settings import MAX_DICOM_MESSAGE_BYTES, StreamSettings, Topics, load
from tests.support.fake import FakeBroker, FakeReader

Record = namedtuple("Record", "topic partition offset key value headers timestamp")
TP = namedtuple("TP", "topic partition")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "LOWDOSE_BOOTSTRAP_SERVERS", "LOWDOSE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOWDOSE_CACHE_DIR", str(tmp_path / "cache"))
    return monkeypatch


def _event() -> ProtocolEvent:
    return simulate_feed(1, seed=5)[0].protocol_event


# -- settings -----------------------------------------------------------------------------------


def test_settings_precedence_arguments_over_env_over_file(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "lowdose.toml"
    config.write_text('group_id = "from-file"\nmax_batch = 7\n[topics]\nalerts = "site.alerts"\n')
    env.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    env.setenv("LOWDOSE_MAX_BATCH", "9")
    s = load(config)
    assert (s.group_id, s.max_batch, s.topics.alerts) == ("from-file", 9, "site.alerts")
    assert s.topics.protocol == "lowdose.protocol.v1"
    assert s.kafka_common()["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert load(config, group_id="cli").group_id == "cli"


def test_settings_from_dotenv_file_and_nested_topic_env(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "lowdose.env"
    config.write_text("LOWDOSE_GROUP_ID=envfile\nLOWDOSE_BOOTSTRAP_SERVERS=b:1\n")
    env.setenv("LOWDOSE_TOPICS__DLQ", "my.dlq")
    s = load(config)
    assert (s.group_id, s.bootstrap_servers, s.topics.dlq) == ("envfile", "b:1", "my.dlq")


def test_security_options_pass_through(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    s = load(
        bootstrap_servers="b:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="svc",
        sasl_plain_password="s3cret",
        ssl_cafile=ca,
    )
    common = s.kafka_common()
    assert common["security_protocol"] == "SASL_SSL"
    assert common["sasl_mechanism"] == "SCRAM-SHA-512"
    assert common["sasl_plain_username"] == "svc"
    assert common["sasl_plain_password"] == "s3cret"
    assert common["ssl_cafile"] == str(ca)
    assert "s3cret" not in repr(s)
    plain = load(bootstrap_servers="b:9092").kafka_common()
    assert "ssl_cafile" not in plain and "sasl_mechanism" not in plain


def test_settings_errors_name_the_field_and_hide_passwords(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="sasl_mechanism"):
        load(bootstrap_servers="b:1", security_protocol="SASL_SSL")
    with pytest.raises(ConfigurationError, match=r"max_batch = 0.*LOWDOSE_MAX_BATCH"):
        load(bootstrap_servers="b:1", max_batch=0)
    with pytest.raises(ConfigurationError) as caught:
        load(bootstrap_servers="b:1", sasl_plain_password=123)
    assert "123" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="KAFKA_BOOTSTRAP_SERVERS"):
        load()  # nothing set and no local broker recorded
    with pytest.raises(ConfigurationError, match="does not exist"):
        load(Path("/nonexistent/lowdose.toml"), bootstrap_servers="b:1")


def test_dicom_topic_limit_is_a_bounded_setting(env: pytest.MonkeyPatch) -> None:
    assert load(bootstrap_servers="b:1").rdsr_max_message_bytes == 16 * 1024 * 1024
    env.setenv("LOWDOSE_RDSR_MAX_MESSAGE_BYTES", str(4 << 20))
    assert load(bootstrap_servers="b:1").rdsr_max_message_bytes == 4 << 20
    # Above the fetch limit is allowed: the broker returns a larger record as the first data of
    # a fetch (tests/kafka/test_service_kafka.py runs with a 1 KiB limit).
    raised = load(bootstrap_servers="b:1", rdsr_max_message_bytes=48 << 20)
    assert raised.rdsr_max_message_bytes == 48 << 20
    with pytest.raises(ConfigurationError, match="rdsr_max_message_bytes"):
        load(
            bootstrap_servers="b:1",
            rdsr_max_message_bytes=MAX_DICOM_MESSAGE_BYTES + 1,
            max_partition_fetch_bytes=MAX_DICOM_MESSAGE_BYTES + 1,
        )


def test_dicom_topic_is_created_with_its_limit_and_the_local_broker_takes_the_largest() -> None:
    settings = StreamSettings(bootstrap_servers="b:1", rdsr_max_message_bytes=8 << 20)
    specs = topics.topic_specs(settings)
    assert specs[settings.topics.rdsr]["configs"] == {"max.message.bytes": str(8 << 20)}
    assert "configs" not in specs[settings.topics.protocol]  # JSON events: Kafka's default
    props = broker._server_properties("127.0.0.1", broker._Listeners(9092, 9093), Path("/d"))
    values = dict(line.split("=", 1) for line in props.splitlines())
    # A produce request of the largest record the DICOM topic may take, with its headers, fits
    # the broker's request limit; a follower fetches such a record whole.
    assert int(values["socket.request.max.bytes"]) >= MAX_DICOM_MESSAGE_BYTES + (1 << 20)
    assert int(values["replica.fetch.max.bytes"]) >= MAX_DICOM_MESSAGE_BYTES
    assert int(values["replica.fetch.response.max.bytes"]) >= MAX_DICOM_MESSAGE_BYTES


# -- decoding and the DLQ -----------------------------------------------------------------------


def _record(topic: str, value: bytes | None, headers: Any = (), offset: int = 4) -> Record:
    return Record(topic, 1, offset, b"k", value, list(headers), 0)


def test_decoder_reads_protocol_events_and_names_bad_ones_by_position() -> None:
    decoder = Decoder(
        Topics(protocol="p", rdsr="r"),
        decoders={"rdsr": lambda data, **kw: ("dicom", len(data), kw["source"])},
    )
    event = _event()
    decoded = decoder.decode(_record("p", event.to_json().encode()))
    assert decoded == event
    assert study_uid_of(decoded) == event.study.study_instance_uid
    with pytest.raises(InputError, match=r"^p/1@4: not a valid lowdose.protocol/1 event"):
        decoder.decode(_record("p", b'{"schema": "lowdose.protocol/1"}'))
    with pytest.raises(InputError, match="no value"):
        decoder.decode(_record("p", None))
    assert decoder.decode(_record("r", b"DICM")) == ("dicom", 4, "r/1@4")
    with pytest.raises(InputError, match="content-type = 'application/json'"):
        decoder.decode(_record("r", b"{}", [("content-type", b"application/json")]))
    with pytest.raises(InputError, match="not an input topic"):
        decoder.decode(_record("other", b"x"))


def test_decoder_turns_non_dicom_bytes_into_a_dicom_error() -> None:
    decoder = Decoder(Topics(protocol="p", rdsr="r"))
    with pytest.raises(DicomError):
        decoder.decode(_record("r", b"definitely not a DICOM file" * 4))


def test_dlq_headers_keep_the_original_and_say_why_and_where() -> None:
    record = _record("p", b"{", [("content-type", b"application/json")], offset=17)
    headers = dict(deadletter.dlq_headers(record, InputError("bad", source="p/1@17"), "decode"))
    assert headers["content-type"] == b"application/json"
    assert headers[deadletter.HEADER_ERROR_TYPE] == b"InputError"
    assert headers[deadletter.HEADER_ERROR_MESSAGE] == b"p/1@17: bad"
    assert headers[deadletter.HEADER_STAGE] == b"decode"
    assert headers[deadletter.HEADER_SOURCE_TOPIC] == b"p"
    assert headers[deadletter.HEADER_SOURCE_PARTITION] == b"1"
    assert headers[deadletter.HEADER_SOURCE_OFFSET] == b"17"


def test_dead_letter_policy_sends_original_bytes_and_stop_policy_raises() -> None:
    sent: list[dict[str, Any]] = []

    class Producer:
        def send(self, topic: str, **kw: Any) -> None:
            sent.append({"topic": topic, **kw})

    record = _record("r", b"\x00\x01", offset=3)
    policy = deadletter.DeadLetterPolicy(Producer(), "dlq")
    policy.handle(record, DicomError("truncated", source="r/1@3"), "decode")
    assert sent[0]["topic"] == "dlq" and sent[0]["value"] == b"\x00\x01"
    assert sent[0]["key"] == b"k"
    assert policy.count == 1
    with pytest.raises(deadletter.BadMessage, match="r/1@3"):
        deadletter.StopPolicy().handle(record, DicomError("x"), "decode")


# -- changelog state store ----------------------------------------------------------------------


class _Clock:
    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _store(broker: FakeBroker, partitions: int = 3, **kw: Any) -> ChangelogStateStore:
    broker.create("state", partitions)
    return ChangelogStateStore("state", partitions, lambda: FakeReader(broker), **kw)


def test_state_writes_are_buffered_until_prepared_and_go_to_the_input_partition() -> None:
    store = _store(FakeBroker())
    store.route("1.2.3", 2)
    store.put(StudyState(study_instance_uid="1.2.3", assessed_event_uids=["a"]))
    store.put(StudyState(study_instance_uid="1.2.3", assessed_event_uids=["a", "b"]))
    assert len(store) == 0  # buffered: not in the store until commit
    [record] = store.changelog_records()
    assert (record.partition, record.key) == (2, b"1.2.3")
    assert StudyState.from_json(record.value).assessed_event_uids == ["a", "b"]  # last wins
    store.commit()
    assert len(store) == 1 and store.changelog_records() == []
    # Unrouted studies go where Kafka's default partitioner would put their key.
    assert store.partition_for("9.9") == default_partition(b"9.9", 3)


def test_default_partition_matches_kafka_murmur2() -> None:
    # Kafka's Utils.murmur2("") is 275646681 (kafka-python's test vectors); positive % 3 = 0.
    from kafka.partitioner.default import murmur2

    assert murmur2(b"") == 275646681
    assert default_partition(b"", 3) == 275646681 % 3


def test_reads_are_not_copied_and_rollback_undoes_in_place_edits() -> None:
    store = _store(FakeBroker(), 1)
    store.put(StudyState(study_instance_uid="s", assessed_event_uids=["a"]))
    store.commit()
    state = store.get("s")
    assert state is not None and store.get("s") is state  # no copy on read
    state.assessed_event_uids.append("b")  # the pipeline edits the object it got
    state.reported_ranges.append((0.0, 1.0, None))
    store.put(state)
    store.put(StudyState(study_instance_uid="new"))
    store.rollback()
    restored = store.get("s")
    assert restored is not None and restored.assessed_event_uids == ["a"]
    assert restored.reported_ranges == []
    assert store.get("new") is None
    assert store.changelog_records() == []


def test_savepoint_undoes_only_the_failing_item() -> None:
    store = _store(FakeBroker(), 1)
    store.put(StudyState(study_instance_uid="s", assessed_event_uids=["a"]))
    store.savepoint()
    state = store.get("s")
    assert state is not None
    state.assessed_event_uids.append("poison")
    store.put(StudyState(study_instance_uid="t"))
    store.rollback_to_savepoint()
    [record] = store.changelog_records()
    assert StudyState.from_json(record.value).assessed_event_uids == ["a"]


def test_rebuild_replays_last_state_per_study_skipping_tombstones_and_expired() -> None:
    clock = _Clock()
    broker = FakeBroker()
    store = _store(broker, 2, ttl_s=3600, clock=clock)
    old = StudyState(study_instance_uid="old", updated_at=0.0).to_json()
    first = StudyState(
        study_instance_uid="s1", assessed_event_uids=["a"], updated_at=9000
    ).to_json()
    last = StudyState(
        study_instance_uid="s1", assessed_event_uids=["a", "b"], updated_at=9500
    ).to_json()
    gone = StudyState(study_instance_uid="s2", updated_at=9000).to_json()
    for key, value, partition in [
        (b"s1", first, 0),
        (b"old", old, 0),
        (b"s2", gone, 0),
        (b"s1", last, 0),
        (b"s2", None, 0),  # tombstone
        (b"bad", b'{"study_instance_uid": 5}', 0),  # unreadable: logged and counted
        (b"other", gone, 1),  # not asked for
    ]:
        broker.append("state", value, key=key, partition=partition)
    assert store.rebuild([0]) == 1
    assert store.skipped_records == 1
    s1 = store.get("s1")
    assert s1 is not None and s1.assessed_event_uids == ["a", "b"]
    assert s1.updated_at == 9500  # expiry counts from the last real update
    assert store.get("s2") is None and store.get("old") is None and store.get("other") is None
    assert store.partition_for("s1") == 0
    assert store.drop([0]) == 1
    assert store.get("s1") is None


def test_store_is_bounded_and_forgets_routes_with_states() -> None:
    store = _store(FakeBroker(), 1, max_studies=2)
    for uid in ("a", "b", "c"):
        store.route(uid, 0)
        store.put(StudyState(study_instance_uid=uid))
        store.commit()
    assert len(store) == 2 and store.get("a") is None
    assert store.drop([0]) == 2  # "a" was forgotten with its state


def test_expiry_runs_on_a_timer_not_only_on_read() -> None:
    # Issue 10, defect 8: unread studies stayed until the max_studies bound.
    clock = _Clock()
    memory = MemoryStateStore(max_studies=10, ttl_s=100.0, clock=clock)
    for uid in ("a", "b"):
        memory.put(StudyState(study_instance_uid=uid))
    clock.now += 50
    memory.put(StudyState(study_instance_uid="c"))
    clock.now += 60  # a and b are 110 s old, c 60 s
    assert memory.expire() == 2
    assert len(memory) == 1 and "c" in memory


# -- schemas, logs, publishing, launcher --------------------------------------------------------


def test_committed_schemas_match_the_models() -> None:
    for name, schema in schemas.schemas().items():
        committed = (schemas.HERE / name).read_text()
        assert committed == schemas.render(schema), f"{name} is stale: python -m streams.schemas"
    protocol = json.loads((schemas.HERE / "protocol-event.schema.json").read_text())
    assert "schema" in protocol["properties"] and "event_id" in protocol["required"]


def test_json_log_lines_carry_extras_but_never_patient_fields() -> None:
    record = logging.makeLogRecord(
        {"msg": "batch", "levelname": "INFO", "name": "x", "partition": 2, "patient_id": "P1"}
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "batch" and line["partition"] == 2
    assert "patient_id" not in line


def test_publish_reads_a_simulator_folder_keyed_by_study(tmp_path: Path) -> None:
    studies = simulate_feed(3, seed=9)
    write_feed(tmp_path, studies)
    messages = list(messages_from_files([tmp_path]))
    assert [m.kind for m in messages] == ["protocol", "dicom"] * 3  # event before its report
    pairs = zip(messages[::2], messages[1::2], strict=True)
    for study, (event, report) in zip(studies, pairs, strict=True):
        assert event.key == report.key == study.study_instance_uid.encode()
        assert dict(report.headers)["content-type"] == b"application/dicom"
        assert report.value == study.rdsr_bytes
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError):
        list(messages_from_files([tmp_path / "broken.json"]))
    unkeyed = list(messages_from_files([tmp_path / "broken.json"], validate=False))
    assert unkeyed[0].key is None


def test_server_properties_and_cluster_ids() -> None:
    props = broker._server_properties("127.0.0.1", broker._Listeners(9092, 9093), Path("/d"))
    assert "process.roles=broker,controller\n" in props
    assert "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n" in props
    assert "group.initial.rebalance.delay.ms=0\n" in props
    ids = {broker._cluster_id() for _ in range(200)}
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_launcher_without_java_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker.shutil, "which", lambda name: None)
    assert broker.missing_tools() == ["java", "mvn"]
    with pytest.raises(BrokerError, match="java, mvn not found on PATH"):
        broker.Broker().start()


def test_broker_status_without_a_running_broker(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lowdose.main import main

    assert main(["broker", "status"]) == 3
    assert "not running" in capsys.readouterr().out
    assert main(["broker", "stop"]) == 0


def test_missing_java_fails_under_ci_and_skips_loudly_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support import kafka as testing

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="mandatory under CI: java not found"):
        testing._unavailable("java not found")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="Kafka tests skipped: java not found"):
        testing._unavailable("java not found")
