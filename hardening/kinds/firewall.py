"""Firewall kinds (script kinds on the NetSecurity module, procedures.md §7.3):

- ``firewall_allowlist``: inbound traffic only on the ports the host's Exchange roles need
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
    "DEFAULT_KEEP",
    "FAMILY_KINDS",
    "MODERN",
    "PORTS",
    "PORT_USES",
    "PROFILES",
    "PROTOCOL",
    "ROLE_USES",
    "Address",
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
    "host_list",
    "is_broad",
    "lockout_ports",
    "one_or_list",
    "port_text",
    "resolve_addresses",
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
# The port reference (procedures.md §7.1) as data, keyed by the role facts report.


@dataclass(frozen=True)
class PortUse:
    """One reason to open ports: its rule id (``hardening-<id>``), protocol, ports and who uses them."""

    id: str
    title: str
    protocol: Literal["TCP", "UDP"]
    ports: tuple[str, ...]
    scope: Literal["client", "internal"]
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
    PortUse("pop3", "POP3 (clear text or STARTTLS)", "TCP", ("110",), "client", "[V] EXD network-ports.md"),
    PortUse("pop3s", "POP3 over TLS", "TCP", ("995",), "client", "[V] EXD network-ports.md"),
    PortUse("imap4", "IMAP4 (clear text or STARTTLS)", "TCP", ("143",), "client", "[V] EXD network-ports.md"),
    PortUse("imap4s", "IMAP4 over TLS", "TCP", ("993",), "client", "[V] EXD network-ports.md"),
    PortUse("pop3-backend", "POP3 back end, proxied to by the front end of any Exchange server", "TCP",
            ("1110", "1995"), "internal", "[I] back-end bindings of Get-PopSettings"),
    PortUse("imap4-backend", "IMAP4 back end, proxied to by the front end of any Exchange server", "TCP",
            ("1143", "1993"), "internal", "[I] back-end bindings of Get-ImapSettings"),
    PortUse("backend", "Exchange Back End web site (HTTP 81, HTTPS 444), proxied to by the front end", "TCP",
            ("81", "444"), "internal", "[V] STIG EX16-MB-002870 (back end 81/444)"),
    PortUse("transport", "Transport between Exchange servers (receive connectors 2525, 465, 717, 475)", "TCP",
            ("2525", "465", "717", "475"), "internal", "[V] EXD receive-connectors.md"),
    PortUse("replication", "DAG log replication and seeding (default ReplicationPort)", "TCP", ("64327",),
            "internal", "[I] EXD network-ports.md"),
    PortUse("rpc", "RPC endpoint mapper and dynamic RPC between Exchange servers and domain controllers", "TCP",
            ("135",), "internal", "[V] 2008+ dynamic range 49152-65535"),
    PortUse("edgesync", "EdgeSync from Mailbox servers (LDAP over SSL to AD LDS)", "TCP", ("50636",), "internal",
            "[V] EXD network-ports.md"),
)}
# The roles facts.ps1.j2 reports (registry keys <Role>Role under ExchangeServer\v15).
ROLE_USES: dict[str, tuple[str, ...]] = {
    "Mailbox": ("smtp", "submission", "http", "https", "pop3", "pop3s", "imap4", "imap4s", "pop3-backend",
                "imap4-backend", "backend", "transport", "replication", "rpc"),
    "ClientAccess": ("smtp", "submission", "http", "https", "pop3", "pop3s", "imap4", "imap4s", "rpc"),
    "FrontendTransport": ("smtp", "submission"),
    "HubTransport": ("transport", "rpc"),
    "EdgeTransport": ("smtp", "edgesync"),
}
ROLE_ALIASES = {"edge": "EdgeTransport", "cafe": "ClientAccess", "bridgehead": "HubTransport"}
Role = Literal["Mailbox", "ClientAccess", "FrontendTransport", "HubTransport", "EdgeTransport"]
# pop3/imap4 parameter → (clear-text port use, TLS port use, back-end use)
OPTIONAL_PROTOCOLS = {"pop3": ("pop3", "pop3s", "pop3-backend"), "imap4": ("imap4", "imap4s", "imap4-backend")}
Excludable = Literal["smtp", "submission", "backend", "transport", "replication", "rpc", "edgesync"]

# [U] Rules Exchange setup and Windows create that the allow-list leaves alone by default: Core
# Networking (ICMPv6 neighbour discovery, DHCP: without them IPv6 and addressing break), the
# WinRM listener rules, and Exchange's program-scoped internal rules (names verified for
# Exchange 2010 only, TN bb331973; believed the same on 2016+). POP3/IMAP4 rules are not kept:
# the pop3/imap4 parameters decide those ports. Patterns match Name or DisplayName.
DEFAULT_KEEP = (
    "CoreNet-*", "Core Networking*",
    "WINRM-HTTP-In-TCP*", "Windows Remote Management*",
    "MSExchangeADTopology*", "MSExchangeServiceHost*", "MSExchangeRPC*", "MSExchange*RPCEPMap*",
    "MSExchangeMailboxReplication*", "MSExchangeTransportWorker*", "MSExchangeFrontEndTransport*",
)
KeepPattern = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_ *?()\[\]{}.,:@+/-]+$", max_length=256)]
RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]


class ExtraRule(KindParams):
    """A port the playbook opens besides the roles' ports (its rule: ``hardening-<name>``)."""

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


