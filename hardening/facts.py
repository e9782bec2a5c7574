"""What a host is: OS, PowerShell, Exchange version, roles and paths.

Facts are read once per host (one round trip) unless the inventory declares them, and decide
which variant of each kind applies. Declared facts win over read ones, key by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .model import ScriptCall, Section

__all__ = ["FACTS_SECTION_ID", "SE_FIRST_BUILD", "Facts", "facts_section"]

FACTS_SECTION_ID = "_facts"

# [U] Exchange SE reports 15.2 like 2019; its RTM build is believed to be 15.2.2562. Override per
# host with the declared fact ``exchange_release: SE`` (or ``2019``) if this guess is wrong.
SE_FIRST_BUILD = 2562

# Windows Server 2016+ all report 10.0; the build tells them apart [I].
OS_BUILDS = {14393: "2016", 17763: "2019", 20348: "2022", 26100: "2025"}


@dataclass(frozen=True)
class Facts:
    """A host's facts. Unknown values are None; ``exchange_roles`` is empty without Exchange."""

    computer_name: str | None = None
    os_caption: str | None = None
    os_version: str | None = None
    powershell_version: str | None = None
    exchange_version: str | None = None
    exchange_roles: tuple[str, ...] = ()
    exchange_install_path: str | None = None
    declared: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], declared: Mapping[str, Any] | None = None) -> Facts:
        """Build from what the facts section returned, then overlay the inventory's declared facts."""
        merged = {**data, **(declared or {})}
        roles = merged.get("exchange_roles") or ()
        if isinstance(roles, str):
            roles = tuple(r.strip() for r in roles.split(",") if r.strip())
        return cls(
            computer_name=_opt(merged.get("computer_name")),
            os_caption=_opt(merged.get("os_caption")),
            os_version=_opt(merged.get("os_version")),
            powershell_version=_opt(merged.get("powershell_version")),
            exchange_version=_opt(merged.get("exchange_version")),
            exchange_roles=tuple(str(r) for r in roles),
            exchange_install_path=_opt(merged.get("exchange_install_path")),
            declared=dict(declared or {}),
        )

    @property
    def os_release(self) -> str | None:
        """``2003``, ``2016`` … ``2025``, or None when unknown."""
        if "os_release" in self.declared:
            return str(self.declared["os_release"])
        parts = _numbers(self.os_version)
        if parts[:2] == (5, 2):
            return "2003"
        if parts[:2] == (10, 0) and len(parts) > 2:
            return OS_BUILDS.get(parts[2])
        return None

    @property
    def exchange_release(self) -> str | None:
        """``2003``, ``2016``, ``2019`` or ``SE``; None when Exchange is absent or unknown."""
        if "exchange_release" in self.declared:
            return str(self.declared["exchange_release"])
        parts = _numbers(self.exchange_version)
        if parts[:2] == (6, 5):
            return "2003"
        if parts[:2] == (15, 1):
            return "2016"
        if parts[:2] == (15, 2):
            return "SE" if len(parts) > 2 and parts[2] >= SE_FIRST_BUILD else "2019"
        return None

    @property
    def exchange_product(self) -> str | None:
        """The catalogue's product label, e.g. ``Exchange Server 2019``."""
        release = self.exchange_release
        return f"Exchange Server {release}" if release else None

    @property
    def windows_product(self) -> str | None:
        """The catalogue's product label, e.g. ``Windows Server 2022``."""
        release = self.os_release
        return f"Windows Server {release}" if release else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["exchange_roles"] = list(self.exchange_roles)
        data["declared"] = dict(self.declared)
        data.update(os_release=self.os_release, exchange_release=self.exchange_release)
        return data


def facts_section() -> Section:
    """The section that reads a host's facts (template ``facts.ps1.j2``)."""
    return Section(FACTS_SECTION_ID, (ScriptCall("facts", "read", {}),))


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _numbers(version: str | None) -> tuple[int, ...]:
    out: list[int] = []
    for part in (version or "").split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)
