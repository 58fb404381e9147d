"""Benchmark harness: the ``bench`` fixture, quick/full modes and the ratio gate.

Every subject runs beside its baseline in the same session. ``--benchmark-quick`` (used by
``make test``) runs few rounds on small inputs and gates the ratios; ``--benchmark-full`` (used by
``make bench``) runs the full sizes and also writes ``benchmarks/results/latest.json`` and
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks import gate
from tests.realparts import skip_realdata_without_shared

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_realdata_without_shared(items)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lowdose benchmarks")
    group.addoption(
        "--benchmark-quick",
        action="store_true",
        dest="benchmark_quick",
        help="small inputs and few rounds (CI); the ratio gate still applies",
    )
    group.addoption(
        "--benchmark-full",
        action="store_true",
        dest="benchmark_full",
        help="full sizes; write benchmarks/results/latest.json and benchmarks/RESULTS.md",
    )


Bench = Callable[..., Any]


@pytest.fixture
def bench(benchmark: Any, request: pytest.FixtureRequest) -> Bench:
    """Time ``fn(*args)`` for a subject or its baseline; compilation stays in warm-up rounds.

    ``items`` is the number of things one call processes (reports, acquisitions, slices), so the
    gate can turn seconds into rates and pair subject with baseline.
    """
    quick = bool(request.config.getoption("benchmark_quick"))

    def run(
        fn: Callable[..., Any],
        *args: Any,
        subject: str,
        role: str,
        items: float,
        rounds: int | None = None,
        warmup_rounds: int | None = None,
        **extra: Any,
    ) -> Any:
        if role not in ("subject", "baseline"):
            raise ValueError(f"role must be 'subject' or 'baseline', not {role!r}")
        benchmark.group = subject
        benchmark.extra_info.update({"subject": subject, "role": role, "items": items, **extra})
        return benchmark.pedantic(
            fn,
            args=args,
            rounds=rounds or (3 if quick else 10),
            warmup_rounds=warmup_rounds if warmup_rounds is not None else (1 if quick else 2),
            iterations=1,
        )

    return run


def _measurements(config: pytest.Config) -> list[gate.Measurement]:
    session = getattr(config, "_benchmarksession", None)
    out = []
    for meta in getattr(session, "benchmarks", []):
        info = dict(meta.extra_info)
        if "subject" not in info or not meta.stats:
            continue
        subject, role, items = info.pop("subject"), info.pop("role"), info.pop("items")
        out.append(
            gate.Measurement(
                name=meta.name,
                subject=subject,
                role=role,
                items=float(items),
                median_s=float(meta.stats.median),
                extra=info,
            )
        )
    return out


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    measurements = _measurements(session.config)
    if not measurements:
        return
    rows = gate.pair(measurements, gate.load_floors())
    session.config.stash[_ROWS] = rows
    if session.config.getoption("benchmark_full"):
        gate.write_results(
            rows, measurements, HERE / "results" / "latest.json", HERE / "RESULTS.md"
        )
    if gate.failures(rows) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_ROWS = pytest.StashKey[list[gate.Row]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rows = config.stash.get(_ROWS, None)
    if not rows:
        return
    tr = terminalreporter
    tr.section("lowdose benchmark ratios (subject rate / baseline rate)")
    for r in rows:
        ratio = "n/a" if r.ratio is None else f"{r.ratio:.2f}"
        status = "ok" if r.passed else "BELOW FLOOR"
        tr.write_line(
            f"{r.subject:32s} {r.rate:>14,.0f}/s  ratio {ratio:>8}  floor {r.floor}  {status}"
        )
    for line in gate.failures(rows):
        tr.write_line(f"GATE FAILED: {line}", red=True)
    for m in _measurements(config):  # recorded, not gated (goal: issue 10)
        if "latency_p99_ms" in m.extra:
            extra = m.extra.items()
            figures = ", ".join(f"{k[8:]} {v}" for k, v in extra if k.startswith("latency_"))
            tr.write_line(f"produce-to-alert latency ({m.name}): {figures}")
