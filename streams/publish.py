"""Sending feeds to the input topics: simulator folders, real files, or simulated studies.

Protocol events (``*.json``) go to ``lowdose.protocol.v1``; DICOM files (``*.dcm``: dose reports,
RT structure sets) go as raw bytes to ``lowdose.rdsr.v1`` with ``content-type:
application/dicom``. Every message is keyed by its Study Instance UID, so a study's messages land
on co-numbered partitions of the two topics (the service's study state relies on it). The topic
of each kind of message, its content type and which input waits for which come from the table
of inputs (:mod:`streams.inputs`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimiser.errors import InputError
from optimiser.events import parse_protocol_event
from streams import inputs
from streams.client import Delivery, Producer
from streams.errors import BrokerError
from streams.settings import Topics

PROTOCOL = inputs.PROTOCOL.kind
DICOM = inputs.RDSR.kind
_JSON = (("content-type", inputs.PROTOCOL.content_type),)
_DICOM = (("content-type", inputs.RDSR.content_type),)
_SKIP_NAMES = {"manifest.json"}


@dataclass(frozen=True, slots=True)
class Outgoing:
    kind: str  # the input it is for (streams.inputs.Input.kind): protocol | dicom
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    source: str

    def topic(self, topics: Topics) -> str:
        return inputs.by_kind(self.kind).topic(topics)


def protocol_message(value: bytes, source: str, *, validate: bool = True) -> Outgoing:
    key: bytes | None = None
    try:
        event = parse_protocol_event(value, source=source)
        key = event.study.study_instance_uid.encode()
    except InputError:
        if validate:
            raise
    return Outgoing(PROTOCOL, key, value, _JSON, source)


def dicom_study_uid(value: bytes, source: str) -> str:
    """Study Instance UID (0020,000D) of a DICOM file, reading no further than needed."""
    import io

    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(io.BytesIO(value), stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
        uid = ds.get("StudyInstanceUID")
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise InputError(
            f"not a readable DICOM file ({type(exc).__name__}); publish only DICOM Part 10 files "
            "as .dcm",
            source=source,
        ) from exc
    if not uid:
        raise InputError(
            "StudyInstanceUID (0020,000D) is missing; messages are keyed by it", source=source
        )
    return str(uid)


def dicom_message(value: bytes, source: str, *, validate: bool = True) -> Outgoing:
    key: bytes | None = None
    try:
        key = dicom_study_uid(value, source).encode()
    except InputError:
        if validate:
            raise
    return Outgoing(DICOM, key, value, _DICOM, source)


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files to publish, in path order (a simulator folder: protocol.json before rdsr.dcm)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in (".json", ".dcm")
                and p.name not in _SKIP_NAMES
            )
        elif path.is_file():
            yield path
        else:
            raise InputError(f"{path} does not exist; give a feed folder or files")


def messages_from_files(paths: Iterable[Path], *, validate: bool = True) -> Iterator[Outgoing]:
    for path in iter_files(paths):
        data = path.read_bytes()
        suffix = path.suffix.lower()
        if suffix == ".json":
            yield protocol_message(data, str(path), validate=validate)
        elif suffix == ".dcm" or data[128:132] == b"DICM":
            yield dicom_message(data, str(path), validate=validate)
        else:
            raise InputError(
                f"{path}: unknown kind of file (suffix {suffix!r}); publish *.json protocol "
                "events or *.dcm DICOM files"
            )


def messages_from_studies(studies: Iterable[Any]) -> Iterator[Outgoing]:
    """Messages of simulated studies (``simulator.SimulatedStudy``): event, then report."""
    for study in studies:
        key = study.study_instance_uid.encode()
        yield Outgoing(
            PROTOCOL,
            key,
            study.protocol_event.to_json().encode(),
            _JSON,
            f"{study.study_instance_uid}/protocol",
        )
        yield Outgoing(DICOM, key, study.rdsr_bytes, _DICOM, f"{study.study_instance_uid}/rdsr")


def send(
    producer: Producer,
    topics: Topics,
    messages: Iterable[Outgoing],
    *,
    on_sent: Callable[[Outgoing], None] | None = None,
    timeout_s: float = 120.0,
) -> dict[str, int]:
    """Send messages, flush, and check every delivery; returns counts per kind."""
    counts = {spec.kind: 0 for spec in inputs.INPUTS}
    waited_for = {spec.waits_for for spec in inputs.INPUTS if spec.waits_for is not None}
    deliveries: list[Delivery] = []
    # Messages another input waits for (protocol events) not yet acknowledged, by input and
    # study key. A report waits for its study's event: the two travel on different topics, and a
    # produce retried on one (e.g. right after topic creation) would otherwise let the report
    # reach the broker first.
    pending: dict[tuple[str, bytes | None], Delivery] = {}
    for message in messages:
        spec = inputs.by_kind(message.kind)
        lead = spec.waits_for
        if lead is not None and (lead, message.key) in pending:
            event = pending.pop((lead, message.key))
            producer.flush(None, timeout_s)  # the event, and everything sent before it
            if event.failed():
                raise BrokerError(
                    f"the {inputs.by_field(lead).item} before {message.source} was not "
                    f"delivered ({event.exception!r}); the {spec.item} was not sent; check the "
                    "broker and retry"
                )
        delivery = producer.send(
            spec.topic(topics), key=message.key, value=message.value, headers=message.headers
        )
        deliveries.append(delivery)
        if spec.field in waited_for:
            pending[(spec.field, message.key)] = delivery
        counts[message.kind] += 1
        if on_sent is not None:
            on_sent(message)
    producer.flush(None, timeout_s)
    failed = [d for d in deliveries if d.failed()]
    if failed:
        raise BrokerError(
            f"{len(failed)} of {len(deliveries)} messages were not delivered "
            f"({failed[0].exception!r}); check the broker and retry"
        )
    return counts


def manifest_studies(folder: Path) -> int | None:
    """Number of studies in a simulator folder's manifest, if it has one."""
    try:
        return len(json.loads((folder / "manifest.json").read_text())["studies"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
