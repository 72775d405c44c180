"""User-facing errors.

Anything the user can fix (a bad argument, a malformed YAML profile, a trace of an unknown schema)
raises :class:`UserError`. The CLI prints its message as one line and exits with status 2, so user
mistakes never produce a traceback; real bugs still do.
"""
from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """An error caused by user input; ``str(err)`` is a complete one-line message."""

    def __init__(self, message: str, *, source: str | Path | None = None, field: str | None = None):
        self.source = str(source) if source is not None else None
        self.field = field
        parts = []
        if self.source:
            parts.append(self.source)
        if field:
            parts.append(f"field '{field}'")
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


def expect(cond: bool, message: str, *, source: str | Path | None = None, field: str | None = None) -> None:
    """Raise :class:`UserError` unless ``cond`` holds (keeps validation code one line per rule)."""
    if not cond:
        raise UserError(message, source=source, field=field)
