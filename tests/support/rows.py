"""Hand-made kernel rows for unit tests: the keywords of a row's parts, sorted into the parts.

Each field name belongs to exactly one part of :class:`~optimiser.dose_model.AcquisitionRow`
(identity, geometry, exposure, context), so a test can say ``make_row(ctdivol_mgy=34.0,
site="prostate", ...)`` and get the same row as building each part itself.
"""

from __future__ import annotations

from typing import Any

from optimiser.dose_model import AcquisitionRow, RowContext, RowExposure, RowGeometry, RowIdentity

_PARTS: dict[str, type[Any]] = {
    "identity": RowIdentity,
    "geometry": RowGeometry,
    "exposure": RowExposure,
    "context": RowContext,
}
_PART_OF = {name: part for part, cls in _PARTS.items() for name in cls._fields}


def make_row(*, unusable: str | None = None, **values: Any) -> AcquisitionRow:
    """A row from the fields of its parts, given by name (a name of no part is a TypeError)."""
    by_part: dict[str, dict[str, Any]] = {part: {} for part in _PARTS}
    for name, value in values.items():
        if name not in _PART_OF:
            raise TypeError(f"no part of a row has a field {name!r}")
        by_part[_PART_OF[name]][name] = value
    parts = {part: cls(**by_part[part]) for part, cls in _PARTS.items()}
    return AcquisitionRow(**parts, unusable=unusable)
