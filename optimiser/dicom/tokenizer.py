"""numba tokenizer of DICOM data sets: one pass over the bytes, kept elements out as flat arrays.

The kernel walks the element structure of PS3.5 section 7 (explicit or implicit VR, little or big
endian, defined or undefined lengths, nested sequences and items) with an explicit stack instead
of recursion, and writes one token per kept value, per kept sequence start/end and per item
start/end: kind, tag, byte offset, byte length. Elements and sequences that are not kept are
skipped inside the kernel, so Python only touches what the dose report parser reads. The public
wrapper :func:`read_dataset` validates inputs and builds the same ``dict`` tree as the plain-Python
reference reader in :mod:`optimiser.dicom.bytereader`, which is its twin in the tests.

Bounds: every read is checked against the enclosing defined length or the end of the data (numba
does not check array bounds), nesting is capped, and the token arrays are sized so that they
cannot overflow (each token but an end token consumes at least 8 bytes).
"""

from __future__ import annotations

import functools
from typing import Final

import numba
import numpy as np
import numpy.typing as npt

from optimiser.errors import DicomError

VALUE: Final = 0
SEQ_START: Final = 1
ITEM_START: Final = 2
ITEM_END: Final = 3
SEQ_END: Final = 4

OK: Final = 0
E_TRUNCATED: Final = 1
E_DELIMITER: Final = 2
E_NOT_ITEM: Final = 3
E_DEPTH: Final = 4
E_FRAGMENTS: Final = 5
E_CAPACITY: Final = 6

_UNDEFINED: Final = 0xFFFFFFFF


@numba.njit(cache=True, nogil=True, inline="always")
def _u16(data: npt.NDArray[np.uint8], pos: int, big: bool) -> int:
    if big:
        return (np.int64(data[pos]) << 8) | np.int64(data[pos + 1])
    return np.int64(data[pos]) | (np.int64(data[pos + 1]) << 8)


@numba.njit(cache=True, nogil=True, inline="always")
def _u32(data: npt.NDArray[np.uint8], pos: int, big: bool) -> int:
    if big:
        return (
            (np.int64(data[pos]) << 24)
            | (np.int64(data[pos + 1]) << 16)
            | (np.int64(data[pos + 2]) << 8)
            | np.int64(data[pos + 3])
        )
    return (
        np.int64(data[pos])
        | (np.int64(data[pos + 1]) << 8)
        | (np.int64(data[pos + 2]) << 16)
        | (np.int64(data[pos + 3]) << 24)
    )


@numba.njit(cache=True, nogil=True, inline="always")
def _member(sorted_tags: npt.NDArray[np.int64], tag: int) -> bool:
    i = np.searchsorted(sorted_tags, tag)
    return i < sorted_tags.shape[0] and sorted_tags[i] == tag


@numba.njit(cache=True, nogil=True, inline="always")
def _long_vr(a: int, b: int) -> bool:
    # PS3.5 table 7.1-1: OB OD OF OL OV OW SQ SV UC UN UR UT UV have a 4-byte length.
    if a == 79:  # 'O'
        return b == 66 or b == 68 or b == 70 or b == 76 or b == 86 or b == 87
    if a == 85:  # 'U'
        return b == 67 or b == 78 or b == 82 or b == 84 or b == 86
    return a == 83 and (b == 81 or b == 86)  # SQ SV


