"""The lab file format: simulated hosts as plain data (see README, "The lab").

A lab file is validated like a playbook (errors carry file:line). Its state after a run is
kept in a sidecar ``<lab file>.state.json`` so that ``apply`` then ``check`` behave like a real
server across invocations; ``hardening lab reset`` deletes the sidecar. The built-in scenario
shipped with the package is never written to: runs against it start fresh each time.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from ..errors import InputError, SourceLocation
from ..sourcefile import load_yaml, validate
from .host import LabHost
from .models import SECTIONS

__all__ = ["BUILTIN_SCENARIO", "DEMO_INVENTORY", "Lab", "LabFile", "lab_files", "load_lab", "merged_lab_text"]

BUILTIN_SCENARIO = Path(__file__).resolve().parent / "scenarios" / "demo"
# The built-in scenario's inventory: its hosts and groups, and the site values the shipped playbooks require.
DEMO_INVENTORY = BUILTIN_SCENARIO.with_name("demo-inventory.yml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabOs(_Strict):
    caption: str = "Microsoft Windows Server 2019 Datacenter"
    version: str = "10.0.17763"


class LabExchange(_Strict):
    version: str = Field(description="Build, e.g. 15.2.1544.4 (Exchange 2019 CU14).")
    roles: list[str] = Field(default_factory=lambda: ["Mailbox"])
    install_path: str = "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\"
    queue_path: str | None = Field(None, description="QueueDatabasePath (default: under install_path).")
    site: str = "Default-First-Site-Name"


class LabFault(_Strict):
    """A request the simulated host answers wrongly, for tests and rehearsals."""

    call: str = Field(description="A cmdlet (Set-PopSettings) or kind.op (ntfs_acl.write, facts.read).")
    effect: Literal["error", "ignore"] = Field(
        "error", description="error: answer with `error`; ignore: answer as done but change nothing (a write "
        "that silently does not take).")
    error: str | None = Field(None, description="The error message (effect error).")
    after: int = Field(0, ge=0, description="Let this many matching requests through first.")
    times: int | None = Field(None, ge=1, description="Then misbehave this many times; none = always.")

    @model_validator(mode="after")
    def _message(self) -> LabFault:
        if self.effect == "error" and not self.error:
            raise ValueError("a fault with effect error needs error: the message to answer with")
        return self


def _host_model() -> type[BaseModel]:
    """A lab host: the core keys here plus every family's sections (hardening.lab.models)."""
    fields: dict[str, Any] = {
        "os": (LabOs, Field(default_factory=LabOs)),
        "powershell_version": (str, "5.1.17763.1"),
        "exchange": (LabExchange | None, None),
        "faults": (list[LabFault], Field(default_factory=list)),
    }
    for name, section in SECTIONS.items():
        fields[name] = (section.annotation, Field(default_factory=lambda d=section.default: copy.deepcopy(d),
                                                  description=section.description))
    return create_model("LabHostModel", __config__=ConfigDict(extra="forbid"), **fields)


LabHostModel = _host_model()


class LabDag(_Strict):
    """A database availability group of the simulated organisation."""

    name: str
    members: list[str] = Field(min_length=1)
    witness_server: str | None = Field(None, description="The server holding the DAG's file share witness.")


class LabOrganization(_Strict):
    """What the simulated hosts are to each other, for the rehearsal (README, "The lab"): the
    networks traffic comes from, the domain controllers (not lab hosts: addresses only) and the DAGs."""

    networks: dict[Literal["admin", "controller", "backup", "monitoring", "clients", "internet"], str] = Field(
        default_factory=dict, description="Where traffic comes from: admin (Remote Desktop), controller (where "
        "hardening runs), backup, monitoring, clients (internal), internet (a sample client): an address or CIDR.")
    domain_controllers: dict[str, str] = Field(default_factory=dict, description="Name → address.")
    dags: list[LabDag] = Field(default_factory=list)
    ipsec_negotiating: list[str] = Field(
        default_factory=list, description="Peer addresses that negotiate IPsec when asked (main mode SAs form).")


class LabFile(_Strict):
    """The top level of a lab file."""

    description: str = ""
    organization: LabOrganization | None = None
    hosts: dict[str, LabHostModel] = Field(default_factory=dict)  # type: ignore[valid-type]


