"""Lab model of IPsec connection security rules with their phase 1 authentication sets and quick
mode crypto sets, answering the blocks of ``ipsec_rule.ps1.j2`` with what they would print.

As with the firewall model, reads see every rule and set (the ActiveStore) and writes reach only
``source: Local`` ones (the PersistentStore). New-NetIPsecRule refuses a phase 1 set that does not
exist and a second rule of the same name; enum values, addresses and ports are checked as the
cmdlets check them. Proposals read back with method names (MachineKerberos, MachineCert).

**Every state a write passes through is recorded** (``ipsec.writes``: the rule before the write,
then the rule after each cmdlet that changes it, and the error a failing cmdlet ended it with), in
the order ``ipsec_rule.ps1.j2`` runs them: the sets (New-/Set-NetIPsecPhase1AuthSet,
New-/Set-NetIPsecQuickModeCryptoSet: they change how traffic is protected, not which, so they are
not moments of the rule), then either New-NetIPsecRule (one moment) or each Set-NetIPsecRule of
``steps`` (one moment each). A Set-NetIPsecRule call is taken as one change of the rule: the
cmdlet writes the rule as one policy record [I]; the kind does not rely on that (each of its calls
moves every property the same way). Steps of the older one-property form (``{property, value}``,
the template before issue 10) are still answered, one moment each, so a rehearsal can show what
that sequence did.

**Negotiation** is per host: ``negotiating_peers`` are the addresses that complete IKE with this
host (they have a matching rule of their own and accept its authentication). The host has a main
mode SA (``Get-NetIPsecMainModeSA``) with such a peer while one of its enabled rules asks IPsec
(Request or Require, either direction) of traffic with it; traffic is assumed to flow [I] (Exchange
talks to its domain controllers all the time). Which proposal they agree on is not modelled.

:func:`consequences` says what the rules break, by its own reading of Windows (not the kind's):
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...kinds.ipsec import ENCRYPTIONS, HASHES, PFS_GROUPS
from .common import LabScriptError, ScriptHandler, State, StateSection
from .firewall import (
    any_port,
    display_address,
    resolve_names,
    windows_address,
    windows_addresses,
    windows_ports,
    windows_profile,
    windows_protocol,
)

__all__ = ["SCRIPTS", "SECTIONS"]

SECURITY = ("None", "Request", "Require")
KEY_MODULES = ("Default", "IKEv1", "AuthIP", "IKEv2")
MODES = ("None", "Tunnel", "Transport")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabIpsecRule(_Strict):
    """A connection security rule in a lab file."""

    name: str
    display_name: str | None = None
    enabled: bool = True
    mode: Literal["Transport", "Tunnel"] = "Transport"
    inbound_security: Literal["None", "Request", "Require"] = "Request"
    outbound_security: Literal["None", "Request", "Require"] = "Request"
    key_module: Literal["Default", "IKEv1", "AuthIP", "IKEv2"] = "Default"
    protocol: str = "Any"
    local_ports: list[str | int] = Field(default_factory=any_port)
    remote_ports: list[str | int] = Field(default_factory=any_port)
    local_addresses: list[str] = Field(default_factory=lambda: ["Any"])
    remote_addresses: list[str] = Field(default_factory=lambda: ["Any"])
    profile: str = "Any"
    phase1_auth_set: str = Field("", description="Name of the phase 1 set; empty: the default set.")
    quick_mode_crypto_set: str = Field("", description="Name of the quick mode set; empty: the default set.")
    source: Literal["Local", "GroupPolicy"] = "Local"


class LabAuthProposal(_Strict):
    method: Literal["MachineKerberos", "MachineCert"]
    authority: str = ""
    authority_type: Literal["Root", "Intermediate"] = "Root"


class LabCryptoProposal(_Strict):
    encapsulation: Literal["ESP", "AH"] = "ESP"
    encryption: str = "AES256"
    esp_hash: str = "SHA256"
    ah_hash: str = "None"


class LabCryptoSet(_Strict):
    proposals: list[LabCryptoProposal]
    pfs: str = "None"


class LabIpsec(_Strict):
    """A host's connection security rules, the sets they name, and the peers that negotiate."""

    rules: list[LabIpsecRule] = Field(default_factory=list)
    phase1_auth_sets: dict[str, list[LabAuthProposal]] = Field(default_factory=dict)
    quick_mode_crypto_sets: dict[str, LabCryptoSet] = Field(default_factory=dict)
    negotiating_peers: list[str] = Field(
        default_factory=list, description="Addresses that complete IPsec negotiation with this host when one of its "
        "rules asks for it (a main mode SA forms); any other peer does not answer.")


