"""A small, bounded byte-level reader of DICOM data sets (PS3.5 sections 7 and 10).

Why not pydicom's ``dcmread``: a dose report is a few hundred tiny content items, and building
pydicom's element objects for each costs far more than the handful of strings lowdose needs. This
reader walks the bytes once and keeps only the tags it is asked for, as text; sequences it is asked
for become lists of dicts. It reads explicit and implicit VR little endian, explicit VR big endian
and deflated explicit VR little endian, defined and undefined lengths, and encapsulated pixel data
(skipped). Character sets other than one single-byte or UTF-8 term are decoded by pydicom's
``charset`` module.

It is hostile-input safe by construction: every length is checked against the bytes that remain,
nesting is bounded (:data:`MAX_DEPTH`), nothing is allocated from a length field, deflated data is
inflated with a cap, and every failure is a :class:`~optimiser.errors.DicomError`.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from dataclasses import dataclass, field
from typing import Final

from optimiser.errors import DicomError

CodeTuple = tuple[str, str, str]  # (code value, coding scheme designator, code meaning)
Value = str | list["Dataset"] | CodeTuple
Dataset = dict[int, Value]

MAX_DEPTH = 48
MAX_INFLATED_BYTES = 64 * 1024 * 1024

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"

_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQ_END = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_CHARSET = 0x00080005
# Code sequences whose first item is read as a CodeTuple (PS3.3 Table 8.8-1 code attributes).
CODE_SEQUENCES: Final = frozenset({0x0040A043, 0x0040A168, 0x004008EA})
MEASURED_VALUES: Final = 0x0040A300  # read as (Numeric Value, unit code value, unit scheme)
_CODE_VALUES = (0x00080100, 0x00080119, 0x00080120)  # Code, Long Code, URN Code Value
_TRANSFER_SYNTAX = 0x00020010

# PS3.5 table 7.1-1: these VRs have a 2-byte reserved field and a 4-byte length.
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)

# Single-byte and UTF-8 Specific Character Set terms (PS3.3 C.12.1.1.2) with Python codecs;
# pydicom's own table, restated so that the fast path needs no pydicom import.
_CODECS = {
    "": "latin_1",
    "ISO_IR 6": "latin_1",
    "ISO_IR 100": "latin_1",
    "ISO_IR 101": "iso8859_2",
    "ISO_IR 109": "iso8859_3",
    "ISO_IR 110": "iso8859_4",
    "ISO_IR 144": "iso8859_5",
    "ISO_IR 127": "iso8859_6",
    "ISO_IR 126": "iso8859_7",
    "ISO_IR 138": "iso8859_8",
    "ISO_IR 148": "iso8859_9",
    "ISO_IR 203": "iso8859_15",
    "ISO_IR 13": "shift_jis",
    "ISO_IR 166": "iso_ir_166",
    "ISO_IR 192": "UTF8",
    "GB18030": "GB18030",
    "GBK": "GBK",
}
_STRIP = " \x00"
_NOTHING: frozenset[int] = frozenset()


@dataclass(slots=True)
class Parsed:
    """The kept elements of a file: file meta information and the data set proper."""

    meta: Dataset
    dataset: Dataset
    transfer_syntax: str
    has_preamble: bool
    warnings: list[str] = field(default_factory=list)


class _Reader:
    __slots__ = ("big", "codec", "data", "h", "hh", "hhi", "i", "keep", "sequences", "terms")

    def __init__(
        self, data: bytes, keep: frozenset[int], sequences: frozenset[int], big: bool
    ) -> None:
        self.data = data
        self.keep = keep
        self.sequences = sequences
        self.big = big
        order = ">" if big else "<"
        self.hh = struct.Struct(order + "HH").unpack_from
        self.hhi = struct.Struct(order + "HHI").unpack_from
        self.h = struct.Struct(order + "H").unpack_from
        self.i = struct.Struct(order + "I").unpack_from
        self.codec = "latin_1"
        self.terms: list[str] | None = None

    def text(self, raw: bytes) -> str:
        if self.terms is None:
            return raw.decode(self.codec, "replace").strip(_STRIP)
        from pydicom.charset import decode_bytes

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return decode_bytes(raw, self.terms, set()).strip(_STRIP)
        except Exception:  # pydicom's decoder may raise anything on hostile bytes
            return raw.decode("latin_1").strip(_STRIP)

    def set_charset(self, raw: bytes) -> None:
        value = raw.decode("latin_1").strip(_STRIP)
        terms = [t.strip() for t in value.split("\\")]
        if len(terms) == 1 and terms[0] in _CODECS:
            self.codec = _CODECS[terms[0]]
            return
        # ISO 2022 code extensions or several terms: pydicom's decoder handles the escapes.
        from pydicom.charset import convert_encodings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.terms = convert_encodings(terms)
        except Exception:
            self.terms = None

    def dataset(
        self, pos: int, end: int, depth: int, delimited: bool, implicit: bool, keep: bool
    ) -> tuple[Dataset, int]:
        """Read elements from ``pos`` to ``end`` (or to an item delimiter when ``delimited``)."""
        data = self.data
        wanted = self.keep if keep else _NOTHING
        out: Dataset = {}
        while pos < end:
            if pos + 8 > end:
                raise _truncated(pos)
            group, elem = self.hh(data, pos)
            tag = (group << 16) | elem
            if group == 0xFFFE:
                if tag == _ITEM_END and delimited:
                    return out, pos + 8
                raise DicomError(f"unexpected delimiter ({group:04X},{elem:04X}) at byte {pos}")
            if implicit:
                (length,) = self.i(data, pos + 4)
                pos += 8
                is_seq = tag in self.sequences or length == _UNDEFINED
                un_implicit = True
            else:
                vr = data[pos + 4 : pos + 6]
                if vr in _LONG_VRS:
                    if pos + 12 > end:
                        raise _truncated(pos)
                    (length,) = self.i(data, pos + 8)
                    pos += 12
                else:
                    (length,) = self.h(data, pos + 6)
                    pos += 8
                # PS3.5 6.2.2: UN of undefined length holds an implicit VR sequence.
                un_implicit = vr == b"UN"
                is_seq = vr == b"SQ" or (un_implicit and length == _UNDEFINED)
            if is_seq:
                take = tag in wanted
                items, pos = self.sequence(pos, length, end, depth + 1, un_implicit, take)
                if take:
                    if tag in CODE_SEQUENCES:
                        out[tag] = _code_tuple(items)
                    elif tag == MEASURED_VALUES:
                        out[tag] = _number_tuple(items)
                    else:
                        out[tag] = items
            elif length == _UNDEFINED:
                pos = self.fragments(pos, end)
            else:
                nxt = pos + length
                if nxt > end:
                    raise _truncated(pos, f"element ({group:04X},{elem:04X}) of {length} bytes")
                if tag in wanted:
                    # Honoured as the first kept element only, as the tokenizer path does.
                    if tag == _CHARSET and depth == 0 and not out:
                        self.set_charset(data[pos:nxt])
                    out[tag] = self.text(data[pos:nxt])
                pos = nxt
        if delimited:
            raise _truncated(pos, "an item with no item delimiter")
        return out, pos

    def sequence(
        self, pos: int, length: int, end: int, depth: int, implicit: bool, keep: bool
    ) -> tuple[list[Dataset], int]:
        undefined = length == _UNDEFINED
        if undefined:
            seq_end = end
        else:
            seq_end = pos + length
            if seq_end > end:
                raise _truncated(pos, f"a sequence of {length} bytes")
            if not keep:
                return [], seq_end
        if depth > MAX_DEPTH:
            raise DicomError(f"sequences nested deeper than {MAX_DEPTH} levels at byte {pos}")
        data = self.data
        items: list[Dataset] = []
        while pos < seq_end:
            if pos + 8 > seq_end:
                raise _truncated(pos)
            group, elem, item_length = self.hhi(data, pos)
            tag = (group << 16) | elem
            pos += 8
            if tag == _SEQ_END and undefined:
                return items, pos
            if tag != _ITEM:
                raise DicomError(
                    f"expected a sequence item (FFFE,E000), found ({group:04X},{elem:04X}) "
                    f"at byte {pos - 8}"
                )
            if item_length == _UNDEFINED:
                ds, pos = self.dataset(pos, seq_end, depth, True, implicit, keep)
            else:
                item_end = pos + item_length
                if item_end > seq_end:
                    raise _truncated(pos, f"an item of {item_length} bytes")
                ds, _ = self.dataset(pos, item_end, depth, False, implicit, keep)
                pos = item_end
            if keep:
                items.append(ds)
        if undefined:
            raise _truncated(pos, "a sequence with no sequence delimiter")
        return items, pos

    def fragments(self, pos: int, end: int) -> int:
        """Skip encapsulated pixel data: items of defined length up to a sequence delimiter."""
        data = self.data
        while pos + 8 <= end:
            group, elem, length = self.hhi(data, pos)
            tag = (group << 16) | elem
            pos += 8
            if tag == _SEQ_END:
                return pos
            if tag != _ITEM or length == _UNDEFINED or pos + length > end:
                raise DicomError(f"malformed encapsulated data at byte {pos - 8}")
            pos += length
        raise _truncated(pos, "encapsulated data with no sequence delimiter")


def _code_tuple(items: list[Dataset]) -> CodeTuple:
    """The first item of a code sequence as (value, scheme, meaning); empty strings if absent."""
    if not items:
        return ("", "", "")
    first = items[0]
    value = ""
    for tag, text in first.items():
        if tag in _CODE_VALUES and isinstance(text, str) and text and not value:
            value = text
    scheme = first.get(0x00080102, "")
    meaning = first.get(0x00080104, "")
    return (
        value,
        scheme if isinstance(scheme, str) else "",
        meaning if isinstance(meaning, str) else "",
    )


def _number_tuple(items: list[Dataset]) -> CodeTuple:
    """The first item of a Measured Value Sequence as (numeric value, unit value, unit scheme)."""
    if not items:
        return ("", "", "")
    first = items[0]
    number = first.get(0x0040A30A, "")
    unit = first.get(0x004008EA, ("", "", ""))
    if not isinstance(unit, tuple):
        unit = ("", "", "")
    return (number if isinstance(number, str) else "", unit[0], unit[1])


def _truncated(pos: int, what: str = "an element header") -> DicomError:
    return DicomError(f"truncated or corrupt: {what} runs past the end of the data at byte {pos}")


_META_KEEP = frozenset({_TRANSFER_SYNTAX, 0x00020002, 0x00020003})


def parse(
    data: bytes, keep: frozenset[int], sequences: frozenset[int], *, engine: str = "numba"
) -> Parsed:
    """Read ``data`` (a DICOM file or a bare data set), keeping the tags in ``keep``.

    ``sequences`` names the tags that are sequences, needed for implicit VR data where a sequence
    of defined length cannot be told from bytes otherwise. ``engine`` is ``"numba"`` (the
    tokenizer kernel, :mod:`optimiser.dicom.tokenizer`) or ``"python"`` (its reference twin,
    this module's recursive reader); both give the same result or the same error.
    """
    if engine not in ("numba", "python"):
        raise ValueError(f"engine = {engine!r}: must be 'numba' or 'python'")
    size = len(data)
    has_preamble = size >= 132 and data[128:132] == b"DICM"
    pos = 132 if has_preamble else 0
    meta: Dataset = {}
    if pos + 8 <= size and data[pos : pos + 2] == b"\x02\x00":
        meta_end = pos
        # Group 2 is always explicit VR little endian; find its end by walking it.
        while meta_end + 8 <= size and data[meta_end : meta_end + 2] == b"\x02\x00":
            vr = data[meta_end + 4 : meta_end + 6]
            if vr in _LONG_VRS:
                if meta_end + 12 > size:
                    raise _truncated(meta_end, "the file meta information")
                meta_end += 12 + int.from_bytes(data[meta_end + 8 : meta_end + 12], "little")
            else:
                meta_end += 8 + int.from_bytes(data[meta_end + 6 : meta_end + 8], "little")
        if meta_end > size:
            raise _truncated(size, "the file meta information")
        reader = _Reader(data, _META_KEEP, frozenset(), big=False)
        meta, _ = reader.dataset(pos, meta_end, 0, False, False, True)
        pos = meta_end
    elif not has_preamble and not _looks_like_dataset(data):
        raise DicomError("not a DICOM file: no 'DICM' preamble and no data set at the start")
    syntax = meta.get(_TRANSFER_SYNTAX)
    if syntax is not None and not isinstance(syntax, str):
        raise DicomError("Transfer Syntax UID (0002,0010) is a sequence")
    if syntax is None:
        syntax = _guess_syntax(data, pos)
    body = data
    if syntax == DEFLATED_LE:
        body, pos = _inflate(data[pos:]), 0
    if syntax == IMPLICIT_LE:
        implicit, big = True, False
    elif syntax == EXPLICIT_BE:
        implicit, big = False, True
    else:
        # Every other transfer syntax (compressed pixel data) encodes the data set itself in
        # explicit VR little endian (PS3.5 A.4).
        implicit, big = False, False
    reader = _Reader(body, keep, sequences, big)
    if engine == "numba":
        dataset = _build(reader, body, pos, implicit, big)
    else:
        dataset, _ = reader.dataset(pos, len(body), 0, False, implicit, True)
    return Parsed(meta=meta, dataset=dataset, transfer_syntax=syntax, has_preamble=has_preamble)


_SINGLE_BYTE = frozenset(c for c in _CODECS.values() if c.startswith(("latin", "iso8859")))


def _build(reader: _Reader, data: bytes, pos: int, implicit: bool, big: bool) -> Dataset:
    """The data set tree from the tokenizer kernel's rows (values decoded here)."""
    from optimiser.dicom.tokenizer import CODE, ITEM_START, NUM, SEQ_START, VALUE, tokenize

    rows = tokenize(
        data,
        pos,
        implicit=implicit,
        big=big,
        keep=reader.keep,
        sequences=reader.sequences,
        codes=CODE_SEQUENCES,
        max_depth=MAX_DEPTH,
    ).tolist()
    if rows and rows[0][0] == VALUE and rows[0][1] == _CHARSET:
        reader.set_charset(data[rows[0][2] : rows[0][3]])
    if reader.terms is None and reader.codec in _SINGLE_BYTE:
        # One byte is one character: decode once, then slice (the hot loop of the reader).
        whole = data.decode(reader.codec)
    else:
        text = reader.text
        whole = None
    root: Dataset = {}
    current = root
    items: list[Dataset] = []
    stack: list[tuple[Dataset, list[Dataset]]] = []
    for kind, tag, a1, b1, a2, b2, a3, b3 in rows:
        if kind in (CODE, NUM):
            if whole is not None:
                current[tag] = (whole[a1:b1], whole[a2:b2], whole[a3:b3])
            else:
                current[tag] = (text(data[a1:b1]), text(data[a2:b2]), text(data[a3:b3]))
        elif kind == VALUE:
            current[tag] = whole[a1:b1] if whole is not None else text(data[a1:b1])
        elif kind == ITEM_START:
            item: Dataset = {}
            items.append(item)
            stack.append((current, items))
            current = item
        elif kind == SEQ_START:
            new: list[Dataset] = []
            current[tag] = new
            stack.append((current, items))
            items = new
        else:  # ITEM_END or SEQ_END
            current, items = stack.pop()
    return root


def _looks_like_dataset(data: bytes) -> bool:
    # A bare data set (no preamble) starts with a group 0008 element, as pydicom's force=True
    # readers of such files assume; anything else is not worth guessing at.
    return len(data) >= 8 and data[0:2] == b"\x08\x00"


def _guess_syntax(data: bytes, pos: int) -> str:
    vr = data[pos + 4 : pos + 6]
    if len(vr) == 2 and vr.isalpha() and vr.isupper():
        return EXPLICIT_LE
    return IMPLICIT_LE


def _inflate(raw: bytes) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, MAX_INFLATED_BYTES)
    except zlib.error as exc:
        raise DicomError(f"deflated data set cannot be inflated: {exc}") from exc
    if inflater.unconsumed_tail:
        raise DicomError(
            f"deflated data set inflates beyond {MAX_INFLATED_BYTES} bytes; refusing to read it"
        )
    return out
