"""The small error hierarchy of mar. The CLI turns every MarError into a clean message."""
from __future__ import annotations

from dataclasses import dataclass


class MarError(Exception):
    """Base class: anything the user can act on."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input line: where, which field, which value, and why."""

    line: int | None
    field: str
    value: object
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.field}={self.value!r}: {self.message}"


class InvalidEvents(MarError):
    """One or more input events are invalid; nothing was written."""

    def __init__(self, problems: list[Problem], source: str | None = None):
        self.problems = problems
        self.source = source
        count = len(problems)
        head = f"{source}: " if source else ""
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"{head}{count} problem{'s' if count != 1 else ''}, nothing written:\n{lines}"
        )


class UnknownPatient(MarError):
    def __init__(self, patient_id: str):
        super().__init__(f"no patient {patient_id!r} in this store")


class ConcurrencyConflict(MarError):
    """Another writer kept winning; the bounded retry gave up."""


class WriteRefused(MarError):
    """The store is read-only, or no user was given for a write."""


class StoreError(MarError):
    """The store cannot be opened or read (wrong key, corrupt file, bad URL)."""
