"""What the pipeline takes in: the one union of input types, and the study each belongs to.

:data:`PipelineInput` is the only list of input types: a decoded message (:mod:`streams.decode`)
or file (``lowdose assess``) is one of them, and :meth:`optimiser.pipeline.Pipeline.process`
hands each to its method through :data:`optimiser.pipeline.INPUT_METHODS` (one entry per
member). Light on purpose (no kernels): the stream edges import it on every start.
"""

from __future__ import annotations

from optimiser.events import ProtocolEvent
from optimiser.records import DoseReport, StructureSet

PipelineInput = ProtocolEvent | DoseReport | StructureSet


def study_uid_of(item: PipelineInput) -> str | None:
    """The Study Instance UID of an input, whatever its kind (None for an object that is not an
    input with one: an injected decoder's stand-in)."""
    if isinstance(item, ProtocolEvent):
        return item.study.study_instance_uid
    uid = getattr(item, "study_instance_uid", None)
    return uid if isinstance(uid, str) else None
