"""The benchmark ratio gate: unit checks, and a real pytest run that must fail when slowed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from benchmarks import gate

REPO = Path(__file__).resolve().parents[1]


def _m(name: str, subject: str, role: str, items: float, median_s: float) -> gate.Measurement:
    return gate.Measurement(name=name, subject=subject, role=role, items=items, median_s=median_s)


def test_pair_computes_ratio_of_rates() -> None:
    # subject: 1000 items in 0.01 s = 100,000/s; baseline: 100 items in 0.1 s = 1,000/s -> 100x
    rows = gate.pair(
        [_m("fast", "k", "subject", 1000, 0.01), _m("slow", "k", "baseline", 100, 0.1)],
        {"k": 50.0},
    )
    assert len(rows) == 1
    assert rows[0].ratio == 100.0
    assert rows[0].passed
    assert gate.failures(rows) == []


def test_ratio_below_floor_fails_and_names_the_subject() -> None:
    rows = gate.pair(
        [_m("fast", "k", "subject", 100, 0.01), _m("slow", "k", "baseline", 100, 0.1)],
        {"k": 50.0},
    )
    assert rows[0].ratio == 10.0
    [message] = gate.failures(rows)
    assert message.startswith("k: ratio 10.00 is below its floor 50.0")


def test_missing_baseline_fails_only_when_a_floor_is_set() -> None:
    rows = gate.pair([_m("fast", "k", "subject", 1, 0.1)], {})
    assert gate.failures(rows) == []
    rows = gate.pair([_m("fast", "k", "subject", 1, 0.1)], {"k": 2.0})
    assert "no baseline" in gate.failures(rows)[0]


# A subject measured against a plain-Python baseline; SLOW=1 makes a deliberately slowed copy of
# the subject (the same loop as the baseline), which must trip the gate.
TOY_BENCH = """
import os
import numpy as np

N = 200_000
DATA = np.arange(N, dtype=np.float64)


def fast():
    return float(DATA.sum())


def slow():
    total = 0.0
    for v in DATA.tolist():
        total += v
    return total


def test_subject(bench):
    fn = slow if os.environ.get("SLOW") == "1" else fast
    bench(fn, subject="toy_sum", role="subject", items=N)


def test_baseline(bench):
    bench(slow, subject="toy_sum", role="baseline", items=N)
"""


# The real batch kernel against its plain-Python twin, with the real floor. SLOW=1 swaps in a
# deliberately slowed copy: the same kernel called once per acquisition instead of once per batch
# (the regression the one-call-per-batch design exists to prevent).
KERNEL_BENCH = """
import os
from benchmarks.bench_kernels import TABLES, simulated_batch, twin_batch, _head
from benchmarks.gate import load_floors
from optimiser.kernels import BatchInput, assess_batch

N = 2_000
BATCH = simulated_batch(N)


def per_row(batch, tables):
    for i in range(len(batch)):
        row = BatchInput(*(getattr(batch, f)[i : i + 1].copy() for f in BatchInput.__slots__))
        assess_batch(row, tables)


def test_subject(bench):
    fn = per_row if os.environ.get("SLOW") == "1" else assess_batch
    bench(fn, BATCH, TABLES, subject="assess_batch", role="subject", items=N)


def test_baseline(bench):
    small = _head(BATCH, 200)
    bench(twin_batch, small, TABLES, subject="assess_batch", role="baseline", items=200)
"""


def _run_gate(
    tmp_path: Path, slow: bool, source: str = TOY_BENCH, floors_toml: str = "toy_sum = 5.0"
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "bench_toy.py").write_text(textwrap.dedent(source))
    floors = tmp_path / "floors.toml"
    floors.write_text(f"[floors]\n{floors_toml}\n")
    env = dict(os.environ, LOWDOSE_BENCH_FLOORS=str(floors), SLOW="1" if slow else "0")
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "benchmarks.conftest", "-p", "no:cacheprovider",
         "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path / "bench_toy.py"),
         "--benchmark-quick", "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def test_gate_passes_a_fast_subject_and_fails_a_slowed_copy(tmp_path: Path) -> None:
    fast = _run_gate(tmp_path, slow=False)
    assert fast.returncode == 0, fast.stdout + fast.stderr
    assert "toy_sum" in fast.stdout and "ok" in fast.stdout

    slowed = _run_gate(tmp_path, slow=True)
    assert slowed.returncode == 1, slowed.stdout + slowed.stderr
    assert "GATE FAILED: toy_sum: ratio" in slowed.stdout
    # Every test itself passed: only the gate turned the run red.
    assert "2 passed" in slowed.stdout


def test_gate_fails_the_batch_kernel_slowed_to_one_call_per_acquisition(tmp_path: Path) -> None:
    floor = f"assess_batch = {gate.load_floors()['assess_batch']}"
    fast = _run_gate(tmp_path, slow=False, source=KERNEL_BENCH, floors_toml=floor)
    assert fast.returncode == 0, fast.stdout + fast.stderr
    slowed = _run_gate(tmp_path, slow=True, source=KERNEL_BENCH, floors_toml=floor)
    assert slowed.returncode == 1, slowed.stdout + slowed.stderr
    assert "GATE FAILED: assess_batch: ratio" in slowed.stdout
    assert "2 passed" in slowed.stdout
