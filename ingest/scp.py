"""The Storage SCP: DICOM objects in, Kafka records out, Success only once Kafka has them.

Accepted (PS3.4 Annex B storage classes): X-Ray Radiation Dose SR, Enhanced SR, Comprehensive SR
(some vendors put TID 10011 in these) and RT Structure Set Storage, in every transfer syntax
pydicom knows (implicit/explicit little endian, explicit big endian, deflated, and the
encapsulated ones, whose data set encoding is explicit little endian, PS3.5 A.4); plus
Verification (C-ECHO).

Per C-STORE: the object is read with the pipeline's own reader (:func:`optimiser.dicom.read_dicom`)
so that what is answered Success is something the pipeline can assess; it is published keyed by
Study Instance UID (as ``lowdose publish`` does) and answered Success only after the publisher
returned (broker acknowledgement). Status codes (PS3.4 B.2.3 and Annex C of PS3.7):

- ``0x0000`` Success: on the topic.
- ``0xA700`` Refused, Out of Resources: Kafka did not acknowledge it; the sender keeps it and
  retries later.
- ``0xA900`` Data Set does not match SOP Class.
- ``0xC000`` Cannot understand: not DICOM, truncated, or not a dose report / structure set.
- ``0xC100`` Cannot understand (lowdose's code in the Cxxx range): larger than the DICOM topic
  takes (its ``max.message.bytes``). Not 0xA700: Out of Resources tells the sender to keep the
  object and retry, and a retry of the same object can never fit; an error status makes it
  report the object instead (docs/dicom.md).
- ``0xC211`` Unable to process: an unforeseen error (logged with its traceback).

Memory: the object an association is sending may grow to at most ``association_byte_budget``
bytes, counted per P-DATA PDU as it arrives (the count restarts with each C-STORE, so a long
association forwarding a backlog is not limited, only what it makes the listener hold at once:
at most ``max_associations`` x the budget). Beyond it (or with a PDU larger than the announced
maximum) the association is aborted (A-ABORT) before the object is complete, because a C-STORE
status can only be sent after the whole object. Every refusal logs the calling AE title and the
reason; nothing a peer sends stops the listener.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    AllTransferSyntaxes,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ingest.metrics import IngestMetrics
from ingest.publisher import Publisher, PublishFailed, RecordTooLarge
from ingest.settings import DicomSettings
from optimiser.dicom import codes as C
from optimiser.errors import DicomError
from optimiser.records import StructureSet
from optimiser.strictness import Strictness
from streams.inputs import RDSR

log = logging.getLogger("lowdose.ingest.scp")

VERIFICATION = "1.2.840.10008.1.1"
STORAGE_CLASSES: dict[str, str] = {
    C.XRAY_RADIATION_DOSE_SR: "X-Ray Radiation Dose SR",
    C.ENHANCED_SR: "Enhanced SR",
    C.COMPREHENSIVE_SR: "Comprehensive SR",
    C.RT_STRUCTURE_SET: "RT Structure Set",
}

# pynetdicom accepts, per presentation context, the first of *its* transfer syntaxes that the
# requestor proposed: explicit VR little endian first (what modalities prefer), then the rest.
_PREFERRED = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
]
TRANSFER_SYNTAXES: list[str] = [str(ts) for ts in _PREFERRED] + [
    str(ts) for ts in AllTransferSyntaxes if ts not in _PREFERRED
]

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
# PS3.4 B.2.3 leaves the low bits of the Cxxx "Cannot understand" range to the SCP; pynetdicom
# uses 0xC0xx for its own handler errors and 0xC2xx for C-STORE decoding (0xC211 below).
TOO_LARGE = 0xC100
UNABLE_TO_PROCESS = 0xC211

# A-ASSOCIATE-RJ diagnostics (PS3.8 9.3.4): which one pynetdicom sent, for the log.
_REJECT_REASONS = {
    0x03: "calling AE title not recognised (not in allowed_calling_aes)",
    0x07: "called AE title not recognised",
    0x02: "too many associations (max_associations)",
}


@dataclass
class AssociationStats:
    calling_ae: str
    address: str
    started: float = field(default_factory=time.monotonic)
    objects: int = 0
    published: int = 0
    refused: int = 0
    bytes: int = 0
    in_flight: int = 0  # bytes of the object being received (since the last C-STORE)
    over_budget: bool = False
    result: str = "open"


def _status(code: int, comment: str | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        # Error Comment (0000,0902) is LO: at most 64 characters.
        ds.ErrorComment = comment[:64]
    return ds


class StorageSCP:
    """pynetdicom application entity with lowdose's handlers; :meth:`start` listens."""

    def __init__(
        self,
        settings: DicomSettings,
        publisher: Publisher,
        *,
        metrics: IngestMetrics | None = None,
        strictness: Strictness = Strictness.WARN,
    ) -> None:
        from pynetdicom import AE, evt

        self.settings = settings
        self.publisher = publisher
        self.metrics = metrics or IngestMetrics()
        # The pipeline warns about malformed items when it assesses the object; here only a
        # ``raise`` setting matters (refuse what the pipeline would refuse), else read quietly.
        self.strictness = Strictness.RAISE if strictness is Strictness.RAISE else Strictness.IGNORE
        self._stats: dict[int, AssociationStats] = {}
        self._lock = threading.Lock()
        self._server: Any = None

        ae = AE(ae_title=settings.ae_title)
        ae.maximum_associations = settings.max_associations
        ae.maximum_pdu_size = settings.max_pdu_bytes
        ae.network_timeout = settings.network_timeout_s
        ae.dimse_timeout = settings.network_timeout_s
        ae.acse_timeout = settings.network_timeout_s
        if not settings.allow_any_calling_ae:
            ae.require_calling_aet = list(settings.allowed_calling_aes)
        ae.add_supported_context(VERIFICATION)
        for sop_class in STORAGE_CLASSES:
            ae.add_supported_context(sop_class, TRANSFER_SYNTAXES)
        self.ae = ae
        self.handlers: list[Any] = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_ESTABLISHED, self._on_established),
            (evt.EVT_DATA_RECV, self._on_data),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_RELEASED, self._on_released),
            (evt.EVT_ABORTED, self._on_aborted),
            (evt.EVT_CONN_CLOSE, self._on_close),
            (evt.EVT_CONN_OPEN, tcp_nodelay),
        ]

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> StorageSCP:
        """Listen in background threads (one per association); :attr:`port` is the bound port."""
        self._server = self.ae.start_server(
            (self.settings.bind_address, self.settings.port),
            block=False,
            evt_handlers=self.handlers,
            ssl_context=self.settings.server_tls(),
        )
        log.info(
            "DICOM listener up: AE %s on %s:%d%s, publishing to %s",
            self.settings.ae_title,
            self.settings.bind_address,
            self.port,
            " (TLS)" if self.settings.tls_certfile else "",
            self.publisher.destination,
        )
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the listener is not started")
        return int(self._server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> StorageSCP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- association bookkeeping -----------------------------------------------------------------

    def _stats_of(self, assoc: Any) -> AssociationStats:
        key = id(assoc)
        with self._lock:
            stats = self._stats.get(key)
            if stats is None:
                stats = AssociationStats(_calling_ae(assoc), _address(assoc))
                self._stats[key] = stats
            return stats

    def _on_established(self, event: Any) -> None:
        stats = self._stats_of(event.assoc)
        log.info("association from %s (%s) accepted", stats.calling_ae, stats.address)

    def _on_rejected(self, event: Any) -> None:
        assoc = event.assoc
        calling = _calling_ae(assoc)
        reason = "rejected"
        rejection = getattr(assoc.acceptor, "primitive", None)
        diagnostic = getattr(rejection, "diagnostic", None)
        if diagnostic in _REJECT_REASONS:
            reason = _REJECT_REASONS[diagnostic]
        elif not self.settings.allow_any_calling_ae and calling not in set(
            self.settings.allowed_calling_aes
        ):
            reason = _REJECT_REASONS[0x03]
        self.metrics.associations_total.labels(result="rejected").inc()
        log.warning(
            "association from calling AE %r (%s) rejected: %s", calling, _address(assoc), reason
        )

    def _on_data(self, event: Any) -> None:
        data: bytes = event.data
        if not data or data[0] != 0x04:  # P-DATA-TF only
            return
        stats = self._stats_of(event.assoc)
        stats.bytes += len(data)
        stats.in_flight += len(data)
        self.metrics.bytes_total.inc(len(data))
        if stats.over_budget:
            return
        reason = None
        if len(data) > self.settings.max_pdu_bytes + 6:
            reason = (
                f"a PDU of {len(data)} bytes exceeds the negotiated maximum of "
                f"{self.settings.max_pdu_bytes}"
            )
        elif stats.in_flight > self.settings.association_byte_budget:
            reason = (
                f"an object of more than {stats.in_flight} bytes exceeds the byte budget of "
                f"{self.settings.association_byte_budget} (association_byte_budget)"
            )
        if reason is not None:
            stats.over_budget = True
            self.metrics.refused_total.labels(reason="over_budget").inc()
            log.error("calling AE %s: aborting the association: %s", stats.calling_ae, reason)
            event.assoc.abort()

    def _on_released(self, event: Any) -> None:
        self._stats_of(event.assoc).result = "released"

    def _on_aborted(self, event: Any) -> None:
        stats = self._stats_of(event.assoc)
        stats.result = "aborted (over budget)" if stats.over_budget else "aborted"

    def _on_close(self, event: Any) -> None:
        with self._lock:
            stats = self._stats.pop(id(event.assoc), None)
        if stats is None or not event.assoc.is_acceptor:
            return
        result = stats.result if stats.result != "open" else "connection closed"
        self.metrics.associations_total.labels(result=result.split(" ")[0]).inc()
        log.info(
            "association from %s (%s) ended: %s; %d object(s), %d published, %d refused, "
            "%d bytes, %.1f s",
            stats.calling_ae,
            stats.address,
            result,
            stats.objects,
            stats.published,
            stats.refused,
            stats.bytes,
            time.monotonic() - stats.started,
        )

    # -- services --------------------------------------------------------------------------------

    def _on_echo(self, event: Any) -> int:
        log.info("C-ECHO from %s", _calling_ae(event.assoc))
        return SUCCESS

    def _refuse(
        self,
        stats: AssociationStats,
        code: int,
        reason: str,
        label: str,
        comment: str | None = None,
    ) -> Dataset:
        stats.refused += 1
        self.metrics.refused_total.labels(reason=label).inc()
        log.warning(
            "C-STORE from calling AE %s refused (status 0x%04X): %s",
            stats.calling_ae,
            code,
            reason,
        )
        return _status(code, comment or reason)

    def _on_store(self, event: Any) -> Dataset:
        stats = self._stats_of(event.assoc)
        stats.in_flight = 0  # this object is complete; what arrives next belongs to the next one
        stats.objects += 1
        self.metrics.received_total.inc()
        try:
            return self._store(event, stats)
        except Exception as exc:  # a bug must not take the association thread's listener down
            log.exception("C-STORE from calling AE %s: unexpected error", stats.calling_ae)
            return self._refuse(
                stats, UNABLE_TO_PROCESS, f"unexpected {type(exc).__name__}", "error"
            )

    def _store(self, event: Any, stats: AssociationStats) -> Dataset:
        from optimiser.dicom import read_dicom

        context_class = str(event.context.abstract_syntax)
        instance = str(getattr(event.request, "AffectedSOPInstanceUID", "") or "?")
        data = event.encoded_dataset(include_meta=True)
        source = f"{stats.calling_ae}:{instance}"
        try:
            record = read_dicom(data, source=source, strictness=self.strictness)
        except DicomError as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            return self._refuse(stats, CANNOT_UNDERSTAND, reason, "unreadable")
        is_structure_set = isinstance(record, StructureSet)
        if is_structure_set != (context_class == C.RT_STRUCTURE_SET):
            return self._refuse(
                stats,
                DATASET_MISMATCH,
                f"data set does not match the SOP class {context_class} it was sent as",
                "mismatch",
            )
        headers = (
            ("content-type", RDSR.content_type),
            ("dicom-calling-ae", stats.calling_ae.encode()),
            ("dicom-sop-instance-uid", instance.encode()),
        )
        try:
            self.publisher.publish(record.study_instance_uid.encode(), data, headers)
        except RecordTooLarge as exc:
            return self._refuse(stats, TOO_LARGE, exc.reason, "too_large", exc.comment)
        except PublishFailed as exc:
            return self._refuse(stats, OUT_OF_RESOURCES, exc.reason, "kafka", exc.comment)
        stats.published += 1
        self.metrics.published_total.inc()
        return _status(SUCCESS)


def tcp_nodelay(event: Any) -> None:
    """EVT_CONN_OPEN handler: send small PDUs (C-STORE responses) at once.

    pynetdicom leaves Nagle's algorithm on; with the sender's delayed ACKs every C-STORE round
    trip then waits for a timer (tens of ms on Linux). The benchmark's floor SCP uses it too.
    """
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # e.g. the peer already closed
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _calling_ae(assoc: Any) -> str:
    title = getattr(assoc.requestor, "ae_title", "") or ""
    if isinstance(title, bytes):
        title = title.decode(errors="replace")
    return str(title).strip() or "?"


def _address(assoc: Any) -> str:
    return f"{assoc.requestor.address}:{assoc.requestor.port}"
