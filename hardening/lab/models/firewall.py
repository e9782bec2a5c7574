"""Lab model of Windows Firewall: profiles, rules with their port/address/program filters and
groups, TCP listeners with their process and services, and the DNS names a host resolves. It
answers the blocks of ``firewall_allowlist.ps1.j2`` and ``firewall_rule.ps1.j2`` with what they
would print (the allow-list's read also reports the Cluster service from the lab's ``services``),
and, for the rehearsal, says which traffic the organisation needs the firewalls now refuse
(``consequences``, an independent model of Windows Firewall's inbound decision: see below).

Like NetSecurity, it keeps two stores: every rule and profile is in the ActiveStore that reads
see; only ``source: Local`` ones are in the PersistentStore that writes go to. A Group Policy
rule is therefore "not found" by Set-NetFirewallRule, and a Group Policy profile setting takes a
local write without changing the effective value. Reads show IPv4 subnets with masks
(10.0.0.0/255.255.255.0), as Get-NetFirewallAddressFilter does [I]; writes check protocols,
ports, addresses and enum values as the cmdlets do, and refuse a second rule of the same Name.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...kinds.firewall import ADDRESS_KEYWORDS, PORT_KEYWORDS, PROFILES, canonical_port
from .common import Breakage, LabScriptError, Organization, ScriptHandler, State, StateSection

__all__ = ["SCRIPTS", "SECTIONS", "Flow", "Verdict", "consequences", "display_address", "inbound_verdict",
           "required_flows", "resolve_names", "windows_address"]

PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "any": "Any", "icmpv4": "ICMPv4", "icmpv6": "ICMPv6"}
_KEYWORDS = {k.casefold(): k for k in ADDRESS_KEYWORDS}
_KEYWORDS.update({f"{k}{v}".casefold(): f"{k}{v}" for k in ADDRESS_KEYWORDS if k != "Any" for v in "46"})
_PORT_WORDS = {k.casefold(): k for k in PORT_KEYWORDS}
ADDRESS_ERROR = ("The address is invalid. Addresses may be specified as IP addresses, ranges, or subnets. Also, "
                 "the following address keywords are allowed in certain places: " + ", ".join(ADDRESS_KEYWORDS))


def any_port() -> list[str | int]:
    return ["Any"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabProfile(_Strict):
    """A firewall profile in a lab file."""

    enabled: bool = True
    default_inbound_action: Literal["Allow", "Block", "NotConfigured"] = "Block"
    source: Literal["Local", "GroupPolicy"] = Field(
        "Local", description="GroupPolicy: a local write is taken but the effective value stays (GPO wins).")


class LabRule(_Strict):
    """A firewall rule in a lab file (NetSecurity property names, lower case)."""

    name: str
    display_name: str | None = None
    description: str = ""
    enabled: bool = True
    direction: Literal["Inbound", "Outbound"] = "Inbound"
    action: Literal["Allow", "Block"] = "Allow"
    protocol: str = "Any"
    local_ports: list[str | int] = Field(default_factory=any_port)
    remote_ports: list[str | int] = Field(default_factory=any_port)
    remote_addresses: list[str] = Field(default_factory=lambda: ["Any"])
    profile: str = "Any"
    program: str = "Any"
    group: str = Field("", description="The Group property (for Windows' own rules an indirect string [I]; the "
                       "lab may give the shown name).")
    display_group: str | None = Field(None, description="DisplayGroup, the group's name as Windows shows it "
                                      "(default: group).")
    source: Literal["Local", "GroupPolicy"] = "Local"


class LabListener(_Strict):
    """A process listening on a TCP port."""

    port: int = Field(ge=1, le=65535)
    address: str = "0.0.0.0"
    process: str
    services: list[str] = Field(default_factory=list)


ProfileName = Literal["Domain", "Private", "Public"]


def _default_profiles() -> dict[ProfileName, LabProfile]:
    return {"Domain": LabProfile(), "Private": LabProfile(), "Public": LabProfile()}


class LabFirewall(_Strict):
    """A host's Windows Firewall: profiles, rules and listeners, and the network it sits on."""

    profiles: dict[ProfileName, LabProfile] = Field(default_factory=_default_profiles)
    rules: list[LabRule] = Field(default_factory=list)
    listeners: list[LabListener] = Field(default_factory=list)
    network_profile: ProfileName = Field(
        "Domain", description="The profile of the host's network (Get-NetConnectionProfile's category: a "
        "domain member on its domain's network is Domain, a workgroup server such as an Edge Transport server "
        "Public or Private [I]); the rehearsal evaluates traffic in it.")
    local_subnets: list[str] = Field(
        default_factory=list, description="The subnets of the host's interfaces, what LocalSubnet means on it "
        "(default: the /24 of its address [I]).")


