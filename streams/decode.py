"""Turning consumed records into pipeline inputs: protocol event JSON, DICOM dose reports.

The input topic decides the format, as the table of inputs (:mod:`streams.inputs`) says:
``lowdose.protocol.v1`` carries protocol event JSON (:func:`optimiser.events.parse_protocol_event`),
``lowdose.rdsr.v1`` raw DICOM bytes (a CT Radiation Dose SR, or an RT Structure Set) read by
:func:`optimiser.dicom.read_dicom`. Every failure is a :class:`optimiser.errors.InputError`
naming the message by topic, partition and offset (never by patient).
"""

from __future__ import annotations

from collections.abc import Mapping

from optimiser.errors import InputError
from optimiser.inputs import PipelineInput
from optimiser.strictness import Strictness
from streams.client import Record
from streams.inputs import INPUTS, Decode, Input, by_field, by_topic
from streams.settings import Topics

CONTENT_TYPE = "content-type"


def source_name(record: Record) -> str:
    return f"{record.topic}/{record.partition}@{record.offset}"


def header(record: Record, name: str) -> bytes | None:
    for key, value in record.headers or []:
        if key.lower() == name:
            return bytes(value) if value is not None else None
    return None


def _media_type(content_type: bytes) -> bytes:
    """``application/dicom`` of ``application/dicom; transfer-syntax=...``."""
    return content_type.split(b";")[0].strip()


class Decoder:
    """Decodes records of the input topics (:data:`streams.inputs.INPUTS`); ``decoders``
    replaces the decoder of an input, by its Topics field (tests inject stand-ins)."""

    def __init__(
        self,
        topics: Topics,
        *,
        strictness: Strictness = Strictness.WARN,
        decoders: Mapping[str, Decode] | None = None,
    ) -> None:
        self.topics = topics
        self.strictness = strictness
        replaced = dict(decoders or {})
        for field in replaced:
            by_field(field)  # a typo is an error, not a silently real decoder
        self._inputs: dict[str, tuple[Input, Decode]] = {
            topic: (spec, replaced.get(spec.field, spec.decode))
            for topic, spec in by_topic(topics).items()
        }

    def decode(self, record: Record) -> PipelineInput:
        source = source_name(record)
        value = record.value
        if value is None or len(value) == 0:
            raise InputError(
                "message has no value (empty or tombstone); send the event body as the value",
                source=source,
            )
        found = self._inputs.get(record.topic)
        if found is None:
            raise InputError(
                f"topic {record.topic!r} is not an input topic "
                f"({', '.join(self.topics.inputs)}); check the subscription settings",
                source=source,
            )
        spec, decode = found
        if spec.accepts:
            content_type = header(record, CONTENT_TYPE)
            if content_type is not None and _media_type(content_type) not in spec.accepts:
                raise InputError(self._wrong_type(spec, content_type), source=source)
        return decode(value, source=source, strictness=self.strictness)

    def _wrong_type(self, spec: Input, content_type: bytes) -> str:
        elsewhere = ", ".join(
            f"{other.item}s go to {other.topic(self.topics)}"
            for other in INPUTS
            if other is not spec
        )
        return (
            f"header content-type = {content_type.decode(errors='replace')!r} on "
            f"{spec.topic(self.topics)}: this topic carries {spec.format}; send it with "
            f"content-type: {spec.content_type.decode()} ({elsewhere})"
        )
