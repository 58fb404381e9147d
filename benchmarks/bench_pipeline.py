"""The in-process assessment path of one protocol event, beside the decode every event pays anyway.

- ``pipeline_in_process``: :meth:`optimiser.pipeline.Pipeline.process` in batches of 500 (the
  service's ``max_batch``) plus :meth:`~optimiser.assessment.Assessment.to_json` of every
  assessment, on already-decoded simulated protocol events; rate in events/s. Baseline: decoding
  the same events from their JSON bytes with :func:`optimiser.events.parse_protocol_event`
  (pydantic-core, compiled): the per-event floor of the service's decode step, which the Kafka
  service pays for every event before the pipeline sees it. A ratio near 1 means assessing an
  event costs about as much as validating it; the Kafka service (``service_throughput``) can
  only approach the raw consumer's rate if both stay small.
Both sides are checked to agree (the decoded events equal the simulated ones, and every
non-localizer acquisition of every event has exactly one assessment) before timing.
Quick mode (``make test``): 500 events (100 studies); full mode 5,000.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.conftest import Bench
from optimiser.events import ProtocolEvent, parse_protocol_event
from optimiser.pipeline import Pipeline
from simulator import simulate_feed

BATCH = 500


def _events(n: int) -> list[ProtocolEvent]:
    """``n`` distinct protocol events cycling over simulated studies (distinct event ids)."""
    base = [s.protocol_event for s in simulate_feed(min(n, 500), seed=52)]
    return [base[i % len(base)].model_copy(update={"event_id": f"bench-{i}"}) for i in range(n)]


def _decode(raw: list[bytes]) -> list[ProtocolEvent]:
    return [parse_protocol_event(b) for b in raw]


def _assess(pipeline: Pipeline, events: list[ProtocolEvent]) -> list[str]:
    out: list[str] = []
    for start in range(0, len(events), BATCH):
        out.extend(a.to_json() for a in pipeline.process(events[start : start + BATCH]))
    return out


@pytest.fixture(scope="module")
def inputs(request: pytest.FixtureRequest) -> tuple[list[ProtocolEvent], list[bytes]]:
    n = 500 if request.config.getoption("benchmark_quick") else 5_000
    events = _events(n)
    return events, [e.to_json().encode() for e in events]


@pytest.mark.parametrize("role", ["subject", "baseline"])
def test_pipeline_in_process(
    bench: Bench, inputs: tuple[list[ProtocolEvent], list[bytes]], role: str
) -> None:
    events, raw = inputs
    assert _decode(raw) == events
    pipeline = Pipeline()
    pipeline.warm_up()
    outputs = _assess(pipeline, events)
    scans = sum(1 for e in events for a in e.acquisitions if a.type != "localizer")
    assert len(outputs) == scans
    assert len(set(outputs)) == len(outputs)  # distinct event ids: no two outputs alike
    fn: Any
    args: tuple[Any, ...]
    if role == "subject":
        fn, args = _assess, (pipeline, events)
    else:
        fn, args = _decode, (raw,)
    bench(fn, *args, subject="pipeline_in_process", role=role, items=len(events))
