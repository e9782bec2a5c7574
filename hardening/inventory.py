"""Inventories: hosts, nested groups, variables, connection settings and declared facts.

Credentials are references only (``env:NAME``, ``keyring:SERVICE/USER``, ``file:PATH`` with
mode 0600, ``prompt``); a password written literally is refused. A reference is resolved when
a connection is opened, never at load time, and its value never leaves :class:`SecretRef`.
"""

from __future__ import annotations

import getpass
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import HardeningError, InventoryError, SecretError, SourceLocation
from .playbook import matches_any
from .sourcefile import Document, load_yaml, validate

__all__ = ["Connection", "Host", "Inventory", "SecretRef", "directory_host", "load_inventory"]

SECRET_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|keyring:[^/\s]+/\S+|file:.+|prompt)$")
SECRET_HELP = ("a password must not be written in the inventory; reference it instead: env:NAME, "
               "keyring:SERVICE/USER, file:PATH (a file of mode 0600) or prompt")


@dataclass(frozen=True)
class SecretRef:
    """A reference to a secret. ``str()`` and ``repr()`` show the reference, never the value."""

    reference: str

    def __str__(self) -> str:
        return self.reference

    def resolve(self) -> str:
        """The secret's value; raises :class:`SecretError` (without the value) if unavailable."""
        scheme, _, rest = self.reference.partition(":")
        if scheme == "env":
            value = os.environ.get(rest)
            if value is None:
                raise SecretError(self.reference, f"environment variable {rest} is not set")
            return value
        if scheme == "file":
            path = Path(rest).expanduser()
            try:
                mode = path.stat().st_mode
            except OSError as exc:
                raise SecretError(self.reference, f"cannot read: {exc.strerror}") from None
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise SecretError(self.reference, f"file mode is {stat.S_IMODE(mode):04o}; it must be 0600 "
                                  "(readable by its owner only)")
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        if scheme == "keyring":
            try:
                import keyring  # optional dependency: pip install 'hardening[keyring]'
            except ImportError:
                raise SecretError(self.reference, "the keyring package is not installed "
                                  "(pip install 'hardening[keyring]')") from None
            service, _, user = rest.partition("/")
            value = keyring.get_password(service, user)
            if value is None:
                raise SecretError(self.reference, f"no password for {user} in keyring service {service}")
            return str(value)
        if self.reference == "prompt":
            if not os.isatty(0):
                raise SecretError(self.reference, "cannot prompt: standard input is not a terminal")
            return getpass.getpass("Password: ")
        raise SecretError(self.reference, "unknown reference scheme")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Transport = Literal["psrp", "winrm", "lab", "ldap"]
LdapAuth = Literal["simple", "ntlm", "kerberos"]
Auth = Literal["kerberos", "negotiate", "ntlm", "credssp", "certificate", "basic"]