def _ipsec(state: State) -> dict[str, Any]:
    ipsec: dict[str, Any] = state["ipsec"]
    return ipsec


def _find(items: dict[str, Any], name: Any) -> str | None:
    return next((k for k in items if k.casefold() == str(name).casefold()), None)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    match = next((a for a in allowed if a.casefold() == str(value).strip().casefold()), None)
    if match is None:
        raise LabScriptError(f"Cannot process argument transformation on parameter '{name}'. Cannot convert value "
                             f"\"{value}\" to type \"{name}\". Valid values: {', '.join(allowed)}")
    return match


# --- matching traffic, the lab's own way (not the kind's)

_SPAN = re.compile(r"(\d+)(?:-(\d+))?")
# [I] The port keywords by what they stand for on Windows Server 2008 and later.
PORT_KEYWORDS = {"rpc": (49152, 65535), "rpcepmap": (135, 135), "iphttpsin": (443, 443)}


def _port_matches(tokens: Iterable[str], port: int) -> bool:
    for token in tokens:
        text = str(token).casefold()
        if text == "any":
            return True
        span = PORT_KEYWORDS.get(text)
        match = _SPAN.fullmatch(text)
        if match is not None:
            span = (int(match.group(1)), int(match.group(2) or match.group(1)))
        if span is not None and span[0] <= port <= span[1]:
            return True
    return False


def _address_matches(tokens: Iterable[str], address: str, own: str | None) -> bool:
    """Whether stored addresses take in ``address``. LocalSubnet is the /24 of the host's own
    address [I]; other keywords (Intranet, DNS …) are taken to match everything, which no
    inventory can bound [I] (so they count as broad, never as narrow)."""
    ip = ipaddress.ip_address(address)
    for token in tokens:
        text = str(token)
        if text == "Any":
            return True
        if text.casefold() == "localsubnet":
            if own is not None and ip in ipaddress.ip_network(f"{own}/24", strict=False):
                return True
            continue
        try:
            if "/" in text:
                if ip in ipaddress.ip_network(text, strict=False):
                    return True
            elif "-" in text:
                first, last = (ipaddress.ip_address(t) for t in text.split("-", 1))
                if first.version == ip.version and int(first) <= int(ip) <= int(last):
                    return True
            elif ipaddress.ip_address(text) == ip:
                return True
        except ValueError:
            return True
    return False


def _negotiates(ipsec: Mapping[str, Any], peer: str) -> bool:
    return any(ipaddress.ip_address(p) == ipaddress.ip_address(peer) for p in ipsec.get("negotiating_peers", []))


def _asks_ipsec(rule: Mapping[str, Any]) -> bool:
    return bool(rule["enabled"]) and (rule["inbound_security"], rule["outbound_security"]) != ("None", "None")


def _main_mode_peers(state: State) -> list[str]:
    """Get-NetIPsecMainModeSA's RemoteEndpoints: each negotiating peer some rule asks IPsec of."""
    ipsec = _ipsec(state)
    own = state.get("address")
    return [peer for peer in ipsec.get("negotiating_peers", [])
            if any(_asks_ipsec(r) and _address_matches(r["remote_addresses"], peer, own) for r in ipsec["rules"])]


# --- the blocks


def _read(state: State, data: Any) -> dict[str, Any]:
    ipsec = _ipsec(state)
    resolved = resolve_names(state, data.get("resolve"))
    name = str(data.get("name"))
    rules = []
    for rule in ipsec["rules"]:
        if rule["name"].casefold() != name.casefold():
            continue
        rules.append({
            "name": rule["name"], "display_name": rule["display_name"],
            "enabled": "True" if rule["enabled"] else "False",
            "mode": rule["mode"], "inbound_security": rule["inbound_security"],
            "outbound_security": rule["outbound_security"], "key_module": rule["key_module"],
            "profile": rule["profile"], "phase1_auth_set": rule["phase1_auth_set"],
            "quick_mode_crypto_set": rule["quick_mode_crypto_set"], "source_type": rule["source"],
            "protocol": rule["protocol"], "local_ports": list(rule["local_ports"]),
            "remote_ports": list(rule["remote_ports"]),
            "local_addresses": [display_address(a) for a in rule["local_addresses"]],
            "remote_addresses": [display_address(a) for a in rule["remote_addresses"]]})
    phase1 = None
    key = _find(ipsec["phase1_auth_sets"], data.get("phase1_set"))
    if key is not None:
        phase1 = {"proposals": copy.deepcopy(ipsec["phase1_auth_sets"][key]["proposals"])}
    quickmode = None
    if data.get("quickmode_set") is not None:
        key = _find(ipsec["quick_mode_crypto_sets"], data.get("quickmode_set"))
        if key is not None:
            found = ipsec["quick_mode_crypto_sets"][key]
            quickmode = {"pfs": found["pfs"], "proposals": copy.deepcopy(found["proposals"])}
    return {"rules": rules, "phase1": phase1, "quickmode": quickmode, "resolved": resolved,
            "main_mode_peers": _main_mode_peers(state) if data.get("sa") else None}


