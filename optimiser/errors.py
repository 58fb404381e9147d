"""The project's exception hierarchy.

Every error lowdose raises on purpose derives from :class:`LowdoseError`; third-party errors are
wrapped with ``raise ... from`` so a caller (the CLI, the stream consumer's bad-message policy)
needs to catch exactly one type. Messages name the field, the value, the rule and the remedy.
"""

from __future__ import annotations


class LowdoseError(Exception):
    """Root of every error raised by lowdose."""


class ConfigurationError(LowdoseError):
    """Settings, command-line arguments or a site library file are invalid."""


class InputError(LowdoseError):
    """An input message or file cannot be used (wrong schema, wrong kind of file)."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class DicomError(InputError):
    """A DICOM file (dose report, structure set, image) cannot be read or is not what was asked.

    ``source`` names the file (or message) and ``reason`` says what is wrong with it.
    """

    def __init__(self, reason: str, *, source: str | None = None) -> None:
        self.reason = reason
        super().__init__(reason, source=source)


class MalformedItemError(DicomError):
    """One content item of a report breaks a rule (raised only in ``raise`` strictness)."""
