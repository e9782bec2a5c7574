"""Targets: how a host is reached. ``lab`` is the in-process simulated host; ``psrp`` (pypsrp)
and ``winrm`` (pywinrm) are the remoting transports (with the Exchange endpoint over pypsrp);
``ldap_url`` adds the directory (ldap3), and ``transport: ldap`` means the directory only."""

from __future__ import annotations

from ..errors import TargetError
from ..inventory import Host
from ..lab import Lab
from .base import Target
from .directory import DirectoryTarget
from .memory import LabTarget
from .routing import RoutedTarget
from .windows import RemoteTarget

__all__ = ["DirectoryTarget", "LabTarget", "RemoteTarget", "RoutedTarget", "Target", "open_target"]


def open_target(host: Host, lab: Lab | None) -> Target:
    """A connected target for an inventory host; raises :class:`TargetError` if it cannot be."""
    transport = host.connection.transport
    if transport == "lab":
        simulated = lab.host(host.name) if lab is not None else None
        if simulated is None:
            where = lab.path if lab is not None and lab.path else "the built-in scenario"
            raise TargetError(host.name, f"transport lab: no simulated host named {host.name} in {where}")
        return LabTarget(host.name, simulated)
    windows = None if transport == "ldap" else RemoteTarget(host)
    directory = DirectoryTarget(host) if host.connection.ldap_url else None
    if directory is None and transport == "ldap":
        raise TargetError(host.name, "transport ldap needs connection.ldap_url (ldaps://DC)")
    return RoutedTarget(host.name, windows, directory,
                        missing_windows=f"{host.name} is reached over LDAP only (transport: ldap): this control "
                        "needs WinRM; give the host a WinRM transport (psrp or winrm) and keep ldap_url",
                        missing_directory=f"this control acts on the directory: set connection.ldap_url for "
                        f"{host.name} (ldaps://DC)")
