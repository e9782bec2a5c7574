"""Firewall kinds (script kinds on the NetSecurity module, procedures.md §7.3):

- ``firewall_allowlist``: inbound traffic from clients and the internet only on the ports the
  host's Exchange roles serve, the other Exchange servers and the domain controllers always let in
  (``templates/firewall_allowlist.ps1.j2``);
- ``firewall_rule``: one Windows Firewall rule by name with its properties
  (``templates/firewall_rule.ps1.j2``).

Both read the **ActiveStore** (the effective policy: local rules, Group Policy rules and dynamic
ones, which is what filters traffic [V] WPS PolicyStore text) and write the **PersistentStore**
(the local policy that survives a reboot; the ActiveStore is rebuilt from the stores). A rule or
profile that Group Policy sets cannot be changed locally [I]: the control fails with a sentence
that says so, before anything is written.

The address and port helpers here are shared with the IPsec kind (``ipsec.py``).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from ..compare import BOOL, TEXT, Comparer, State, split_list
from ..model import Call, ScriptCall
from .base import Context, ControlFailed, Kind, KindParams, Variant, canonical_names, host_objects
from .platforms import WINDOWS_MODERN_PRODUCTS, is_modern_windows

if TYPE_CHECKING:
    from ..inventory import Host

__all__ = [
    "ADDRESSES",
    "ADDRESS_KEYWORDS",
    "CLUSTER_GROUPS",
    "CLUSTER_SERVICE",
    "DEFAULT_KEEP",
    "FAMILY_KINDS",
    "MODERN",
    "OWN_GROUP",
    "PEER_PORTS",
    "PORTS",
    "PORT_USES",
    "PROFILES",
    "PROTOCOL",
    "ROLE_USES",
    "Address",
    "Disposition",
    "FirewallAllowlist",
    "FirewallRule",
    "PortRange",
    "PortSpec",
    "PortUse",
    "address_list",
    "address_names",
    "canonical_address",
    "canonical_port",
    "covers_port",
    "cut_listeners",
    "disposition",
    "host_list",
    "in_groups",
    "is_broad",
    "is_cluster_node",
    "lockout_ports",
    "one_or_list",
    "optional_address_list",
    "port_text",
    "resolve_addresses",
    "rule_groups",
    "update_steps",
]

MODERN = Variant(
    "windows-modern",
    "Windows Server 2016-2025 (Windows PowerShell 5.1, NetSecurity module)",
    WINDOWS_MODERN_PRODUCTS,
    is_modern_windows,
)

# Rules this kind owns are found by Name (unique per store, like a file name [V] WPS).
RULE_PREFIX = "hardening-"
DISPLAY_PREFIX = "hardening: "
PROFILES = ("Domain", "Private", "Public")

# ---------------------------------------------------------------------------------------------
# Addresses: what -RemoteAddress accepts, and how Windows reads them back.

# [V] WPS Set-NetFirewallRule -RemoteAddress: keywords, each also with a 4 or 6 suffix.
ADDRESS_KEYWORDS = ("Any", "LocalSubnet", "DNS", "DHCP", "WINS", "DefaultGateway", "Internet", "Intranet",
                    "IntranetRemoteAccess", "PlayToDevice", "CaptivePortal")
_KEYWORDS = {**{k.casefold(): k for k in ADDRESS_KEYWORDS},
             **{f"{k}{v}".casefold(): f"{k}{v}" for k in ADDRESS_KEYWORDS if k != "Any" for v in "46"},
             "*": "Any"}
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                        r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
ADDRESS_PATTERN = r"^[A-Za-z0-9:][A-Za-z0-9.:/\-]*$"


def _ip_text(text: str) -> str:
    return str(ipaddress.ip_address(text))


def _strict_address(text: str) -> str | None:
    """The canonical form of an IP, subnet (prefix or mask), range or keyword; None otherwise."""
    folded = text.strip().casefold()
    if folded in _KEYWORDS:
        return _KEYWORDS[folded]
    try:
        if "/" in text:
            network = ipaddress.ip_network(text.strip(), strict=False)
            if network.prefixlen == network.max_prefixlen:
                return str(network.network_address)
            return f"{network.network_address}/{network.prefixlen}"
        if "-" in text:
            first, last = (part.strip() for part in text.split("-", 1))
            low, high = ipaddress.ip_address(first), ipaddress.ip_address(last)
            if low.version != high.version or int(low) > int(high):
                return None
            return str(low) if low == high else f"{low}-{high}"
        return _ip_text(text.strip())
    except ValueError:
        return None


def canonical_address(text: str) -> str:
    """An address as compared: ``10.0.0.0/24`` for ``10.0.0.0/255.255.255.0``, one spelling per
    keyword, compressed IPv6; a host name (to be resolved on the host) lower-cased."""
    strict = _strict_address(str(text))
    return strict if strict is not None else str(text).strip().casefold()


def is_host_name(text: str) -> bool:
    """A DNS name (not an address or keyword): resolved on the host before it is compared."""
    return _strict_address(text) is None and bool(_HOST_NAME.match(text))


def _check_address(text: str) -> str:
    if _strict_address(text) is None and not _HOST_NAME.match(text):
        raise ValueError(f"{text!r} is not an IP address, subnet (10.0.0.0/24), range (10.0.0.1-10.0.0.9), "
                         f"keyword ({', '.join(ADDRESS_KEYWORDS)}) or host name")
    return text


Address = Annotated[str, StringConstraints(pattern=ADDRESS_PATTERN, max_length=253), AfterValidator(_check_address)]
"""An IP address, subnet, range, keyword or DNS host name (resolved on the host)."""


def address_list(value: Any) -> Any:
    """An address list as a playbook may give it: a list, or one string (commas separate several,
    which lets one ``{{ variable }}`` hold a whole list)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()] or [value]
    return value


def one_or_list(schema: dict[str, Any]) -> None:
    """The JSON Schema of a list that also takes one string (as ``address_list`` does)."""
    items = schema.pop("items")
    schema.pop("type", None)
    schema["anyOf"] = [{"type": "string", "description": "one address, or several separated by commas"},
                       {"type": "array", "items": items}]


def address_names(addresses: Iterable[str]) -> list[str]:
    """The host names among addresses (sorted, unique): what the read asks the host to resolve."""
    return sorted({a for a in addresses if is_host_name(a)}, key=str.casefold)


def resolve_addresses(addresses: Sequence[str], resolved: Mapping[str, Any] | None, host: str) -> list[str]:
    """Addresses with host names replaced by the addresses the host resolved them to. With
    ``resolved`` None (plan mode: nothing read) names are kept as they are."""
    out: list[str] = []
    for address in addresses:
        if not is_host_name(address):
            out.append(address)
            continue
        if resolved is None:
            out.append(address)
            continue
        found = next((v for k, v in resolved.items() if str(k).casefold() == address.casefold()), None)
        ips = split_list(found)
        if not ips:
            raise ControlFailed(f"host name {address} did not resolve to any address on {host}")
        out += ips
    return out


def _address_set(value: Any) -> frozenset[str]:
    items = {canonical_address(a) for a in split_list(value)}
    return frozenset(items) if items and "Any" not in items else frozenset({"Any"})


ADDRESSES = Comparer("set of addresses (subnet masks as prefixes, keywords case-insensitive)", _address_set,
                     item=canonical_address)

# ---------------------------------------------------------------------------------------------
# Ports: numbers, ranges and the keywords Windows reads back.

PORT_KEYWORDS = ("Any", "RPC", "RPCEPMap", "IPHTTPSIn", "IPHTTPSOut", "Teredo", "PlayToDiscovery", "mDNS",
                 "DHCP", "Ply2Disc")
_PORT_KEYWORDS = {k.casefold(): k for k in PORT_KEYWORDS}