class ConnectionModel(_Strict):
    """Connection settings; any level (defaults, group, host) may set any of them."""

    transport: Transport | None = Field(None, description="psrp (default), winrm, lab (simulated host), or ldap "
                                        "(a domain controller reached over LDAP only, for directory controls).")
    auth: Auth | None = Field(None, description="kerberos, negotiate (default), ntlm, credssp, certificate, "
                              "basic (HTTPS only).")
    scheme: Literal["https", "http"] | None = Field(None, description="https (default) or http (with message "
                                                    "encryption).")
    port: int | None = Field(None, ge=1, le=65535, description="Default 5986 for https, 5985 for http.")
    path: str | None = Field(None, description="WS-Management path, default wsman.")
    username: str | None = None
    password: str | None = Field(None, description="A reference: env:NAME, keyring:SERVICE/USER, file:PATH, prompt.")
    ca_bundle: str | None = Field(None, description="CA certificates (PEM) to validate the server with.")
    timeout: float | None = Field(None, gt=0, description="Per-operation timeout in seconds (default 60).")
    exchange_scheme: Literal["https", "http"] | None = Field(
        None, description="Exchange remote PowerShell endpoint scheme (default http, Kerberos-encrypted).")
    exchange_port: int | None = Field(None, ge=1, le=65535, description="Exchange endpoint port (default 80 / 443).")
    exchange_path: str | None = Field(None, description="Exchange endpoint path (default PowerShell).")
    exchange_auth: Auth | None = Field(None, description="Exchange endpoint auth (default kerberos).")
    client_certificate: str | None = Field(None, description="PEM client certificate (auth: certificate).")
    client_key: str | None = Field(None, description="PEM key of the client certificate (auth: certificate).")
    ldap_url: str | None = Field(None, description="The directory for directory controls: ldaps://dc.example.com "
                                 "(LDAPS, port 636) or ldap://dc.example.com (StartTLS on 389); TLS is always used.")
    ldap_auth: LdapAuth | None = Field(None, description="simple (default; over TLS only), ntlm (Windows AD; not "
                                       "Samba), or kerberos (needs the gssapi package and a ticket).")
    ldap_username: str | None = Field(None, description="Bind name (user@domain, DOMAIN\\user or a DN); default "
                                      "username.")
    ldap_password: str | None = Field(None, description="A reference, like password; default password.")
    ldap_ca_bundle: str | None = Field(None, description="CA certificates (PEM) for the directory; default ca_bundle.")
    ldap_server_name: str | None = Field(None, description="The name the directory's certificate must carry (and the "
                                         "Kerberos service host), when ldap_url names an address.")
    insecure_skip_certificate_validation: bool | None = Field(
        None, description="INSECURE: accept any server certificate (a man in the middle would go unnoticed).")
    insecure_allow_unencrypted: bool | None = Field(
        None, description="INSECURE: allow Basic or certificate auth over plain HTTP, which sends the password "
        "and every script in clear text.")

    @field_validator("ldap_url")
    @classmethod
    def _ldap_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^ldaps?://[^/\s:]+(:\d{1,5})?/?$", value, re.IGNORECASE):
            raise ValueError("ldap_url is ldaps://HOST[:PORT] or ldap://HOST[:PORT] (StartTLS); nothing after the host")
        return value

    @field_validator("password", "ldap_password", mode="before")
    @classmethod
    def _reference_only(cls, value: Any) -> Any:
        # Checked before type coercion so that no value (a number, a mapping) is ever echoed back.
        if value is not None and not (isinstance(value, str) and SECRET_REF.match(value)):
            raise ValueError(SECRET_HELP)
        return value


class HostModel(_Strict):
    """One inventory host."""

    address: str | None = Field(None, description="DNS name or IP address; default the host's name.")
    connection: ConnectionModel | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    facts: dict[str, Any] = Field(default_factory=dict, description="Declared facts (skip the facts read when "
                                  "os_version is given).")


class GroupModel(_Strict):
    """A group of hosts and child groups."""

    hosts: list[str] = Field(default_factory=list)
    children: list[str] = Field(default_factory=list)
    vars: dict[str, Any] = Field(default_factory=dict)
    connection: ConnectionModel | None = None


class FromAdModel(_Strict):
    """A dynamic source: the Exchange servers registered in Active Directory, read at every load."""

    connection: ConnectionModel = Field(description="How to reach a DC: ldap_url and the ldap_* settings.")
    sites: list[str] = Field(default_factory=list, description="Only servers of these AD sites.")
    releases: list[Literal["2003", "2016", "2019", "SE"]] = Field(default_factory=list,
                                                                 description="Only these Exchange releases.")
    roles: list[Literal["Mailbox", "ClientAccess", "HubTransport", "UnifiedMessaging", "Edge"]] = Field(
        default_factory=list, description="Only servers with one of these roles.")


class InventoryModel(_Strict):
    """The top level of an inventory file."""

    from_ad: FromAdModel | None = Field(None, description="Add the Exchange servers found in Active Directory "
                                        "(hosts with declared facts; groups exchange, exchange_<release>, "
                                        "role_<role>, site_<site>); hosts declared here win.")

    lab: str | None = Field(None, description="Lab file or folder that backs hosts with transport: lab "
                            "(default: the built-in scenario).")
    connection: ConnectionModel | None = Field(None, description="Defaults for every host.")
    vars: dict[str, Any] = Field(default_factory=dict)
    hosts: dict[str, HostModel | None] = Field(default_factory=dict)
    groups: dict[str, GroupModel | None] = Field(default_factory=dict)