@dataclass
class Lab:
    """Simulated hosts by name. ``path`` is None for the built-in scenario (never saved)."""

    hosts: dict[str, LabHost]
    path: Path | None = None
    description: str = ""
    _persist: bool = field(default=False, repr=False)
    organization: LabOrganization | None = None

    def host(self, name: str) -> LabHost | None:
        """The simulated host of that name (case-insensitive), if the lab has one."""
        for key, host in self.hosts.items():
            if key.casefold() == name.casefold():
                return host
        return None

    @property
    def state_path(self) -> Path | None:
        """``<lab file or folder>.state.json``, beside it."""
        return None if self.path is None else self.path.with_name(self.path.name + ".state.json")

    def save(self) -> None:
        """Keep the current state beside the lab file (atomically); no-op for the built-in one."""
        if not self._persist or self.state_path is None:
            return
        data = {name: host.snapshot() for name, host in self.hosts.items()}
        fd, tmp = tempfile.mkstemp(dir=self.state_path.parent, prefix=".lab-state-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(tmp, self.state_path)


def lab_files(source: Path) -> list[Path]:
    """The YAML files of a lab: the file itself, or every ``*.yml`` of a lab folder, in name order."""
    if source.is_dir():
        files = sorted(source.glob("*.yml"))
        if not files:
            raise InputError(SourceLocation(str(source)), "the lab folder holds no .yml files")
        return files
    return [source]


def load_lab(path: str | Path | None = None, *, fresh: bool = False) -> Lab:
    """Load a lab file or folder (default: the built-in scenario), with its saved state unless ``fresh``.

    A folder's files are merged host by host: each file may set some keys of a host (one family
    of settings per file), and a key set in two files is an error naming both places.
    """
    source = Path(path) if path is not None else BUILTIN_SCENARIO
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[str, str], SourceLocation] = {}
    description = ""
    organization: LabOrganization | None = None
    organization_at: SourceLocation | None = None
    first = None
    for file in lab_files(source):
        doc = load_yaml(file)
        first = first or doc
        if not isinstance(doc.data, dict):
            raise doc.error((), "a lab file is a mapping with hosts:")
        model = validate(doc, LabFile)
        description = description or model.description
        if model.organization is not None:
            where = doc.location(("organization",), key=True)
            if organization_at is not None:
                raise InputError(where, f"organization is set twice (also at {organization_at})", key="organization")
            organization, organization_at = model.organization, where
        for name, spec in model.hosts.items():
            merged.setdefault(str(name), {})
            for key in sorted(spec.model_fields_set):  # type: ignore[attr-defined]
                where = doc.location(("hosts", name, key), key=True)
                if (name, key) in origin:
                    raise InputError(where, f"{key} of {name} is set twice (also at {origin[(name, key)]})",
                                     key=f"hosts.{name}.{key}")
                origin[(name, key)] = where
                merged.setdefault(str(name), {})[key] = getattr(spec, key)
    # The shipped scenario is never written to, whoever names it (the demo inventory does).
    persist = path is not None and source.resolve() != BUILTIN_SCENARIO.resolve()
    saved: Mapping[str, Any] = {}
    lab = Lab({}, source if persist else None, description, persist, organization)
    state_path = lab.state_path
    if persist and not fresh and state_path is not None and state_path.is_file():
        try:
            saved = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            assert first is not None
            raise InputError(first.location(()), f"cannot read the lab state {state_path.name}: {exc}; "
                             "run 'hardening lab reset' to start again") from None
    for name, fields in merged.items():
        spec = LabHostModel.model_validate(fields)
        lab.hosts[name] = LabHost(name, copy.deepcopy(saved.get(name, _initial_state(name, spec))))
    return lab


def merged_lab_text(source: Path) -> str:
    """A lab folder as one lab file (what ``hardening lab init`` writes for people to edit)."""
    files = lab_files(source)
    hosts: dict[str, dict[str, Any]] = {}
    description = ""
    organization: Any = None
    for file in files:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        description = description or data.get("description", "")
        organization = organization or data.get("organization")
        for name, spec in (data.get("hosts") or {}).items():
            hosts.setdefault(name, {}).update(spec or {})
    header = ("# A hardening lab: simulated hosts (format: README, \"The lab\").\n"
              f"# Made from {source.name}: {', '.join(f.name for f in files)}.\n")
    data = {"description": description, **({"organization": organization} if organization else {}), "hosts": hosts}
    return header + yaml.safe_dump(data, sort_keys=False,
                                   allow_unicode=True, width=200, default_flow_style=None)


def _initial_state(name: str, spec: Any) -> dict[str, Any]:
    """The simulated host's state as Exchange and Windows would hold it."""
    computer_name = name.split(".")[0].upper()
    host = SimpleNamespace(computer_name=computer_name, accounts=getattr(spec, "accounts", {}))
    state: dict[str, Any] = {
        "computer_name": computer_name,
        "os": spec.os.model_dump(),
        "powershell_version": spec.powershell_version,
        "exchange": spec.exchange.model_dump() if spec.exchange else None,
        "faults": [f.model_dump() for f in spec.faults],
    }
    for key, section in SECTIONS.items():
        state[key] = section.build(getattr(spec, key), host)
    return state
