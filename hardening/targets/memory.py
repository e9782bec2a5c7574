"""The in-process lab target: a simulated host behind the same requests a real one gets.

Script sections are rendered to the real PowerShell bundle text and handed to the lab host,
which decodes them as a Windows host would read them; cmdlet calls are handed over as data,
as PSRP would carry them. ``requests`` counts what a real host would cost: one round trip for
the Windows bundle and one for the Exchange calls, when a bundle has them.
"""

from __future__ import annotations

from ..errors import TargetError
from ..lab import LabError, LabHost
from ..model import Bundle, CmdletCall, SectionResult
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
        script = [s for s in bundle if s.is_script]
        cmdlets = [s for s in bundle if not s.is_script]
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
            for section in cmdlets:
                values: list[object] = []
                errors: list[str | None] = []
                for call in section.calls:
                    assert isinstance(call, CmdletCall)
                    try:
                        values.append(self.host.invoke(call))
                        errors.append(None)
                    except LabError as exc:
                        values.append(None)
                        errors.append(str(exc))
                results[section.id] = SectionResult(section.id, tuple(values), tuple(errors))
        return [results[s.id] for s in bundle]

    def close(self) -> None:
        self.closed = True
