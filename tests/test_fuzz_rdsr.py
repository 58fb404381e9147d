"""Fuzzing the DICOM reader: mutated and truncated real files and random bytes never raise
anything but DicomError, and never hang (pytest-timeout bounds each test).

The CI part runs a few thousand seeded mutations; set LOWDOSE_SLOW=1 for the long run.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimiser.dicom import read_dicom
from optimiser.errors import DicomError
from optimiser.records import DoseReport, StructureSet
from optimiser.strictness import Strictness
from tests.paths import SHARED

CORPUS = sorted((SHARED / "data" / "rdsr").glob("*.dcm")) + sorted(
    (SHARED / "data" / "ct").glob("*.dcm")
)
SEEDS = [p.read_bytes() for p in CORPUS]
SLOW = os.environ.get("LOWDOSE_SLOW") == "1"

pytestmark = pytest.mark.realdata


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits of the kinds that break parsers: flipped bytes, corrupted length
    fields, cut, inserted, deleted and duplicated spans."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            break
        at = rng.randrange(len(out))
        kind = rng.randrange(8)
        if kind == 0:
            out[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            out[at] = rng.randrange(256)
        elif kind == 2:  # a length-sized field set to an extreme
            out[at : at + 4] = rng.choice(
                [b"\xff\xff\xff\xff", b"\xfe\xff\xff\x7f", b"\x00\x00\x00\x00", b"\x01\x00\x00\x00"]
            )
        elif kind == 3:
            del out[at:]
        elif kind == 4:
            del out[at : at + rng.randint(1, 64)]
        elif kind == 5:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == 6:
            span = out[at : at + rng.randint(1, 256)]
            out[at:at] = span * rng.randint(1, 8)
        else:  # swap in a delimiter tag, the hardest structural edit
            out[at : at + 8] = rng.choice(
                [
                    b"\xfe\xff\x00\xe0\xff\xff\xff\xff",
                    b"\xfe\xff\x0d\xe0\x00\x00\x00\x00",
                    b"\xfe\xff\xdd\xe0\x00\x00\x00\x00",
                    b"\x40\x00\x30\xa7SQ\x00\x00",
                ]
            )
    return bytes(out)


def _read_or_dicom_error(data: bytes, strictness: Strictness = Strictness.WARN) -> str:
    try:
        record = read_dicom(data, source="fuzz.dcm", strictness=strictness)
    except DicomError as exc:
        assert exc.source == "fuzz.dcm"
        assert str(exc).startswith("fuzz.dcm: ")
        return "error"
    assert isinstance(record, DoseReport | StructureSet)
    return "read"


def _run(count: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    outcomes = {"error": 0, "read": 0}
    modes = list(Strictness)
    for _ in range(count):
        original = rng.choice(SEEDS)
        outcomes[_read_or_dicom_error(_mutate(original, rng), rng.choice(modes))] += 1
    return outcomes


@pytest.mark.timeout(120)
def test_seeded_mutations_of_real_files() -> None:
    outcomes = _run(3000, seed=20261126)
    # Both outcomes occur: the mutator is neither too gentle nor always fatal.
    assert outcomes["error"] > 100 and outcomes["read"] > 100


@pytest.mark.timeout(120)
def test_every_truncation_of_a_report() -> None:
    data = (SHARED / "data" / "rdsr" / "CT-RDSR-Siemens-Multi-1.dcm").read_bytes()
    results = [_read_or_dicom_error(data[:cut]) for cut in range(0, len(data), 7)]
    # Only the whole file reads: any cut lands inside the last element or its sequences.
    assert results.count("read") <= 1 and len(results) > 1000


@pytest.mark.timeout(120)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    _read_or_dicom_error(data)


@pytest.mark.timeout(120)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(range(len(SEEDS))),
    st.integers(min_value=0, max_value=40_000),
    st.binary(min_size=1, max_size=64),
)
def test_spliced_bytes(index: int, at: int, junk: bytes) -> None:
    original = SEEDS[index]
    at %= len(original)
    _read_or_dicom_error(original[:at] + junk + original[at + len(junk) :])


@pytest.mark.timeout(120)
@given(st.binary(max_size=512))
@settings(max_examples=200, deadline=None)
def test_random_bytes_after_a_valid_preamble(data: bytes) -> None:
    _read_or_dicom_error(b"\x00" * 128 + b"DICM" + data)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(not SLOW, reason="long fuzzing run: set LOWDOSE_SLOW=1")
def test_long_seeded_fuzzing() -> None:
    outcomes = _run(200_000, seed=7)
    assert sum(outcomes.values()) == 200_000
