"""The benchmark ratio gate: pair each subject with its baseline, compare with floors, write tables.

Absolute times depend on the machine and on whatever else it is doing; a ratio measured side by
side in one run is far steadier. So the gate asserts ratios only (``floors.toml``), and reports
absolute rates without asserting them.
"""

from __future__ import annotations

import json
import os
import platform
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FLOORS_FILE = Path(__file__).with_name("floors.toml")


@dataclass(frozen=True)
class Measurement:
    """One timed benchmark: ``items`` processed per call, median seconds per call."""

    name: str
    subject: str
    role: str  # "subject" or "baseline"
    items: float
    median_s: float
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.items / self.median_s if self.median_s > 0 else float("inf")


@dataclass(frozen=True)
class Row:
    subject: str
    name: str
    rate: float
    baseline_name: str | None
    baseline_rate: float | None
    floor: float | None

    @property
    def ratio(self) -> float | None:
        if self.baseline_rate is None or self.baseline_rate <= 0:
            return None
        return self.rate / self.baseline_rate

    @property
    def passed(self) -> bool:
        if self.floor is None:
            return True
        return self.ratio is not None and self.ratio >= self.floor


def load_floors(path: Path | None = None) -> dict[str, float]:
    path = path or Path(os.environ.get("LOWDOSE_BENCH_FLOORS", FLOORS_FILE))
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return {str(k): float(v) for k, v in data.get("floors", {}).items()}


def pair(measurements: Iterable[Measurement], floors: Mapping[str, float]) -> list[Row]:
    """One row per subject measurement, with the baseline of the same subject beside it."""
    items = list(measurements)
    baselines = {m.subject: m for m in items if m.role == "baseline"}
    rows = []
    for m in items:
        if m.role != "subject":
            continue
        base = baselines.get(m.subject)
        rows.append(
            Row(
                subject=m.subject,
                name=m.name,
                rate=m.rate,
                baseline_name=base.name if base else None,
                baseline_rate=base.rate if base else None,
                floor=floors.get(m.subject),
            )
        )
    return rows


def failures(rows: Iterable[Row]) -> list[str]:
    out = []
    for r in rows:
        if r.passed:
            continue
        if r.ratio is None:
            out.append(f"{r.subject}: no baseline measured, cannot check floor {r.floor}")
        else:
            out.append(
                f"{r.subject}: ratio {r.ratio:.2f} is below its floor {r.floor} "
                f"({r.name} {r.rate:,.0f}/s vs {r.baseline_name} {r.baseline_rate:,.0f}/s)"
            )
    return out


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:,.0f}/s"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def write_results(
    rows: list[Row], measurements: list[Measurement], json_path: Path, md_path: Path
) -> None:
    info = machine()
    json_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": info,
        "rows": [asdict(r) | {"ratio": r.ratio, "passed": r.passed} for r in rows],
        "measurements": [asdict(m) | {"rate": m.rate} for m in measurements],
    }
    json_path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    lines = [
        "# Benchmark results",
        "",
        f"Measured by `make bench` on {info['date']}: {info['cpu']}, {info['cores']} cores, "
        f"Python {info['python']}. Subject and baseline run side by side in one session; the "
        "ratio is what the CI gate checks against `benchmarks/floors.toml`.",
        "",
        "| subject | rate | baseline | baseline rate | ratio | floor |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:,.2f}"
        lines.append(
            f"| {r.subject} (`{r.name}`) | {_fmt_rate(r.rate)} | {r.baseline_name or '-'} | "
            f"{_fmt_rate(r.baseline_rate)} | {ratio} | {r.floor if r.floor is not None else '-'} |"
        )
    extras = [m for m in measurements if m.extra]
    if extras:
        lines += ["", "## Other measurements", ""]
        for m in extras:
            details = ", ".join(f"{k}: {_fmt_value(v)}" for k, v in m.extra.items())
            lines.append(f"- `{m.name}` ({_fmt_rate(m.rate)}): {details}")
    md_path.write_text("\n".join(lines) + "\n")
