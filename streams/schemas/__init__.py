"""JSON schemas of the messages, generated from the pydantic models.

Scanner feeds validate protocol events against ``protocol-event.schema.json``; consumers of
``lowdose.assessments.v1`` / ``lowdose.alerts.v1`` read ``assessment.schema.json``; the state
changelog ``lowdose.state.v1`` carries ``study-state.schema.json``. Regenerate after changing a
model with ``python -m streams.schemas`` (a test fails while the committed files are stale).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optimiser.assessment import Assessment
from optimiser.events import ProtocolEvent
from optimiser.state import StudyState

HERE = Path(__file__).parent
_BASE = "https://lowdose.invalid/schemas/"


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema document, for every published message type."""
    out: dict[str, dict[str, Any]] = {}
    for name, model, mode, title in (
        (
            "protocol-event",
            ProtocolEvent,
            "validation",
            "lowdose.protocol/1 and /1.1 protocol event",
        ),
        ("assessment", Assessment, "serialization", "lowdose.assessment/1 assessment"),
        ("study-state", StudyState, "serialization", "lowdose study state (changelog value)"),
    ):
        schema = model.model_json_schema(by_alias=True, mode=mode)  # type: ignore[arg-type]
        document = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{_BASE}{name}.schema.json",
            **schema,
            "title": title,
        }
        out[f"{name}.schema.json"] = document
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(folder: Path = HERE) -> list[Path]:
    written = []
    for name, schema in schemas().items():
        path = folder / name
        path.write_text(render(schema))
        written.append(path)
    return written