class PortRange(BaseModel):
    """A port range, written ``49152-65535`` or ``{first: 49152, last: 65535}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    first: int = Field(ge=1, le=65535)
    last: int = Field(ge=1, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", value)
            if match is None:
                raise ValueError(f"{value!r} is not a port range like 49152-65535")
            return {"first": int(match.group(1)), "last": int(match.group(2))}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> PortRange:
        if self.first > self.last:
            raise ValueError(f"port range {self.first}-{self.last} ends before it starts")
        return self

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


Port = Annotated[int, Field(ge=1, le=65535)]
PortSpec = Port | PortRange
"""A port (25) or a range (49152-65535)."""


def port_text(port: PortSpec) -> str:
    return str(port)


def canonical_port(value: Any) -> str:
    """A port token as compared: numbers without leading zeros, ranges ``a-b``, keywords one spelling."""
    text = str(value).strip()
    if text.casefold() in _PORT_KEYWORDS:
        return _PORT_KEYWORDS[text.casefold()]
    match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", text)
    if match:
        first, last = int(match.group(1)), int(match.group(2))
        return str(first) if first == last else f"{first}-{last}"
    return str(int(text)) if text.isdigit() else text.casefold()


def _port_set(value: Any) -> frozenset[str]:
    items = {canonical_port(p) for p in split_list(value)}
    return frozenset(items) if items and "Any" not in items else frozenset({"Any"})


PORTS = Comparer("set of ports (ranges and keywords as Windows writes them)", _port_set, item=canonical_port)


def covers_port(tokens: Any, port: int, rpc_dynamic: tuple[int, int] = (49152, 65535)) -> bool:
    """Whether a LocalPort list lets ``port`` through (Any, the number, a range, or a keyword
    standing for it: RPCEPMap is 135, RPC the dynamic range, IPHTTPSIn 443 [I])."""
    items = split_list(tokens) or ["Any"]
    for token in (canonical_port(t) for t in items):
        if token == "Any":
            return True
        if token == "RPCEPMap" and port == 135:
            return True
        if token == "RPC" and rpc_dynamic[0] <= port <= rpc_dynamic[1]:
            return True
        if token == "IPHTTPSIn" and port == 443:
            return True
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", token)
        if match and int(match.group(1)) <= port <= int(match.group(2) or match.group(1)):
            return True
    return False


def _protocol(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    return {"6": "TCP", "17": "UDP", "1": "ICMPv4", "58": "ICMPv6", "": "Any", "256": "Any"}.get(
        text, {"tcp": "TCP", "udp": "UDP", "any": "Any", "icmpv4": "ICMPv4", "icmpv6": "ICMPv6"}.get(
            text.casefold(), text))


PROTOCOL = Comparer("protocol (6 is TCP, 17 is UDP)", _protocol)


def _profiles(value: Any) -> frozenset[str]:
    items = {p.casefold() for p in split_list(value)}
    if not items or items & {"any", "notapplicable"}:
        return frozenset(p.casefold() for p in PROFILES)
    return frozenset(items)


PROFILE = Comparer("set of firewall profiles (Any is all three)", _profiles, item=str)


def profiles_of(value: Any) -> frozenset[str]:
    """The profiles a rule's Profile value covers, spelled Domain/Private/Public."""
    folded = _profiles(value)
    return frozenset(p for p in PROFILES if p.casefold() in folded)




# ---------------------------------------------------------------------------------------------
# Anti-lockout: the remoting connection in use and Exchange's remote PowerShell.


def lockout_ports(host: Host) -> dict[int, str]:
    """TCP ports the run itself depends on, with what each carries."""
    ports = {host.connection.effective_port: f"the WinRM port {host.name} is managed through"}
    exchange = host.connection.effective_exchange_port
    ports.setdefault(exchange, f"Exchange's remote PowerShell (http{'s' if exchange == 443 else ''}://"
                               f"{host.name}/PowerShell), which hardening uses")
    for port in (80, 443):
        ports.setdefault(port, "Exchange's remote PowerShell endpoint (/PowerShell on 80 or 443)")
    return ports


def is_broad(addresses: Sequence[str]) -> bool:
    """Addresses given as a keyword (Any, LocalSubnet, Intranet …): they may hold the machine
    hardening runs from, which no inventory says."""
    return any(_strict_address(a) in _KEYWORDS.values() for a in addresses) or not addresses


# ---------------------------------------------------------------------------------------------
# What the allow-list governs: inbound traffic from clients and the internet (procedures.md §7.1).
#
# Microsoft's support statement ("Network ports for clients and mail flow in Exchange", EXD
# network-ports.md [V]): restricting or altering traffic between internal Exchange servers, or
# between them and the domain controllers, is not supported, on any port or protocol; traffic
# between Edge Transport servers and the organisation and between clients and Exchange is
# expected to be filtered. So the allow-list has port rules for clients and the internet only,
# and one rule that lets the other Exchange servers and the domain controllers in on everything.


@dataclass(frozen=True)
class PortUse:
    """One reason to open ports: its rule id (``hardening-<id>``), protocol, ports and who uses them
    (``client``: client_addresses; ``exchange``: the internal Exchange servers, exchange_servers)."""

    id: str
    title: str
    protocol: Literal["TCP", "UDP"]
    ports: tuple[str, ...]
    scope: Literal["client", "exchange"]
    source: str


PORT_USES: dict[str, PortUse] = {u.id: u for u in (
    PortUse("smtp", "SMTP from the internet and other mail servers", "TCP", ("25",), "client",
            "[V] EXD network-ports.md (Default Frontend; Edge)"),
    PortUse("submission", "Authenticated client SMTP submission (Client Frontend)", "TCP", ("587",), "client",
            "[V] EXD network-ports.md"),
    PortUse("http", "HTTP: redirect to HTTPS, Autodiscover, Exchange remote PowerShell", "TCP", ("80",), "client",
            "[V] EXD network-ports.md; remote PowerShell http://server/PowerShell"),
    PortUse("https", "HTTPS: OWA, ECP, EWS, ActiveSync, MAPI over HTTP, Outlook Anywhere, OAB", "TCP", ("443",),
            "client", "[V] EXD network-ports.md"),
    PortUse("pop3", "POP3 (STARTTLS, or clear text where allowed)", "TCP", ("110",), "client",
            "[V] EXD network-ports.md; 110:TLS is in POP3's default InternalConnectionSettings [I] EXSRC"),
    PortUse("pop3s", "POP3 over TLS", "TCP", ("995",), "client", "[V] EXD network-ports.md"),
    PortUse("imap4", "IMAP4 (STARTTLS, or clear text where allowed)", "TCP", ("143",), "client",
            "[V] EXD network-ports.md; 143:TLS is in IMAP4's default InternalConnectionSettings [I] EXSRC"),
    PortUse("imap4s", "IMAP4 over TLS", "TCP", ("993",), "client", "[V] EXD network-ports.md"),
    PortUse("edgesync", "EdgeSync from the Mailbox servers of the subscribed site (LDAP over TLS to AD LDS)", "TCP",
            ("50636",), "exchange", "[V] EXD network-ports.md"),
)}
# The roles facts.ps1.j2 reports (registry keys <Role>Role under ExchangeServer\v15). Ports between
# Exchange servers (back ends, transport 2525/465/717/475, replication, RPC) are no role's port
# rules: the exchange-peers rule lets the other servers in on every port.
ROLE_USES: dict[str, tuple[str, ...]] = {
    "Mailbox": ("smtp", "submission", "http", "https", "pop3", "pop3s", "imap4", "imap4s"),
    "ClientAccess": ("smtp", "submission", "http", "https", "pop3", "pop3s", "imap4", "imap4s"),
    "FrontendTransport": ("smtp", "submission"),
    "HubTransport": (),
    "EdgeTransport": ("smtp", "edgesync"),
}
ROLE_ALIASES = {"edge": "EdgeTransport", "cafe": "ClientAccess", "bridgehead": "HubTransport"}
Role = Literal["Mailbox", "ClientAccess", "FrontendTransport", "HubTransport", "EdgeTransport"]
# Edge Transport servers sit in the perimeter: traffic from the organisation to them is filtered
# like any other (25 and EdgeSync's 50636 from the Mailbox servers) [V] EXD network-ports.md.
PERIMETER_ROLES = frozenset({"EdgeTransport"})
# pop3/imap4 parameter → (clear-text/STARTTLS port use, TLS port use)
OPTIONAL_PROTOCOLS = {"pop3": ("pop3", "pop3s"), "imap4": ("imap4", "imap4s")}
Excludable = Literal["smtp", "submission", "edgesync"]
# Port uses of earlier versions that the exchange-peers rule replaced.
RETIRED_USES = frozenset({"pop3-backend", "imap4-backend", "backend", "transport", "replication", "rpc"})

# TCP ports of services that only the other Exchange servers and the domain controllers use: a
# listener on one of them that stays reachable through the exchange-peers rule is not cut.
PEER_PORTS: tuple[tuple[str, str], ...] = (
    ("81", "[V] Exchange Back End web site, HTTP (STIG EX16-MB-002870)"),
    ("444", "[V] Exchange Back End web site, HTTPS (STIG EX16-MB-002870)"),
    ("1110", "[I] POP3 back end (Get-PopSettings ProxyTargetPort)"),
    ("1995", "[I] POP3 back end over TLS"),
    ("1143", "[I] IMAP4 back end"),
    ("1993", "[I] IMAP4 back end over TLS (ProxyTargetPort, EXSRC)"),
    ("2525", "[V] Default receive connector of the Transport service (EXD receive-connectors.md)"),
    ("465", "[V] Client Proxy receive connector (EXD receive-connectors.md)"),
    ("475", "[V] Mailbox Transport Delivery (EXD receive-connectors.md)"),
    ("717", "[V] Outbound Proxy Frontend (EXD receive-connectors.md)"),
    ("64327", "[I] DAG log replication and seeding (default ReplicationPort)"),
    ("808", "[I] Mailbox Replication Service (net.tcp) between Exchange servers"),
    ("135", "[V] RPC endpoint mapper (KB 832017)"),
    ("445", "[V] SMB: a DAG's file share witness, reached by the DAG's members (KB 832017, Cluster service)"),
    ("3343", "[V] Failover Clustering, node join (KB 832017)"),
)