def _auth_proposals(values: Any) -> list[dict[str, Any]]:
    out = []
    for proposal in values or []:
        if str(proposal.get("method")) == "MachineCert":
            authority = str(proposal.get("authority") or "")
            if not authority:
                raise LabScriptError("Cannot validate argument on parameter 'Authority'. The argument is null or "
                                     "empty.")
            out.append({"method": "MachineCert", "authority": authority,
                        "authority_type": _choice("AuthorityType", proposal.get("authority_type"),
                                                  ("Root", "Intermediate"))})
        else:
            out.append({"method": "MachineKerberos", "authority": "", "authority_type": ""})
    if not out:
        raise LabScriptError("Cannot validate argument on parameter 'Proposal'. The argument is null or empty.")
    return out


def _crypto_proposals(values: Any) -> list[dict[str, Any]]:
    out = []
    for proposal in values or []:
        out.append({"encapsulation": _choice("Encapsulation", proposal.get("encapsulation"), ("None", "AH", "ESP")),
                    "encryption": _choice("Encryption", proposal.get("encryption"), ENCRYPTIONS),
                    "esp_hash": _choice("ESPHash", proposal.get("esp_hash"), HASHES),
                    "ah_hash": _choice("AHHash", proposal.get("ah_hash"), HASHES)})
    if not out:
        raise LabScriptError("Cannot validate argument on parameter 'Proposal'. The argument is null or empty.")
    return out


def _local_set(items: dict[str, Any], name: Any, kind: str) -> dict[str, Any]:
    key = _find(items, name)
    if key is None or items[key]["source"] != "Local":
        raise LabScriptError(f"No MSFT_NetIKE{kind} objects found with property 'Name' equal to '{name}'.  Verify "
                             "the value of the property and retry.")
    return items[key]  # type: ignore[no-any-return]


def _new_set(items: dict[str, Any], name: Any, entry: dict[str, Any]) -> None:
    if _find(items, name) is not None:
        raise LabScriptError("Cannot create a file when that file already exists.")
    items[str(name)] = {**entry, "source": "Local"}


def _check_ports_fit(rule: dict[str, Any]) -> None:
    if rule["protocol"] not in ("TCP", "UDP") and [p for p in (*rule["local_ports"], *rule["remote_ports"])
                                                    if p != "Any"]:
        raise LabScriptError("The port specification is only valid with the TCP or UDP protocol.")


def _rule(state: State, name: Any) -> dict[str, Any]:
    found: dict[str, Any] | None = next((r for r in _ipsec(state)["rules"]
                  if r["source"] == "Local" and r["name"].casefold() == str(name).casefold()), None)
    if found is None:
        raise LabScriptError(f"No MSFT_NetConSecRule objects found with property 'InstanceID' equal to '{name}'.  "
                             "Verify the value of the property and retry.")
    return found


def _set_reference(state: State, kind: str, value: Any) -> str:
    ipsec = _ipsec(state)
    items = ipsec["phase1_auth_sets"] if kind == "Phase1AuthSet" else ipsec["quick_mode_crypto_sets"]
    key = _find(items, value)
    if key is None:
        raise LabScriptError(f"The {kind} '{value}' was not found.")
    return key


def _set_property(state: State, rule: dict[str, Any], prop: str, value: Any) -> None:
    """One property of Set-NetIPsecRule, checked as the cmdlet checks it."""
    if prop == "Protocol":
        rule["protocol"] = windows_protocol(value)
    elif prop == "LocalPort":
        rule["local_ports"] = windows_ports(value)
    elif prop == "RemotePort":
        rule["remote_ports"] = windows_ports(value)
    elif prop == "LocalAddress":
        rule["local_addresses"] = windows_addresses(value)
    elif prop == "RemoteAddress":
        rule["remote_addresses"] = windows_addresses(value)
    elif prop == "Mode":
        rule["mode"] = _choice("Mode", value, MODES)
    elif prop == "InboundSecurity":
        rule["inbound_security"] = _choice("InboundSecurity", value, SECURITY)
    elif prop == "OutboundSecurity":
        rule["outbound_security"] = _choice("OutboundSecurity", value, SECURITY)
    elif prop == "KeyModule":
        rule["key_module"] = _choice("KeyModule", value, KEY_MODULES)
    elif prop == "Profile":
        rule["profile"] = windows_profile(value)
    elif prop == "DisplayName":
        rule["display_name"] = str(value)
    elif prop == "Phase1AuthSet":
        rule["phase1_auth_set"] = _set_reference(state, "Phase1AuthSet", value)
    elif prop == "QuickModeCryptoSet":
        rule["quick_mode_crypto_set"] = _set_reference(state, "QuickModeCryptoSet", value)
    elif prop == "Enabled":
        rule["enabled"] = _choice("Enabled", value, ("True", "False")) == "True"
    else:
        raise LabScriptError(f"ipsec_rule: unknown property {prop}")


