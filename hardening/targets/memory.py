"""The in-process lab target: a simulated host behind the same requests a real one gets.

Script sections are rendered to the real PowerShell bundle text and handed to the lab host,
which decodes them as a Windows host would read them; cmdlet calls are handed over as data,
as PSRP would carry them, and directory requests as :class:`~hardening.model.LdapCall` data, as
ldap3 would send them. ``requests`` counts what a real host would cost: one round trip for the
Windows bundle, one for the Exchange calls and one for the directory requests, when a bundle has
them. Results come back in bundle order whatever the channels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import TargetError
from ..lab import LabError, LabHost
from ..model import Bundle, CmdletCall, LdapCall, Section, SectionResult
from ..render import bundle_script
from .base import results_from_records

__all__ = ["LabTarget"]


class LabTarget:
    """A target backed by a :class:`~hardening.lab.LabHost` (simulated, in process)."""

    def __init__(self, name: str, host: LabHost) -> None:
        self.name = name
        self.host = host
        self.requests = 0
        self.closed = False

    def run(self, bundle: Bundle) -> list[SectionResult]:
        if self.closed:
            raise TargetError(self.name, "the connection is closed")
        script = [s for s in bundle if s.channel == "script"]
        cmdlets = [s for s in bundle if s.channel == "exchange"]
        directory = [s for s in bundle if s.channel == "directory"]
        results: dict[str, SectionResult] = {}
        if script:
            self.requests += 1
            try:
                lines = self.host.run_script(bundle_script(script))
            except LabError as exc:
                raise TargetError(self.name, str(exc)) from None
            results.update(results_from_records(script, lines))
        if cmdlets:
            self.requests += 1
            results.update((s.id, _each_call(s, CmdletCall, self.host.invoke)) for s in cmdlets)
        if directory:
            self.requests += 1
            results.update((s.id, _each_call(s, LdapCall, self.host.ldap)) for s in directory)
        return [results[s.id] for s in bundle]

    def close(self) -> None:
        self.closed = True


def _each_call(section: Section, kind: type[Any], answer: Callable[[Any], object]) -> SectionResult:
    """Every call of a section answered in turn; a refusal is that call's error, not the section's."""
    values: list[object] = []
    errors: list[str | None] = []
    for call in section.calls:
        if not isinstance(call, kind):
            raise TypeError(f"section {section.id}: a {section.channel} section takes {kind.__name__} calls only")
        try:
            values.append(answer(call))
            errors.append(None)
        except LabError as exc:
            values.append(None)
            errors.append(str(exc))
    return SectionResult(section.id, tuple(values), tuple(errors))
