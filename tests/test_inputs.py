"""The one table of inputs (streams/inputs.py) and the one union of input types
(optimiser/inputs.py): what the table must agree with, and the behaviour read from it."""

from __future__ import annotations

import typing
from collections import namedtuple
from typing import Any

import pytest

from optimiser.errors import ConfigurationError, InputError
from optimiser.events import ProtocolEvent
from optimiser.inputs import PipelineInput, study_uid_of
from optimiser.pipeline import INPUT_METHODS, Pipeline
from optimiser.records import DoseReport, RoiExtent, StructureSet
from simulator import simulate_feed
from streams import inputs, topics
from streams.decode import Decoder
from streams.errors import BrokerError
from streams.publish import Outgoing, messages_from_studies, send
from streams.settings import StreamSettings, Topics

Record = namedtuple("Record", "topic partition offset key value headers timestamp")

# The Topics fields that are not inputs: the outputs and the state changelog.
NOT_INPUTS = {"assessments", "alerts", "dlq", "state"}


def _event() -> ProtocolEvent:
    return simulate_feed(1, seed=5)[0].protocol_event


def _report(uid: str = "1.2.3") -> DoseReport:
    return DoseReport(
        source="r", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67", sop_instance_uid=None,
        study_instance_uid=uid,
    )  # fmt: skip


def _structure_set(uid: str = "1.2.3") -> StructureSet:
    return StructureSet(
        source="s", study_instance_uid=uid, frame_of_reference_uid=None,
        rois=[RoiExtent(number=1, name="PTV", z_min_mm=-40.0, z_max_mm=60.0)],
    )  # fmt: skip


# -- the table ----------------------------------------------------------------------------------


def test_every_topics_field_is_an_input_of_the_table_or_an_output() -> None:
    fields = [spec.field for spec in inputs.INPUTS]
    assert len(set(fields)) == len(fields)
    assert set(fields) == set(Topics.model_fields) - NOT_INPUTS
    assert Topics().inputs == ["lowdose.protocol.v1", "lowdose.rdsr.v1"]
    assert Topics(protocol="p", rdsr="r").inputs == ["p", "r"]


def test_kinds_are_distinct_and_every_input_waits_only_for_an_earlier_ranked_input() -> None:
    kinds = [spec.kind for spec in inputs.INPUTS]
    assert len(set(kinds)) == len(kinds)
    for spec in inputs.INPUTS:
        if spec.waits_for is not None:
            lead = inputs.by_field(spec.waits_for)
            assert lead is not spec
            # What is waited for wins a timestamp tie with what waits for it.
            assert lead.rank < spec.rank, (lead.field, spec.field)


def test_reports_wait_for_protocol_events_which_win_a_timestamp_tie() -> None:
    t = Topics(protocol="p", rdsr="r")
    assert inputs.waiting(t) == {"r": "p"}
    rank = inputs.ranks(t)
    assert rank["p"] < rank["r"]
    assert inputs.copartitioned(t) == ["p", "r", t.state]


def test_topic_specs_create_every_input_copartitioned_with_the_changelog() -> None:
    settings = StreamSettings(bootstrap_servers="b:1", partitions=4)
    specs = topics.topic_specs(settings)
    assert list(specs)[:2] == settings.topics.inputs
    for name in inputs.copartitioned(settings.topics):
        assert specs[name]["num_partitions"] == 4
    assert specs[settings.topics.state]["configs"]["cleanup.policy"] == "compact,delete"


class _Admin:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def list_topics(self) -> set[str]:
        return set(self.counts)

    def create_topics(self, specs: Any) -> None:
        raise AssertionError("not asked to create")

    def partition_counts(self, names: list[str]) -> dict[str, int]:
        return {n: self.counts[n] for n in names if n in self.counts}

    def close(self) -> None:
        pass


def test_ensure_topics_names_every_copartitioned_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = StreamSettings(bootstrap_servers="b:1")
    t = settings.topics
    counts = {name: 3 for name in topics.topic_specs(settings)}
    monkeypatch.setattr(topics, "_admin", lambda s, logged: _Admin(counts))
    assert topics.ensure_topics(settings, create=False) == counts

    def refusal() -> str:
        with pytest.raises(ConfigurationError) as caught:
            topics.ensure_topics(settings, create=False)
        return str(caught.value)

    counts[t.rdsr] = 2
    assert refusal() == (
        "partition counts {'lowdose.protocol.v1': 3, 'lowdose.rdsr.v1': 2, 'lowdose.state.v1': 3}"
        ": the input topics and the state changelog must have the same number of partitions (the "
        "changelog is co-partitioned with the inputs); add partitions to the smaller ones"
    )
    del counts[t.alerts]
    assert refusal() == (
        "topics lowdose.alerts.v1 do not exist; create them (same partition count for "
        "lowdose.protocol.v1, lowdose.rdsr.v1 and lowdose.state.v1) or set "
        "LOWDOSE_CREATE_TOPICS=true"
    )


