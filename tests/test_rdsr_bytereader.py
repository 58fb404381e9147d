"""The byte-level reader: the numba tokenizer path against its plain-Python twin, every transfer
syntax it reads, undefined lengths, and agreement with a plain pydicom walk."""

from __future__ import annotations

import random
import sys
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
)

from optimiser.dicom import bytereader, read_dose_report, report_to_json
from optimiser.dicom.reader import KEEP, SEQUENCES
from optimiser.dicom.tokenizer import CODE, ITEM_END, ITEM_START, SEQ_END, SEQ_START, tokenize
from optimiser.errors import DicomError
from tests.paths import SHARED

REPO = Path(__file__).resolve().parents[1]
RDSR = sorted((SHARED / "data" / "rdsr").glob("*.dcm"))
ALL = [*RDSR, *sorted((SHARED / "data" / "ct").glob("*.dcm"))]

pytestmark = pytest.mark.realdata


def _both(data: bytes) -> tuple[Any, Any]:
    out: list[Any] = []
    for engine in ("numba", "python"):
        try:
            out.append(bytereader.parse(data, KEEP, SEQUENCES, engine=engine).dataset)
        except DicomError as exc:
            out.append(("error", exc.reason.split(" at byte")[0]))
    return out[0], out[1]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_kernel_and_python_twin_agree_on_real_files(path: Path) -> None:
    fast, reference = _both(path.read_bytes())
    assert fast == reference
    assert isinstance(fast, dict) and len(fast) > 5


def test_kernel_and_python_twin_agree_on_mutated_files() -> None:
    rng = random.Random(5)
    seeds = [p.read_bytes() for p in ALL]
    agreed_errors = 0
    for _ in range(600):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data))
            data[at : at + 4] = rng.randbytes(rng.choice([1, 2, 4]))
        fast, reference = _both(bytes(data))
        if isinstance(fast, tuple):
            # both fail; messages may differ in wording but not in kind
            assert isinstance(reference, tuple), bytes(data[:16])
            agreed_errors += 1
        else:
            assert fast == reference
    assert agreed_errors > 50


def _recode(path: Path, syntax: str, undefined: bool = False) -> bytes:
    ds = pydicom.dcmread(path)
    for elem in ds.iterall():  # decodes every element, as re-encoding needs
        if undefined and elem.VR == "SQ":
            elem.value.is_undefined_length = True
            for item in elem.value:
                item.is_undefined_length_sequence_item = True
    ds.file_meta.TransferSyntaxUID = pydicom.uid.UID(syntax)
    out = BytesIO()
    pydicom.dcmwrite(
        out,
        ds,
        implicit_vr=syntax == ImplicitVRLittleEndian,
        little_endian=syntax != ExplicitVRBigEndian,
        force_encoding=True,
    )
    return out.getvalue()


@pytest.mark.parametrize("path", RDSR, ids=lambda p: p.name)
@pytest.mark.parametrize(
    ("syntax", "undefined"),
    [
        (ImplicitVRLittleEndian, False),
        (ImplicitVRLittleEndian, True),
        (ExplicitVRBigEndian, False),
        (DeflatedExplicitVRLittleEndian, True),
    ],
    ids=["implicit", "implicit-undefined", "big-endian", "deflated-undefined"],
)
def test_every_transfer_syntax_gives_the_same_report(
    path: Path, syntax: str, undefined: bool
) -> None:
    want = report_to_json(read_dose_report(path))
    data = _recode(path, syntax, undefined)
    got = report_to_json(read_dose_report(data, source=path.name))
    assert got == want
    fast, reference = _both(data)
    assert fast == reference


@pytest.mark.parametrize("path", RDSR, ids=lambda p: p.name)
def test_values_equal_a_plain_pydicom_walk(path: Path) -> None:
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks.bench_parse import pydicom_walk
    finally:
        sys.path.remove(str(REPO))
    data = path.read_bytes()
    ours = report_to_json(read_dose_report(data))
    walk = pydicom_walk(data)
    assert ours["study_instance_uid"] == walk["study_instance_uid"]
    assert ours["dlp_total_mgy_cm"] == walk["dlp_total_mgy_cm"]
    keys = ("irradiation_event_uid", "acquisition_type", "ctdivol_mgy", "dlp_mgy_cm")
    for mine, theirs in zip(ours["events"], walk["events"], strict=True):
        assert [mine[k] for k in (*keys, "scanning_length_mm", "kvp")] == [
            theirs[k] for k in (*keys, "scanning_length_mm", "kvp")
        ]


def test_code_sequences_collapse_to_one_row() -> None:
    # (0040,A043) SQ, undefined length, one item: Code Value "113701 " and scheme "DCM", then
    # a Code Meaning padded with a NUL.
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "113701", "DCM", "X"
    ds = Dataset()
    ds.ConceptNameCodeSequence = [code]
    buf = BytesIO()
    ds.save_as(buf, implicit_vr=False, little_endian=True)
    rows = tokenize(
        buf.getvalue(),
        0,
        implicit=False,
        big=False,
        keep=KEEP,
        sequences=SEQUENCES,
        codes=bytereader.CODE_SEQUENCES,
        max_depth=8,
    )
    assert rows.shape == (1, 8)
    kind, tag, a1, b1, a2, b2, a3, b3 = rows[0].tolist()
    data = buf.getvalue()
    assert (kind, tag) == (CODE, 0x0040A043)
    # "113701" is 6 bytes, "DCM" is padded to 4 and trimmed back to 3
    assert (data[a1:b1], data[a2:b2], data[a3:b3]) == (b"113701", b"DCM", b"X")


def test_kernel_rows_are_balanced_on_a_real_report() -> None:
    data = RDSR[0].read_bytes()
    assert data[132:136] == b"\x02\x00\x00\x00"  # (0002,0000) File Meta Group Length, UL
    start = 144 + int.from_bytes(data[140:144], "little")
    rows = tokenize(
        data,
        start,
        implicit=False,
        big=False,
        keep=KEEP,
        sequences=SEQUENCES,
        codes=bytereader.CODE_SEQUENCES,
        max_depth=48,
    )
    kinds = rows[:, 0]
    assert np.count_nonzero(kinds == SEQ_START) == np.count_nonzero(kinds == SEQ_END)
    assert np.count_nonzero(kinds == ITEM_START) == np.count_nonzero(kinds == ITEM_END)


@pytest.mark.parametrize(
    ("start", "depth"), [(-1, 8), (10**9, 8), (0, 0)], ids=["negative", "past-end", "depth-0"]
)
def test_tokenize_validates_its_inputs(start: int, depth: int) -> None:
    with pytest.raises(ValueError):
        tokenize(
            b"\x08\x00",
            start,
            implicit=True,
            big=False,
            keep=KEEP,
            sequences=SEQUENCES,
            codes=bytereader.CODE_SEQUENCES,
            max_depth=depth,
        )


def test_warm_up_compiles_and_returns() -> None:
    from optimiser.dicom import warm_up

    warm_up()
    assert bytereader.parse(b"\x08\x00\x16\x00UI\x04\x001.2\x00", KEEP, SEQUENCES).dataset == {
        0x00080016: "1.2"
    }


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_kernel_and_twin_agree_on_random_data_sets(tail: bytes, explicit: bool) -> None:
    # A bare data set starting with (0008,0016): explicit (VR "UI") or implicit, then noise.
    head = b"\x08\x00\x16\x00" + (b"UI\x04\x00" if explicit else b"\x04\x00\x00\x00") + b"1.2\x00"
    fast, reference = _both(head + tail)
    assert type(fast) is type(reference)
    if isinstance(fast, dict):
        assert fast == reference
