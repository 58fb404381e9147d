"""Why an acquisition was repeated, where its input records it (issue 20, "a repeat with a reason").

planning-ct.md section 8 counts "repeated acquisitions over one range without a recorded reason"
among the diagnostic-grade signs of a planning scan: a repeat with a recorded reason (the patient
moved, the breathing was irregular, the patient had to be re-positioned, an artefact spoilt the
images) is a fact for the record, not a planning-grade problem. The reason comes from:

- a protocol event (schema ``lowdose.protocol/1.1``): the acquisition's ``repeat_reason`` and
  ``repeat_reason_text``, taken as given (source ``protocol_event``);
- a dose report: TID 10013 has no coded repeat reason, only free text: the irradiation event's
  Comment (121106, DCM), else its Acquisition Protocol name (125203, DCM). Free text is a
  recorded reason only when it clearly states one (:func:`reason_from_text`), so a vendor's own
  technical comment (Siemens writes "Internal technical scan parameters: Organ Characteristic =
  Respiratory, ...") or a protocol named "Repeat" records none.
"""

from __future__ import annotations

import re
from typing import Final, Literal, NamedTuple

from optimiser.events import PlannedAcquisition, RepeatReason
from optimiser.records import CtAcquisition

ReasonSource = Literal["protocol_event", "dose_report_comment", "acquisition_protocol"]


class RecordedReason(NamedTuple):
    """A recorded reason for a repeat: its category, the words it was recorded in, and where."""

    reason: RepeatReason
    text: str | None
    source: ReasonSource


# The text says this acquisition is a repeat: repeat(ed), rescan(ned), re-scan, retake,
# re-acquired / reacquisition (whole words, any case; "-", "_" and spaces between the parts).
_REPEAT: Final = re.compile(
    r"\b(?:repeat(?:ed|ing)?|re[-_ ]?scan(?:ned|ning)?|re[-_ ]?take[ns]?|"
    r"re[-_ ]?acqui(?:red|sition))\b",
    re.IGNORECASE,
)
# And why, in the order tried (the first that matches names the category): word stems, so
# "breathing", "movement", "repositioned", "artifacts" match.
_REASONS: Final[tuple[tuple[RepeatReason, re.Pattern[str]], ...]] = (
    ("breathing", re.compile(r"\b(?:breath\w*|respirat\w*)", re.IGNORECASE)),
    (
        "patient_motion",
        re.compile(r"\b(?:motion|movement|moved|moving|cough\w*|swallow\w*)\b", re.IGNORECASE),
    ),
    (
        "positioning",
        re.compile(r"\b(?:re[-_ ]?)?(?:position\w*|set[-_ ]?up|immobili[sz]\w*)", re.IGNORECASE),
    ),
    ("artefact", re.compile(r"\b(?:artefact\w*|artifact\w*)", re.IGNORECASE)),
)


def reason_from_text(text: str | None) -> RepeatReason | None:
    """The repeat reason a free text clearly states, else None.

    It must say both that the acquisition is a repeat (repeat, rescan, re-scan, retake,
    re-acquired) and why: breathing (breath..., respirat...), patient motion (motion, movement,
    moved, moving, cough..., swallow...), positioning (position..., re-position..., set-up,
    immobilis...) or an artefact (artefact..., artifact...). "Repeat" alone, or "patient moved"
    alone (which may describe the spoilt first acquisition), is no recorded reason. A heuristic
    on free text, documented in docs/dose-check-contrast-surplus.md.
    """
    if not text or _REPEAT.search(text) is None:
        return None
    for reason, pattern in _REASONS:
        if pattern.search(text):
            return reason
    return None


def from_event(acq: PlannedAcquisition) -> RecordedReason | None:
    """The reason a protocol event (schema 1.1) records for this acquisition."""
    if acq.repeat_reason is None:
        return None
    return RecordedReason(acq.repeat_reason, acq.repeat_reason_text, "protocol_event")


def from_report(
    acq: CtAcquisition, ordinal: int, planned: list[PlannedAcquisition]
) -> RecordedReason | None:
    """The reason recorded for a dose report's irradiation event: its Comment, else its
    Acquisition Protocol name (:func:`reason_from_text`), else the protocol event's reason for
    the planned acquisition it is by order (``ordinal``: its position among the report's
    events of its type, the planned ones counted the same way, localizers left out). Only an
    exact match by order carries the event's reason over: the nearest-length fallback that
    places an unmatched event is too loose to carry a justification."""
    found = reason_from_text(acq.comment)
    if found is not None:
        return RecordedReason(found, acq.comment, "dose_report_comment")
    found = reason_from_text(acq.acquisition_protocol)
    if found is not None:
        return RecordedReason(found, acq.acquisition_protocol, "acquisition_protocol")
    kind = acq.acquisition_type
    same_type = [p for p in planned if p.type != "localizer" and (kind is None or p.type == kind)]
    return from_event(same_type[ordinal]) if ordinal < len(same_type) else None