@dataclass(frozen=True)
class Connection:
    """How to reach one host, after defaults, groups and the host's own settings are merged."""

    transport: Transport = "psrp"
    auth: Auth = "negotiate"
    scheme: Literal["https", "http"] = "https"
    port: int | None = None
    path: str = "wsman"
    username: str | None = None
    password: SecretRef | None = None
    ca_bundle: str | None = None
    timeout: float = 60.0
    exchange_scheme: Literal["https", "http"] = "http"
    exchange_port: int | None = None
    exchange_path: str = "PowerShell"
    exchange_auth: Auth = "kerberos"
    client_certificate: str | None = None
    client_key: str | None = None
    ldap_url: str | None = None
    ldap_auth: LdapAuth = "simple"
    ldap_username: str | None = None
    ldap_password: SecretRef | None = None
    ldap_ca_bundle: str | None = None
    ldap_server_name: str | None = None
    insecure_skip_certificate_validation: bool = False
    insecure_allow_unencrypted: bool = False

    @property
    def effective_port(self) -> int:
        return self.port or (5986 if self.scheme == "https" else 5985)

    @property
    def effective_exchange_port(self) -> int:
        return self.exchange_port or (443 if self.exchange_scheme == "https" else 80)


@dataclass(frozen=True)
class Host:
    """An inventory host with its merged connection, variables, declared facts and groups."""

    name: str
    address: str
    connection: Connection
    vars: Mapping[str, Any] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Inventory:
    """Hosts by name and groups by name (each with all its hosts, children included)."""

    path: str
    hosts: Mapping[str, Host]
    groups: Mapping[str, frozenset[str]]
    lab: str | None = None

    def select(self, patterns: Iterable[str]) -> list[Host]:
        """Hosts matching any pattern (globs over host and group names; ``!p`` excludes)."""
        pats = tuple(patterns)
        return [h for h in self.hosts.values() if matches_any(h.name, h.groups, pats)]

    def unknown_patterns(self, patterns: Iterable[str]) -> list[str]:
        """Plain names (no glob) that are neither a host nor a group nor ``all``."""
        names = {n.casefold() for n in (*self.hosts, *self.groups, "all")}
        out = []
        for pattern in patterns:
            pat = pattern.removeprefix("!")
            if not any(ch in pat for ch in "*?[") and pat.casefold() not in names:
                out.append(pattern)
        return out


def load_inventory(path: str | Path) -> Inventory:
    """Load and validate an inventory file."""
    doc = load_yaml(path, error=InventoryError)
    if doc.data is None:
        raise InventoryError(SourceLocation(str(path), 1, 1), "the inventory is empty; it needs at least hosts")
    if not isinstance(doc.data, dict):
        raise doc.error((), f"an inventory is a mapping (hosts, groups …), not a {type(doc.data).__name__}",
                        cls=InventoryError)
    model = validate(doc, InventoryModel, error=InventoryError)
    if not model.hosts and model.from_ad is None:
        raise doc.error(("hosts",), "the inventory has no hosts (declare hosts or a from_ad source)",
                        cls=InventoryError)
    members = _group_members(doc, model)
    defaults = model.connection or ConnectionModel()
    hosts: dict[str, Host] = {}
    for name, host_model in model.hosts.items():
        spec = host_model or HostModel()
        groups = frozenset(g for g, m in members.items() if name in m)
        ordered = [model.groups[g] or GroupModel() for g in sorted(groups, key=lambda g: _depth(model, g))]
        conn = _merge([defaults, *(group.connection for group in ordered), spec.connection])
        variables: dict[str, Any] = dict(model.vars)
        for group in ordered:
            variables.update(group.vars)
        variables.update(spec.vars)
        hosts[name] = Host(str(name), spec.address or str(name), conn, variables, dict(spec.facts), groups)
    members = {g: set(m) for g, m in members.items()}
    if model.from_ad is not None:
        _add_discovered(doc, model, hosts, members, defaults)
    base = Path(path).parent
    lab = str((base / model.lab).resolve()) if model.lab else None
    if lab is not None and not Path(lab).exists():
        raise doc.error(("lab",), f"lab file {model.lab!r} not found (looked for {lab})", cls=InventoryError)
    return Inventory(str(path), hosts, {g: frozenset(m) for g, m in members.items()}, lab)


