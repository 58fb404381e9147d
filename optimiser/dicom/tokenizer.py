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
CODE: Final = 5
NUM: Final = 6

_MEASURED_VALUES: Final = 0x0040A300
_NUMERIC_VALUE: Final = 0x0040A30A
_UNITS: Final = 0x004008EA

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
        return int((np.int64(data[pos]) << 8) | np.int64(data[pos + 1]))
    return int(np.int64(data[pos]) | (np.int64(data[pos + 1]) << 8))


@numba.njit(cache=True, nogil=True, inline="always")
def _u32(data: npt.NDArray[np.uint8], pos: int, big: bool) -> int:
    if big:
        return int(
            (np.int64(data[pos]) << 24)
            | (np.int64(data[pos + 1]) << 16)
            | (np.int64(data[pos + 2]) << 8)
            | np.int64(data[pos + 3])
        )
    return int(
        np.int64(data[pos])
        | (np.int64(data[pos + 1]) << 8)
        | (np.int64(data[pos + 2]) << 16)
        | (np.int64(data[pos + 3]) << 24)
    )


@numba.njit(cache=True, nogil=True, inline="always")
def _member(sorted_tags: npt.NDArray[np.int64], tag: int) -> bool:
    i = np.searchsorted(sorted_tags, tag)
    return bool(i < sorted_tags.shape[0] and sorted_tags[i] == tag)


@numba.njit(cache=True, nogil=True, inline="always")
def _long_vr(a: int, b: int) -> bool:
    # PS3.5 table 7.1-1: OB OD OF OL OV OW SQ SV UC UN UR UT UV have a 4-byte length.
    if a == 79:  # 'O'
        return b == 66 or b == 68 or b == 70 or b == 76 or b == 86 or b == 87
    if a == 85:  # 'U'
        return b == 67 or b == 78 or b == 82 or b == 84 or b == 86
    return a == 83 and (b == 81 or b == 86)  # SQ SV


@numba.njit(cache=True, nogil=True, inline="always")
def _trim(data: npt.NDArray[np.uint8], start: int, length: int) -> tuple[int, int]:
    # Value padding (PS3.5 6.2): spaces and NULs at either end carry no meaning.
    end = start + length
    while start < end and (data[start] == 32 or data[start] == 0):
        start += 1
    while end > start and (data[end - 1] == 32 or data[end - 1] == 0):
        end -= 1
    return start, end - start


@numba.njit(cache=True, nogil=True, inline="always")
def _row(out: npt.NDArray[np.int64], i: int, kind: int, tag: int, start: int, end: int) -> None:
    # Unused columns are zeroed: small ints are free to turn into Python objects.
    out[i, 0] = kind
    out[i, 1] = tag
    out[i, 2] = start
    out[i, 3] = end
    out[i, 4] = 0
    out[i, 5] = 0
    out[i, 6] = 0
    out[i, 7] = 0


