"""Errors that stop a run. A failing control is an outcome, not one of these.

Every subclass carries named fields and builds its own sentence, so the CLI can print one
clear line (``file:line:col: key: what is wrong``) and exit 1 without a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "HardeningError",
    "InputError",
    "InputErrors",
    "InventoryError",
    "MissingVariablesError",
    "PlaybookError",
    "SecretError",
    "SourceLocation",
    "TargetError",
]


@dataclass(frozen=True)
class SourceLocation:
    """A place in a user's file: 1-based line and column."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


class HardeningError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1


class InputError(HardeningError):
    """Bad user input (a playbook, an inventory, a lab file, a parameter), with its place."""

    def __init__(self, location: SourceLocation, problem: str, key: str | None = None) -> None:
        self.location = location
        self.problem = problem
        self.key = key
        where = f"{location}: " if location.file else ""
        what = f"{key}: " if key else ""
        super().__init__(f"{where}{what}{problem}")


class InputErrors(HardeningError):
    """Several input errors found at once, each with its own place; one message, one line each."""

    def __init__(self, errors: Sequence[InputError], summary: str) -> None:
        self.errors = tuple(errors)
        self.summary = summary
        lines = [f"{summary} ({len(errors)} problem{'s' if len(errors) != 1 else ''}):"]
        lines += [f"  {error}" for error in errors]
        super().__init__("\n".join(lines))


class MissingVariablesError(InputError):
    """Variables that the selected controls use and nothing sets (site values have no defaults)."""

    def __init__(self, location: SourceLocation, problem: str, variables: Sequence[str]) -> None:
        self.variables = tuple(variables)
        super().__init__(location, problem)


class PlaybookError(InputError):
    """A playbook that cannot be loaded or validated."""


class InventoryError(InputError):
    """An inventory that cannot be loaded or validated."""


class SecretError(HardeningError):
    """A credential reference that cannot be resolved. Never carries the secret itself."""

    def __init__(self, reference: str, problem: str) -> None:
        self.reference = reference
        self.problem = problem
        super().__init__(f"credential {reference}: {problem}")


class TargetError(HardeningError):
    """A host could not be reached or talked to; the host's controls become failed outcomes."""

    def __init__(self, host: str, problem: str) -> None:
        self.host = host
        self.problem = problem
        super().__init__(f"{host}: {problem}")