class FirewallAllowlistParams(KindParams):
    """Parameters of ``firewall_allowlist``."""

    mode: Literal["exact", "at_least"] = Field(
        "exact", description="exact: every other enabled inbound allow rule is disabled (never deleted), except "
        "those matching keep; at_least: they are only reported.")
    profiles: list[Literal["Domain", "Private", "Public"]] = Field(
        default=["Domain", "Private", "Public"], min_length=1,
        description="Profiles switched on with DefaultInboundAction Block (the allow rules apply to all).")
    roles: list[Role] | None = Field(
        None, description="Exchange roles whose ports open; default: the host's roles from facts.")
    pop3: Literal["none", "tls", "all"] = Field(
        "none", description="POP3 for clients: none, tls (995 only) or all (110 and 995); with either, the back "
        "end (1110, 1995) opens to internal_addresses.")
    imap4: Literal["none", "tls", "all"] = Field(
        "none", description="IMAP4 for clients: none, tls (993 only) or all (143 and 993); with either, the back "
        "end (1143, 1993) opens to internal_addresses.")
    exclude: list[Excludable] = Field(
        default_factory=list, description="Role ports not to open on these hosts (http and https carry "
        "Exchange's remote PowerShell and cannot be excluded).")
    client_addresses: list[Address] = Field(
        default=["Any"], min_length=1, description="Who may reach the client ports (SMTP, HTTP(S), "
        "POP3, IMAP4).", json_schema_extra=one_or_list)

    internal_addresses: list[Address] = Field(
        default=["Any"], min_length=1, description="[U] Who may reach the internal ports (back "
        "ends, transport 2525/465/717/475, replication, RPC, EdgeSync). Microsoft does not support filtering "
        "between Exchange servers and domain controllers, so the default is Any; narrow it to their addresses if "
        "you must.", json_schema_extra=one_or_list)

    rpc_dynamic_ports: PortRange = Field(
        default=PortRange(first=49152, last=65535),
        description="Dynamic RPC range opened with port 135 for the rpc use ([V] 49152-65535 on 2008+; 1025-65535 "
        "on 2003 [I]).")
    management_ports: list[Port] = Field(
        default=[5985, 5986], min_length=1,
        description="[I] WinRM ports kept open for management; must include the port hardening connects on.")
    management_addresses: list[Address] = Field(
        default=["Any"], min_length=1,
        description="Who may reach the management ports. The machine hardening runs from must be among them: "
        "it cannot be checked before connecting.", json_schema_extra=one_or_list)

    extra: list[ExtraRule] = Field(default_factory=list, description="Further ports to open.")
    keep: list[KeepPattern] = Field(
        default=list(DEFAULT_KEEP),
        description="[U] Name or DisplayName patterns (glob, case-insensitive) of other allow rules left alone "
        "in exact mode. Default: Core Networking, WinRM and Exchange's internal program rules.")
    close_listeners: bool | list[Port] = Field(
        False, description="A process listening on a port the allow-list closes fails the control before anything "
        "is written, unless this is true or lists that port.")

    @field_validator("client_addresses", "internal_addresses", "management_addresses", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        return address_list(value)

    @model_validator(mode="after")
    def _distinct(self) -> FirewallAllowlistParams:
        ids = [e.name.casefold() for e in self.extra]
        taken = set(PORT_USES) | {"management"}
        clash = sorted({i for i in ids if ids.count(i) > 1 or i in taken})
        if clash:
            raise ValueError(f"extra rule name {clash[0]!r} is used twice or by a role port "
                             f"({', '.join(sorted(taken))})")
        return self


@dataclass(frozen=True)
class WantedRule:
    """One allow rule the allow-list keeps in place."""

    name: str
    display_name: str
    description: str
    protocol: str
    ports: tuple[str, ...]
    addresses: tuple[str, ...]


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
    return f"{name} ({_protocol(entry.get('protocol'))} {ports} from {addresses})"


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


def _matches(patterns: Sequence[str], rule: Mapping[str, Any]) -> bool:
    names = [str(rule.get("name") or "").casefold(), str(rule.get("display_name") or "").casefold()]
    return any(fnmatch.fnmatchcase(n, p.casefold()) for p in patterns for n in names if n)


class FirewallAllowlist(Kind[FirewallAllowlistParams]):
    """Inbound traffic only on the ports the host needs (guide: "Firewall: only the needed ports
    open"; procedures.md §7.1/§7.3; STIG EX16-MB-002870).

    **Writes**: per profile (Domain, Private, Public) the firewall on and DefaultInboundAction
    Block (``Set-NetFirewallProfile``); one allow rule per port use, named ``hardening-<use>``
    (``New-NetFirewallRule`` / ``Set-NetFirewallRule``, PersistentStore), for exactly the ports
    the host's Exchange roles need (the §7.1 port table is data in this module, ``PORT_USES`` and
    ``ROLE_USES``, keyed by the roles in the facts), the WinRM management ports and the playbook's
    ``extra`` ports; in ``exact`` mode every other enabled inbound allow rule is **disabled, never
    deleted** (the outcome lists them, so a rollback re-enables them by name), except rules
    matching ``keep``.

    **Reads** (one script, ActiveStore): the profiles; the inbound rules, with their port,
    address and program filters fetched once for all rules (``Get-NetFirewallPortFilter -All``
    and joined by InstanceID [I]; piping every rule to the filter cmdlets costs one query per
    rule); the TCP listeners (``Get-NetTCPConnection -State Listen``) with their process and
    services. Everything is compared in Python: rule properties (ports as sets, subnets in mask or
    prefix form, profiles with Any as all three, protocol numbers as names).

    **Listeners**: a process listening on a port that the allow-list would close is reported
    (``listeners.OutsideAllowList``); unless ``close_listeners`` allows it, the control fails
    before writing instead of silently cutting a service. Loopback listeners are ignored.

    **Anti-lockout**: the playbook is refused before anything is sent when the allow-list would
    close the WinRM port the inventory connects on or Exchange's remote PowerShell (80/443, or
    the inventory's Exchange port). In the write, allow rules are created first, other rules
    disabled next, and profiles set to Block last. The machine hardening runs from must be in
    ``management_addresses`` (no inventory says where that is).

    **Pitfalls**: Group Policy rules and profile settings win over local ones [I]: a GPO rule
    that the allow-list must disable fails the control with a sentence, and a GPO profile setting
    shows as a re-read that does not match. Exchange setup's own rule names are known for 2010
    only [U]; check ``keep`` against your servers (the outcome lists kept rules). Microsoft does
    not support filtering between Exchange servers or to domain controllers [V]: keep
    ``internal_addresses`` wide enough. Host names in addresses are resolved on the host at read
    time. No restart.
    """

    name = "firewall_allowlist"
    summary = "Inbound ports limited to what the host's Exchange roles need; others disabled, listeners checked"
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

    def wanted(self, params: FirewallAllowlistParams, ctx: Context) -> list[WantedRule]:
        """The allow rules for this host, in a stable order."""
        uses: list[str] = []
        for role in self._roles(params, ctx):
            uses += [u for u in ROLE_USES[role] if u not in uses]
        for protocol, (plain, tls, backend) in OPTIONAL_PROTOCOLS.items():
            choice = getattr(params, protocol)
            dropped = {"none": {plain, tls, backend}, "tls": {plain}, "all": set()}[choice]
            uses = [u for u in uses if u not in dropped]
        uses = [u for u in uses if u not in params.exclude]
        rules = []
        for use_id in uses:
            use = PORT_USES[use_id]
            ports = use.ports + ((str(params.rpc_dynamic_ports),) if use_id == "rpc" else ())
            addresses = params.client_addresses if use.scope == "client" else params.internal_addresses
            rules.append(WantedRule(RULE_PREFIX + use_id, f"{DISPLAY_PREFIX}{use.title}",
                                    f"{use.title}; managed by hardening (firewall_allowlist)",
                                    use.protocol, ports, tuple(addresses)))
        rules.append(WantedRule(RULE_PREFIX + "management", f"{DISPLAY_PREFIX}WinRM management",
                                "WinRM (PowerShell remoting) for management; managed by hardening (firewall_allowlist)",
                                "TCP", tuple(str(p) for p in params.management_ports),
                                tuple(params.management_addresses)))
        for extra in params.extra:
            rules.append(WantedRule(RULE_PREFIX + extra.name, f"{DISPLAY_PREFIX}{extra.name}", extra.description,
                                    extra.protocol, tuple(port_text(p) for p in extra.ports),
                                    tuple(extra.remote_addresses)))
        # The preflight cannot see facts: a roles: override must not close the remote PowerShell
        # endpoint of a server whose own roles serve it (Edge Transport servers have none).
        served = any("http" in ROLE_USES.get(ROLE_ALIASES.get(r.casefold(), r), ()) for r in ctx.facts.exchange_roles)
        if served and not any(r.protocol == "TCP" and covers_port(list(r.ports), port)
                              for r in rules for port in (80, 443)):
            raise ControlFailed(f"the allow-list would close both 80 and 443 on {ctx.host}, where Exchange's remote "
                                f"PowerShell listens (roles: {', '.join(self._roles(params, ctx))}); nothing was "
                                "read or written")
        return rules

    def _names_to_resolve(self, params: FirewallAllowlistParams) -> list[str]:
        return address_names([*params.client_addresses, *params.internal_addresses, *params.management_addresses,
                              *(a for e in params.extra for a in e.remote_addresses)])

    def preflight(self, params: FirewallAllowlistParams, host: Host) -> str | None:
        open_tcp = {int(p) for p in params.management_ports}
        open_tcp |= {s for e in params.extra if e.protocol == "TCP" for s in e.ports if isinstance(s, int)}
        ranges = [(s.first, s.last) for e in params.extra if e.protocol == "TCP" for s in e.ports
                  if isinstance(s, PortRange)]
        # 80 and 443 always open for Exchange hosts (they cannot be excluded); the connection
        # port and a non-standard Exchange endpoint port must be among the open ones.
        needs = {host.connection.effective_port: lockout_ports(host)[host.connection.effective_port]}
        exchange = host.connection.effective_exchange_port
        if exchange not in (80, 443):
            needs[exchange] = lockout_ports(host)[exchange]
        for port, what in needs.items():
            if port not in open_tcp and not any(a <= port <= b for a, b in ranges):
                return (f"the allow-list would close TCP {port}, {what}; add {port} to management_ports "
                        f"(now {', '.join(str(p) for p in params.management_ports)})")
        return None

    def plan_notes(self, params: FirewallAllowlistParams) -> tuple[str, ...]:
        notes = []
        if params.mode == "exact":
            notes.append("every other enabled inbound allow rule is disabled (never deleted), except those "
                         f"matching keep ({', '.join(params.keep) or 'none'})")
        else:
            notes.append("other enabled inbound allow rules are reported, not changed (mode at_least)")
        notes.append("only profiles, rules and properties that differ are written; a listener on a port the "
                     "allow-list closes fails the control" + ("" if params.close_listeners is False
                                                               else " unless close_listeners allows it"))
        return tuple(notes)

    # --- the four steps

    def read(self, params: FirewallAllowlistParams, ctx: Context) -> tuple[Call, ...]:
        names = [r.name for r in self.wanted(params, ctx)]
        return (ScriptCall(self.name, "read", {"names": names, "resolve": self._names_to_resolve(params)}),)

    def observe(self, params: FirewallAllowlistParams, ctx: Context, values: Sequence[Any]) -> State:
        value = values[0] if values else None
        if not isinstance(value, Mapping):
            raise ControlFailed(f"the firewall read on {ctx.host} returned nothing")
        wanted = self.wanted(params, ctx)
        ours = {r.name.casefold() for r in wanted}
        profiles = {canonical_names(str(p.get("name")), PROFILES): p for p in host_objects(value.get("profiles"))}
        rules = [_rule_from_host(r) for r in host_objects(value.get("rules"))]
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
        others = [r for r in active if r["name"].casefold() not in ours]
        kept = [r for r in others if _matches(params.keep, r)]
        others = [r for r in others if not _matches(params.keep, r)]
        state[RULES_OBJECT] = {
            "Allowed": sorted(allowed.values(), key=lambda e: e["name"].casefold()),
            "Others": sorted((_summary(r) for r in others), key=lambda e: e["name"].casefold()),
            "Kept": sorted((_summary(r) for r in kept), key=lambda e: e["name"].casefold()),
            "_resolved": dict(value.get("resolved") or {})}
        rpc = (params.rpc_dynamic_ports.first, params.rpc_dynamic_ports.last)
        admitted_rules = [*({"profile": "Any", "protocol": w.protocol, "local_ports": list(w.ports)} for w in wanted),
                          *kept, *(others if params.mode == "at_least" else [])]
        outside: list[dict[str, Any]] = []
        for listener in host_objects(value.get("listeners")):
            entry: dict[str, Any] = {
                "protocol": str(listener.get("protocol") or "TCP"), "port": int(listener.get("port") or 0),
                "process": listener.get("process") or None, "services": split_list(listener.get("services")),
                "address": listener.get("address")}
            if _is_local_listener(entry) or any(e["port"] == entry["port"] for e in outside):
                continue
            allowed_here = any(_protocol(r.get("protocol")) in (entry["protocol"], "Any")
                               and covers_port(r.get("local_ports"), entry["port"], rpc) for r in admitted_rules)
            if not allowed_here and _reachable(entry, active, profiles, params.profiles, rpc):
                outside.append({k: v for k, v in entry.items() if k != "address"})
        state[LISTENERS_OBJECT] = {"OutsideAllowList": sorted(outside, key=lambda e: (e["protocol"], e["port"]))}
        return state

    def desire(self, params: FirewallAllowlistParams, ctx: Context, observed: State | None) -> State:
        resolved = None if observed is None else (observed.get(RULES_OBJECT) or {}).get("_resolved", {})
        want: dict[str, Any] = {}
        for name in params.profiles:
            want[_profile_key(name)] = {"Enabled": True, "DefaultInboundAction": "Block"}
        allowed = [{"name": rule.name, "enabled": True, "direction": "Inbound", "action": "Allow",
                    "protocol": rule.protocol, "local_ports": list(rule.ports),
                    "remote_addresses": resolve_addresses(rule.addresses, resolved, ctx.host), "profile": ["Any"]}
                   for rule in self.wanted(params, ctx)]
        want[RULES_OBJECT] = {"Allowed": allowed, **({"Others": []} if params.mode == "exact" else {})}
        # In both modes: a profile switched to Block can cut a listener as surely as a disabled rule.
        want[LISTENERS_OBJECT] = {"OutsideAllowList": []}
        return want

    def write(self, params: FirewallAllowlistParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        data: dict[str, Any] = {"create": [], "update": [], "disable": [], "profiles": []}
        if observed is not None:
            self._refuse_cutting_listeners(params, ctx, observed)
        seen_rules = {} if observed is None else {
            e["name"].casefold(): e for e in (observed.get(RULES_OBJECT) or {}).get("Allowed") or []}
        wanted = {w.name.casefold(): w for w in self.wanted(params, ctx)}
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
            update: dict[str, Any] = {"name": rule.name}
            for comparer, key, write_key, value in (
                    (PROTOCOL, "protocol", "protocol", want["protocol"]),
                    (PORTS, "local_ports", "local_ports", list(want["local_ports"])),
                    (ADDRESSES, "remote_addresses", "remote_addresses", list(want["remote_addresses"])),
                    (PROFILE, "profile", "profile", "Any"), (TEXT, "direction", "direction", "Inbound"),
                    (TEXT, "action", "action", "Allow"), (BOOL, "enabled", "enable", True)):
                if not comparer.equal(want[key], seen.get(key)):
                    update[write_key] = value
            if len(update) > 1:
                if _from_policy(seen.get("source_type")):
                    gpo.append(rule.name)
                data["update"].append(update)
        if observed is not None and params.mode == "exact":
            others = (observed.get(RULES_OBJECT) or {}).get("Others") or []
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
    }


def _summary(rule: Mapping[str, Any]) -> dict[str, Any]:
    """What the outcome says about another rule (enough to find it and to re-enable it)."""
    return {"name": rule["name"], "display_name": rule["display_name"], "protocol": rule["protocol"],
            "local_ports": rule["local_ports"], "remote_addresses": rule["remote_addresses"],
            "program": rule["program"], "source_type": rule["source_type"]}


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
