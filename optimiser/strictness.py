"""How strictly malformed input is treated: a setting, as in pydicom's ``config.settings``.

``ignore`` drops a malformed item silently, ``warn`` (the default) drops it and records a warning
that names the file, the item and the value, ``raise`` stops with :class:`MalformedItemError`.
"""

from __future__ import annotations

import enum
import logging

from optimiser.errors import MalformedItemError

log = logging.getLogger("lowdose.input")


class Strictness(enum.StrEnum):
    IGNORE = "ignore"
    WARN = "warn"
    RAISE = "raise"


class Problems:
    """Collects malformed-item reports for one input under one strictness setting."""

    __slots__ = ("source", "strictness", "warnings")

    def __init__(self, source: str, strictness: Strictness = Strictness.WARN) -> None:
        self.source = source
        self.strictness = strictness
        self.warnings: list[str] = []

    def report(self, item: str, value: object, rule: str) -> None:
        """Handle one malformed item: ``item`` names it, ``rule`` says what it breaks."""
        message = f"{self.source}: {item} = {value!r}: {rule}"
        if self.strictness is Strictness.RAISE:
            raise MalformedItemError(f"{item} = {value!r}: {rule}", source=self.source)
        if self.strictness is Strictness.WARN:
            self.warnings.append(message)
            log.warning(message)

    def note(self, message: str) -> None:
        """Record a non-fatal observation (e.g. a total mismatch) in every mode but ``ignore``."""
        if self.strictness is not Strictness.IGNORE:
            self.warnings.append(f"{self.source}: {message}")
            log.warning("%s: %s", self.source, message)