def directory_host(settings: Mapping[str, Any], where: str) -> Host:
    """A host that stands for a domain controller reached over LDAP only, from ``ldap_*`` settings
    (validated like an inventory's: the password only by reference)."""
    try:
        model = ConnectionModel.model_validate({**settings, "transport": "ldap"})
    except ValueError as exc:
        problems = "; ".join(str(e.get("msg", e)) for e in getattr(exc, "errors", lambda: [])()) or str(exc)
        raise InventoryError(SourceLocation(where, 0, 0), problems) from None
    if not model.ldap_url:
        raise InventoryError(SourceLocation(where, 0, 0), "ldap_url is required (ldaps://DC)")
    conn = _merge([model])
    address = urlsplit(model.ldap_url).hostname or model.ldap_url
    return Host(address, address, conn)


def _add_discovered(doc: Document, model: InventoryModel, hosts: dict[str, Host], members: dict[str, set[str]],
                    defaults: ConnectionModel) -> None:
    """The Exchange servers a ``from_ad`` source finds, as hosts (declared hosts win)."""
    from .discovery import discover, inventory_document  # imports the LDAP target: only when used

    source = model.from_ad
    assert source is not None
    dc = directory_host(source.connection.model_dump(exclude_none=True), doc.path)
    try:
        servers = discover(dc, sites=source.sites, releases=source.releases, roles=source.roles)
    except HardeningError as exc:
        raise doc.error(("from_ad",), f"could not read the Exchange servers from Active Directory: {exc}",
                        key=True, cls=InventoryError) from None
    found = inventory_document(servers)
    conn = _merge([defaults])
    for name, spec in found["hosts"].items():
        if name not in hosts:
            hosts[name] = Host(name, name, conn, dict(model.vars), dict(spec["facts"]))
    for group, spec in found["groups"].items():
        if group in hosts:
            continue
        members.setdefault(group, set()).update(h for h in spec["hosts"] if h in hosts)
    for name, host in list(hosts.items()):
        groups = frozenset(g for g, m in members.items() if name in m)
        if groups != host.groups:
            hosts[name] = Host(host.name, host.address, host.connection, host.vars, host.facts, groups)


def _group_members(doc: Document, model: InventoryModel) -> dict[str, set[str]]:
    for group, spec in model.groups.items():
        if group in model.hosts:
            raise doc.error(("groups", group), f"{group!r} is both a host and a group", key=True, cls=InventoryError)
        for i, host in enumerate((spec or GroupModel()).hosts):
            if host not in model.hosts:
                raise doc.error(("groups", group, "hosts", i), f"unknown host {host!r}; hosts are declared under "
                                "hosts:", cls=InventoryError)
        for i, child in enumerate((spec or GroupModel()).children):
            if child not in model.groups:
                raise doc.error(("groups", group, "children", i), f"unknown group {child!r}", cls=InventoryError)
    members: dict[str, set[str]] = {}

    def collect(group: str, stack: tuple[str, ...]) -> set[str]:
        if group in stack:
            raise doc.error(("groups", group), "group cycle: " + " → ".join((*stack, group)), key=True,
                            cls=InventoryError)
        spec = model.groups[group] or GroupModel()
        out = set(spec.hosts)
        for child in spec.children:
            out |= collect(child, (*stack, group))
        return out

    for group in model.groups:
        members[group] = collect(group, ())
    return members


def _depth(model: InventoryModel, group: str) -> int:
    """How deep a group is nested: parents' settings apply first, children's override them."""
    parents = [g for g, spec in model.groups.items() if spec and group in spec.children]
    return 0 if not parents else 1 + max(_depth(model, p) for p in parents)


def _merge(layers: Iterable[ConnectionModel | None]) -> Connection:
    values: dict[str, Any] = {}
    for layer in layers:
        if layer is not None:
            values.update({k: v for k, v in layer.model_dump().items() if v is not None})
    for key in ("password", "ldap_password"):
        if key in values:
            values[key] = SecretRef(values[key])
    return Connection(**values)