@numba.njit(cache=True, nogil=True)
def _tokenize(
    data: npt.NDArray[np.uint8],
    start: int,
    implicit: bool,
    big: bool,
    keep: npt.NDArray[np.int64],
    sequences: npt.NDArray[np.int64],
    max_depth: int,
    kinds: npt.NDArray[np.int8],
    tags: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
) -> tuple[int, int, int]:
    """Returns (token count, error code, byte position of the error)."""
    n = data.shape[0]
    cap = kinds.shape[0]
    size = 2 * max_depth + 2
    # Stack entries: kind (0 sequence, 1 item), defined end or -1, limit, implicit, emitting.
    s_kind = np.zeros(size, np.int8)
    s_end = np.zeros(size, np.int64)
    s_limit = np.zeros(size, np.int64)
    s_implicit = np.zeros(size, np.bool_)
    s_emit = np.zeros(size, np.bool_)
    sp = 0
    nt = 0
    pos = start
    while True:
        if sp > 0:
            limit = s_limit[sp - 1]
            cur_implicit = s_implicit[sp - 1]
            emit = s_emit[sp - 1]
        else:
            limit = n
            cur_implicit = implicit
            emit = True
        if sp > 0 and s_kind[sp - 1] == 0:
            # Inside a sequence: expect an item or the sequence delimiter.
            end = s_end[sp - 1]
            if end >= 0 and pos == end:
                sp -= 1
                if emit:
                    if nt >= cap:
                        return nt, E_CAPACITY, pos
                    kinds[nt] = SEQ_END
                    nt += 1
                continue
            if pos + 8 > limit:
                return nt, E_TRUNCATED, pos
            tag = (_u16(data, pos, big) << 16) | _u16(data, pos + 2, big)
            length = _u32(data, pos + 4, big)
            pos += 8
            if tag == 0xFFFEE0DD and end < 0:
                sp -= 1
                if emit:
                    if nt >= cap:
                        return nt, E_CAPACITY, pos
                    kinds[nt] = SEQ_END
                    nt += 1
                continue
            if tag != 0xFFFEE000:
                return nt, E_NOT_ITEM, pos - 8
            if sp >= size:
                return nt, E_DEPTH, pos
            s_kind[sp] = 1
            s_implicit[sp] = cur_implicit
            s_emit[sp] = emit
            if length == _UNDEFINED:
                s_end[sp] = -1
                s_limit[sp] = limit
            else:
                if pos + length > limit:
                    return nt, E_TRUNCATED, pos
                s_end[sp] = pos + length
                s_limit[sp] = pos + length
            sp += 1
            if emit:
                if nt >= cap:
                    return nt, E_CAPACITY, pos
                kinds[nt] = ITEM_START
                nt += 1
            continue
        # Inside a data set (the top level or an item).
        if sp > 0:
            end = s_end[sp - 1]
            if end >= 0 and pos == end:
                sp -= 1
                if emit:
                    if nt >= cap:
                        return nt, E_CAPACITY, pos
                    kinds[nt] = ITEM_END
                    nt += 1
                continue
        elif pos == n:
            return nt, OK, pos
        if pos + 8 > limit:
            return nt, E_TRUNCATED, pos
        group = _u16(data, pos, big)
        tag = (group << 16) | _u16(data, pos + 2, big)
        if group == 0xFFFE:
            if tag == 0xFFFEE00D and sp > 0 and s_end[sp - 1] < 0:
                sp -= 1
                pos += 8
                if emit:
                    if nt >= cap:
                        return nt, E_CAPACITY, pos
                    kinds[nt] = ITEM_END
                    nt += 1
                continue
            return nt, E_DELIMITER, pos
        un_implicit = cur_implicit
        if cur_implicit:
            length = _u32(data, pos + 4, big)
            pos += 8
            is_seq = length == _UNDEFINED or _member(sequences, tag)
        else:
            a = np.int64(data[pos + 4])
            b = np.int64(data[pos + 5])
            if _long_vr(a, b):
                if pos + 12 > limit:
                    return nt, E_TRUNCATED, pos
                length = _u32(data, pos + 8, big)
                pos += 12
            else:
                length = _u16(data, pos + 6, big)
                pos += 8
            # PS3.5 6.2.2: UN of undefined length holds an implicit VR sequence.
            un_implicit = a == 85 and b == 78
            is_seq = (a == 83 and b == 81) or (un_implicit and length == _UNDEFINED)
        if is_seq:
            take = emit and _member(keep, tag)
            if length != _UNDEFINED:
                if pos + length > limit:
                    return nt, E_TRUNCATED, pos
                if not take:
                    pos += length
                    continue
            if sp >= size or sp >= 2 * max_depth:
                return nt, E_DEPTH, pos
            s_kind[sp] = 0
            s_implicit[sp] = un_implicit
            s_emit[sp] = take
            if length == _UNDEFINED:
                s_end[sp] = -1
                s_limit[sp] = limit
            else:
                s_end[sp] = pos + length
                s_limit[sp] = pos + length
            sp += 1
            if take:
                if nt >= cap:
                    return nt, E_CAPACITY, pos
                kinds[nt] = SEQ_START
                tags[nt] = tag
                nt += 1
        elif length == _UNDEFINED:
            # Encapsulated pixel data: fragments of defined length up to a sequence delimiter.
            while True:
                if pos + 8 > limit:
                    return nt, E_TRUNCATED, pos
                ftag = (_u16(data, pos, big) << 16) | _u16(data, pos + 2, big)
                flen = _u32(data, pos + 4, big)
                pos += 8
                if ftag == 0xFFFEE0DD:
                    break
                if ftag != 0xFFFEE000 or flen == _UNDEFINED or pos + flen > limit:
                    return nt, E_FRAGMENTS, pos - 8
                pos += flen
        else:
            if pos + length > limit:
                return nt, E_TRUNCATED, pos
            if emit and _member(keep, tag):
                if nt >= cap:
                    return nt, E_CAPACITY, pos
                kinds[nt] = VALUE
                tags[nt] = tag
                offsets[nt] = pos
                lengths[nt] = length
                nt += 1
            pos += length