# [U] Rules Exchange setup and Windows create that the allow-list leaves alone by default even
# where it disables (named groups, rules in no group): Core Networking (ICMPv6 neighbour discovery,
# DHCP: without them IPv6 and addressing break), the WinRM listener rules, and Exchange's
# program-scoped rules (names verified for Exchange 2010 only, TN bb331973; believed the same on
# 2016+). POP3/IMAP4 rules are not kept: the pop3/imap4 parameters decide those ports. Patterns
# match Name or DisplayName.
DEFAULT_KEEP = (
    "CoreNet-*", "Core Networking*",
    "WINRM-HTTP-In-TCP*", "Windows Remote Management*",
    "MSExchangeADTopology*", "MSExchangeServiceHost*", "MSExchangeRPC*", "MSExchange*RPCEPMap*",
    "MSExchangeMailboxReplication*", "MSExchangeTransportWorker*", "MSExchangeFrontEndTransport*",
)
# The group the allow-list creates its rules in (New-NetFirewallRule -Group): the one group it owns.
OWN_GROUP = "hardening"
# [V] KB 832017 (Service overview and network port requirements): the Cluster service ClusSvc,
# UDP 3343 (cluster network driver: heartbeats), TCP 3343 (node join). [I] Windows puts its
# clustering rules (Failover Clusters (UDP-In), (TCP-In), (DCOM TCP-In), (RPC) …) in the rule group
# "Failover Clusters" (the English DisplayGroup; localised on other languages: set cluster_groups).
CLUSTER_SERVICE = "ClusSvc"
CLUSTER_GROUPS = ("Failover Clusters",)
CLUSTER_PORT = "3343"

KeepPattern = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_ *?()\[\]{}.,:@+/-]+$", max_length=256)]
RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
GroupName = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9 _.,()@%+:/\\-]+$")]
"""A firewall rule group as Windows shows it (DisplayGroup, e.g. ``Remote Desktop``) or its Group
value (for Windows' own groups a resource string such as ``@FirewallAPI.dll,-28752``, the same in
every language: use it where the shown name is not in ASCII); compared case-insensitively."""


