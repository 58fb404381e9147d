"""Turning consumed records into pipeline inputs: protocol event JSON, DICOM dose reports.

The input topic decides the format: ``lowdose.protocol.v1`` carries protocol event JSON
(:func:`optimiser.events.parse_protocol_event`), ``lowdose.rdsr.v1`` raw DICOM bytes (a CT
Radiation Dose SR, or an RT Structure Set) read by :func:`optimiser.dicom.read_dicom`. Every
failure is a :class:`optimiser.errors.InputError` naming the message by topic, partition and
offset (never by patient).
"""

from __future__ import annotations

from collections.abc import Callable

from optimiser.errors import InputError
from optimiser.events import ProtocolEvent, parse_protocol_event
from optimiser.records import DoseReport, StructureSet
from optimiser.strictness import Strictness
from streams.client import Record

Item = ProtocolEvent | DoseReport | StructureSet  # what a decoded input is

CONTENT_TYPE = "content-type"
DICOM_CONTENT_TYPE = b"application/dicom"
JSON_CONTENT_TYPE = b"application/json"


def source_name(record: Record) -> str:
    return f"{record.topic}/{record.partition}@{record.offset}"


def study_uid_of(item: Item) -> str | None:
    """The Study Instance UID of a decoded input, whatever its kind."""
    if isinstance(item, ProtocolEvent):
        return item.study.study_instance_uid
    uid = getattr(item, "study_instance_uid", None)
    return uid if isinstance(uid, str) else None


def header(record: Record, name: str) -> bytes | None:
    for key, value in record.headers or []:
        if key.lower() == name:
            return bytes(value) if value is not None else None
    return None


DicomReader = Callable[..., DoseReport | StructureSet]


class Decoder:
    """Decodes records of the two input topics; ``read_dicom`` is injectable for tests."""

    def __init__(
        self,
        protocol_topic: str,
        rdsr_topic: str,
        *,
        strictness: Strictness = Strictness.WARN,
        read_dicom: DicomReader | None = None,
    ) -> None:
        self.protocol_topic = protocol_topic
        self.rdsr_topic = rdsr_topic
        self.strictness = strictness
        self._read_dicom = read_dicom

    def _dicom_reader(self) -> DicomReader:
        if self._read_dicom is None:
            from optimiser.dicom import read_dicom

            self._read_dicom = read_dicom
        return self._read_dicom

    def decode(self, record: Record) -> Item:
        source = source_name(record)
        value = record.value
        if value is None or len(value) == 0:
            raise InputError(
                "message has no value (empty or tombstone); send the event body as the value",
                source=source,
            )
        if record.topic == self.protocol_topic:
            return parse_protocol_event(value, source=source)
        if record.topic == self.rdsr_topic:
            content_type = header(record, CONTENT_TYPE)
            if content_type is not None and content_type.split(b";")[0].strip() not in (
                DICOM_CONTENT_TYPE,
                b"application/octet-stream",
            ):
                raise InputError(
                    f"header content-type = {content_type.decode(errors='replace')!r} on "
                    f"{self.rdsr_topic}: this topic carries DICOM; send it with content-type: "
                    "application/dicom (protocol events go to "
                    f"{self.protocol_topic})",
                    source=source,
                )
            return self._dicom_reader()(bytes(value), source=source, strictness=self.strictness)
        raise InputError(
            f"topic {record.topic!r} is not an input topic ({self.protocol_topic}, "
            f"{self.rdsr_topic}); check the subscription settings",
            source=source,
        )
