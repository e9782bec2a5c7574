"""Lab model of Windows Firewall: profiles, rules with their port/address/program filters and
groups, TCP listeners with their process and services, and the DNS names a host resolves. It
answers the blocks of ``firewall_allowlist.ps1.j2`` and ``firewall_rule.ps1.j2`` with what they
would print (the allow-list's read also reports the Cluster service from the lab's ``services``).

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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...kinds.firewall import ADDRESS_KEYWORDS, PORT_KEYWORDS, PROFILES, canonical_port
from .common import LabScriptError, ScriptHandler, State, StateSection

__all__ = ["SCRIPTS", "SECTIONS", "display_address", "resolve_names", "windows_address"]

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

