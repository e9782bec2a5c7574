"""What every lab model shares: the errors a simulated host answers with, and parameter checks
done the way PowerShell binds parameters. Handlers are of three kinds, one per channel: template
blocks (script), cmdlets (exchange) and directory requests by LDAP operation (directory)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...model import CmdletCall, LdapCall

__all__ = [
    "Breakage",
    "CmdletHandler",
    "Consequences",
    "Dag",
    "LabCmdletError",
    "LabLdapError",
    "LabScriptError",
    "LdapHandler",
    "Organization",
    "ScriptHandler",
    "StateSection",
    "bind",
    "bool_param",
    "enum_param",
    "require_server",
]

State = dict[str, Any]
CmdletHandler = Callable[[State, CmdletCall], list[dict[str, Any]]]
ScriptHandler = Callable[[State, Any], Any]
LdapHandler = Callable[[State, LdapCall], Any]


@dataclass(frozen=True)
class Breakage:
    """Something an apply broke in the simulated organisation (mail flow, a DAG, backups, management)."""

    host: str      # the lab host where it breaks
    what: str      # a short key: cluster-heartbeat, witness, management, rdp, mail-over-quota, ipsec-window …
    sentence: str  # what breaks, for people

    def __str__(self) -> str:
        return f"{self.host}: {self.what}: {self.sentence}"


@dataclass(frozen=True)
class Dag:
    """A database availability group: its member servers and the server holding its file share witness."""

    name: str
    members: tuple[str, ...]
    witness_server: str | None = None


@dataclass(frozen=True)
class Organization:
    """What the lab's hosts are to each other: addresses, networks, DAGs, domain controllers, and the
    ports this run manages each host through. Built by :mod:`hardening.lab.rehearsal`."""

    addresses: Mapping[str, str]           # lab host → its address
    networks: Mapping[str, str]            # admin, controller, backup, monitoring, clients, internet → CIDR/address
    domain_controllers: Mapping[str, str]  # name → address
    dags: tuple[Dag, ...] = ()
    management_ports: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # lab host → WinRM etc.
    negotiating_peers: frozenset[str] = frozenset()  # addresses that negotiate IPsec (main mode SAs form)

    def dag_of(self, host: str) -> Dag | None:
        return next((d for d in self.dags if host.casefold() in (m.casefold() for m in d.members)), None)

    def witness_of(self, host: str) -> tuple[Dag, ...]:
        """The DAGs whose file share witness this host holds."""
        return tuple(d for d in self.dags if d.witness_server and d.witness_server.casefold() == host.casefold())


Consequences = Callable[[Organization, Mapping[str, State]], list[Breakage]]


class LabCmdletError(Exception):
    """What a simulated cmdlet writes to the error stream."""


class LabScriptError(Exception):
    """The exception message a template block's catch would report."""


class LabLdapError(Exception):
    """A directory request the simulated directory refuses, worded as the directory target words a
    real server's refusal (``no such object: DN``, ``modify DN: insufficient access rights ...``)."""


@dataclass(frozen=True)
class StateSection:
    """One key of a lab host in the lab file: its type (validated like a playbook) and how it
    becomes the host's state (``build(value, host_spec)``; host_spec has the validated host)."""

    annotation: Any
    default: Any
    build: Callable[[Any, Any], Any]
    description: str


def bind(call: CmdletCall, allowed: set[str]) -> dict[str, Any]:
    """Parameters by their declared names; an unknown one fails as PowerShell's binder does."""
    out: dict[str, Any] = {}
    for name, value in call.parameters:
        match = next((a for a in allowed if a.casefold() == name.casefold()), None)
        if match is None:
            raise LabCmdletError(f"A parameter cannot be found that matches parameter name '{name}'.")
        out[match] = value
    return out


def bool_param(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise LabCmdletError(f"Cannot process argument transformation on parameter '{name}'. "
                             f"Cannot convert value \"{value}\" to type \"System.Boolean\".")
    return value


def enum_param(name: str, type_name: str, value: Any, allowed: list[str]) -> str:
    match = next((n for n in allowed if n.casefold() == str(value).casefold()), None)
    if match is None:
        raise LabCmdletError(f"Cannot process argument transformation on parameter '{name}'. Cannot convert "
                             f"value \"{value}\" to type \"{type_name}\". Valid values: {', '.join(allowed)}")
    return match


def require_server(state: Mapping[str, Any], server: Any) -> None:
    """The simulated endpoint serves one server; another -Server is not found."""
    if server is not None and str(server).casefold() != str(state["computer_name"]).casefold():
        raise LabCmdletError(f"The specified server '{server}' could not be found (this simulated endpoint "
                             f"serves {state['computer_name']} only).")
