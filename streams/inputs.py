"""The input topics, in one table: what each carries, how it is decoded, ordered and published.

:data:`INPUTS` lists every input topic once, by the :class:`streams.settings.Topics` field that
names it (a user setting: ``LOWDOSE_TOPICS__PROTOCOL``, ...). Everything that depends on which
inputs exist reads it: ``Topics.inputs`` (the subscription), :class:`streams.decode.Decoder`
(the decoder of each topic and the content types it takes), the loop's order within a timestamp
tie and :class:`streams.alignment.Alignment` (which partition waits for which) in
:mod:`streams.loop`, topic creation and the co-partitioning check (:mod:`streams.topics`) and
the publisher's choice of topic (:mod:`streams.publish`).

Every input topic is co-partitioned with the state changelog (:func:`copartitioned`): the study
state store routes a study to the changelog partition of its inputs' partition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from optimiser.events import parse_protocol_event
from optimiser.inputs import PipelineInput
from optimiser.strictness import Strictness

if TYPE_CHECKING:
    from streams.settings import Topics

DICOM_CONTENT_TYPE = b"application/dicom"
JSON_CONTENT_TYPE = b"application/json"


class Decode(Protocol):
    """Turns a record's value into a pipeline input; every failure is a ``LowdoseError`` naming
    ``source``."""

    def __call__(self, value: bytes, *, source: str, strictness: Strictness) -> PipelineInput: ...


def protocol_event(value: bytes, *, source: str, strictness: Strictness) -> PipelineInput:
    """Protocol event JSON (:func:`optimiser.events.parse_protocol_event`)."""
    return parse_protocol_event(value, source=source)


def dicom(value: bytes, *, source: str, strictness: Strictness) -> PipelineInput:
    """Raw DICOM bytes: a dose report or an RT Structure Set (:func:`optimiser.dicom.read_dicom`,
    imported when first called: the DICOM reader is the heavier import)."""
    from optimiser.dicom import read_dicom

    return read_dicom(bytes(value), source=source, strictness=strictness)


@dataclass(frozen=True, slots=True)
class Input:
    """One input topic."""

    field: str  # the Topics field that names the topic
    kind: str  # what the publisher sends there (Outgoing.kind, its count's key)
    item: str  # one message, in error messages
    format: str  # the encoding of its values, in error messages
    decode: Decode
    content_type: bytes  # the content-type header the publisher sets
    # Content types the decoder takes when the header is present; empty: not checked.
    accepts: tuple[bytes, ...]
    rank: int  # order within a timestamp tie, lowest first
    # The Topics field of the input whose co-numbered partition this one waits for.
    waits_for: str | None = None

    def topic(self, topics: Topics) -> str:
        return str(getattr(topics, self.field))


PROTOCOL = Input(
    field="protocol",
    kind="protocol",  # *.json protocol event files
    item="protocol event",
    format="JSON",
    decode=protocol_event,
    content_type=JSON_CONTENT_TYPE,
    accepts=(),
    rank=0,  # an event wins a millisecond tie with the reports that follow it
)
RDSR = Input(
    field="rdsr",
    kind="dicom",  # *.dcm files: dose reports, RT structure sets
    item="report",
    format="DICOM",
    decode=dicom,
    content_type=DICOM_CONTENT_TYPE,
    accepts=(DICOM_CONTENT_TYPE, b"application/octet-stream"),
    rank=1,
    waits_for="protocol",  # a report waits for its study's protocol event
)

INPUTS: tuple[Input, ...] = (PROTOCOL, RDSR)


def by_topic(topics: Topics) -> dict[str, Input]:
    """The input of each input topic name (the first in :data:`INPUTS` should two share one)."""
    out: dict[str, Input] = {}
    for spec in INPUTS:
        out.setdefault(spec.topic(topics), spec)
    return out


def by_kind(kind: str) -> Input:
    """The input the publisher sends messages of ``kind`` to."""
    for spec in INPUTS:
        if spec.kind == kind:
            return spec
    kinds = ", ".join(spec.kind for spec in INPUTS)
    raise ValueError(f"no input topic takes {kind!r} messages (kinds: {kinds})")


def by_field(field: str) -> Input:
    """The input whose topic the Topics field ``field`` names."""
    for spec in INPUTS:
        if spec.field == field:
            return spec
    raise ValueError(f"no input topic is named by Topics.{field}")


def ranks(topics: Topics) -> Mapping[str, int]:
    """The order rank of each input topic within a timestamp tie."""
    return {topic: spec.rank for topic, spec in by_topic(topics).items()}


def waiting(topics: Topics) -> dict[str, str]:
    """Each input topic that waits for another input's partition, and that topic."""
    return {
        topic: by_field(spec.waits_for).topic(topics)
        for topic, spec in by_topic(topics).items()
        if spec.waits_for is not None
    }


def copartitioned(topics: Topics) -> list[str]:
    """The topics that must have one partition count: every input and the state changelog."""
    return [*topics.inputs, topics.state]