@numba.njit(cache=True, nogil=True)
def _tokenize(
    data: npt.NDArray[np.uint8],
    start: int,
    implicit: bool,
    big: bool,
    keep: npt.NDArray[np.int64],
    sequences: npt.NDArray[np.int64],
    codes: npt.NDArray[np.int64],
    max_depth: int,
    out: npt.NDArray[np.int64],
) -> tuple[int, int, int]:
    """Fill ``out`` rows (kind, tag, start, end, start2, end2, start3, end3) of byte spans.

    A kept code sequence (``codes``) becomes one CODE row: the trimmed code value (Code Value,
    else Long Code Value, else URN Code Value), Coding Scheme Designator and Code Meaning of its
    first item. A kept Measured Value Sequence becomes one NUM row: the Numeric Value and the
    code value and scheme of the Measurement Units Code Sequence of its first item.
    Returns (rows written, error code, byte position of the error).
    """
    n = data.shape[0]
    cap = out.shape[0]
    size = 2 * max_depth + 2
    # Per stack entry: kind (0 sequence, 1 item), defined end or -1, limit, implicit, emitting,
    # role (0 none, 1 kept code sequence, 2 its first item, 3 a later item, 4 kept measured
    # value sequence, 5 its first item), items seen.
    s_kind = np.zeros(size, np.int8)
    s_end = np.zeros(size, np.int64)
    s_limit = np.zeros(size, np.int64)
    s_implicit = np.zeros(size, np.bool_)
    s_emit = np.zeros(size, np.bool_)
    s_code = np.zeros(size, np.int8)
    s_count = np.zeros(size, np.int64)
    s_tag = np.zeros(size, np.int64)
    c_slot = np.zeros((size, 6), np.int64)  # value, scheme, meaning: offset and length each
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
            closing = end >= 0 and pos == end
            if not closing:
                if pos + 8 > limit:
                    return nt, E_TRUNCATED, pos
                tag = (_u16(data, pos, big) << 16) | _u16(data, pos + 2, big)
                length = _u32(data, pos + 4, big)
                pos += 8
                closing = tag == 0xFFFEE0DD and end < 0
                if not closing and tag != 0xFFFEE000:
                    return nt, E_NOT_ITEM, pos - 8
            if closing:
                sp -= 1
                if s_code[sp] == 1 and sp >= 2 and s_code[sp - 1] == 5:
                    # Units of a measured value: into the measured value's slots, no row.
                    for k in range(4):
                        c_slot[sp - 2, 2 + k] = c_slot[sp, k]
                elif emit or s_code[sp] == 1 or s_code[sp] == 4:
                    if nt >= cap:
                        return nt, E_CAPACITY, pos
                    if s_code[sp] == 1 or s_code[sp] == 4:
                        out[nt, 0] = CODE if s_code[sp] == 1 else NUM
                        out[nt, 1] = s_tag[sp]
                        for k in range(6):
                            out[nt, 2 + k] = c_slot[sp, k]
                    else:
                        _row(out, nt, SEQ_END, 0, 0, 0)
                    nt += 1
                continue
            if sp >= size:
                return nt, E_DEPTH, pos
            s_kind[sp] = 1
            s_implicit[sp] = cur_implicit
            s_emit[sp] = emit
            s_code[sp] = 0
            if s_code[sp - 1] == 1:
                s_code[sp] = 2 if s_count[sp - 1] == 0 else 3
            elif s_code[sp - 1] == 4:
                s_code[sp] = 5 if s_count[sp - 1] == 0 else 3
            s_count[sp - 1] += 1
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
                _row(out, nt, ITEM_START, 0, 0, 0)
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
                    _row(out, nt, ITEM_END, 0, 0, 0)
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
                    _row(out, nt, ITEM_END, 0, 0, 0)
                    nt += 1
                continue
            return nt, E_DELIMITER, pos
        un_implicit = cur_implicit
        if cur_implicit:
            length = _u32(data, pos + 4, big)
            pos += 8
            is_seq = length == _UNDEFINED or _member(sequences, tag)
        else:
            a = int(data[pos + 4])
            b = int(data[pos + 5])
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
            in_number = sp > 0 and s_code[sp - 1] == 5
            take = (emit and _member(keep, tag)) or (in_number and tag == _UNITS)
            if length != _UNDEFINED:
                if pos + length > limit:
                    return nt, E_TRUNCATED, pos
                if not take:
                    pos += length
                    continue
            if sp >= size or sp >= 2 * max_depth:
                return nt, E_DEPTH, pos
            is_code = take and _member(codes, tag)
            is_number = take and tag == _MEASURED_VALUES
            s_kind[sp] = 0
            s_implicit[sp] = un_implicit
            s_emit[sp] = take and not is_code and not is_number
            s_code[sp] = 1 if is_code else 4 if is_number else 0
            s_count[sp] = 0
            s_tag[sp] = tag
            for k in range(6):
                c_slot[sp, k] = 0
            if length == _UNDEFINED:
                s_end[sp] = -1
                s_limit[sp] = limit
            else:
                s_end[sp] = pos + length
                s_limit[sp] = pos + length
            sp += 1
            if take and not is_code and not is_number:
                if nt >= cap:
                    return nt, E_CAPACITY, pos
                _row(out, nt, SEQ_START, tag, 0, 0)
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
            if sp > 0 and s_code[sp - 1] == 5:
                if tag == _NUMERIC_VALUE:
                    first, count = _trim(data, pos, length)
                    c_slot[sp - 2, 0] = first
                    c_slot[sp - 2, 1] = first + count
            elif sp > 0 and s_code[sp - 1] == 2:
                seq = sp - 2
                slot = -1
                if tag == 0x00080100 or tag == 0x00080119 or tag == 0x00080120:
                    if c_slot[seq, 1] == c_slot[seq, 0]:  # no non-empty value yet
                        slot = 0
                elif tag == 0x00080102:
                    slot = 2
                elif tag == 0x00080104:
                    slot = 4
                if slot >= 0:
                    first, count = _trim(data, pos, length)
                    c_slot[seq, slot] = first
                    c_slot[seq, slot + 1] = first + count
            elif emit and _member(keep, tag):
                if nt >= cap:
                    return nt, E_CAPACITY, pos
                first, count = _trim(data, pos, length)
                _row(out, nt, VALUE, tag, first, first + count)
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
    codes: frozenset[int],
    max_depth: int,
) -> npt.NDArray[np.int64]:
    """Token rows (kind, tag, start, end, start2, end2, start3, end3) of the data set in
    ``data[start:]``; value spans are trimmed of padding; see :func:`_tokenize`."""
    if not 0 <= start <= len(data):
        raise ValueError(f"start = {start}: must lie within the {len(data)} bytes of data")
    if max_depth < 1:
        raise ValueError(f"max_depth = {max_depth}: must be at least 1")
    buffer = np.frombuffer(data, dtype=np.uint8)
    out = np.empty((len(data) // 4 + 8, 8), np.int64)
    count, code, where = _tokenize(
        buffer,
        start,
        implicit,
        big,
        _sorted_tags(keep),
        _sorted_tags(sequences),
        _sorted_tags(codes),
        max_depth,
        out,
    )
    if code == E_DEPTH:
        raise DicomError(f"sequences nested deeper than {max_depth} levels at byte {where}")
    if code != OK:
        raise DicomError(f"{_MESSAGES.get(code, 'unreadable')} at byte {where}")
    return out[:count]