def _set_rule(state: State, rule: dict[str, Any], changes: list[tuple[str, Any]]) -> None:
    """One Set-NetIPsecRule call: every parameter checked, then all of them taken, or none."""
    updated = copy.deepcopy(rule)
    for prop, value in changes:
        _set_property(state, updated, prop, value)
    _check_ports_fit(updated)
    rule.clear()
    rule.update(updated)


# The parameters of each step of the template's write block, in the order it names them.
SCOPE_PARAMETERS = (("Mode", None), ("InboundSecurity", "inbound_security"), ("OutboundSecurity", "outbound_security"),
                    ("KeyModule", "key_module"), ("Profile", "profile"), ("Protocol", "protocol"),
                    ("LocalPort", "local_ports"), ("RemotePort", "remote_ports"), ("LocalAddress", "local_addresses"),
                    ("RemoteAddress", "remote_addresses"), ("Phase1AuthSet", "phase1_auth_set"))


def _step(state: State, name: Any, step: Mapping[str, Any]) -> None:
    rule = _rule(state, name)
    call = step.get("call")
    if call is None:  # the one-property form of the template before issue 10
        _set_rule(state, rule, [(str(step.get("property")), step.get("value"))])
    elif call == "enabled":
        _set_rule(state, rule, [("Enabled", step.get("enabled"))])
    elif call == "scope":
        # -Mode is the literal 'Transport' in the template, not data.
        _set_rule(state, rule, [(prop, "Transport" if key is None else step.get(key))
                                for prop, key in SCOPE_PARAMETERS])
    elif call == "quickmode":
        _set_rule(state, rule, [("QuickModeCryptoSet", step.get("quick_mode_crypto_set"))])
    elif call == "display":
        _set_rule(state, rule, [("DisplayName", step.get("display_name"))])
    else:
        raise LabScriptError(f"ipsec_rule: unknown step {call}")


def _new_rule(state: State, name: Any, new: Mapping[str, Any]) -> None:
    """New-NetIPsecRule: what the call names, Windows' defaults (Any) for what it does not."""
    ipsec = _ipsec(state)
    if any(r["source"] == "Local" and r["name"].casefold() == str(name).casefold() for r in ipsec["rules"]):
        raise LabScriptError("Cannot create a file when that file already exists.")
    phase1 = _set_reference(state, "Phase1AuthSet", new.get("phase1_auth_set"))
    quickmode = "" if new.get("quick_mode_crypto_set") is None else \
        _set_reference(state, "QuickModeCryptoSet", new.get("quick_mode_crypto_set"))
    rule = {
        "name": str(name), "display_name": str(new.get("display_name") or name),
        "enabled": _choice("Enabled", new.get("enabled"), ("True", "False")) == "True", "mode": "Transport",
        "inbound_security": _choice("InboundSecurity", new.get("inbound_security"), SECURITY),
        "outbound_security": _choice("OutboundSecurity", new.get("outbound_security"), SECURITY),
        "key_module": _choice("KeyModule", new.get("key_module"), KEY_MODULES),
        "protocol": windows_protocol(new.get("protocol", "Any")),
        "local_ports": windows_ports(new.get("local_ports", ["Any"])),
        "remote_ports": windows_ports(new.get("remote_ports", ["Any"])),
        "local_addresses": windows_addresses(new.get("local_addresses")),
        "remote_addresses": windows_addresses(new.get("remote_addresses")),
        "profile": windows_profile(new.get("profile")), "phase1_auth_set": phase1,
        "quick_mode_crypto_set": quickmode, "source": "Local"}
    _check_ports_fit(rule)
    ipsec["rules"].append(rule)


def _local_rule(state: State, name: Any) -> dict[str, Any] | None:
    found = next((r for r in _ipsec(state)["rules"]
                  if r["source"] == "Local" and r["name"].casefold() == str(name).casefold()), None)
    return copy.deepcopy(found)


