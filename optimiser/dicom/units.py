"""Measurement units of dose report numbers: UCUM codes (PS3.16 CID 82) normalised to lowdose's.

Every NUM of TID 10011/10013 carries its unit as a UCUM code. lowdose keeps mm, s, kV, mA, mGy and
mGy.cm; other UCUM units of the same dimension are converted. A few spellings that are not UCUM
but are seen in real files (``mGycm`` from GE, ../shared/reference/planning-ct.md section 2) are
repaired: the value is kept and a warning names the unit. Any other unit makes the value unusable.
"""

from __future__ import annotations

from typing import Final, NamedTuple

# quantity -> {UCUM code: factor to lowdose's unit}
CONVERSIONS: Final[dict[str, dict[str, float]]] = {
    "mm": {"mm": 1.0, "cm": 10.0, "m": 1000.0, "um": 0.001},
    "s": {"s": 1.0, "ms": 0.001, "min": 60.0},
    "kV": {"kV": 1.0, "V": 0.001},
    "mA": {"mA": 1.0, "A": 1000.0, "uA": 0.001},
    "mGy": {"mGy": 1.0, "Gy": 1000.0, "uGy": 0.001, "cGy": 10.0},
    "mGy.cm": {"mGy.cm": 1.0, "Gy.cm": 1000.0, "mGy.mm": 0.1, "uGy.m": 0.1, "Gy.m": 1.0e5},
}

# Non-UCUM spellings with an unambiguous meaning: spelling -> UCUM code.
MISSPELLINGS: Final[dict[str, str]] = {
    "mGycm": "mGy.cm",
    "mGy cm": "mGy.cm",
    "mGy*cm": "mGy.cm",
    "mGy-cm": "mGy.cm",
    "mgy.cm": "mGy.cm",
    "KV": "kV",
    "kVp": "kV",
    "MA": "mA",
    "mgy": "mGy",
    "sec": "s",
}


class Normalised(NamedTuple):
    value: float | None  # in lowdose's unit, None when the unit makes the value unusable
    problem: str | None  # the rule broken, when any


def normalise(value: float, unit: str | None, quantity: str) -> Normalised:
    """Convert ``value`` given in UCUM ``unit`` to ``quantity`` (one of :data:`CONVERSIONS`)."""
    table = CONVERSIONS[quantity]
    if unit is None:
        return Normalised(None, f"no measurement unit; expected {quantity} (UCUM)")
    factor = table.get(unit)
    if factor is not None:
        return Normalised(value * factor if factor != 1.0 else value, None)
    fixed = MISSPELLINGS.get(unit)
    if fixed is not None and fixed in table:
        factor = table[fixed]
        return Normalised(
            value * factor if factor != 1.0 else value,
            f"unit {unit!r} is not UCUM; read as {fixed!r} (write the UCUM code {fixed!r})",
        )
    return Normalised(
        None, f"unit {unit!r} is not a unit of {quantity}; expected one of {sorted(table)}"
    )
