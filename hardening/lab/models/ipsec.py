"""Lab model of IPsec connection security rules with their phase 1 authentication sets and quick
mode crypto sets, answering the blocks of ``ipsec_rule.ps1.j2`` with what they would print.

As with the firewall model, reads see every rule and set (the ActiveStore) and writes reach only
``source: Local`` ones (the PersistentStore). New-NetIPsecRule refuses a phase 1 set that does not
exist and a second rule of the same name; enum values, addresses and ports are checked as the
cmdlets check them. Proposals read back with method names (MachineKerberos, MachineCert).

**Every state a write passes through is recorded** (``ipsec.writes``: the rule before the write,
then the rule after each cmdlet that changes it, and the error a failing cmdlet ended it with), in
the order ``ipsec_rule.ps1.j2`` runs them: for an existing rule, the Set-NetIPsecRule of ``lower``
(security lowered to Request before its sets change; one moment); the sets (New-/Set-
NetIPsecPhase1AuthSet, New-/Set-NetIPsecQuickModeCryptoSet: they change how traffic is protected,
not which, so they are not moments of the rule); then either New-NetIPsecRule (one moment) or each
Set-NetIPsecRule of ``steps`` (one moment each). A Set-NetIPsecRule call is taken as one change of
the rule: the cmdlet writes the rule as one policy record [I]; the kind does not rely on that
(each of its calls moves every property the same way). Steps of the older one-property form
(``{property, value}``, the template before issue 10) are still answered, one moment each, so a
rehearsal can show what that sequence did.

**Negotiation** is per host: ``negotiating_peers`` are the addresses that complete IKE with this
host (they have a matching rule of their own and accept its authentication). The host has a main
mode SA (``Get-NetIPsecMainModeSA``) with such a peer while one of its enabled rules asks IPsec
(Request or Require, either direction) of traffic with it; traffic is assumed to flow [I] (Exchange
talks to its domain controllers all the time). Which proposal they agree on is not modelled.

:func:`consequences` says what the rules break, by its own reading of Windows (not the kind's
decision code). It probes flows: from the host to each peer on the services a mail server uses
there (DNS, Kerberos, NTP, RPC, LDAP, SMB, LDAPS, the Global Catalog, dynamic RPC, WinRM) and from
the peer to the host (RPC, SMB, dynamic RPC; WinRM from the controller). A rule asks a flow the
security of the direction the flow starts in (outbound for the host's connections, inbound for
the peer's [I]) when it is enabled and its protocol, ports, addresses and profile match (the host
is taken to be on the Domain profile [I]); where rules overlap, the strictest counts [I]. Request
does not stop traffic: it is sent in the clear while IPsec is negotiated [V] (WFP "Negotiation
Discovery"); Require drops what is not protected [V] (MS-FASP FW_CS_RULE_ACTION_SECURE).

- ``ipsec-window``: some moment of a write asked IPsec of a flow that neither the rule before nor
  the rule after that write asks it of (the rule existed, however briefly, broader than desired).
- ``domain-controllers``: Require towards a domain controller that does not negotiate with the
  host (that traffic is dropped); or Require, authenticated by Kerberos, on Kerberos itself to a
  domain controller (the ticket the authentication needs cannot be fetched) [I].
- ``management``: inbound Require on the port the run manages the host through, from the
  controller, which is not taken to negotiate IPsec [I].
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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
        if data.get("create") is None:
            for step in data.get("lower") or []:
                _set_rule(state, _rule(state, name), [("InboundSecurity", step.get("inbound_security")),
                                                      ("OutboundSecurity", step.get("outbound_security"))])
                trace["moments"].append(_local_rule(state, name))
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


# --- what the rules break (the rehearsal)

# (protocol, port, service): what a mail server reaches on a domain controller or another server,
# and what those reach on it; the source port of a connection is an ephemeral one.
OUTBOUND_SERVICES = (("UDP", 53, "DNS"), ("TCP", 53, "DNS"), ("UDP", 88, "Kerberos"), ("TCP", 88, "Kerberos"),
                     ("UDP", 123, "NTP"), ("TCP", 135, "RPC"), ("UDP", 389, "LDAP"), ("TCP", 389, "LDAP"),
                     ("TCP", 445, "SMB"), ("UDP", 464, "Kerberos password"), ("TCP", 464, "Kerberos password"),
                     ("TCP", 636, "LDAPS"), ("TCP", 3268, "Global Catalog"), ("TCP", 3269, "Global Catalog over SSL"),
                     ("TCP", 5985, "WinRM"), ("TCP", 5986, "WinRM over HTTPS"), ("TCP", 49152, "dynamic RPC"))
INBOUND_SERVICES = (("TCP", 135, "RPC"), ("TCP", 445, "SMB"), ("TCP", 49152, "dynamic RPC"))
EPHEMERAL = 50000
LEVELS = {"None": 0, "Request": 1, "Require": 2}


@dataclass(frozen=True)
class Flow:
    """Traffic between the host and a peer: who starts it, protocol, the host's and the peer's port."""

    outbound: bool
    protocol: str
    local_port: int
    remote_port: int
    peer: str
    service: str

    def __str__(self) -> str:
        port = self.remote_port if self.outbound else self.local_port
        return f"{self.protocol} {port} ({self.service}) {'to' if self.outbound else 'from'} {self.peer}"


def _flows(peer: str, extra_ports: Iterable[tuple[str, int]] = ()) -> list[Flow]:
    out = [Flow(True, protocol, EPHEMERAL, port, peer, service) for protocol, port, service in OUTBOUND_SERVICES]
    out += [Flow(False, protocol, port, EPHEMERAL, peer, service) for protocol, port, service in INBOUND_SERVICES]
    out += [Flow(outbound, protocol, EPHEMERAL if outbound else port, port if outbound else EPHEMERAL, peer,
                 "a port the rule names") for protocol, port in extra_ports for outbound in (True, False)]
    return out


def _asks(rule: Mapping[str, Any] | None, flow: Flow, own: str | None) -> int:
    """The security level one rule asks of a flow (0: it does not match, or asks nothing)."""
    if rule is None or not rule["enabled"] or rule["protocol"] not in ("Any", flow.protocol):
        return 0
    if "Any" not in rule["profile"] and "Domain" not in rule["profile"]:
        return 0
    if not _port_matches(rule["local_ports"], flow.local_port) or not _port_matches(rule["remote_ports"],
                                                                                     flow.remote_port):
        return 0
    if own is not None and not _address_matches(rule["local_addresses"], own, own):
        return 0
    if not _address_matches(rule["remote_addresses"], flow.peer, own):
        return 0
    return LEVELS.get(rule["outbound_security"] if flow.outbound else rule["inbound_security"], 0)


def _kerberos_authenticated(ipsec: Mapping[str, Any], rule: Mapping[str, Any]) -> bool:
    """A rule's computers authenticate with Kerberos: its set offers MachineKerberos, or it names
    none (Windows' default phase 1 set is computer Kerberos [I])."""
    key = _find(ipsec["phase1_auth_sets"], rule["phase1_auth_set"]) if rule["phase1_auth_set"] else None
    if key is None:
        return True
    return any(p["method"] == "MachineKerberos" for p in ipsec["phase1_auth_sets"][key]["proposals"])


def _sample_address(token: str) -> str | None:
    """An address inside a stored address (a subnet's first host, a range's first), for probing."""
    if token == "Any" or token[:1].isalpha():
        return None
    if "/" in token:
        net = ipaddress.ip_network(token, strict=False)
        return str(net.network_address + 1) if net.num_addresses > 1 else str(net.network_address)
    return token.split("-", 1)[0]


def _rule_ports(rules: Iterable[Mapping[str, Any] | None]) -> set[tuple[str, int]]:
    out: set[tuple[str, int]] = set()
    for rule in rules:
        if rule is None:
            continue
        for token in (*rule["local_ports"], *rule["remote_ports"]):
            match = _SPAN.fullmatch(str(token))
            if match is not None:
                out |= {(p, int(match.group(1))) for p in ("TCP", "UDP") if rule["protocol"] in ("Any", p)}
    return out


# The services a window sentence names first: what the issue is about (authentication, management).
FIRST_NAMED = ("Kerberos", "DNS", "WinRM", "WinRM over HTTPS")


def _window(host: str, trace: Mapping[str, Any], peers: Mapping[str, str], own: str | None) -> str | None:
    """The sentence for a write that passed through a rule broader than both its ends, if it did.
    ``peers``: address → how to name it."""
    moments = list(trace.get("moments") or [])
    if len(moments) < 2:
        return None
    before, after = trace.get("before"), moments[-1]
    states = [before, *moments]
    sampled = {a for r in states if r is not None for a in map(_sample_address, r["remote_addresses"]) if a}
    extra = _rule_ports(states)
    services: dict[str, set[str]] = {}
    hit: set[str] = set()
    required = False
    for moment in moments[:-1]:
        for peer in sorted({*peers, *sampled}):
            for flow in _flows(peer, extra):
                level = _asks(moment, flow, own)
                if level > max(_asks(before, flow, own), _asks(after, flow, own)):
                    port = flow.remote_port if flow.outbound else flow.local_port
                    services.setdefault(flow.service, set()).add(f"{flow.protocol} {port}")
                    hit.add(peer)
                    required = required or level == 2
    if not services:
        return None
    order = sorted(services, key=lambda s: (FIRST_NAMED.index(s) if s in FIRST_NAMED else len(FIRST_NAMED), s))
    named = [f"{s} ({', '.join(sorted(services[s]))})" for s in order[:4]]
    more = f" and {len(order) - 4} more services" if len(order) > 4 else ""
    who = ", ".join(peers.get(p, p) for p in sorted(hit))
    return (f"while {trace.get('rule')} was written it {'required' if required else 'requested'} IPsec for traffic "
            f"that neither the rule before nor the rule after the write asks it of: {'; '.join(named)}{more}, with "
            f"{who}; for a moment that traffic needed IPsec")


def ipsec_findings(host: str, state: Mapping[str, Any], domain_controllers: Mapping[str, str],
                   addresses: Mapping[str, str], networks: Mapping[str, str],
                   management_ports: Sequence[int]) -> list[tuple[str, str]]:
    """(what, sentence) for everything this host's IPsec rules break or broke (see the module)."""
    ipsec = state.get("ipsec") or {}
    rules = [r for r in ipsec.get("rules") or [] if r["enabled"]]
    own = state.get("address") or addresses.get(host)
    found: list[tuple[str, str]] = []
    peers = {a: f"{n} ({a})" for n, a in networks.items() if "/" not in a}
    peers.update({a: f"{n} ({a})" for n, a in addresses.items() if n != host})
    peers.update({a: f"{n} ({a})" for n, a in domain_controllers.items()})
    for trace in ipsec.get("writes") or []:
        sentence = _window(host, trace, peers, own)
        if sentence is not None:
            found.append(("ipsec-window", sentence))
    for name, address in domain_controllers.items():
        flows = _flows(address)
        required = [f for f in flows if max((_asks(r, f, own) for r in rules), default=0) == 2]
        if not required:
            continue
        if not _negotiates(ipsec, address):
            shown = ", ".join(f"{f.protocol} {f.remote_port if f.outbound else f.local_port}" for f in required[:6])
            found.append(("domain-controllers", f"{host} requires IPsec with {name} ({address}) for {shown}"
                          f"{' …' if len(required) > 6 else ''}, and {name} does not negotiate IPsec with it: that "
                          "traffic to the domain controller is dropped"))
            continue
        kerberos = [f for f in required if f.outbound and f.remote_port == 88
                    and any(_asks(r, f, own) == 2 and _kerberos_authenticated(ipsec, r) for r in rules)]
        if kerberos:
            found.append(("domain-controllers", f"{host} requires IPsec, authenticated by Kerberos, for Kerberos "
                          f"itself ({', '.join(f.protocol + ' 88' for f in kerberos)}) with {name} ({address}): "
                          "the Kerberos ticket that authentication needs cannot be fetched"))
    controller = networks.get("controller")
    if controller and "/" not in controller and not _negotiates(ipsec, controller):
        for port in management_ports:
            flow = Flow(False, "TCP", port, EPHEMERAL, controller, "WinRM")
            if max((_asks(r, flow, own) for r in rules), default=0) == 2:
                found.append(("management", f"{host} requires IPsec inbound on TCP {port}, the port hardening "
                              f"manages it through, from the controller {controller}, which does not negotiate "
                              "IPsec: management is lost"))
    return found
