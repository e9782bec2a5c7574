"""Lab model of IPsec connection security rules with their phase 1 authentication sets and quick
mode crypto sets, answering the blocks of ``ipsec_rule.ps1.j2`` with what they would print.

As with the firewall model, reads see every rule and set (the ActiveStore) and writes reach only
``source: Local`` ones (the PersistentStore). New-NetIPsecRule refuses a phase 1 set that does not
exist and a second rule of the same name; enum values, addresses and ports are checked as the
cmdlets check them. Proposals read back with method names (MachineKerberos, MachineCert).
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...kinds.ipsec import ENCRYPTIONS, HASHES, PFS_GROUPS
from .common import LabScriptError, ScriptHandler, State, StateSection
from .firewall import (
    _enum,
    any_port,
    display_address,
    resolve_names,
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
    """A host's connection security rules and the sets they name."""

    rules: list[LabIpsecRule] = Field(default_factory=list)
    phase1_auth_sets: dict[str, list[LabAuthProposal]] = Field(default_factory=dict)
    quick_mode_crypto_sets: dict[str, LabCryptoSet] = Field(default_factory=dict)


def _ipsec(state: State) -> dict[str, Any]:
    ipsec: dict[str, Any] = state["ipsec"]
    return ipsec


def _find(items: dict[str, Any], name: Any) -> str | None:
    return next((k for k in items if k.casefold() == str(name).casefold()), None)


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
    return {"rules": rules, "phase1": phase1, "quickmode": quickmode, "resolved": resolved}


def _auth_proposals(values: Any) -> list[dict[str, Any]]:
    out = []
    for proposal in values or []:
        if str(proposal.get("method")) == "MachineCert":
            authority = str(proposal.get("authority") or "")
            if not authority:
                raise LabScriptError("Cannot validate argument on parameter 'Authority'. The argument is null or "
                                     "empty.")
            out.append({"method": "MachineCert", "authority": authority,
                        "authority_type": _enum("AuthorityType", proposal.get("authority_type"),
                                                ("Root", "Intermediate"))})
        else:
            out.append({"method": "MachineKerberos", "authority": "", "authority_type": ""})
    if not out:
        raise LabScriptError("Cannot validate argument on parameter 'Proposal'. The argument is null or empty.")
    return out


def _crypto_proposals(values: Any) -> list[dict[str, Any]]:
    out = []
    for proposal in values or []:
        out.append({"encapsulation": _enum("Encapsulation", proposal.get("encapsulation"), ("None", "AH", "ESP")),
                    "encryption": _enum("Encryption", proposal.get("encryption"), ENCRYPTIONS),
                    "esp_hash": _enum("ESPHash", proposal.get("esp_hash"), HASHES),
                    "ah_hash": _enum("AHHash", proposal.get("ah_hash"), HASHES)})
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


def _set_property(state: State, rule: dict[str, Any], prop: str, value: Any) -> None:
    before = copy.deepcopy(rule)
    ipsec = _ipsec(state)
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
        rule["mode"] = _enum("Mode", value, MODES)
    elif prop == "InboundSecurity":
        rule["inbound_security"] = _enum("InboundSecurity", value, SECURITY)
    elif prop == "OutboundSecurity":
        rule["outbound_security"] = _enum("OutboundSecurity", value, SECURITY)
    elif prop == "KeyModule":
        rule["key_module"] = _enum("KeyModule", value, KEY_MODULES)
    elif prop == "Profile":
        rule["profile"] = windows_profile(value)
    elif prop == "DisplayName":
        rule["display_name"] = str(value)
    elif prop == "Phase1AuthSet":
        key = _find(ipsec["phase1_auth_sets"], value)
        if key is None:
            raise LabScriptError(f"The Phase1AuthSet '{value}' was not found.")
        rule["phase1_auth_set"] = key
    elif prop == "QuickModeCryptoSet":
        key = _find(ipsec["quick_mode_crypto_sets"], value)
        if key is None:
            raise LabScriptError(f"The QuickModeCryptoSet '{value}' was not found.")
        rule["quick_mode_crypto_set"] = key
    elif prop == "Enabled":
        rule["enabled"] = _enum("Enabled", value, ("True", "False")) == "True"
    else:
        raise LabScriptError(f"ipsec_rule: unknown property {prop}")
    try:
        _check_ports_fit(rule)
    except LabScriptError:
        rule.clear()
        rule.update(before)
        raise


def _write(state: State, data: Any) -> dict[str, Any]:
    ipsec = _ipsec(state)
    name = data.get("name")
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
                _enum("PerfectForwardSecrecyGroup", crypto.get("pfs"), PFS_GROUPS)
    new = data.get("create")
    if new is not None:
        if any(r["source"] == "Local" and r["name"].casefold() == str(name).casefold() for r in ipsec["rules"]):
            raise LabScriptError("Cannot create a file when that file already exists.")
        phase1 = _find(ipsec["phase1_auth_sets"], new.get("phase1_auth_set"))
        if phase1 is None:
            raise LabScriptError(f"The Phase1AuthSet '{new.get('phase1_auth_set')}' was not found.")
        ipsec["rules"].append({
            "name": str(name), "display_name": str(new.get("display_name") or name),
            "enabled": _enum("Enabled", new.get("enabled"), ("True", "False")) == "True", "mode": "Transport",
            "inbound_security": _enum("InboundSecurity", new.get("inbound_security"), SECURITY),
            "outbound_security": _enum("OutboundSecurity", new.get("outbound_security"), SECURITY),
            "key_module": _enum("KeyModule", new.get("key_module"), KEY_MODULES),
            "protocol": "Any", "local_ports": ["Any"], "remote_ports": ["Any"],
            "local_addresses": windows_addresses(new.get("local_addresses")),
            "remote_addresses": windows_addresses(new.get("remote_addresses")),
            "profile": windows_profile(new.get("profile")), "phase1_auth_set": phase1,
            "quick_mode_crypto_set": "", "source": "Local"})
    steps = data.get("steps") or []
    if steps:
        rule = _rule(state, name)
        for step in steps:
            _set_property(state, rule, str(step.get("property")), step.get("value"))
    return {"written": True}


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
                        "pfs": _enum("PerfectForwardSecrecyGroup", entry.pfs, PFS_GROUPS), "source": "Local"}
                 for name, entry in value.quick_mode_crypto_sets.items()}
    return {"rules": rules, "phase1_auth_sets": phase1, "quick_mode_crypto_sets": quickmode}


SECTIONS: dict[str, StateSection] = {
    "ipsec": StateSection(LabIpsec, LabIpsec(), _build,
                          "IPsec connection security rules (name, enabled, mode, inbound/outbound_security, "
                          "key_module, protocol, ports, addresses, profile, phase1_auth_set, quick_mode_crypto_set, "
                          "source) and the sets they name: phase1_auth_sets (name: proposals with method, "
                          "authority, authority_type), quick_mode_crypto_sets (name: proposals, pfs)."),
}
SCRIPTS: dict[tuple[str, str], ScriptHandler] = {
    ("ipsec_rule", "read"): _read,
    ("ipsec_rule", "write"): _write,
}
