"""PACS labelling check: are a planning study's CT series labelled as planning scans on PACS?

RCR guidance (../shared/reference/planning-ct.md, section 1): planning images stored on PACS must
be clearly labelled as such, so that nobody reads them as a diagnostic examination. This module
asks the department's PACS (a C-FIND SCU, Study Root, SERIES level, PS3.4 C.6.2) for the series of
one study and turns every CT series whose Series Description carries none of the configured
planning labels into an ``unlabelled_planning_scan`` finding, with the description as evidence.

It does not decide whether the study is a planning study: the caller asks only for studies the
pipeline assessed as planning studies (``lowdose assess --pacs`` or the service, see
docs/dicom.md), so a diagnostic CT in the same archive is never flagged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ingest.settings import DicomNode
from optimiser.assessment import Assessment, Finding
from optimiser.errors import LowdoseError

log = logging.getLogger("lowdose.ingest.pacs")

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


class PacsError(LowdoseError):
    """The PACS could not be queried (association refused, timeout, failure status)."""


@dataclass(frozen=True, slots=True)
class SeriesLabel:
    series_instance_uid: str
    modality: str
    description: str


def find_series(
    node: DicomNode, study_instance_uid: str, *, calling_ae: str, timeout_s: float = 30.0
) -> list[SeriesLabel]:
    """The series of one study on ``node`` (C-FIND, Study Root, SERIES level)."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE

    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.add_requested_context(STUDY_ROOT_FIND)
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_instance_uid
    query.SeriesInstanceUID = ""
    query.Modality = ""
    query.SeriesDescription = ""
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title)
    if not assoc.is_established:
        raise PacsError(
            f"PACS {node.ae_title}@{node.host}:{node.port} refused or did not answer the "
            f"association from {calling_ae}; register {calling_ae} as a DICOM node on the PACS "
            "and check host, port and AE title (LOWDOSE_DICOM_PACS__*)"
        )
    found: list[SeriesLabel] = []
    try:
        for status, identifier in assoc.send_c_find(query, STUDY_ROOT_FIND):
            code = int(getattr(status, "Status", -1))
            if code in (0xFF00, 0xFF01) and identifier is not None:
                found.append(
                    SeriesLabel(
                        str(identifier.get("SeriesInstanceUID", "")),
                        str(identifier.get("Modality", "") or ""),
                        str(identifier.get("SeriesDescription", "") or ""),
                    )
                )
            elif code != 0x0000:
                raise PacsError(
                    f"PACS {node.ae_title} answered C-FIND with status 0x{code:04X}"
                    if code >= 0
                    else f"PACS {node.ae_title} sent no C-FIND response within {timeout_s:g} s"
                )
    finally:
        assoc.release()
    return found


def is_planning_label(description: str, labels: Sequence[str]) -> bool:
    text = description.lower()
    return any(label in text for label in labels)


def unlabelled_planning_findings(
    series: Iterable[SeriesLabel], labels: Sequence[str]
) -> list[Finding]:
    """One warning per CT series of a planning study not labelled as a planning scan."""
    findings = []
    for s in series:
        if s.modality.upper() != "CT" or is_planning_label(s.description, labels):
            continue
        findings.append(
            Finding(
                code="unlabelled_planning_scan",
                severity="warning",
                message=(
                    f"CT series {s.description or '(no description)'!r} of this planning study "
                    "is not labelled as a planning scan on PACS: planning images on PACS must "
                    "be clearly labelled as such."
                ),
                evidence={
                    "series_description": s.description,
                    "series_instance_uid": s.series_instance_uid,
                    "labelled_planning": False,
                },
            )
        )
    return findings


def check_study(
    node: DicomNode, study_instance_uid: str, *, calling_ae: str, labels: Sequence[str]
) -> list[Finding]:
    """Query the PACS for one planning study and return its labelling findings."""
    series = find_series(node, study_instance_uid, calling_ae=calling_ae)
    findings = unlabelled_planning_findings(series, labels)
    log.info(
        "PACS %s: study %s has %d series, %d CT series not labelled as planning",
        node.ae_title,
        study_instance_uid,
        len(series),
        len(findings),
    )
    return findings


def apply_labelling(
    assessments: Sequence[Assessment], found: Mapping[str, list[Finding]]
) -> list[Assessment]:
    """Put the PACS labelling findings of each queried study (``found``: Study Instance UID ->
    its findings, empty when every CT series is labelled) into the assessments.

    The PACS is the authority on how a study is labelled there: for a queried study the
    protocol event's own ``unlabelled_planning_scan`` (from its ``labelled_planning`` flag) is
    replaced, so one fact never gives two warnings, and the per-series findings go on the
    study's first assessment only (a dose report does not link series to acquisitions).
    Studies not queried are left as they are.
    """
    out: list[Assessment] = []
    placed: set[str] = set()
    for a in assessments:
        uid = a.study_instance_uid
        if uid not in found:
            out.append(a)
            continue
        kept = [f for f in a.findings if f.code != "unlabelled_planning_scan"]
        if uid not in placed:
            placed.add(uid)
            kept.extend(found[uid])
        out.append(a if kept == a.findings else a.model_copy(update={"findings": kept}))
    return out
