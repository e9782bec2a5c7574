"""Targets: how a host is reached. ``lab`` is the in-process simulated host; ``psrp`` (pypsrp)
and ``winrm`` (pywinrm) are the remoting transports (with the Exchange endpoint over pypsrp)."""

from __future__ import annotations

from ..errors import TargetError
from ..inventory import Host
from ..lab import Lab
from .base import Target
from .memory import LabTarget
from .windows import RemoteTarget

__all__ = ["LabTarget", "RemoteTarget", "Target", "open_target"]


def open_target(host: Host, lab: Lab | None) -> Target:
    """A connected target for an inventory host; raises :class:`TargetError` if it cannot be."""
    transport = host.connection.transport
    if transport == "lab":
        simulated = lab.host(host.name) if lab is not None else None
        if simulated is None:
            where = lab.path if lab is not None and lab.path else "the built-in scenario"
            raise TargetError(host.name, f"transport lab: no simulated host named {host.name} in {where}")
        return LabTarget(host.name, simulated)
    return RemoteTarget(host)