_MESSAGES: Final = {
    E_TRUNCATED: "truncated or corrupt: an element runs past the end of the data or its item",
    E_DELIMITER: "unexpected delimiter tag (FFFE,xxxx) inside a data set",
    E_NOT_ITEM: "expected a sequence item (FFFE,E000)",
    E_FRAGMENTS: "malformed encapsulated data",
    E_CAPACITY: "more elements than the data can hold (reader bug)",
}


@functools.lru_cache(maxsize=16)
def _sorted_tags(tags: frozenset[int]) -> npt.NDArray[np.int64]:
    out = np.array(sorted(tags), dtype=np.int64)
    if out.size and (out[0] < 0 or out[-1] > 0xFFFFFFFF):
        raise ValueError("tags must be 32-bit (group << 16 | element)")
    out.flags.writeable = False
    return out


def tokenize(
    data: bytes,
    start: int,
    *,
    implicit: bool,
    big: bool,
    keep: frozenset[int],
    sequences: frozenset[int],
    max_depth: int,
) -> tuple[
    npt.NDArray[np.int8], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """Token arrays (kinds, tags, offsets, lengths) of the data set in ``data[start:]``."""
    if not 0 <= start <= len(data):
        raise ValueError(f"start = {start}: must lie within the {len(data)} bytes of data")
    if max_depth < 1:
        raise ValueError(f"max_depth = {max_depth}: must be at least 1")
    buffer = np.frombuffer(data, dtype=np.uint8)
    cap = len(data) // 4 + 8
    kinds = np.empty(cap, np.int8)
    tags = np.empty(cap, np.int64)
    offsets = np.empty(cap, np.int64)
    lengths = np.empty(cap, np.int64)
    keep_arr = _sorted_tags(keep)
    seq_arr = _sorted_tags(sequences)
    count, code, where = _tokenize(
        buffer, start, implicit, big, keep_arr, seq_arr, max_depth, kinds, tags, offsets, lengths
    )
    if code == E_DEPTH:
        raise DicomError(f"sequences nested deeper than {max_depth} levels at byte {where}")
    if code != OK:
        raise DicomError(f"{_MESSAGES.get(code, 'unreadable')} at byte {where}")
    return kinds[:count], tags[:count], offsets[:count], lengths[:count]