class ExtraRule(KindParams):
    """A port the playbook opens besides the roles' ports (its rule: ``hardening-<name>``): TCP or
    UDP, e.g. a backup agent from the backup server or SNMP (UDP 161) from the monitoring server."""

    name: RuleId = Field(description="Rule id: letters, digits, '.', '_' and '-'; the rule is hardening-<name>.")
    description: str = Field("", description="Why the port is open (the rule's Description).")
    protocol: Literal["TCP", "UDP"] = "TCP"
    ports: list[PortSpec] = Field(min_length=1, description="Ports and ranges, e.g. [3389] or [49152-65535].")
    remote_addresses: list[Address] = Field(default=["Any"], min_length=1,
                                            description="Who may connect: addresses, subnets, keywords, host names.",
                                            json_schema_extra=one_or_list)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_name(cls, value: Any) -> Any:
        return canonical_names(value, ("TCP", "UDP"))

    @field_validator("remote_addresses", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        return address_list(value)


def _optional_one_or_list(schema: dict[str, Any]) -> None:
    """The JSON Schema of an optional list that also takes one string: string, list or null."""
    items = next(s["items"] for s in schema.pop("anyOf") if s.get("type") == "array")
    schema["anyOf"] = [{"type": "string", "description": "one address, or several separated by commas"},
                       {"type": "array", "items": items}, {"type": "null"}]


def _ports_one_or_list(schema: dict[str, Any]) -> None:
    """The JSON Schema of a port list that also takes one string of comma-separated ports."""
    items = schema.pop("items")
    schema.pop("type", None)
    schema["anyOf"] = [{"type": "string", "pattern": r"^\s*\d{1,5}(\s*,\s*\d{1,5})*\s*,?\s*$",
                        "description": "ports separated by commas"}, {"type": "array", "items": items}]


def port_list(value: Any) -> Any:
    """A port list as a playbook may give it: a list, or one string of comma-separated ports."""
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not all(part.isdigit() for part in parts):
            raise ValueError(f"{value!r} is not a list of ports separated by commas")
        return [int(part) for part in parts]
    return value


def optional_address_list(value: Any) -> Any:
    """An address list that may be empty: as ``address_list``, and an empty or blank string (a
    variable or group that holds nothing) is no address."""
    if isinstance(value, str) and not value.strip(" ,\t\n"):
        return []
    return address_list(value)


class FirewallAllowlistParams(KindParams):
    """Parameters of ``firewall_allowlist``."""

    mode: Literal["exact", "at_least"] = Field(
        "exact", description="exact: the enabled inbound allow rules listed under disables (never deleted); "
        "at_least: they are only reported. Rules of groups it does not own are never touched unless "
        "disable_groups names them.")
    profiles: list[Literal["Domain", "Private", "Public"]] = Field(
        default=["Domain", "Private", "Public"], min_length=1,
        description="Profiles switched on with DefaultInboundAction Block (the allow rules apply to all).")
    roles: list[Role] | None = Field(
        None, description="Exchange roles whose ports open; default: the host's roles from facts.")
    pop3: Literal["none", "tls", "all"] = Field(
        "none", description="POP3 for clients: none, tls (995 only) or all (110 and 995). 110 carries STARTTLS, "
        "which POP3's InternalConnectionSettings advertise by default: tls breaks clients that use it.")
    imap4: Literal["none", "tls", "all"] = Field(
        "none", description="IMAP4 for clients: none, tls (993 only) or all (143 and 993). 143 carries STARTTLS, "
        "which IMAP4's InternalConnectionSettings advertise by default: tls breaks clients that use it.")
    exclude: list[Excludable] = Field(
        default_factory=list, description="Role ports not to open on these hosts (http and https carry "
        "Exchange's remote PowerShell and cannot be excluded).")
    client_addresses: list[Address] = Field(
        default=["Any"], min_length=1, description="Who may reach the client ports (SMTP, HTTP(S), "
        "POP3, IMAP4).", json_schema_extra=one_or_list)
    exchange_servers: list[Address] = Field(
        default_factory=list, description="The organisation's internal Exchange servers (not Edge Transport): "
        "addresses, subnets or host names, every address they send from (replication networks included). On "
        "internal servers they are let in on every port and protocol (rule hardening-exchange-peers): required "
        "there (a single server lists itself), the control fails before anything is sent without them; on Edge "
        "Transport servers they are who reaches EdgeSync (50636). A playbook takes them from the inventory: "
        "\"{{ groups['exchange'] … }}\".", json_schema_extra=one_or_list)
    domain_controllers: list[Address] | None = Field(
        None, description="The domain controllers' addresses or names: let in on every port and protocol on "
        "internal Exchange servers (with exchange_servers). Required there: Microsoft does not support filtering "
        "between Exchange and its domain controllers, so an allow-list that does not know them fails before "
        "anything is sent. Not used on Edge Transport servers.", json_schema_extra=_optional_one_or_list)
    rpc_dynamic_ports: PortRange = Field(
        default=PortRange(first=49152, last=65535),
        description="The dynamic RPC range, for reading other rules' RPC keyword ([V] 49152-65535 on 2008+; "
        "1025-65535 on 2003 [I]).")
    management_ports: list[Port] = Field(
        default=[5985, 5986], min_length=1,
        description="[I] WinRM ports kept open for management (a list, or one string of comma-separated ports as a "
        "{{ variable }} renders). The ports this run manages the host through (the inventory's WinRM port, "
        "Exchange's endpoint port) are added automatically.", json_schema_extra=_ports_one_or_list)
    management_addresses: list[Address] = Field(
        default=["Any"], min_length=1,
        description="Who may reach the management ports. The machine hardening runs from must be among them: "
        "it cannot be checked before connecting.", json_schema_extra=one_or_list)

    extra: list[ExtraRule] = Field(
        default_factory=list, description="Further ports to open, TCP or UDP: e.g. Remote Desktop from the admin "
        "network, a backup agent from the backup server, SNMP (UDP 161) from the monitoring server.")
    disable_groups: list[GroupName] = Field(
        default_factory=list, description="Rule groups (as Windows shows them, e.g. Remote Desktop) whose enabled "
        "inbound allow rules exact mode disables. Every other group (a backup or monitoring agent's, File and "
        "Printer Sharing, Failover Clusters …) is never touched.")
    disable_ungrouped: bool = Field(
        True, description="In exact mode, also disable enabled inbound allow rules that belong to no group (made "
        "by hand or by a script, e.g. 'Allow all TCP'); name an agent's ungrouped rule in keep to spare it.")
    keep: list[KeepPattern] = Field(
        default=list(DEFAULT_KEEP),
        description="[U] Name or DisplayName patterns (glob, case-insensitive) of rules never disabled, even in "
        "a named group or in no group. Default: Core Networking, WinRM and Exchange's internal program rules.")
    cluster_groups: list[GroupName] = Field(
        default=list(CLUSTER_GROUPS), min_length=1,
        description="[I] The rule group(s) of Failover Clustering. Where the host is a cluster node (a DAG "
        "member: the Cluster service runs, or the group's rules are present), they are never disabled and UDP "
        "and TCP 3343 are opened (hardening-cluster-udp, hardening-cluster-tcp).")
    close_listeners: bool | list[Port] = Field(
        False, description="A process listening on a port the allow-list closes fails the control before anything "
        "is written, unless this is true or lists that port.")

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and "internal_addresses" in value:
            raise ValueError("internal_addresses is gone: the ports between Exchange servers have no rules of "
                             "their own any more; the other Exchange servers and the domain controllers are let "
                             "in on every port (exchange_servers, domain_controllers), as Microsoft's support "
                             "statement requires")
        if isinstance(value, Mapping) and isinstance(value.get("exclude"), list):
            retired = sorted({str(v) for v in value["exclude"]} & RETIRED_USES)
            if retired:
                raise ValueError(f"exclude {retired[0]!r} names no rule any more: traffic between Exchange servers "
                                 "goes through the exchange-peers rule (every port)")
        return value

    @field_validator("client_addresses", "management_addresses", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        return address_list(value)

    @field_validator("management_ports", mode="before")
    @classmethod
    def _ports(cls, value: Any) -> Any:
        return port_list(value)

    @field_validator("exchange_servers", "domain_controllers", mode="before")
    @classmethod
    def _optional_addresses(cls, value: Any) -> Any:
        return value if value is None else optional_address_list(value)

    @model_validator(mode="after")
    def _distinct(self) -> FirewallAllowlistParams:
        ids = [e.name.casefold() for e in self.extra]
        taken = set(PORT_USES) | set(OWN_RULES)
        clash = sorted({i for i in ids if ids.count(i) > 1 or i in taken})
        if clash:
            raise ValueError(f"extra rule name {clash[0]!r} is used twice or by a rule of the allow-list "
                             f"({', '.join(sorted(taken))})")
        return self


# The allow-list's rules besides the port uses: id → display title.
OWN_RULES = {
    "exchange-peers": "Exchange servers and domain controllers, every port (Microsoft supports no filtering there)",
    "cluster-udp": "Failover Clustering heartbeats on this DAG member (UDP 3343)",
    "cluster-tcp": "Failover Clustering node join on this DAG member (TCP 3343)",
    "management": "WinRM management",
}


@dataclass(frozen=True)
class WantedRule:
    """One allow rule the allow-list keeps in place (protocol Any: no port filter)."""

    name: str
    display_name: str
    description: str
    protocol: str
    ports: tuple[str, ...]
    addresses: tuple[str, ...]

    @property
    def local_ports(self) -> list[str]:
        return list(self.ports) or ["Any"]


def _own_rule(rule_id: str, protocol: str, ports: Sequence[str], addresses: Sequence[str],
              title: str | None = None) -> WantedRule:
    shown = title or OWN_RULES.get(rule_id) or PORT_USES[rule_id].title
    return WantedRule(RULE_PREFIX + rule_id, f"{DISPLAY_PREFIX}{shown}",
                      f"{shown}; managed by hardening (firewall_allowlist)", protocol, tuple(ports), tuple(addresses))


def _port_order(token: str) -> tuple[int, str]:
    match = re.match(r"\d+", token)
    return (int(match.group(0)) if match else -1, token)


def _item_text(entry: Mapping[str, Any]) -> str:
    """``Allow all TCP (TCP Any from Any)`` for a rule, ``TCP 110 (POP3: Microsoft.Exchange.Pop3)`` for a listener."""
    if "port" in entry:
        who = str(entry.get("process") or "unknown process")
        services = split_list(entry.get("services"))
        if services:
            who += f": {', '.join(services)}"
        return f"{entry.get('protocol', 'TCP')} {entry['port']} ({who})"
    ports = "all ports"
    if _protocol(entry.get("protocol")) in ("TCP", "UDP"):
        ports = ", ".join(sorted(_port_set(entry.get("local_ports")), key=_port_order))
    addresses = ", ".join(sorted(_address_set(entry.get("remote_addresses"))))
    shown = entry.get("display_name") or entry["name"]
    name = shown if shown == entry["name"] else f"{shown} [{entry['name']}]"
    why = f"; {entry['why']}" if entry.get("why") else ""
    return f"{name} ({_protocol(entry.get('protocol'))} {ports} from {addresses}{why})"


def _rule_key(value: Any) -> frozenset[str]:
    return frozenset(str(e["name"]).casefold() for e in value or ())


def _listener_key(value: Any) -> frozenset[tuple[str, int]]:
    return frozenset((str(e.get("protocol", "TCP")), int(e["port"])) for e in value or ())


OTHER_RULES = Comparer("set of rules, by name", _rule_key, item=_item_text)


def _allowed_key(value: Any) -> frozenset[tuple[Any, ...]]:
    out = set()
    for e in value or ():
        out.add((str(e["name"]).casefold(), _enabled(e.get("enabled")), str(e.get("direction")).casefold(),
                 str(e.get("action")).casefold(), _protocol(e.get("protocol")), _port_set(e.get("local_ports")),
                 _address_set(e.get("remote_addresses")), _profiles(e.get("profile"))))
    return frozenset(out)


def _allowed_text(entry: Mapping[str, Any]) -> str:
    flags = []
    if not _enabled(entry.get("enabled")):
        flags.append("disabled")
    if str(entry.get("action")).casefold() != "allow":
        flags.append(f"action {entry.get('action')}")
    if str(entry.get("direction")).casefold() != "inbound":
        flags.append(f"direction {entry.get('direction')}")
    if _profiles(entry.get("profile")) != _profiles("Any"):
        flags.append(f"profile {', '.join(sorted(profiles_of(entry.get('profile'))))}")
    return _item_text(entry)[:-1] + "".join(f", {f}" for f in flags) + ")"


def _allowed_entry(rule: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": rule["name"], "enabled": rule["enabled"], "direction": rule["direction"],
            "action": rule["action"], "protocol": rule["protocol"], "local_ports": rule["local_ports"],
            "remote_addresses": rule["remote_addresses"], "profile": rule["profile"],
            "source_type": rule["source_type"]}


ALLOWED_RULES = Comparer("set of rules with their properties (ports and addresses as sets, Any profile as all "
                         "three)", _allowed_key, item=_allowed_text)
LISTENERS = Comparer("set of listening ports", _listener_key, item=_item_text)

RULES_OBJECT = "inbound allow rules"
RESOLVED_OBJECT = "_resolved"
LISTENERS_OBJECT = "listeners"
CLUSTER_KEY = "_cluster"


def _profile_key(name: str) -> str:
    return f"profile {name}"


def _rule_object(name: str) -> str:
    return f"rule {name}"


def _reachable(listener: Mapping[str, Any], rules: Sequence[Mapping[str, Any]], profiles: Mapping[str, Any],
               managed: Sequence[str], rpc: tuple[int, int]) -> bool:
    """Whether a listener can be reached through the firewall in some managed profile (rules are
    the enabled inbound allow rules; remote-address scopes still let someone in)."""
    port = int(listener["port"])
    protocol = str(listener.get("protocol", "TCP"))
    for name in managed:
        state = profiles.get(name) or {}
        if not _enabled(state.get("enabled")) or str(state.get("default_inbound_action")).casefold() == "allow":
            return True
        for rule in rules:
            if name in profiles_of(rule.get("profile")) and _protocol(rule.get("protocol")) in (protocol, "Any") \
                    and covers_port(rule.get("local_ports"), port, rpc):
                return True
    return False


def _enabled(value: Any) -> bool:
    try:
        return BOOL.key(value) is True
    except ValueError:
        return False


def _is_local_listener(listener: Mapping[str, Any]) -> bool:
    address = str(listener.get("address") or "")
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _matching_pattern(patterns: Sequence[str], rule: Mapping[str, Any]) -> str | None:
    names = [str(rule.get("name") or "").casefold(), str(rule.get("display_name") or "").casefold()]
    return next((p for p in patterns for n in names if n and fnmatch.fnmatchcase(n, p.casefold())), None)


def _matches(patterns: Sequence[str], rule: Mapping[str, Any]) -> bool:
    return _matching_pattern(patterns, rule) is not None


def rule_groups(rule: Mapping[str, Any]) -> tuple[str, ...]:
    """The names a rule's group goes by: DisplayGroup (what Windows shows) and Group (for built-in
    rules an indirect string such as ``@FirewallAPI.dll,-28752`` [I]); empty for a rule in no group."""
    return tuple(dict.fromkeys(g for g in (str(rule.get("display_group") or "").strip(),
                                           str(rule.get("group") or "").strip()) if g))


def in_groups(rule: Mapping[str, Any], groups: Iterable[str]) -> str | None:
    """The first of ``groups`` the rule belongs to (case-insensitive), if any."""
    own = {g.casefold() for g in rule_groups(rule)}
    return next((g for g in groups if g.casefold() in own), None)


@dataclass(frozen=True)
class Disposition:
    """What exact mode does with an enabled inbound allow rule it does not want, and why."""

    disable: bool
    why: str


def disposition(rule: Mapping[str, Any], params: FirewallAllowlistParams, cluster_node: bool) -> Disposition:
    """Exact mode disables another rule only when it is the allow-list's own (group ``hardening``,
    no longer wanted), in a group ``disable_groups`` names, or in no group at all (unless
    ``disable_ungrouped`` is false); never a rule matching ``keep``, never a cluster rule on a
    cluster node, never a rule of any other group."""
    cluster = in_groups(rule, params.cluster_groups)
    if cluster_node and cluster is not None:
        return Disposition(False, f"{cluster} rule on a cluster node (DAG member)")
    pattern = _matching_pattern(params.keep, rule)
    if pattern is not None:
        return Disposition(False, f"matches keep {pattern!r}")
    if in_groups(rule, (OWN_GROUP,)) is not None:
        return Disposition(True, "made by hardening and no longer wanted")
    named = in_groups(rule, params.disable_groups)
    if named is not None:
        return Disposition(True, f"group {named} is named in disable_groups")
    groups = rule_groups(rule)
    if not groups:
        if params.disable_ungrouped:
            return Disposition(True, "in no rule group (made by hand or by a script)")
        return Disposition(False, "in no rule group; disable_ungrouped is false")
    return Disposition(False, f"group {groups[0]} is not named in disable_groups")


def is_cluster_node(cluster: Mapping[str, Any] | None, rules: Iterable[Mapping[str, Any]],
                    groups: Sequence[str]) -> bool:
    """Whether the host is a Failover Clustering node (a DAG member), from what it reported: the
    Cluster service running, or the clustering rule group present (the feature installed: kept on
    the safe side even while the service is stopped) [I]."""
    running = cluster is not None and _enabled(cluster.get("installed")) and \
        str(cluster.get("status") or "").casefold() == "running"
    return running or any(in_groups(r, groups) is not None for r in rules)


def _cluster_text(cluster: Mapping[str, Any] | None, rules: Sequence[Mapping[str, Any]], node: bool) -> str:
    status = None if cluster is None or not _enabled(cluster.get("installed")) else cluster.get("status")
    service = f"no {CLUSTER_SERVICE} service" if status is None else f"{CLUSTER_SERVICE} {status}"
    count = len(rules)
    rule_text = f"{count} clustering rule{'s' if count != 1 else ''}"
    return f"{'cluster node (DAG member)' if node else 'not a cluster node'}: {service}, {rule_text}"


def peer_port(port: int, rpc: tuple[int, int]) -> bool:
    """Whether a TCP port is one only the other Exchange servers and the DCs use (PEER_PORTS, dynamic RPC)."""
    return any(int(p) == port for p, _ in PEER_PORTS) or rpc[0] <= port <= rpc[1]


def cut_listeners(listeners: Iterable[Mapping[str, Any]], admitted: Sequence[Mapping[str, Any]],
                  active: Sequence[Mapping[str, Any]], profiles: Mapping[str, Any], managed: Sequence[str],
                  rpc: tuple[int, int], peers: bool) -> list[dict[str, Any]]:
    """The listeners reachable today (through ``active``: the enabled allow rules but the peers rule,
    or a profile that lets everything in) that the allow-list leaves reachable by no rule it keeps
    (``admitted``: its own rules but the peers rule, the rules it leaves alone). With ``peers`` (the
    peers rule holds the other Exchange servers), a listener on a port only they and the DCs use
    (PEER_PORTS, dynamic RPC) is not cut: they still reach it."""
    outside: list[dict[str, Any]] = []
    for listener in listeners:
        entry: dict[str, Any] = {
            "protocol": str(listener.get("protocol") or "TCP"), "port": int(listener.get("port") or 0),
            "process": listener.get("process") or None, "services": split_list(listener.get("services")),
            "address": listener.get("address")}
        if _is_local_listener(entry) or any(e["port"] == entry["port"] for e in outside):
            continue
        if peers and entry["protocol"] == "TCP" and peer_port(entry["port"], rpc):
            continue
        allowed_here = any(_protocol(r.get("protocol")) in (entry["protocol"], "Any")
                           and covers_port(r.get("local_ports"), entry["port"], rpc) for r in admitted)
        if not allowed_here and _reachable(entry, active, profiles, managed, rpc):
            outside.append({k: v for k, v in entry.items() if k != "address"})
    return sorted(outside, key=lambda e: (e["protocol"], e["port"]))


class FirewallAllowlist(Kind[FirewallAllowlistParams]):
    """Inbound traffic from clients and the internet only on the ports the host's Exchange roles
    serve (guide: "Firewall: only the needed ports open"; procedures.md §7.1/§7.3; STIG
    EX16-MB-002870), following Microsoft's support statement for Exchange's network ports.

    **What it opens**, as allow rules named ``hardening-<id>`` in the rule group ``hardening``
    (``New-NetFirewallRule`` / ``Set-NetFirewallRule``, PersistentStore, every profile):

    - the client ports of the host's roles (from facts: Mailbox 25, 587, 80, 443, and POP3/IMAP4 as
      ``pop3``/``imap4`` say; Edge Transport 25), from ``client_addresses``;
    - ``hardening-exchange-peers``: **every protocol and port** from ``exchange_servers`` and
      ``domain_controllers``, on internal Exchange servers. Microsoft does not support restricting
      traffic between internal Exchange servers, or between them and the domain controllers, on any
      port or protocol [V] (EXD network-ports.md): the back ends, transport, replication and RPC
      have no rules of their own. Without both lists an internal server's control fails before
      anything is sent (a single server lists itself). On an Edge Transport server (the perimeter, where filtering is
      expected) there is no such rule: EdgeSync (50636) opens to ``exchange_servers`` only;
    - on a cluster node (a DAG member; see below) ``hardening-cluster-udp`` and
      ``hardening-cluster-tcp``: UDP and TCP 3343 from any address, as Windows' own clustering
      rules allow them (the heartbeat crosses every cluster network, replication networks too);
    - ``hardening-management``: ``management_ports`` plus, always, the ports this run manages the
      host through (the inventory's WinRM port, Exchange's endpoint port), from
      ``management_addresses``;
    - the playbook's ``extra`` rules, TCP or UDP (Remote Desktop from the admin network, a backup
      agent, SNMP from monitoring …).

    Every profile (``profiles``) is switched on with DefaultInboundAction Block
    (``Set-NetFirewallProfile``).

    **What exact mode disables** (never deletes; the outcome lists each under ``Others`` with the
    reason, so a rollback re-enables them by name): an enabled inbound allow rule that is not one of
    the above and that is (1) in the group ``hardening`` (an earlier run's rule this control no
    longer wants), (2) in a group ``disable_groups`` names (e.g. ``Remote Desktop``, replaced by an
    ``extra`` rule from the admin network), or (3) in no group at all (e.g. an "Allow all TCP" made
    by hand), unless ``disable_ungrouped`` is false. Never: a rule matching ``keep`` (Core
    Networking, WinRM, Exchange's program rules by default), a rule of the clustering group on a
    cluster node, or a rule of any other group — a backup or monitoring agent's, File and Printer
    Sharing (SMB: a DAG's file share witness may be on a mail server), Failover Clusters; the
    outcome lists them under ``Kept`` with the reason. ``at_least`` reports the same rules and
    disables nothing.

    **Cluster nodes**: read, never assumed: the host is a cluster node when the Cluster service
    (ClusSvc) runs or the clustering rule group (``cluster_groups``, "Failover Clusters") is present
    [I]; the outcome says which (``Cluster``).

    **Reads** (one script, ActiveStore): the profiles; the inbound rules (enabled allow rules, the
    allow-list's own, the clustering group's), with their port, address and program filters fetched
    once for all rules (``Get-NetFirewallPortFilter -All`` joined by InstanceID [I]) and their
    Group/DisplayGroup; the Cluster service (``Get-Service``); the TCP listeners
    (``Get-NetTCPConnection -State Listen``) with their process and services. Everything is
    compared in Python: rule properties (ports as sets, subnets in mask or prefix form, profiles
    with Any as all three, protocol numbers as names).

    **Listeners**: a process listening on a port the allow-list would leave reachable by none of
    the rules it keeps is reported (``listeners.OutsideAllowList``); unless ``close_listeners``
    allows it, the control fails before writing instead of silently cutting a service. Loopback
    listeners are ignored, and so are listeners on ports only the other Exchange servers and the
    DCs use (back ends, transport, replication, RPC, SMB 445, 3343: ``PEER_PORTS``) where the
    peers rule keeps them reachable. POP3's 110 and IMAP4's 143 carry STARTTLS, which Exchange's
    InternalConnectionSettings advertise by default: ``pop3``/``imap4`` ``tls`` closes them, and a
    listener there fails the control unless ``close_listeners`` names the port.

    **Anti-lockout**: the management rule always holds the ports this run connects through
    (``Context.management_ports``), whatever ``management_ports`` lists; allow rules are created
    first, other rules disabled next, profiles set to Block last. The machine hardening runs from
    must be in ``management_addresses`` (no inventory says where that is).

    **Pitfalls**: Group Policy rules and profile settings win over local ones [I]: a GPO rule that
    exact mode must disable fails the control with a sentence, and a GPO profile setting shows as a
    re-read that does not match. ``exchange_servers`` must hold every address the other servers
    send from (a DAG's replication network too). Exchange setup's own rule names are known for 2010
    only [U]; check ``keep`` against your servers. The clustering group's name is the English
    DisplayGroup [I]. Host names in addresses are resolved on the host at read time. UDP listeners
    are not read. No restart.
    """

    name = "firewall_allowlist"
    summary = ("Inbound from clients only on the ports the host's Exchange roles serve; Exchange servers and DCs "
               "always in; named groups disabled, others untouched")
    params_model = FirewallAllowlistParams
    channel = "script"
    template = "firewall_allowlist.ps1.j2"
    variants = (MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {
        "Enabled": BOOL, "DefaultInboundAction": TEXT, "Allowed": ALLOWED_RULES, "Others": OTHER_RULES,
        "OutsideAllowList": LISTENERS,
    }

    # --- what the host needs

    def _roles(self, params: FirewallAllowlistParams, ctx: Context) -> tuple[str, ...]:
        if params.roles is not None:
            return tuple(params.roles)
        roles = tuple(ROLE_ALIASES.get(r.casefold(), r) for r in ctx.facts.exchange_roles)
        if not roles and ctx.facts.exchange_version:
            raise ControlFailed(f"Exchange {ctx.facts.exchange_version} is installed on {ctx.host} but its roles are "
                                "unknown; declare exchange_roles in the inventory's facts or set roles: in the "
                                "playbook (an allow-list without them would close Exchange's ports)")
        unknown = [r for r in roles if r not in ROLE_USES]
        if unknown:
            raise ControlFailed(f"unknown Exchange role {unknown[0]!r} in the facts of {ctx.host}; set roles: to "
                                f"one or more of {', '.join(ROLE_USES)}")
        return roles

    def wanted(self, params: FirewallAllowlistParams, ctx: Context, cluster_node: bool = False) -> list[WantedRule]:
        """The allow rules for this host, in a stable order (the cluster rules only on a cluster node)."""
        roles = self._roles(params, ctx)
        uses: list[str] = []
        for role in roles:
            uses += [u for u in ROLE_USES[role] if u not in uses]
        for protocol, (plain, tls) in OPTIONAL_PROTOCOLS.items():
            choice = getattr(params, protocol)
            dropped = {"none": {plain, tls}, "tls": {plain}, "all": set()}[choice]
            uses = [u for u in uses if u not in dropped]
        uses = [u for u in uses if u not in params.exclude]
        rules = []
        for use_id in uses:
            use = PORT_USES[use_id]
            if use.scope == "client":
                addresses: Sequence[str] = params.client_addresses
            elif params.exchange_servers:
                addresses = params.exchange_servers
            else:
                raise ControlFailed(f"the allow-list opens {use.title} (TCP {', '.join(use.ports)}) on {ctx.host} to "
                                    "the Mailbox servers only, and exchange_servers is empty; set it (their "
                                    "addresses) or exclude it; nothing was read or written")
            rules.append(_own_rule(use_id, use.protocol, use.ports, addresses))
        if set(roles) - PERIMETER_ROLES:
            missing = [name for name, value in (("domain_controllers", params.domain_controllers),
                                                ("exchange_servers", params.exchange_servers)) if not value]
            if missing:
                raise ControlFailed(f"{ctx.host} is an internal Exchange server and {' and '.join(missing)} "
                                    f"{'is' if len(missing) == 1 else 'are'} not set: Microsoft does not support "
                                    "filtering traffic between Exchange servers, or between them and their domain "
                                    "controllers, so the allow-list lets them in on every port; set "
                                    f"{' and '.join(missing)} to their addresses (a single server lists itself); "
                                    "nothing was read or written")
            peers = list(dict.fromkeys([*params.exchange_servers, *(params.domain_controllers or ())]))
            rules.append(_own_rule("exchange-peers", "Any", (), peers))
        if cluster_node:
            rules.append(_own_rule("cluster-udp", "UDP", (CLUSTER_PORT,), ("Any",)))
            rules.append(_own_rule("cluster-tcp", "TCP", (CLUSTER_PORT,), ("Any",)))
        management = sorted({*params.management_ports, *ctx.management_ports})
        rules.append(_own_rule("management", "TCP", [str(p) for p in management], params.management_addresses))
        for extra in params.extra:
            rules.append(WantedRule(RULE_PREFIX + extra.name, f"{DISPLAY_PREFIX}{extra.name}", extra.description,
                                    extra.protocol, tuple(port_text(p) for p in extra.ports),
                                    tuple(extra.remote_addresses)))
        # A roles: override must not close the remote PowerShell endpoint of a server whose own
        # roles serve it (Edge Transport servers have none).
        served = any("http" in ROLE_USES.get(ROLE_ALIASES.get(r.casefold(), r), ()) for r in ctx.facts.exchange_roles)
        if served and not any(r.protocol == "TCP" and covers_port(list(r.ports), port)
                              for r in rules for port in (80, 443)):
            raise ControlFailed(f"the allow-list would close both 80 and 443 on {ctx.host}, where Exchange's remote "
                                f"PowerShell listens (roles: {', '.join(roles)}); nothing was read or written")
        return rules

    def _names_to_resolve(self, params: FirewallAllowlistParams) -> list[str]:
        return address_names([*params.client_addresses, *params.exchange_servers, *(params.domain_controllers or ()),
                              *params.management_addresses, *(a for e in params.extra for a in e.remote_addresses)])

    def plan_notes(self, params: FirewallAllowlistParams) -> tuple[str, ...]:
        notes = []
        groups = ", ".join(params.disable_groups) or "none"
        if params.mode == "exact":
            notes.append("other enabled inbound allow rules are disabled (never deleted) when they are the "
                         f"allow-list's own, in a group disable_groups names ({groups})"
                         + (" or in no group" if params.disable_ungrouped else "")
                         + f", unless they match keep ({', '.join(params.keep) or 'none'}); rules of other groups "
                         "are never touched")
        else:
            notes.append("the rules exact mode would disable are reported, not changed (mode at_least)")
        notes.append("on a cluster node (the Cluster service runs or the Failover Clusters rules are present) the "
                     "clustering rules stay and hardening-cluster-udp/-tcp open UDP and TCP 3343")
        notes.append("only profiles, rules and properties that differ are written; a listener on a port the "
                     "allow-list closes fails the control" + ("" if params.close_listeners is False
                                                               else " unless close_listeners allows it"))
        return tuple(notes)

    # --- the four steps

    def read(self, params: FirewallAllowlistParams, ctx: Context) -> tuple[Call, ...]:
        names = [r.name for r in self.wanted(params, ctx, cluster_node=True)]
        return (ScriptCall(self.name, "read", {"names": names, "cluster_groups": list(params.cluster_groups),
                                               "cluster_service": CLUSTER_SERVICE,
                                               "resolve": self._names_to_resolve(params)}),)

    def observe(self, params: FirewallAllowlistParams, ctx: Context, values: Sequence[Any]) -> State:
        value = values[0] if values else None
        if not isinstance(value, Mapping):
            raise ControlFailed(f"the firewall read on {ctx.host} returned nothing")
        rules = [_rule_from_host(r) for r in host_objects(value.get("rules"))]
        cluster_rules = [r for r in rules if in_groups(r, params.cluster_groups) is not None]
        cluster = value.get("cluster") if isinstance(value.get("cluster"), Mapping) else None
        node = is_cluster_node(cluster, cluster_rules, params.cluster_groups)
        wanted = self.wanted(params, ctx, node)
        ours = {r.name.casefold() for r in wanted}
        profiles = {canonical_names(str(p.get("name")), PROFILES): p for p in host_objects(value.get("profiles"))}
        state: dict[str, Any] = {}
        for name in params.profiles:
            seen = profiles.get(name)
            state[_profile_key(name)] = None if seen is None else {
                "Enabled": seen.get("enabled"),
                "DefaultInboundAction": _inbound_action(seen.get("default_inbound_action"))}
        allowed: dict[str, dict[str, Any]] = {}
        for rule in rules:
            if rule["name"].casefold() in ours:
                allowed.setdefault(rule["name"].casefold(), _allowed_entry(rule))
        active = [r for r in rules if _enabled(r["enabled"]) and str(r["action"]).casefold() == "allow"
                  and str(r["direction"]).casefold() == "inbound"]
        others: list[dict[str, Any]] = []
        kept: list[dict[str, Any]] = []
        for rule in (r for r in active if r["name"].casefold() not in ours):
            verdict = disposition(rule, params, node)
            (others if verdict.disable else kept).append({**_summary(rule), "why": verdict.why})
        state[RULES_OBJECT] = {
            "Allowed": sorted(allowed.values(), key=lambda e: e["name"].casefold()),
            "Others": sorted(others, key=lambda e: e["name"].casefold()),
            "Kept": sorted(kept, key=lambda e: e["name"].casefold()),
            "Cluster": _cluster_text(cluster, cluster_rules, node),
            RESOLVED_OBJECT: dict(value.get("resolved") or {}),
            CLUSTER_KEY: node}
        rpc = (params.rpc_dynamic_ports.first, params.rpc_dynamic_ports.last)
        # Only the other Exchange servers use the PEER_PORTS' services: the domain controllers alone do not count.
        peers = bool(params.exchange_servers) and any(w.name == RULE_PREFIX + "exchange-peers" for w in wanted)
        admitted = [*({"profile": "Any", "protocol": w.protocol, "local_ports": w.local_ports} for w in wanted
                      if w.name != RULE_PREFIX + "exchange-peers"),
                    *kept, *(others if params.mode == "at_least" else [])]
        # Reachable today by someone other than the peers: the peers rule itself does not count.
        reaching = [r for r in active if r["name"].casefold() != (RULE_PREFIX + "exchange-peers").casefold()]
        state[LISTENERS_OBJECT] = {"OutsideAllowList": cut_listeners(
            host_objects(value.get("listeners")), admitted, reaching, profiles, params.profiles, rpc, peers)}
        return state

    def desire(self, params: FirewallAllowlistParams, ctx: Context, observed: State | None) -> State:
        rules_seen = None if observed is None else (observed.get(RULES_OBJECT) or {})
        resolved = None if rules_seen is None else rules_seen.get(RESOLVED_OBJECT, {})
        node = bool(rules_seen and rules_seen.get(CLUSTER_KEY))
        want: dict[str, Any] = {}
        for name in params.profiles:
            want[_profile_key(name)] = {"Enabled": True, "DefaultInboundAction": "Block"}
        allowed = [{"name": rule.name, "enabled": True, "direction": "Inbound", "action": "Allow",
                    "protocol": rule.protocol, "local_ports": rule.local_ports,
                    "remote_addresses": resolve_addresses(rule.addresses, resolved, ctx.host), "profile": ["Any"]}
                   for rule in self.wanted(params, ctx, node)]
        want[RULES_OBJECT] = {"Allowed": allowed, **({"Others": []} if params.mode == "exact" else {})}
        # In both modes: a profile switched to Block can cut a listener as surely as a disabled rule.
        want[LISTENERS_OBJECT] = {"OutsideAllowList": []}
        return want

    def write(self, params: FirewallAllowlistParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        data: dict[str, Any] = {"create": [], "update": [], "disable": [], "profiles": []}
        if observed is not None:
            self._refuse_cutting_listeners(params, ctx, observed)
        rules_seen = {} if observed is None else (observed.get(RULES_OBJECT) or {})
        seen_rules = {e["name"].casefold(): e for e in rules_seen.get("Allowed") or []}
        wanted = {w.name.casefold(): w for w in self.wanted(params, ctx, bool(rules_seen.get(CLUSTER_KEY)))}
        gpo: list[str] = []
        for want in (desired[RULES_OBJECT] or {})["Allowed"]:
            rule = wanted[want["name"].casefold()]
            seen = seen_rules.get(want["name"].casefold())
            if seen is None:
                data["create"].append({"name": rule.name, "display_name": rule.display_name,
                                       "description": rule.description, "protocol": want["protocol"],
                                       "local_ports": list(want["local_ports"]),
                                       "remote_addresses": list(want["remote_addresses"])})
                continue
            steps = update_steps(want, seen)
            if steps:
                if _from_policy(seen.get("source_type")):
                    gpo.append(rule.name)
                data["update"].append({"name": rule.name, "steps": steps})
        if observed is not None and params.mode == "exact":
            others = rules_seen.get("Others") or []
            gpo += [e["name"] for e in others if _from_policy(e.get("source_type"))]
            data["disable"] = [e["name"] for e in others]
        if gpo:
            raise ControlFailed(f"rule {', '.join(sorted(set(gpo)))} comes from Group Policy and cannot be changed "
                                f"on {ctx.host}; change it in the GPO (nothing was written)")
        for name in params.profiles:
            key = _profile_key(name)
            seen_profile = None if observed is None else observed.get(key)
            fix = {"name": name,
                   "enable": seen_profile is None or not BOOL.equal(True, seen_profile.get("Enabled")),
                   "block": seen_profile is None or not TEXT.equal("Block", seen_profile.get("DefaultInboundAction"))}
            if fix["enable"] or fix["block"]:
                data["profiles"].append(fix)
        if not any(data[k] for k in ("create", "update", "disable", "profiles")):
            return ()
        return (ScriptCall(self.name, "write", data),)

    def _refuse_cutting_listeners(self, params: FirewallAllowlistParams, ctx: Context, observed: State) -> None:
        outside = (observed.get(LISTENERS_OBJECT) or {}).get("OutsideAllowList") or []
        allowed = params.close_listeners
        cut = [e for e in outside if allowed is not True and (allowed is False or int(e["port"]) not in allowed)]
        if cut:
            listed = "; ".join(_item_text(e) for e in cut)
            raise ControlFailed(f"the allow-list would cut what listens on {listed} on {ctx.host}; nothing was "
                                "written: open the port (pop3/imap4, extra) or accept closing it with "
                                f"close_listeners: [{', '.join(str(e['port']) for e in cut)}] (or true)")


def update_steps(want: Mapping[str, Any], seen: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Set-NetFirewallRule steps that make an existing allow rule the wanted one, in an order
    Windows accepts: ports cleared before the protocol becomes Any, the protocol set before ports."""
    protocol_any = _protocol(want["protocol"]) == "Any"
    ports: list[str] = ["Any"] if protocol_any else list(want["local_ports"])
    checks: list[tuple[str, Comparer, str, Any, Any]] = [
        ("LocalPort", PORTS, "local_ports", want["local_ports"], ports),
        ("Protocol", PROTOCOL, "protocol", want["protocol"], want["protocol"]),
    ]
    if not protocol_any:
        checks.reverse()
    addresses = list(want["remote_addresses"])
    checks += [("RemoteAddress", ADDRESSES, "remote_addresses", addresses, addresses),
               ("Profile", PROFILE, "profile", "Any", "Any"), ("Direction", TEXT, "direction", "Inbound", "Inbound"),
               ("Action", TEXT, "action", "Allow", "Allow"), ("Enabled", BOOL, "enabled", True, "True")]
    return [{"property": prop, "value": value} for prop, comparer, key, wanted, value in checks
            if not comparer.equal(wanted, seen.get(key))]


def _inbound_action(value: Any) -> Any:
    # [I] NotConfigured in a store means the Windows default, Block (WPS Set-NetFirewallProfile).
    return "Block" if str(value).casefold() == "notconfigured" else value


def _from_policy(source: Any) -> bool:
    return str(source or "").casefold() == "grouppolicy"


def host_list(value: Any) -> list[str]:
    """A list property as a host printed it: one string for a one-element array (PowerShell 5.1),
    ``null`` elements (a missing filter) dropped; empty means Any."""
    items = value if isinstance(value, list) else [value]
    return [str(v).strip() for v in items if v is not None and str(v).strip()] or ["Any"]


def _rule_from_host(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": str(raw.get("name") or ""),
        "display_name": str(raw.get("display_name") or ""),
        "enabled": raw.get("enabled"),
        "direction": raw.get("direction"),
        "action": raw.get("action"),
        "profile": split_list(raw.get("profile")) or ["Any"],
        "protocol": _protocol(raw.get("protocol")),
        "local_ports": host_list(raw.get("local_ports")),
        "remote_ports": host_list(raw.get("remote_ports")),
        "remote_addresses": host_list(raw.get("remote_addresses")),
        "program": raw.get("program") or "Any",
        "source_type": raw.get("source_type") or "Local",
        "description": raw.get("description"),
        "group": str(raw.get("group") or ""),
        "display_group": str(raw.get("display_group") or ""),
    }


def _summary(rule: Mapping[str, Any]) -> dict[str, Any]:
    """What the outcome says about another rule (enough to find it and to re-enable it)."""
    return {"name": rule["name"], "display_name": rule["display_name"], "group": (rule_groups(rule) or ("",))[0],
            "protocol": rule["protocol"], "local_ports": rule["local_ports"],
            "remote_addresses": rule["remote_addresses"], "program": rule["program"],
            "source_type": rule["source_type"]}


# ---------------------------------------------------------------------------------------------
# firewall_rule


class FirewallRuleParams(KindParams):
    """Parameters of ``firewall_rule``."""

    name: str = Field(description="The rule's Name (its identity; unique per store).")
    display_name: str | None = Field(None, description="DisplayName; default: the name (set when created).")
    description: str | None = Field(None, description="Description (compared when given).")
    enabled: bool = True
    direction: Literal["Inbound", "Outbound"] = "Inbound"
    action: Literal["Allow", "Block"] = "Allow"
    protocol: Literal["TCP", "UDP", "Any"] = "TCP"
    local_ports: list[PortSpec] = Field(default_factory=list, description="Local ports; empty: any.")
    remote_ports: list[PortSpec] = Field(default_factory=list, description="Remote ports; empty: any.")
    remote_addresses: list[Address] = Field(
        default=["Any"], min_length=1,
        description="Addresses, subnets, ranges, keywords (Any, LocalSubnet, Internet …) or host names (resolved "
        "on the host).", json_schema_extra=one_or_list)
    profiles: list[Literal["Any", "Domain", "Private", "Public"]] = Field(
        default=["Any"], min_length=1, description="Profiles the rule applies in.")

    @field_validator("direction", "action", "protocol", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return canonical_names(value, ("Inbound", "Outbound", "Allow", "Block", "TCP", "UDP", "Any"))

    @field_validator("name")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("a rule needs a name")
        return value

    @field_validator("remote_addresses", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        return address_list(value)

    @model_validator(mode="after")
    def _ports_need_protocol(self) -> FirewallRuleParams:
        if self.protocol == "Any" and (self.local_ports or self.remote_ports):
            raise ValueError("ports need protocol TCP or UDP")
        if "Any" in self.profiles and len(self.profiles) > 1:
            raise ValueError("profile Any covers all profiles; give it alone")
        return self


class FirewallRule(Kind[FirewallRuleParams]):
    """One Windows Firewall rule, by ``Name``, with its properties: enabled, direction, action,
    protocol, local and remote ports, remote addresses, profiles (and display name and description
    when given).

    **Reads** ``Get-NetFirewallRule -Name`` in the ActiveStore and, for that one rule, its port and
    address filters (``-AssociatedNetFirewallRule``: three queries, not a dump of every filter).
    **Writes** the PersistentStore: ``New-NetFirewallRule`` when the rule is absent, else one
    ``Set-NetFirewallRule`` per property that differs (ports are cleared before the protocol
    becomes Any, and the protocol set before ports are). The rule is never deleted.

    **Anti-lockout**: an enabled inbound Block rule that would cover the WinRM port the inventory
    connects on, or Exchange's remote PowerShell (80/443), from a keyword address (Any,
    LocalSubnet, Intranet …) is refused before anything is sent: block rules win over allow rules.

    **Pitfalls**: a rule of the same name from Group Policy cannot be changed locally (the control
    fails, naming the GPO source); an allow rule made with this kind is disabled by
    ``firewall_allowlist`` in exact mode unless its name matches that control's ``keep``. Windows
    reads IPv4 subnets back with masks (10.0.0.0/255.255.255.0); they compare equal to prefixes.
    No restart.
    """

    name = "firewall_rule"
    summary = "One Windows Firewall rule by name with its ports, addresses, action and profiles"
    params_model = FirewallRuleParams
    channel = "script"
    template = "firewall_rule.ps1.j2"
    variants = (MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {
        "Enabled": BOOL, "Direction": TEXT, "Action": TEXT, "Protocol": PROTOCOL, "LocalPort": PORTS,
        "RemotePort": PORTS, "RemoteAddress": ADDRESSES, "Profile": PROFILE,
        "DisplayName": Comparer("text, exact", lambda v: "" if v is None else str(v)),
        "Description": Comparer("text, exact", lambda v: "" if v is None else str(v)),
    }

    def _object(self, params: FirewallRuleParams) -> str:
        return _rule_object(params.name)

    def preflight(self, params: FirewallRuleParams, host: Host) -> str | None:
        if not (params.enabled and params.direction == "Inbound" and params.action == "Block"):
            return None
        if params.protocol == "UDP" or not is_broad(params.remote_addresses):
            return None
        for port, what in lockout_ports(host).items():
            if not params.local_ports or covers_port([port_text(p) for p in params.local_ports], port):
                return (f"an inbound Block rule over TCP {port} from {', '.join(params.remote_addresses)} would "
                        f"cut {what}")
        return None

    def read(self, params: FirewallRuleParams, ctx: Context) -> tuple[Call, ...]:
        return (ScriptCall(self.name, "read", {"name": params.name,
                                               "resolve": address_names(params.remote_addresses)}),)

    def observe(self, params: FirewallRuleParams, ctx: Context, values: Sequence[Any]) -> State:
        value = values[0] if values else None
        if not isinstance(value, Mapping):
            raise ControlFailed(f"the firewall rule read on {ctx.host} returned nothing")
        found = [_rule_from_host(r) for r in host_objects(value.get("rules"))]
        resolved = dict(value.get("resolved") or {})
        if len(found) > 1:
            raise ControlFailed(f"{len(found)} rules are named {params.name!r} in the active policy of {ctx.host} "
                                f"(sources: {', '.join(str(r['source_type']) for r in found)}); remove the duplicate")
        # Host names the host resolved, for desire (an object of its own: the rule may be absent).
        extra: dict[str, Any] = {RESOLVED_OBJECT: {"_names": resolved}} if resolved else {}
        if not found:
            return {self._object(params): None, **extra}
        rule = found[0]
        return {**extra, self._object(params): {
            "Enabled": rule["enabled"], "Direction": rule["direction"], "Action": rule["action"],
            "Protocol": rule["protocol"], "LocalPort": rule["local_ports"], "RemotePort": rule["remote_ports"],
            "RemoteAddress": rule["remote_addresses"], "Profile": rule["profile"],
            "DisplayName": rule["display_name"] or None, "Description": rule["description"] or None,
            "_source": rule["source_type"]}}

    def desire(self, params: FirewallRuleParams, ctx: Context, observed: State | None) -> State:
        resolved = None if observed is None else dict((observed.get(RESOLVED_OBJECT) or {}).get("_names") or {})
        want: dict[str, Any] = {
            "Enabled": params.enabled, "Direction": params.direction, "Action": params.action,
            "Protocol": params.protocol, "LocalPort": [port_text(p) for p in params.local_ports] or ["Any"],
            "RemotePort": [port_text(p) for p in params.remote_ports] or ["Any"],
            "RemoteAddress": resolve_addresses(params.remote_addresses, resolved, ctx.host),
            "Profile": list(params.profiles)}
        if params.display_name is not None:
            want["DisplayName"] = params.display_name
        if params.description is not None:
            want["Description"] = params.description
        return {self._object(params): want}

    def write(self, params: FirewallRuleParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        key = self._object(params)
        want = dict(desired[key] or {})
        seen = None if observed is None else observed.get(key)
        profile = ", ".join(want["Profile"])
        if seen is None:
            return (ScriptCall(self.name, "write", {
                "name": params.name, "create": {
                    "display_name": want.get("DisplayName", params.name), "description": want.get("Description") or "",
                    "enabled": "True" if want["Enabled"] else "False", "direction": want["Direction"],
                    "action": want["Action"], "protocol": want["Protocol"], "local_ports": want["LocalPort"],
                    "remote_ports": want["RemotePort"], "remote_addresses": want["RemoteAddress"],
                    "profile": profile},
                "steps": []}),)
        changed = [p for p in want if not self.comparers[p].equal(want[p], seen.get(p))]
        if not changed:
            return ()
        if _from_policy(seen.get("_source")):
            raise ControlFailed(f"rule {params.name} comes from Group Policy and cannot be changed on {ctx.host}; "
                                "change it in the GPO (nothing was written)")
        order = ["LocalPort", "RemotePort", "Protocol"] if want["Protocol"] == "Any" else [
            "Protocol", "LocalPort", "RemotePort"]
        order += ["RemoteAddress", "Profile", "Direction", "Action", "DisplayName", "Description", "Enabled"]
        steps = []
        for prop in order:
            if prop not in changed:
                continue
            value: Any = want[prop]
            if prop == "Enabled":
                value = "True" if value else "False"
            elif prop == "Profile":
                value = profile
            elif prop in ("LocalPort", "RemotePort") and want["Protocol"] == "Any":
                value = ["Any"]
            steps.append({"property": prop, "value": value})
        return (ScriptCall(self.name, "write", {"name": params.name, "create": None, "steps": steps}),)


FAMILY_KINDS = (FirewallAllowlist(), FirewallRule())
