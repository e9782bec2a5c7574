"""What the engine needs from a target, and reading a bundle's JSON records back.

Third-party and transport exceptions are caught in the targets and re-raised as
:class:`~hardening.errors.TargetError`; the engine sees nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ..model import Bundle, Section, SectionResult

__all__ = ["Target", "results_from_records"]


class Target(Protocol):
    """A host we talk to. ``requests`` counts the HTTP requests (or, in process, the round trips)
    made so far."""

    @property
    def requests(self) -> int:
        """Requests made to this host so far."""

    def run(self, bundle: Bundle) -> list[SectionResult]:
        """Send one bundle; one result per section, in order."""

    def close(self) -> None:
        """Release the connection; safe to call twice."""


def results_from_records(sections: Sequence[Section], lines: Iterable[str]) -> dict[str, SectionResult]:
    """Match the wrapper's JSON records to script sections; a call with no record failed silently."""
    records: dict[tuple[str, int], dict[str, Any]] = {}
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "id" in record and "n" in record:
            records[(str(record["id"]), int(record["n"]))] = record
    out: dict[str, SectionResult] = {}
    for section in sections:
        values: list[Any] = []
        errors: list[str | None] = []
        for n in range(len(section.calls)):
            record = records.get((section.id, n))
            if record is None:
                values.append(None)
                errors.append("the host returned no result for this call (the script stopped early?)")
            elif record.get("ok"):
                values.append(record.get("state"))
                errors.append(None)
            else:
                values.append(None)
                errors.append(str(record.get("error") or "unknown error"))
        out[section.id] = SectionResult(section.id, tuple(values), tuple(errors))
    return out