def _write(state: State, data: Any) -> dict[str, Any]:
    ipsec = _ipsec(state)
    name = data.get("name")
    trace: dict[str, Any] = {"rule": str(name), "before": _local_rule(state, name), "moments": [], "error": None}
    ipsec["writes"].append(trace)
    try:
        _write_sets(ipsec, data)
        if data.get("create") is not None:
            _new_rule(state, name, data["create"])
            trace["moments"].append(_local_rule(state, name))
        for step in data.get("steps") or []:
            _step(state, name, step)
            trace["moments"].append(_local_rule(state, name))
    except LabScriptError as exc:
        trace["error"] = str(exc)
        raise
    return {"written": True}


def _write_sets(ipsec: dict[str, Any], data: Any) -> None:
    auth = data.get("phase1")
    if auth is not None:
        proposals = _auth_proposals(auth.get("proposals"))
        if auth.get("exists"):
            _local_set(ipsec["phase1_auth_sets"], auth.get("set"), "Phase1AuthSet")["proposals"] = proposals
        else:
            _new_set(ipsec["phase1_auth_sets"], auth.get("set"), {"proposals": proposals})
    crypto = data.get("quickmode")
    if crypto is not None:
        if crypto.get("proposals") is not None:
            proposals = _crypto_proposals(crypto.get("proposals"))
            if crypto.get("exists"):
                _local_set(ipsec["quick_mode_crypto_sets"], crypto.get("set"), "QuickModeCryptoSet")["proposals"] = \
                    proposals
            else:
                _new_set(ipsec["quick_mode_crypto_sets"], crypto.get("set"), {"proposals": proposals, "pfs": "None"})
        if crypto.get("pfs") is not None:
            _local_set(ipsec["quick_mode_crypto_sets"], crypto.get("set"), "QuickModeCryptoSet")["pfs"] = \
                _choice("PerfectForwardSecrecyGroup", crypto.get("pfs"), PFS_GROUPS)


def _build(value: LabIpsec, host: Any) -> dict[str, Any]:
    rules = []
    for rule in value.rules:
        entry = {
            "name": rule.name, "display_name": rule.display_name or rule.name, "enabled": rule.enabled,
            "mode": rule.mode, "inbound_security": rule.inbound_security, "outbound_security": rule.outbound_security,
            "key_module": rule.key_module, "protocol": windows_protocol(rule.protocol),
            "local_ports": windows_ports(rule.local_ports), "remote_ports": windows_ports(rule.remote_ports),
            "local_addresses": windows_addresses(rule.local_addresses),
            "remote_addresses": windows_addresses(rule.remote_addresses), "profile": windows_profile(rule.profile),
            "phase1_auth_set": rule.phase1_auth_set, "quick_mode_crypto_set": rule.quick_mode_crypto_set,
            "source": rule.source}
        _check_ports_fit(entry)
        rules.append(entry)
    phase1 = {name: {"proposals": [{"method": p.method, "authority": p.authority if p.method == "MachineCert" else "",
                                    "authority_type": p.authority_type if p.method == "MachineCert" else ""}
                                   for p in proposals], "source": "Local"}
              for name, proposals in value.phase1_auth_sets.items()}
    quickmode = {name: {"proposals": _crypto_proposals([p.model_dump() for p in entry.proposals]),
                        "pfs": _choice("PerfectForwardSecrecyGroup", entry.pfs, PFS_GROUPS), "source": "Local"}
                 for name, entry in value.quick_mode_crypto_sets.items()}
    peers = []
    for peer in value.negotiating_peers:
        address = windows_address(peer)
        if "/" in address or "-" in address or address[0].isalpha():
            raise LabScriptError(f"negotiating_peers holds addresses, not {peer!r}")
        peers.append(address)
    return {"rules": rules, "phase1_auth_sets": phase1, "quick_mode_crypto_sets": quickmode,
            "negotiating_peers": peers, "writes": []}


SECTIONS: dict[str, StateSection] = {
    "ipsec": StateSection(LabIpsec, LabIpsec(), _build,
                          "IPsec connection security rules (name, enabled, mode, inbound/outbound_security, "
                          "key_module, protocol, ports, addresses, profile, phase1_auth_set, quick_mode_crypto_set, "
                          "source), the sets they name: phase1_auth_sets (name: proposals with method, "
                          "authority, authority_type), quick_mode_crypto_sets (name: proposals, pfs), and "
                          "negotiating_peers (addresses that complete IPsec negotiation with this host)."),
}
SCRIPTS: dict[tuple[str, str], ScriptHandler] = {
    ("ipsec_rule", "read"): _read,
    ("ipsec_rule", "write"): _write,
}