# -- decoding and publishing read it ------------------------------------------------------------


def _record(topic: str, value: bytes, headers: Any = ()) -> Record:
    return Record(topic, 1, 4, b"k", value, list(headers), 0)


def test_decoder_names_the_content_type_the_topic_takes_and_where_the_others_go() -> None:
    decoder = Decoder(Topics(protocol="p", rdsr="r"))
    with pytest.raises(InputError) as caught:
        decoder.decode(_record("r", b"{}", [("Content-Type", b"application/json")]))
    assert str(caught.value) == (
        "r/1@4: header content-type = 'application/json' on r: this topic carries DICOM; send it "
        "with content-type: application/dicom (protocol events go to p)"
    )
    with pytest.raises(InputError) as caught:
        decoder.decode(_record("x", b"{}"))
    assert str(caught.value) == (
        "x/1@4: topic 'x' is not an input topic (p, r); check the subscription settings"
    )


def test_decoder_takes_the_accepted_content_types_and_any_on_the_protocol_topic() -> None:
    seen: list[str] = []
    decoder = Decoder(
        Topics(protocol="p", rdsr="r"),
        decoders={"rdsr": lambda value, *, source, strictness: seen.append(source)},  # type: ignore[dict-item]
    )
    for content_type in (b"application/dicom", b"application/octet-stream; x=1", None):
        headers = [] if content_type is None else [("content-type", content_type)]
        decoder.decode(_record("r", b"DICM", headers))
    assert seen == ["r/1@4"] * 3
    event = _event()
    headers = [("content-type", b"text/plain")]
    assert decoder.decode(_record("p", event.to_json().encode(), headers)) == event


def test_decoder_refuses_a_replacement_for_an_input_that_does_not_exist() -> None:
    with pytest.raises(ValueError, match=r"Topics\.dicom"):
        Decoder(Topics(), decoders={"dicom": lambda value, **kw: _report()})


def test_publisher_sends_each_kind_to_its_input_topic_with_its_content_type() -> None:
    t = Topics(protocol="p", rdsr="r")
    sent = list(messages_from_studies(simulate_feed(1, seed=5)))
    assert [(m.kind, m.topic(t), dict(m.headers)["content-type"]) for m in sent] == [
        ("protocol", "p", b"application/json"),
        ("dicom", "r", b"application/dicom"),
    ]
    with pytest.raises(ValueError, match="no input topic takes 'video' messages"):
        Outgoing("video", None, b"", (), "x").topic(t)


class _Delivery:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.exception = OSError("broker gone") if topic == "p" else None

    def failed(self) -> bool:
        return self.exception is not None


class _Producer:
    def __init__(self) -> None:
        self.log: list[str] = []

    def send(self, topic: str, **kw: Any) -> _Delivery:
        self.log.append(f"send {topic}")
        return _Delivery(topic)

    def flush(self, stop: Any, timeout_s: float) -> None:
        self.log.append("flush")


def test_publisher_sends_a_report_only_once_its_study_s_event_is_acknowledged() -> None:
    producer = _Producer()
    study = simulate_feed(1, seed=5)[0]
    with pytest.raises(BrokerError) as caught:
        send(producer, Topics(protocol="p", rdsr="r"), messages_from_studies([study]))  # type: ignore[arg-type]
    assert producer.log == ["send p", "flush"]  # the report was held back, then not sent
    assert str(caught.value) == (
        f"the protocol event before {study.study_instance_uid}/rdsr was not delivered "
        "(OSError('broker gone')); the report was not sent; check the broker and retry"
    )


# -- the union of input types -------------------------------------------------------------------


def test_every_input_type_has_exactly_one_pipeline_method() -> None:
    assert set(INPUT_METHODS) == set(typing.get_args(PipelineInput))


def test_study_uid_of_every_input_type() -> None:
    event = _event()
    assert study_uid_of(event) == event.study.study_instance_uid
    assert study_uid_of(_report("9.8")) == "9.8"
    assert study_uid_of(_structure_set("7.6")) == "7.6"
    assert study_uid_of(("not", "an", "input")) is None  # type: ignore[arg-type]


def test_a_subclass_of_an_input_type_goes_to_that_type_s_method() -> None:
    class LabelledStructureSet(StructureSet):
        pass

    pipeline = Pipeline()
    assert pipeline.process([LabelledStructureSet("s", "7.6", None, _structure_set().rois)]) == []
    state = pipeline.store.get("7.6")
    assert state is not None and state.structure_set_rois


def test_an_unknown_input_type_is_an_input_error_naming_the_expected_ones() -> None:
    class Unparsed:
        pass

    with pytest.raises(InputError) as caught:
        Pipeline().process([Unparsed()])  # type: ignore[list-item]
    assert str(caught.value) == (
        "pipeline input of type Unparsed: expected a ProtocolEvent, DoseReport or StructureSet; "
        "parse the message first"
    )
