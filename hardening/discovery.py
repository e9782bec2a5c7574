"""Exchange servers found in Active Directory, as inventory hosts with facts.

Exchange registers every server in the configuration partition (class ``msExchExchangeServer``
under ``CN=Microsoft Exchange,CN=Services,CN=Configuration,…``) with its version
(``serialNumber``, e.g. ``Version 15.2 (Build 1544.4)``), its roles (``msExchCurrentServerRoles``,
a bit mask), its AD site (``msExchServerSite``, a DN) and its network names (``networkAddress``,
``ncacn_ip_tcp:mail01.example.com``). :func:`discover` reads them over one LDAP connection
(:mod:`hardening.targets.directory`), :func:`inventory_document` turns them into an inventory
(hosts with declared facts, and groups per version, role and site) for ``hardening inventory
from-ad``, and an inventory may name a directory as a dynamic source (``from_ad:``), read each
time the inventory is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import TargetError
from .facts import ROOT_DSE_CONTEXTS, Facts, directory_facts_from
from .inventory import Host
from .model import Bundle, LdapCall, Section, SectionResult
from .targets.directory import DirectoryTarget

__all__ = ["ROLE_BITS", "ExchangeServer", "discover", "exchange_servers", "inventory_document", "parse_version"]

# msExchCurrentServerRoles bits [I]: Exchange 2007-2013 role values, still set by 2016/2019/SE
# (a Mailbox server there carries the client access, transport and UM bits too).
ROLE_BITS = {"Mailbox": 2, "ClientAccess": 4, "UnifiedMessaging": 16, "HubTransport": 32, "Edge": 64}
SERVER_ATTRIBUTES = ("cn", "serialNumber", "versionNumber", "msExchCurrentServerRoles", "msExchServerSite",
                     "networkAddress")
_VERSION = re.compile(r"Version\s+(\d+)\.(\d+)\s*\(Build\s+(\d+)\.(\d+)", re.IGNORECASE)


def parse_version(serial: str | None) -> str | None:
    """``15.2.1544.4`` from ``Version 15.2 (Build 1544.4)``; None when it does not read so."""
    match = _VERSION.search(serial or "")
    return ".".join(match.groups()) if match else None


@dataclass(frozen=True)
class ExchangeServer:
    """One Exchange server as the configuration partition describes it."""

    name: str
    dn: str
    fqdn: str | None
    version: str | None
    roles: tuple[str, ...]
    site: str | None

    @property
    def release(self) -> str | None:
        """``2003``, ``2016``, ``2019`` or ``SE``, as the facts tell releases apart; None if unknown."""
        return Facts(exchange_version=self.version).exchange_release

    def facts(self) -> dict[str, Any]:
        """The facts an inventory can declare for this server."""
        out: dict[str, Any] = {"computer_name": self.name}
        if self.version:
            out["exchange_version"] = self.version
        if self.roles:
            out["exchange_roles"] = list(self.roles)
        if self.site:
            out["exchange_site"] = self.site
        return out


def _first(attributes: Mapping[str, Sequence[Any]], name: str) -> str | None:
    values = attributes.get(name) or []
    return str(values[0]) if values else None


def _site_name(dn: str | None) -> str | None:
    if not dn:
        return None
    first = re.split(r"(?<!\\),", dn, maxsplit=1)[0]
    return first.split("=", 1)[1].replace("\\,", ",") if "=" in first else first


def _roles(value: str | None) -> tuple[str, ...]:
    try:
        bits = int(value) if value is not None else 0
    except ValueError:
        return ()
    return tuple(name for name, bit in ROLE_BITS.items() if bits & bit)


def _fqdn(addresses: Iterable[str]) -> str | None:
    for address in addresses:
        if address.casefold().startswith("ncacn_ip_tcp:"):
            return address.split(":", 1)[1]
    return None


def exchange_servers(entries: Sequence[Mapping[str, Any]]) -> list[ExchangeServer]:
    """Servers from the search results of ``(objectCategory=msExchExchangeServer)``."""
    servers = []
    for entry in entries:
        attributes = entry.get("attributes", {})
        name = _first(attributes, "cn") or str(entry["dn"]).split(",", 1)[0].split("=", 1)[-1]
        servers.append(ExchangeServer(
            name=name.upper(), dn=str(entry["dn"]), fqdn=_fqdn(str(a) for a in attributes.get("networkAddress") or []),
            version=parse_version(_first(attributes, "serialNumber")),
            roles=_roles(_first(attributes, "msExchCurrentServerRoles")),
            site=_site_name(_first(attributes, "msExchServerSite"))))
    return sorted(servers, key=lambda s: s.name)


def _run(target: DirectoryTarget, calls: Sequence[LdapCall]) -> SectionResult:
    bundle: Bundle = (Section("discover", tuple(calls)),)
    return target.run(bundle)[0]


def discover(directory: Host, *, sites: Sequence[str] = (), releases: Sequence[str] = (),
             roles: Sequence[str] = ()) -> list[ExchangeServer]:
    """Exchange servers registered in the directory that ``directory`` (a host with ``ldap_url``)
    names, filtered by AD site, release (2003, 2016, 2019, SE) and role (any of those given).
    Raises :class:`TargetError` when the directory cannot be read."""
    target = DirectoryTarget(directory)
    try:
        root = _run(target, [LdapCall("search", "", attributes=tuple(ROOT_DSE_CONTEXTS))])
        if not root.ok:
            raise TargetError(directory.name, f"could not read the rootDSE: {root.error}")
        try:
            config = directory_facts_from(root.values[0])["naming_contexts"]["configuration"]
        except ValueError as exc:
            raise TargetError(directory.name, str(exc)) from None
        found = _run(target, [LdapCall("search", f"CN=Microsoft Exchange,CN=Services,{config}", scope="subtree",
                                       filter="(objectCategory=msExchExchangeServer)",
                                       attributes=SERVER_ATTRIBUTES)])
    finally:
        target.close()
    if not found.ok:
        if found.error and found.error.startswith("no such object"):
            return []  # no Exchange organisation in this forest
        raise TargetError(directory.name, f"could not search for Exchange servers: {found.error}")
    servers = exchange_servers(found.values[0] or [])
    folded_sites = {s.casefold() for s in sites}
    folded_roles = {r.casefold() for r in roles}
    folded_releases = {r.casefold() for r in releases}
    return [s for s in servers
            if (not folded_sites or (s.site or "").casefold() in folded_sites)
            and (not folded_releases or (s.release or "").casefold() in folded_releases)
            and (not folded_roles or any(r.casefold() in folded_roles for r in s.roles))]


def _group_name(prefix: str, value: str) -> str:
    return prefix + re.sub(r"[^a-z0-9]+", "_", value.casefold()).strip("_")


def inventory_document(servers: Sequence[ExchangeServer],
                       connection: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An inventory (as data, ready for YAML or JSON): each server by its FQDN (else its name)
    with declared facts, in groups ``exchange``, ``exchange_<release>``, ``role_<role>`` and
    ``site_<site>``."""
    hosts: dict[str, Any] = {}
    groups: dict[str, list[str]] = {"exchange": []}
    for server in servers:
        name = server.fqdn or server.name
        hosts[name] = {"facts": server.facts()}
        groups["exchange"].append(name)
        keys = [_group_name("exchange_", server.release)] if server.release else []
        keys += [_group_name("role_", role) for role in server.roles]
        keys += [_group_name("site_", server.site)] if server.site else []
        for key in keys:
            groups.setdefault(key, []).append(name)
    document: dict[str, Any] = {}
    if connection:
        document["connection"] = dict(connection)
    document["hosts"] = hosts
    document["groups"] = {g: {"hosts": members} for g, members in sorted(groups.items())}
    return document