# --- what the cmdlets accept and how they print it


def windows_protocol(value: Any) -> str:
    text = str(value).strip()
    if text.casefold() in PROTOCOLS:
        return PROTOCOLS[text.casefold()]
    if text.isdigit() and 0 <= int(text) <= 255:
        return {"6": "TCP", "17": "UDP"}.get(text, text)
    raise LabScriptError(f"The protocol '{text}' is not valid: use TCP, UDP, ICMPv4, ICMPv6, Any or a number "
                         "from 0 to 255.")


def windows_ports(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        text = str(item).strip()
        if text.casefold() in _PORT_WORDS:
            out.append(_PORT_WORDS[text.casefold()])
            continue
        match = re.fullmatch(r"(\d{1,5})(?:-(\d{1,5}))?", text)
        if match is None or not 1 <= int(match.group(1)) <= int(match.group(2) or match.group(1)) <= 65535:
            raise LabScriptError(f"The port '{text}' is invalid. Ports may be specified as numbers from 1 to 65535, "
                                 "ranges (1-100) or keywords.")
        out.append(canonical_port(text))
    if "Any" in out and len(out) > 1:
        raise LabScriptError("The port keyword Any cannot be combined with other ports.")
    return out or ["Any"]


def windows_address(value: str) -> str:
    """An address as NetSecurity stores it; anything else fails as the cmdlet does."""
    text = str(value).strip()
    if text.casefold() in _KEYWORDS or text == "*":
        return _KEYWORDS.get(text.casefold(), "Any")
    try:
        if "/" in text:
            network = ipaddress.ip_network(text, strict=False)
            return f"{network.network_address}/{network.prefixlen}"
        if "-" in text:
            first, last = (part.strip() for part in text.split("-", 1))
            low, high = ipaddress.ip_address(first), ipaddress.ip_address(last)
            if low.version != high.version or int(low) > int(high):
                raise ValueError(text)
            return f"{low}-{high}"
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise LabScriptError(ADDRESS_ERROR) from None


def display_address(stored: str) -> str:
    """How Get-NetFirewallAddressFilter prints an address: IPv4 subnets with a mask [I]."""
    if "/" in stored:
        network = ipaddress.ip_network(stored, strict=False)
        if network.version == 4:
            return f"{network.network_address}/{network.netmask}"
    return stored


def windows_addresses(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out = [windows_address(str(v)) for v in items]
    if "Any" in out and len(out) > 1:
        raise LabScriptError(ADDRESS_ERROR)
    return out or ["Any"]


def windows_profile(value: Any) -> str:
    parts = [p.strip() for p in str(value).split(",") if p.strip()]
    names = {p.casefold(): p for p in (*PROFILES, "Any")}
    unknown = [p for p in parts if p.casefold() not in names]
    if unknown or not parts:
        raise LabScriptError(f"Cannot convert value \"{value}\" to type \"Profile\". Valid values: Any, Domain, "
                             "Private, Public, NotApplicable")
    chosen = {names[p.casefold()] for p in parts}
    if "Any" in chosen:
        return "Any"
    return ", ".join(p for p in PROFILES if p in chosen)


def _enum(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    match = next((a for a in allowed if a.casefold() == str(value).strip().casefold()), None)
    if match is None:
        raise LabScriptError(f"Cannot process argument transformation on parameter '{name}'. Cannot convert value "
                             f"\"{value}\" to type \"{name}\". Valid values: {', '.join(allowed)}")
    return match


def _bool_word(name: str, value: Any) -> bool:
    return _enum(name, "True" if value is True else "False" if value is False else value, ("True", "False")) == "True"


def _check_ports_fit(rule: dict[str, Any]) -> None:
    ports = [p for p in (*rule["local_ports"], *rule["remote_ports"]) if p != "Any"]
    if ports and rule["protocol"] not in ("TCP", "UDP"):
        raise LabScriptError("The port specification is only valid with the TCP or UDP protocol.")


def resolve_names(state: State, names: Any) -> dict[str, list[str]]:
    """[System.Net.Dns]::GetHostAddresses for each name, from the lab's ``dns``."""
    out: dict[str, list[str]] = {}
    for name in names or []:
        found = next((v for k, v in state["dns"].items() if k.casefold() == str(name).casefold()), None)
        if not found:
            raise LabScriptError('Exception calling "GetHostAddresses" with "1" argument(s): "No such host is known"')
        out[str(name)] = list(found)
    return out


# --- the blocks


def _firewall(state: State) -> dict[str, Any]:
    firewall: dict[str, Any] = state["firewall"]
    return firewall


def _effective_profile(profile: dict[str, Any]) -> dict[str, Any]:
    return profile["policy"] if profile["source"] == "GroupPolicy" else profile


def _rule_out(rule: dict[str, Any], full: bool) -> dict[str, Any]:
    out = {"name": rule["name"], "display_name": rule["display_name"],
           "enabled": "True" if rule["enabled"] else "False",
           "direction": rule["direction"], "action": rule["action"], "profile": rule["profile"],
           "source_type": rule["source"], "protocol": rule["protocol"], "local_ports": list(rule["local_ports"]),
           "remote_addresses": [display_address(a) for a in rule["remote_addresses"]]}
    if full:
        out.update(description=rule["description"], remote_ports=list(rule["remote_ports"]))
    else:
        out.update(program=rule["program"], group=rule["group"], display_group=rule["display_group"])
    return out


def _in_groups(rule: dict[str, Any], groups: Any) -> bool:
    wanted = {str(g).casefold() for g in groups or []}
    return rule["group"].casefold() in wanted or rule["display_group"].casefold() in wanted


def _allowlist_read(state: State, data: Any) -> dict[str, Any]:
    firewall = _firewall(state)
    names = {str(n).casefold() for n in data.get("names") or []}
    resolved = resolve_names(state, data.get("resolve"))
    rules = [_rule_out(r, False) for r in firewall["rules"] if r["direction"] == "Inbound"
             and ((r["enabled"] and r["action"] == "Allow") or r["name"].casefold() in names
                  or _in_groups(r, data.get("cluster_groups")))]
    # Get-Service -Name: nothing (and no error, with SilentlyContinue) for a service not installed.
    wanted = str(data.get("cluster_service")).casefold()
    service = next((v for k, v in state["services"].items() if k.casefold() == wanted), None)
    cluster = {"installed": False, "status": ""} if service is None else {"installed": True,
                                                                         "status": service["status"]}
    profiles = [{"name": name, "enabled": "True" if _effective_profile(p)["enabled"] else "False",
                 "default_inbound_action": _effective_profile(p)["default_inbound_action"]}
                for name, p in firewall["profiles"].items()]
    listeners = [{"protocol": "TCP", "address": entry["address"], "port": entry["port"], "process": entry["process"],
                  "services": list(entry["services"])} for entry in firewall["listeners"]]
    return {"profiles": profiles, "rules": rules, "listeners": listeners, "cluster": cluster, "resolved": resolved}


def _persistent(state: State, name: Any) -> dict[str, Any]:
    """The local rule of that Name, as Set-NetFirewallRule -PolicyStore PersistentStore finds it."""
    found: dict[str, Any] | None = next((r for r in _firewall(state)["rules"]
                  if r["source"] == "Local" and r["name"].casefold() == str(name).casefold()), None)
    if found is None:
        raise LabScriptError(f"No MSFT_NetFirewallRule objects found with property 'Name' equal to '{name}'.  "
                             "Verify the value of the property and retry.")
    return found


def _create(state: State, spec: dict[str, Any]) -> None:
    name = str(spec["name"])
    if not name:
        raise LabScriptError("Cannot validate argument on parameter 'Name'. The argument is null or empty.")
    if any(r["source"] == "Local" and r["name"].casefold() == name.casefold() for r in _firewall(state)["rules"]):
        raise LabScriptError("Cannot create a file when that file already exists.")
    rule = {
        "name": name, "display_name": str(spec.get("display_name") or name),
        "description": str(spec.get("description") or ""),
        "enabled": _bool_word("Enabled", spec.get("enabled", "True")),
        "direction": _enum("Direction", spec.get("direction", "Inbound"), ("Inbound", "Outbound")),
        "action": _enum("Action", spec.get("action", "Allow"), ("NotConfigured", "Allow", "Block")),
        "protocol": windows_protocol(spec.get("protocol", "Any")),
        "local_ports": windows_ports(spec.get("local_ports", ["Any"])),
        "remote_ports": windows_ports(spec.get("remote_ports", ["Any"])),
        "remote_addresses": windows_addresses(spec.get("remote_addresses", ["Any"])),
        "profile": windows_profile(spec.get("profile", "Any")),
        "program": "Any", "group": str(spec.get("group") or ""), "display_group": str(spec.get("group") or ""),
        "source": "Local",
    }
    _check_ports_fit(rule)
    _firewall(state)["rules"].append(rule)


def _set(rule: dict[str, Any], prop: str, value: Any) -> None:
    """One Set-NetFirewallRule parameter, checked as the cmdlet checks it."""
    before = copy.deepcopy(rule)
    if prop == "Protocol":
        rule["protocol"] = windows_protocol(value)
    elif prop == "LocalPort":
        rule["local_ports"] = windows_ports(value)
    elif prop == "RemotePort":
        rule["remote_ports"] = windows_ports(value)
    elif prop == "RemoteAddress":
        rule["remote_addresses"] = windows_addresses(value)
    elif prop == "Profile":
        rule["profile"] = windows_profile(value)
    elif prop == "Direction":
        rule["direction"] = _enum("Direction", value, ("Inbound", "Outbound"))
    elif prop == "Action":
        rule["action"] = _enum("Action", value, ("NotConfigured", "Allow", "Block"))
    elif prop == "DisplayName":
        rule["display_name"] = str(value)
    elif prop == "Description":
        rule["description"] = str(value)
    elif prop == "Enabled":
        rule["enabled"] = _bool_word("Enabled", value)
    else:
        raise LabScriptError(f"firewall_rule: unknown property {prop}")
    try:
        _check_ports_fit(rule)
    except LabScriptError:
        rule.clear()
        rule.update(before)
        raise


def _allowlist_write(state: State, data: Any) -> dict[str, Any]:
    for spec in data.get("create") or []:
        # New-NetFirewallRule -Protocol Any is sent without -LocalPort (the template's other branch).
        ports = ["Any"] if str(spec.get("protocol")).casefold() == "any" else spec.get("local_ports")
        _create(state, {**spec, "local_ports": ports, "direction": "Inbound", "action": "Allow", "enabled": "True",
                        "profile": "Any", "group": "hardening"})
    for update in data.get("update") or []:
        rule = _persistent(state, update["name"])
        for step in update.get("steps") or []:
            prop = str(step.get("property"))
            if prop not in ("Protocol", "LocalPort", "RemoteAddress", "Profile", "Direction", "Action", "Enabled"):
                raise LabScriptError(f"firewall_allowlist: unknown property {prop}")
            _set(rule, prop, step.get("value"))
    for name in data.get("disable") or []:
        _persistent(state, name)["enabled"] = False
    for item in data.get("profiles") or []:
        name = _enum("Name", item.get("name"), PROFILES)
        profile = _firewall(state)["profiles"][name]
        # A local write to a profile Group Policy sets lands in the local store only.
        if item.get("enable"):
            profile["enabled"] = True
        if item.get("block"):
            profile["default_inbound_action"] = "Block"
    return {"written": True}


def _rule_read(state: State, data: Any) -> dict[str, Any]:
    resolved = resolve_names(state, data.get("resolve"))
    name = str(data.get("name"))
    rules = [_rule_out(r, True) for r in _firewall(state)["rules"] if r["name"].casefold() == name.casefold()]
    return {"rules": rules, "resolved": resolved}


def _rule_write(state: State, data: Any) -> dict[str, Any]:
    name = data.get("name")
    if data.get("create") is not None:
        _create(state, {**data["create"], "name": name})
    steps = data.get("steps") or []
    if steps:
        rule = _persistent(state, name)
        for step in steps:
            _set(rule, str(step.get("property")), step.get("value"))
    return {"written": True}


def _build(value: LabFirewall, host: Any) -> dict[str, Any]:
    profiles = {}
    for name in PROFILES:
        spec = next((p for n, p in value.profiles.items() if n == name), LabProfile())
        effective = {"enabled": spec.enabled, "default_inbound_action": spec.default_inbound_action}
        profiles[name] = {**effective, "source": spec.source, "policy": dict(effective)}
    rules = []
    for rule in value.rules:
        rules.append({
            "name": rule.name, "display_name": rule.display_name or rule.name, "description": rule.description,
            "enabled": rule.enabled, "direction": rule.direction, "action": rule.action,
            "protocol": windows_protocol(rule.protocol), "local_ports": windows_ports(rule.local_ports),
            "remote_ports": windows_ports(rule.remote_ports),
            "remote_addresses": windows_addresses(rule.remote_addresses),
            "profile": windows_profile(rule.profile), "program": rule.program, "group": rule.group,
            "display_group": rule.group if rule.display_group is None else rule.display_group,
            "source": rule.source})
    listeners = [{"port": entry.port, "address": entry.address, "process": entry.process,
                  "services": list(entry.services)} for entry in value.listeners]
    return {"profiles": profiles, "rules": rules, "listeners": listeners, "network_profile": value.network_profile,
            "local_subnets": list(value.local_subnets)}


SECTIONS: dict[str, StateSection] = {
    "firewall": StateSection(LabFirewall, LabFirewall(), _build,
                             "Windows Firewall: profiles (Domain/Private/Public: enabled, default_inbound_action, "
                             "source), rules (name, enabled, direction, action, protocol, local_ports, remote_ports, "
                             "remote_addresses, profile, program, source) and TCP listeners (port, address, process, "
                             "services)."),
    "dns": StateSection(dict[str, list[str]], {}, lambda v, host: {k: list(a) for k, a in v.items()},
                        "Host names this host resolves, with their addresses ([System.Net.Dns]::GetHostAddresses)."),
}
SCRIPTS: dict[tuple[str, str], ScriptHandler] = {
    ("firewall_allowlist", "read"): _allowlist_read,
    ("firewall_allowlist", "write"): _allowlist_write,
    ("firewall_rule", "read"): _rule_read,
    ("firewall_rule", "write"): _rule_write,
}


# --- The rehearsal: what the hosts' firewalls let through (see hardening.lab.rehearsal)
#
# An independent model of how Windows Firewall decides an inbound connection, written from
# Microsoft's documentation, not from the firewall kinds' code:
# - a profile switched off filters nothing; the host's network decides which profile applies
#   (``network_profile``: a domain member on its domain's network is Domain [V] "Windows Firewall
#   profiles"; the lab declares it, default Domain) [I for the lab's choice];
# - allow rules that override block rules (authenticated bypass) come first, then block rules, then
#   allow rules: "Explicit block rules take precedence over any conflicting allow rules",
#   "Explicitly defined allow rules take precedence over the default block setting" [V]
#   (windows-itpro-docs windows-firewall/rules.md; MS-FASP 2.2.34 FW_RULE_ACTION: allow-bypass,
#   then block, then allow). The lab holds no authenticated (IPsec) rule, so the bypass never
#   applies here [I];
# - with no rule matching, the profile's DefaultInboundAction decides; NotConfigured is Block [I];
# - a rule matches when it is enabled, inbound, in the profile, of the packet's protocol (Any for
#   all), covers the local port (numbers, ranges; RPC = the dynamic range 49152-65535 and RPCEPMap
#   = 135, [I] as the lab cannot see RPC's own allocation), the remote address (addresses,
#   subnets, ranges; LocalSubnet = the host's subnets, default the /24 of its address; Intranet =
#   private, unique-local and link-local ranges; Internet = every other address; DNS, DHCP, WINS,
#   DefaultGateway and the other keywords match nothing here — all [I]: Windows decides them from
#   the interfaces' configuration, which the lab does not model) and the program (a program-scoped
#   rule matches the process listening on the port by file name [I]; with no listener known it
#   matches nothing). Services, users and interfaces on rules are not modelled.

DYNAMIC_RPC = (49152, 65535)
# [I] the port the demo's backup agent listens on (organization.networks.backup sends to it).
BACKUP_AGENT_PORT = 10000
# Traffic samples for "every port and protocol" between Exchange servers and from the DCs [I]:
# RPC's endpoint mapper and a dynamic port, transport, replication, the back end, a UDP port, ping.
PEER_SAMPLES: tuple[tuple[str, int | None], ...] = (
    ("TCP", 135), ("TCP", 444), ("TCP", 2525), ("TCP", 64327), ("TCP", 50000), ("UDP", 50000), ("ICMPv4", None))
_BASE_WORDS = frozenset(k.casefold() for k in ADDRESS_KEYWORDS)
_INTRANET = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "fc00::/7", "fe80::/10"))


@dataclass(frozen=True)
class Flow:
    """Traffic the organisation needs to reach a lab host: from whom, to which port, and what for."""

    host: str
    what: str
    source: str
    address: str
    protocol: str
    port: int | None
    purpose: str
    process: str | None = None  # the receiving process where no listener says (UDP, ICMP)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    why: str


def _local_subnets(state: State) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    declared = (state.get("firewall") or {}).get("local_subnets") or []
    if declared:
        return [ipaddress.ip_network(s, strict=False) for s in declared]
    address = state.get("address")
    if not address:
        return []
    ip = ipaddress.ip_address(str(address))
    return [ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 64}", strict=False)]


def _address_matches(entry: str, remote: ipaddress.IPv4Address | ipaddress.IPv6Address, state: State) -> bool:
    word = entry.casefold()
    if word[:-1] in _BASE_WORDS and word[-1:] in ("4", "6"):
        word = word[:-1]  # LocalSubnet4, Intranet6 …: the keyword for one IP version [V] WPS
        if (remote.version == 4) != (entry[-1] == "4"):
            return False
    if word == "any":
        return True
    if word == "localsubnet":
        return any(remote in net for net in _local_subnets(state) if net.version == remote.version)
    if word == "intranet":
        return any(remote in net for net in _INTRANET if net.version == remote.version)
    if word == "internet":
        return not remote.is_loopback and not any(remote in net for net in _INTRANET if net.version == remote.version)
    if entry.casefold() in _KEYWORDS:
        return False  # DNS, DHCP, WINS, DefaultGateway …: not modelled
    if "/" in entry:
        net = ipaddress.ip_network(entry, strict=False)
        return net.version == remote.version and remote in net
    if "-" in entry:
        low, high = (ipaddress.ip_address(p.strip()) for p in entry.split("-", 1))
        return low.version == remote.version and int(low) <= int(remote) <= int(high)
    return ipaddress.ip_address(entry) == remote


def _port_matches(tokens: list[str], port: int) -> bool:
    for token in tokens:
        if token == "Any":
            return True
        if token == "RPC" and DYNAMIC_RPC[0] <= port <= DYNAMIC_RPC[1]:
            return True
        if token == "RPCEPMap" and port == 135:
            return True
        if token == "IPHTTPSIn" and port == 443:
            return True
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", token)
        if match and int(match.group(1)) <= port <= int(match.group(2) or match.group(1)):
            return True
    return False


def _program_matches(program: str, process: str | None) -> bool:
    if program.casefold() == "any":
        return True
    if process is None:
        return False
    name = re.split(r"[\\/]", program)[-1]
    stem = name[:-4] if name.casefold().endswith(".exe") else name
    return stem.casefold() == process.casefold()


def _matches(rule: dict[str, Any], profile: str, protocol: str, port: int | None,
             remote: ipaddress.IPv4Address | ipaddress.IPv6Address, process: str | None, state: State) -> bool:
    if not rule["enabled"] or rule["direction"] != "Inbound":
        return False
    if rule["profile"] != "Any" and profile not in [p.strip() for p in rule["profile"].split(",")]:
        return False
    if rule["protocol"] != "Any" and rule["protocol"] != protocol:
        return False
    if protocol in ("TCP", "UDP") and port is not None and not _port_matches(rule["local_ports"], port):
        return False
    if not any(_address_matches(a, remote, state) for a in rule["remote_addresses"]):
        return False
    return _program_matches(str(rule.get("program") or "Any"), process)


def inbound_verdict(state: State, protocol: str, port: int | None, source: str, process: str | None) -> Verdict:
    """Whether a host's firewall admits one inbound connection (or datagram), and why."""
    firewall = state["firewall"]
    profile_name = str(firewall.get("network_profile") or "Domain")
    profile = _effective_profile(firewall["profiles"][profile_name])
    if not profile["enabled"]:
        return Verdict(True, f"the {profile_name} profile is off")
    remote = ipaddress.ip_address(source)
    matching = [r for r in firewall["rules"] if _matches(r, profile_name, protocol, port, remote, process, state)]
    block = next((r for r in matching if r["action"] == "Block"), None)
    if block is not None:
        return Verdict(False, f"blocked by {block['display_name']}")
    allow = next((r for r in matching if r["action"] == "Allow"), None)
    if allow is not None:
        return Verdict(True, f"allowed by {allow['display_name']}")
    if profile["default_inbound_action"] == "Allow":
        return Verdict(True, f"the {profile_name} profile allows by default")
    return Verdict(False, f"no rule admits it in the {profile_name} profile, which blocks by default")


def _sample(network: str) -> str:
    """One address standing for a network (its first host) or the address itself [I]."""
    net = ipaddress.ip_network(network, strict=False)
    if net.num_addresses == 1:
        return str(net.network_address)
    return str(next(net.hosts()))


def _roles(state: State) -> set[str]:
    return {str(r) for r in ((state.get("exchange") or {}).get("roles") or [])}


def _is_edge(state: State) -> bool:
    return bool(_roles(state) & {"EdgeTransport", "Edge"})


def _is_internal(state: State) -> bool:
    return bool(_roles(state)) and not _is_edge(state)


def _listener(state: State, port: int) -> str | None:
    return next((str(e["process"]) for e in (state.get("firewall") or {}).get("listeners") or []
                 if e["port"] == port and not ipaddress.ip_address(str(e["address"])).is_loopback), None)


def required_flows(org: Organization, hosts: Mapping[str, State]) -> list[Flow]:
    """The traffic the organisation needs to reach each lab host (see ``consequences``)."""
    flows: list[Flow] = []
    networks = org.networks
    controller = networks.get("controller")
    for name, state in hosts.items():
        if state.get("firewall") is None:
            continue
        ports = list(org.management_ports.get(name, ()))
        if controller:
            for i, port in enumerate(ports):
                if i == 0 or _listener(state, port) is not None:
                    flows.append(Flow(name, "management", "hardening", _sample(controller), "TCP", port,
                                      "management (WinRM / Exchange's endpoint)"))
        if networks.get("admin") and _listener(state, 3389) is not None:
            flows.append(Flow(name, "rdp", "the admin network", _sample(networks["admin"]), "TCP", 3389,
                              "Remote Desktop from the admin network"))
        if "Mailbox" in _roles(state) and networks.get("backup"):
            flows.append(Flow(name, "backup", "the backup server", _sample(networks["backup"]), "TCP",
                              BACKUP_AGENT_PORT, "backups (the backup agent)"))
        if "Mailbox" in _roles(state) and networks.get("clients"):
            for port in (443, 587, 995):
                if port != 995 or _listener(state, 995) is not None:
                    flows.append(Flow(name, "clients", "the clients' network", _sample(networks["clients"]), "TCP",
                                      port, "clients (HTTPS, SMTP submission, POP3 over TLS)"))
        if _is_internal(state):
            peers = [(p, org.addresses[p]) for p, s in hosts.items()
                     if p != name and _is_internal(s) and org.addresses.get(p)]
            for peer, address in peers:
                flows += [Flow(name, "exchange-peers", peer, address, proto, port,
                               "traffic between Exchange servers (Microsoft supports no filtering there)")
                          for proto, port in PEER_SAMPLES]
            for dc, address in org.domain_controllers.items():
                flows += [Flow(name, "domain-controllers", dc, address, proto, port,
                               "traffic from the domain controllers (Microsoft supports no filtering there)")
                          for proto, port in PEER_SAMPLES]
        dag = org.dag_of(name)
        if dag is not None:
            for member in dag.members:
                if member.casefold() != name.casefold() and org.addresses.get(member):
                    flows.append(Flow(name, "cluster-heartbeat", member, org.addresses[member], "UDP", 3343,
                                      f"{dag.name}'s cluster heartbeat", process="System"))
        for witnessed in org.witness_of(name):
            for member in witnessed.members:
                if org.addresses.get(member):
                    flows.append(Flow(name, "witness", member, org.addresses[member], "TCP", 445,
                                      f"{witnessed.name}'s file share witness"))
        if _is_edge(state):
            if networks.get("internet"):
                flows.append(Flow(name, "edge-smtp", "the internet", _sample(networks["internet"]), "TCP", 25,
                                  "mail from the internet"))
            for mailbox, other in hosts.items():
                if "Mailbox" in _roles(other) and org.addresses.get(mailbox):
                    flows.append(Flow(name, "edge-smtp", mailbox, org.addresses[mailbox], "TCP", 25,
                                      "mail from the organisation"))
                    flows.append(Flow(name, "edge-sync", mailbox, org.addresses[mailbox], "TCP", 50636,
                                      "EdgeSync"))
    return flows


def _flow_text(protocol: str, port: int | None) -> str:
    return protocol if port is None else f"{protocol} {port}"


def consequences(org: Organization, hosts: Mapping[str, State]) -> list[Breakage]:
    """What the hosts' firewalls break in the organisation: each flow it needs (``required_flows``:
    management from hardening's controller on each host's management ports, Remote Desktop from the
    admin network, the backup agent from the backup server, clients on 443/587 (and 995 where POP3
    listens) on Mailbox servers, every port and protocol between internal Exchange servers and from
    the domain controllers (sampled: PEER_SAMPLES), UDP 3343 between a DAG's members, TCP 445 from a
    DAG's members to its witness server, SMTP 25 from the internet and the Mailbox servers and
    EdgeSync 50636 from the Mailbox servers on Edge servers) evaluated by ``inbound_verdict``. One
    Breakage per host, purpose and source, naming the ports refused."""
    refused: dict[tuple[str, str, str, str], list[tuple[Flow, Verdict]]] = {}
    for flow in required_flows(org, hosts):
        state = hosts[flow.host]
        process = (_listener(state, flow.port) if flow.protocol == "TCP" and flow.port is not None else None) \
            or flow.process
        verdict = inbound_verdict(state, flow.protocol, flow.port, flow.address, process)
        if not verdict.allowed:
            refused.setdefault((flow.host, flow.what, flow.source, flow.purpose), []).append((flow, verdict))
    out = []
    for (host, what, source, purpose), items in refused.items():
        first = items[0][0]
        ports = ", ".join(_flow_text(f.protocol, f.port) for f, _ in items)
        reasons = "; ".join(dict.fromkeys(v.why for _, v in items))
        out.append(Breakage(host, what, f"{host} refuses {source} ({first.address}) on {ports}: {purpose} blocked "
                                        f"({reasons})"))
    return out
