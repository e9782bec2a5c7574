"""A production rehearsal: what an apply broke in the simulated organisation.

Each family of lab models may say, from the hosts' state after a run, what an administrator would
lose: a DAG's cluster heartbeat or its witness, mail flow (mailboxes over a new quota), backups,
monitoring, management access (WinRM, Remote Desktop), traffic to the domain controllers. Those
models are the lab's own reading of Windows and Exchange behaviour (Windows Firewall rule
evaluation, Exchange quota semantics ...), written apart from the kinds' decision code, so a
rehearsal is an independent check of a playbook, not the kinds checking themselves. Where a model
is inferred rather than documented, its module says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..inventory import Inventory
from ..plan import management_ports
from .models import CONSEQUENCES, Breakage, Dag, Organization
from .scenario import Lab

__all__ = ["Breakage", "Dag", "Organization", "breakage", "organization"]


def organization(lab: Lab, inventory: Inventory | None = None) -> Organization:
    """The lab's organisation: its declared networks, DCs and DAGs, each host's address, and the
    ports the inventory manages each host through (WinRM's default where the inventory does not
    name the host)."""
    declared = lab.organization
    addresses = {name: str(host.state["address"]) for name, host in lab.hosts.items() if host.state.get("address")}
    ports: dict[str, tuple[int, ...]] = {}
    for name in lab.hosts:
        entry = _inventory_host(inventory, name)
        ports[name] = management_ports(entry) if entry is not None else (5985,)
    if declared is None:
        return Organization(addresses, {}, {}, (), ports)
    return Organization(
        addresses=addresses,
        networks={str(k): v for k, v in declared.networks.items()},
        domain_controllers=dict(declared.domain_controllers),
        dags=tuple(Dag(d.name, tuple(d.members), d.witness_server) for d in declared.dags),
        management_ports=ports,
        negotiating_peers=frozenset(declared.ipsec_negotiating),
    )


def _inventory_host(inventory: Inventory | None, name: str) -> Any:
    if inventory is None:
        return None
    return next((h for n, h in inventory.hosts.items() if n.casefold() == name.casefold()), None)


def breakage(lab: Lab, org: Organization | None = None) -> list[Breakage]:
    """Everything the hosts' current state breaks in the organisation, by every family's model."""
    org = org if org is not None else organization(lab)
    states: Mapping[str, dict[str, Any]] = {name: host.state for name, host in lab.hosts.items()}
    found: list[Breakage] = []
    for consequences in CONSEQUENCES:
        found += consequences(org, states)
    return sorted(found, key=lambda b: (b.host, b.what, b.sentence))
