"""Helpers for engine tests: small playbooks, inventories and lab files written to tmp_path."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hardening import Inventory, Lab, Playbook, Run, load_inventory, load_lab, load_playbook
from hardening.lab import BUILTIN_SCENARIO, LabHost
from hardening.lab.scenario import merged_lab_text
from hardening.model import LdapCall, Outcome

LAB_HOSTS = ("MAIL01", "MAIL02", "MAIL03", "MAIL04")
QUEUE = "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\TransportRoles\\data\\Queue"


def write_playbook(directory: Path, text: str, name: str = "playbook.yml") -> Playbook:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_playbook(path)


def write_inventory(directory: Path, hosts: Iterable[str] = LAB_HOSTS, extra: str = "",
                    host_specs: dict[str, Any] | None = None, name: str = "inventory.yml") -> Inventory:
    """An inventory of lab hosts; ``host_specs`` gives a host's own keys (vars, facts …)."""
    specs = {h: (host_specs or {}).get(h, {}) for h in hosts}
    data: dict[str, Any] = {"connection": {"transport": "lab"}, "hosts": specs}
    if extra:
        data.update(yaml.safe_load(textwrap.dedent(extra)))
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_inventory(path)


def write_lab(directory: Path, edit: Callable[[dict[str, Any]], None], name: str = "lab.yml") -> Lab:
    """The built-in scenario with ``edit`` applied to its data (e.g. faults added), as a lab file."""
    data = yaml.safe_load(merged_lab_text(BUILTIN_SCENARIO))
    edit(data["hosts"])
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_lab(path, fresh=True)


def lab_host(lab: Lab, name: str) -> LabHost:
    host = lab.host(name)
    assert host is not None, f"no lab host {name}"
    return host


def outcomes(run: Run) -> dict[tuple[str, str], Outcome]:
    """Outcomes by (host, control)."""
    return {(o.host, o.control): o for o in run.outcomes}


def statuses(run: Run) -> dict[tuple[str, str], str]:
    return {key: o.status.value for key, o in outcomes(run).items()}


def request_name(entry: tuple[str, Any]) -> str:
    return entry[0]


def is_write(name: str) -> bool:
    """A request that changes a host: a Set- cmdlet, a script kind's write block (restarts too) or
    a directory modify."""
    return name.casefold().startswith("set-") or name.endswith(".write") or name == "ldap.modify"


def writes(host: LabHost, since: int = 0) -> list[str]:
    return [request_name(e) for e in host.received[since:] if is_write(request_name(e))]


def _reread_in(modify: LdapCall, later: Iterable[tuple[str, Any]]) -> bool:
    """Whether a later directory search covers the modified object (its DN or an ancestor as base)."""
    dn = modify.dn.casefold()
    return any(name == "ldap.search" and isinstance(call, LdapCall)
               and (dn == call.dn.casefold() or (call.scope != "base" and dn.endswith("," + call.dn.casefold())))
               for name, call in later)


def assert_every_write_reread(host: LabHost) -> None:
    """Every write the lab received is followed by a read of the same setting (the engine's re-read)."""
    names = [request_name(e) for e in host.received]
    for i, name in enumerate(names):
        if name == "service_restart.write" or not is_write(name):
            continue
        if name == "ldap.modify":
            assert _reread_in(host.received[i][1], host.received[i + 1:]), f"{host.name}: {name} was not re-read"
            continue
        read = "Get-" + name[4:] if name.casefold().startswith("set-") else name.replace(".write", ".read")
        assert read in names[i + 1:], f"{host.name}: {name} was not re-read ({names})"


@pytest.fixture
def lab_inventory(tmp_path: Path) -> Inventory:
    """MAIL01..MAIL04 over transport lab."""
    return write_inventory(tmp_path)
