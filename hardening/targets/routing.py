"""One host's targets behind one :class:`~hardening.targets.base.Target`: each section goes to
the endpoint of its channel (the Windows host and its Exchange endpoint, or the directory).

A domain controller can be reached both ways: audit policy through WinRM, its directory's SACLs
over LDAP. A host with ``transport: ldap`` has no Windows side; one without ``ldap_url`` no
directory. A section whose endpoint the host lacks fails alone, with a sentence saying what to set.
"""

from __future__ import annotations

from ..model import Bundle, SectionResult
from .base import Target

__all__ = ["RoutedTarget"]


class RoutedTarget:
    """Windows (script and Exchange sections) and directory targets of one host."""

    def __init__(self, name: str, windows: Target | None, directory: Target | None,
                 missing_windows: str = "", missing_directory: str = "") -> None:
        self.name = name
        self.windows = windows
        self.directory = directory
        self.missing = {"windows": missing_windows, "directory": missing_directory}

    @property
    def requests(self) -> int:
        return sum(t.requests for t in (self.windows, self.directory) if t is not None)

    def run(self, bundle: Bundle) -> list[SectionResult]:
        results: dict[str, SectionResult] = {}
        for side, target in (("windows", self.windows), ("directory", self.directory)):
            sections = tuple(s for s in bundle if (s.channel == "directory") == (side == "directory"))
            if not sections:
                continue
            if target is None:
                for s in sections:
                    results[s.id] = SectionResult(s.id, tuple(None for _ in s.calls),
                                                  tuple(self.missing[side] for _ in s.calls))
                continue
            results.update({r.id: r for r in target.run(sections)})
        return [results[s.id] for s in bundle]

    def close(self) -> None:
        for target in (self.windows, self.directory):
            if target is not None:
                target.close()
