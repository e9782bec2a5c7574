"""IPsec kinds: connection security rules (procedures.md §9.2), a script kind on the NetSecurity
module (``templates/ipsec_rule.ps1.j2``).

A connection security rule says which traffic must (Require) or should (Request) be protected
with IPsec, how the computers authenticate (the rule's phase 1 authentication set) and how the
traffic is protected (its quick mode crypto set). This kind owns one rule and, by derived names,
its two sets: ``<rule>-phase1`` and ``<rule>-quickmode``. Reads the ActiveStore, writes the
PersistentStore (as the firewall kinds; see ``firewall.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..compare import BOOL, TEXT, Comparer, State, split_list
from ..model import Call, ScriptCall
from .base import Context, ControlFailed, Kind, KindParams, canonical_names, host_objects
from .firewall import (
    ADDRESSES,
    MODERN,
    PORTS,
    PROFILE,
    PROTOCOL,
    Address,
    PortSpec,
    address_list,
    address_names,
    covers_port,
    host_list,
    is_broad,
    lockout_ports,
    one_or_list,
    port_text,
    resolve_addresses,
)

if TYPE_CHECKING:
    from ..inventory import Host

__all__ = ["FAMILY_KINDS", "IpsecRule", "QuickModeProposal"]

Security = Literal["None", "Request", "Require"]
Encryption = Literal["None", "DES", "DES3", "AES128", "AES192", "AES256", "AESGCM128", "AESGCM192", "AESGCM256"]
Hash = Literal["None", "MD5", "SHA1", "SHA256", "SHA384", "AESGMAC128", "AESGMAC192", "AESGMAC256"]
PfsGroup = Literal["None", "DH1", "DH2", "DH14", "DH19", "DH20", "DH24", "SameAsMainMode"]
ENCRYPTIONS = ("None", "DES", "DES3", "AES128", "AES192", "AES256", "AESGCM128", "AESGCM192", "AESGCM256")
HASHES = ("None", "MD5", "SHA1", "SHA256", "SHA384", "AESGMAC128", "AESGMAC192", "AESGMAC256")
PFS_GROUPS = ("None", "DH1", "DH2", "DH14", "DH19", "DH20", "DH24", "SameAsMainMode")

# [I] How a phase 1 proposal reads back (AuthenticationMethod); the CIM class documents numbers
# (MSFT_NetIKEKerbAuthProposal: 65002 machine Kerberos), the cmdlets print names.
AUTH_METHODS = {"machinekerberos": "MachineKerberos", "machinekerb": "MachineKerberos", "kerberos": "MachineKerberos",
                "65002": "MachineKerberos", "2": "MachineKerberos", "machinecert": "MachineCert",
                "machinecertificate": "MachineCert", "5": "MachineCert"}
OBJECT_PREFIX = "ipsec rule "
SETS_OBJECT = "_ipsec_sets"


class QuickModeProposal(KindParams):
    """One quick mode (phase 2) crypto offer: how the protected traffic is encrypted and signed."""

    encapsulation: Literal["ESP", "AH"] = Field("ESP", description="ESP (encrypt and sign) or AH (sign only).")
    encryption: Encryption = Field("AES256", description="ESP encryption; None for AH.")
    esp_hash: Hash = Field("SHA256", description="ESP integrity; AESGMAC with AESGCM encryption.")
    ah_hash: Hash = Field("None", description="AH integrity (AH only).")

    @field_validator("encapsulation", "encryption", "esp_hash", "ah_hash", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return canonical_names(value, ("ESP", "AH", *ENCRYPTIONS, *HASHES))

    @model_validator(mode="after")
    def _consistent(self) -> QuickModeProposal:
        if self.encapsulation == "AH":
            if self.encryption != "None" or self.esp_hash != "None" or self.ah_hash == "None":
                raise ValueError("AH signs only: set ah_hash, and encryption and esp_hash to None")
        elif self.ah_hash != "None":
            raise ValueError("ah_hash is for encapsulation AH")
        elif self.encryption == "None" and self.esp_hash == "None":
            raise ValueError("ESP needs encryption or esp_hash (or both)")
        return self


class IpsecRuleParams(KindParams):
    """Parameters of ``ipsec_rule``."""

    name: str = Field(description="IPsecRuleName: the rule's identity; its sets are <name>-phase1 "
                      "and <name>-quickmode.")
    display_name: str | None = Field(None, description="DisplayName; default: the name (set when created).")
    enabled: bool = True
    remote_addresses: list[Address] = Field(
        min_length=1, description="The peers: addresses, subnets, ranges, keywords, or host names (resolved on the "
        "host, e.g. the domain controllers).", json_schema_extra=one_or_list)
    local_addresses: list[Address] = Field(default=["Any"], min_length=1,
                                           description="This host's addresses the rule applies to.",
                                           json_schema_extra=one_or_list)
    protocol: Literal["TCP", "UDP", "Any"] = "Any"
    local_ports: list[PortSpec] = Field(default_factory=list, description="Local ports; empty: any.")
    remote_ports: list[PortSpec] = Field(default_factory=list, description="Remote ports; empty: any.")
    inbound_security: Security = Field(
        "Request", description="Require: inbound traffic must be protected; Request: protection is tried, clear "
        "traffic still allowed; None.")
    outbound_security: Security = Field("Request", description="Require, Request or None, for outbound traffic.")
    authentication: Literal["kerberos", "certificate"] = Field(
        "kerberos", description="Computer authentication: kerberos (domain members; not with IKEv2) or certificate.")
    certificate_authority: str | None = Field(
        None, description="The CA's name for certificate authentication, e.g. 'DC=com, DC=contoso, CN=Contoso Root "
        "CA' (compared exactly).")
    certificate_authority_type: Literal["Root", "Intermediate"] = "Root"
    key_module: Literal["Default", "IKEv1", "AuthIP", "IKEv2"] = "Default"
    encryption: list[QuickModeProposal] | None = Field(
        None, min_length=1, description="Quick mode offers in order of preference; none: Windows' defaults, not "
        "compared.")
    perfect_forward_secrecy: PfsGroup | None = Field(
        None, description="PerfectForwardSecrecyGroup of the quick mode set (with encryption); none: not compared.")
    profiles: list[Literal["Any", "Domain", "Private", "Public"]] = Field(default=["Any"], min_length=1)

    @field_validator("inbound_security", "outbound_security", "key_module", "protocol", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return canonical_names(value, ("None", "Request", "Require", "Default", "IKEv1", "AuthIP", "IKEv2", "TCP",
                                       "UDP", "Any"))

    @field_validator("name")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("a rule needs a name")
        return value

    @field_validator("remote_addresses", "local_addresses", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        return address_list(value)

    @model_validator(mode="after")
    def _consistent(self) -> IpsecRuleParams:
        if self.inbound_security == "None" and self.outbound_security == "None":
            raise ValueError("inbound_security and outbound_security are both None: the rule would protect nothing")
        if self.authentication == "certificate" and not self.certificate_authority:
            raise ValueError("authentication certificate needs certificate_authority")
        if self.authentication == "kerberos" and self.certificate_authority is not None:
            raise ValueError("certificate_authority is for authentication: certificate")
        if self.authentication == "kerberos" and self.key_module == "IKEv2":
            raise ValueError("IKEv2 cannot authenticate computers with Kerberos; use certificate or another key_module")
        if self.protocol == "Any" and (self.local_ports or self.remote_ports):
            raise ValueError("ports need protocol TCP or UDP")
        if self.perfect_forward_secrecy is not None and self.encryption is None:
            raise ValueError("perfect_forward_secrecy is a setting of the quick mode set: give encryption too")
        if "Any" in self.profiles and len(self.profiles) > 1:
            raise ValueError("profile Any covers all profiles; give it alone")
        return self

    @property
    def phase1_set(self) -> str:
        return f"{self.name}-phase1"

    @property
    def quickmode_set(self) -> str:
        return f"{self.name}-quickmode"


def _auth_key(value: Any) -> tuple[tuple[str, ...], ...]:
    out: list[tuple[str, ...]] = []
    for item in value or ():
        if "set" in item:
            out.append(("set", str(item["set"]).casefold(), str(bool(item.get("missing")))))
            continue
        method = AUTH_METHODS.get(str(item.get("method")).casefold(), str(item.get("method")))
        if method == "MachineCert":
            out.append((method, str(item.get("authority") or ""), str(item.get("authority_type") or "Root").casefold()))
        else:
            out.append((method,))
    return tuple(out)


def _auth_text(item: Mapping[str, Any]) -> str:
    if "set" in item:
        return f"set {item['set']}" + (" (missing)" if item.get("missing") else "")
    method = AUTH_METHODS.get(str(item.get("method")).casefold(), str(item.get("method")))
    if method == "MachineCert":
        return f"MachineCert from {item.get('authority_type') or 'Root'} CA '{item.get('authority')}'"
    return method


def _crypto_key(value: Any) -> tuple[tuple[str, ...], ...]:
    out: list[tuple[str, ...]] = []
    for item in value or ():
        if "set" in item:
            out.append(("set", str(item["set"]).casefold(), str(bool(item.get("missing")))))
        else:
            out.append(tuple(str(item.get(k) or "None").casefold()
                             for k in ("encapsulation", "encryption", "esp_hash", "ah_hash")))
    return tuple(out)


def _crypto_text(item: Mapping[str, Any]) -> str:
    if "set" in item:
        return f"set {item['set']}" + (" (missing)" if item.get("missing") else "")
    if str(item.get("encapsulation")).upper() == "AH":
        return f"AH {item.get('ah_hash')}"
    return f"ESP {item.get('encryption')}/{item.get('esp_hash')}"


AUTHENTICATION = Comparer("ordered authentication proposals (CA names exact)", _auth_key,
                          item=lambda v: _auth_text(v))
ENCRYPTION = Comparer("ordered quick mode proposals", _crypto_key, item=lambda v: _crypto_text(v))




class IpsecRule(Kind[IpsecRuleParams]):
    """An IPsec connection security rule (guide: "IPsec"; procedures.md §9.2) for named peers or
    subnets: inbound and outbound security (Require / Request / None), transport mode, computer
    authentication by Kerberos or by certificate from a named CA, and optionally the quick mode
    encryption offers and perfect forward secrecy.

    **Reads** ``Get-NetIPsecRule -IPsecRuleName`` (ActiveStore) with its port and address filters
    (for that rule only), and the rule's own sets ``Get-NetIPsecPhase1AuthSet`` /
    ``Get-NetIPsecQuickModeCryptoSet`` with their proposals. **Writes** the PersistentStore: the
    sets first (``New-``/``Set-NetIPsecPhase1AuthSet`` with ``New-NetIPsecAuthProposal -Machine
    -Kerberos`` or ``-Machine -Cert -Authority``; ``New-``/``Set-NetIPsecQuickModeCryptoSet`` with
    ``New-NetIPsecQuickModeCryptoProposal``), then ``New-NetIPsecRule`` when the rule is absent,
    else one ``Set-NetIPsecRule`` per property that differs. Compared in Python: security levels,
    mode, key module, protocol, ports and addresses as sets, profiles, and the proposals in order
    (a rule pointing at another set shows as that set). Host names among the peers are resolved on
    the host at read time. Nothing is deleted. No restart.

    **Anti-lockout**: inbound Require from a keyword address (Any, LocalSubnet …) over the WinRM
    port the inventory connects on, or Exchange's remote PowerShell (80/443), is refused before
    anything is sent: the machine hardening runs from would have to speak IPsec.

    **Pitfalls**: start with Request, then Require once the peers negotiate [I]. Kerberos needs
    the domain controllers reachable without IPsec: keep Kerberos (88) and DNS (53) out of a rule
    that covers the DCs (name the ports to protect) [I]. Microsoft does not support devices that
    alter traffic between Exchange servers or to DCs; IPsec there is at least unsupported
    territory [I]. IKEv2 cannot use Kerberos [I]. How the proposals read back (AuthenticationMethod
    names vs numbers, proposal property names) is [I]; both forms are accepted. Group Policy
    connection security rules replace local ones unless AllowLocalIPsecRules [I].
    """

    name = "ipsec_rule"
    summary = "An IPsec connection security rule for named peers or subnets, with its auth and crypto sets"
    params_model = IpsecRuleParams
    channel = "script"
    template = "ipsec_rule.ps1.j2"
    variants = (MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {
        "Enabled": BOOL, "Mode": TEXT, "InboundSecurity": TEXT, "OutboundSecurity": TEXT, "KeyModule": TEXT,
        "Protocol": PROTOCOL, "LocalPort": PORTS, "RemotePort": PORTS, "LocalAddress": ADDRESSES,
        "RemoteAddress": ADDRESSES, "Profile": PROFILE, "Authentication": AUTHENTICATION, "Encryption": ENCRYPTION,
        "PerfectForwardSecrecy": TEXT, "DisplayName": Comparer("text, exact", lambda v: "" if v is None else str(v)),
    }

    def _object(self, params: IpsecRuleParams) -> str:
        return OBJECT_PREFIX + params.name

    def preflight(self, params: IpsecRuleParams, host: Host) -> str | None:
        if not params.enabled or params.inbound_security != "Require" or params.protocol == "UDP":
            return None
        if not is_broad(params.remote_addresses):
            return None
        for port, what in lockout_ports(host).items():
            if not params.local_ports or covers_port([port_text(p) for p in params.local_ports], port):
                return (f"inbound Require from {', '.join(params.remote_addresses)} over TCP {port} would demand "
                        f"IPsec from the machine hardening runs from and cut {what}; use Request, or name the peers "
                        "or the ports")
        return None

    def plan_notes(self, params: IpsecRuleParams) -> tuple[str, ...]:
        return (f"the sets {params.phase1_set} (and {params.quickmode_set}) are created or updated only where the "
                "read differs; host names among the peers are resolved on the host",)

    def read(self, params: IpsecRuleParams, ctx: Context) -> tuple[Call, ...]:
        return (ScriptCall(self.name, "read", {
            "name": params.name, "phase1_set": params.phase1_set,
            "quickmode_set": params.quickmode_set if params.encryption is not None else None,
            "resolve": address_names([*params.remote_addresses, *params.local_addresses])}),)

    def observe(self, params: IpsecRuleParams, ctx: Context, values: Sequence[Any]) -> State:
        value = values[0] if values else None
        if not isinstance(value, Mapping):
            raise ControlFailed(f"the IPsec read on {ctx.host} returned nothing")
        rules = host_objects(value.get("rules"))
        if len(rules) > 1:
            raise ControlFailed(f"{len(rules)} connection security rules are named {params.name!r} in the active "
                                f"policy of {ctx.host}; remove the duplicate")
        auth = value.get("phase1") if isinstance(value.get("phase1"), Mapping) else None
        crypto = value.get("quickmode") if isinstance(value.get("quickmode"), Mapping) else None
        auth_proposals = [_auth_from_host(p) for p in host_objects((auth or {}).get("proposals"))]
        crypto_proposals = [_crypto_from_host(p) for p in host_objects((crypto or {}).get("proposals"))]
        sets = {SETS_OBJECT: {"_resolved": dict(value.get("resolved") or {}),
                              "_phase1": None if auth is None else auth_proposals,
                              "_quickmode": None if crypto is None else {"proposals": crypto_proposals,
                                                                           "pfs": crypto.get("pfs")}}}
        if not rules:
            return {self._object(params): None, **sets}
        rule = rules[0]
        phase1 = str(rule.get("phase1_auth_set") or "")
        quickmode = str(rule.get("quick_mode_crypto_set") or "")
        if phase1.casefold() == params.phase1_set.casefold() and auth is not None:
            authentication: list[dict[str, Any]] = auth_proposals
        else:
            authentication = [{"set": phase1 or "(default)",
                               "missing": phase1.casefold() == params.phase1_set.casefold()}]
        props: dict[str, Any] = {
            "Enabled": rule.get("enabled"), "Mode": rule.get("mode"),
            "InboundSecurity": rule.get("inbound_security"), "OutboundSecurity": rule.get("outbound_security"),
            "KeyModule": rule.get("key_module"), "Protocol": rule.get("protocol"),
            "LocalPort": host_list(rule.get("local_ports")), "RemotePort": host_list(rule.get("remote_ports")),
            "LocalAddress": host_list(rule.get("local_addresses")),
            "RemoteAddress": host_list(rule.get("remote_addresses")),
            "Profile": split_list(rule.get("profile")) or ["Any"], "Authentication": authentication,
            "DisplayName": rule.get("display_name"), "_source": rule.get("source_type"),
            "_phase1": phase1, "_quickmode": quickmode,
        }
        if quickmode.casefold() == params.quickmode_set.casefold() and crypto is not None:
            props["Encryption"] = crypto_proposals
            props["PerfectForwardSecrecy"] = crypto.get("pfs")
        else:
            props["Encryption"] = [{"set": quickmode or "(default)",
                                    "missing": quickmode.casefold() == params.quickmode_set.casefold()}]
            props["PerfectForwardSecrecy"] = None
        return {self._object(params): props, **sets}

    def _authentication(self, params: IpsecRuleParams) -> list[dict[str, Any]]:
        if params.authentication == "certificate":
            return [{"method": "MachineCert", "authority": params.certificate_authority,
                     "authority_type": params.certificate_authority_type}]
        return [{"method": "MachineKerberos"}]

    def desire(self, params: IpsecRuleParams, ctx: Context, observed: State | None) -> State:
        resolved = None if observed is None else (observed.get(SETS_OBJECT) or {}).get("_resolved", {})
        want: dict[str, Any] = {
            "Enabled": params.enabled, "Mode": "Transport", "InboundSecurity": params.inbound_security,
            "OutboundSecurity": params.outbound_security, "KeyModule": params.key_module,
            "Protocol": params.protocol, "LocalPort": [port_text(p) for p in params.local_ports] or ["Any"],
            "RemotePort": [port_text(p) for p in params.remote_ports] or ["Any"],
            "LocalAddress": resolve_addresses(params.local_addresses, resolved, ctx.host),
            "RemoteAddress": resolve_addresses(params.remote_addresses, resolved, ctx.host),
            "Profile": list(params.profiles), "Authentication": self._authentication(params),
        }
        if params.encryption is not None:
            want["Encryption"] = [p.model_dump() for p in params.encryption]
        if params.perfect_forward_secrecy is not None:
            want["PerfectForwardSecrecy"] = params.perfect_forward_secrecy
        if params.display_name is not None:
            want["DisplayName"] = params.display_name
        return {self._object(params): want}

    def write(self, params: IpsecRuleParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        key = self._object(params)
        want = dict(desired[key] or {})
        seen = None if observed is None else observed.get(key)
        sets = {} if observed is None else dict(observed.get(SETS_OBJECT) or {})
        data: dict[str, Any] = {"name": params.name, "phase1": None, "quickmode": None, "create": None, "steps": []}
        if seen is not None and str(seen.get("_source") or "").casefold() == "grouppolicy":
            changed = [p for p in want if not self.comparers[p].equal(want[p], seen.get(p))]
            if changed:
                raise ControlFailed(f"connection security rule {params.name} comes from Group Policy and cannot be "
                                    f"changed on {ctx.host}; change it in the GPO (nothing was written)")
        # The sets: created or updated where our own set is missing or differs.
        have_phase1 = sets.get("_phase1")
        if observed is None or have_phase1 is None or not AUTHENTICATION.equal(want["Authentication"], have_phase1):
            data["phase1"] = {"set": params.phase1_set, "display_name": f"{params.phase1_set} (hardening)",
                              "exists": have_phase1 is not None, "proposals": want["Authentication"]}
        if params.encryption is not None:
            have_qm = sets.get("_quickmode")
            pfs = want.get("PerfectForwardSecrecy")
            proposals_differ = have_qm is None or not ENCRYPTION.equal(want["Encryption"], have_qm.get("proposals"))
            pfs_differs = pfs is not None and (have_qm is None or not TEXT.equal(pfs, have_qm.get("pfs")))
            if observed is None or proposals_differ or pfs_differs:
                data["quickmode"] = {"set": params.quickmode_set, "display_name": f"{params.quickmode_set} (hardening)",
                                     "exists": have_qm is not None, "proposals": want["Encryption"] if (
                                         observed is None or proposals_differ) else None, "pfs": pfs}
        profile = ", ".join(want["Profile"])
        if seen is None:
            data["create"] = {
                "display_name": want.get("DisplayName", params.name), "inbound_security": want["InboundSecurity"],
                "outbound_security": want["OutboundSecurity"], "key_module": want["KeyModule"], "profile": profile,
                "local_addresses": want["LocalAddress"], "remote_addresses": want["RemoteAddress"],
                "phase1_auth_set": params.phase1_set, "enabled": "True" if want["Enabled"] else "False"}
            steps = [("Protocol", want["Protocol"])] if want["Protocol"] != "Any" else []
            steps += [(p, want[p]) for p in ("LocalPort", "RemotePort") if want[p] != ["Any"]]
            if params.encryption is not None:
                steps.append(("QuickModeCryptoSet", params.quickmode_set))
            data["steps"] = [{"property": p, "value": v} for p, v in steps]
        else:
            data["steps"] = self._steps(params, want, seen, profile)
        if data["phase1"] is None and data["quickmode"] is None and data["create"] is None and not data["steps"]:
            return ()
        return (ScriptCall(self.name, "write", data),)

    def _steps(self, params: IpsecRuleParams, want: Mapping[str, Any], seen: Mapping[str, Any],
               profile: str) -> list[dict[str, Any]]:
        changed = {p for p in want if not self.comparers[p].equal(want[p], seen.get(p))}
        order = ["LocalPort", "RemotePort", "Protocol"] if want["Protocol"] == "Any" else [
            "Protocol", "LocalPort", "RemotePort"]
        order += ["LocalAddress", "RemoteAddress", "Mode", "InboundSecurity", "OutboundSecurity", "KeyModule",
                  "Profile", "DisplayName"]
        steps: list[dict[str, Any]] = []
        for prop in order:
            if prop not in changed:
                continue
            value: Any = want[prop]
            if prop == "Profile":
                value = profile
            elif prop in ("LocalPort", "RemotePort") and want["Protocol"] == "Any":
                value = ["Any"]
            steps.append({"property": prop, "value": value})
        if str(seen.get("_phase1") or "").casefold() != params.phase1_set.casefold():
            steps.append({"property": "Phase1AuthSet", "value": params.phase1_set})
        if params.encryption is not None and str(seen.get("_quickmode") or "").casefold() != \
                params.quickmode_set.casefold():
            steps.append({"property": "QuickModeCryptoSet", "value": params.quickmode_set})
        if "Enabled" in changed:
            steps.append({"property": "Enabled", "value": "True" if want["Enabled"] else "False"})
        return steps


def _auth_from_host(raw: Mapping[str, Any]) -> dict[str, Any]:
    method = AUTH_METHODS.get(str(raw.get("method")).casefold(), str(raw.get("method")))
    if method == "MachineCert":
        return {"method": method, "authority": raw.get("authority") or "",
                "authority_type": raw.get("authority_type") or "Root"}
    return {"method": method}


def _crypto_from_host(raw: Mapping[str, Any]) -> dict[str, Any]:
    def pick(value: Any, choices: Sequence[str]) -> str:
        text = str(value or "None")
        return next((c for c in choices if c.casefold() == text.casefold()), text)

    return {"encapsulation": pick(raw.get("encapsulation"), ("ESP", "AH")),
            "encryption": pick(raw.get("encryption"), ENCRYPTIONS), "esp_hash": pick(raw.get("esp_hash"), HASHES),
            "ah_hash": pick(raw.get("ah_hash"), HASHES)}


FAMILY_KINDS = (IpsecRule(),)
