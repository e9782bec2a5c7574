"""IPsec kinds: connection security rules (procedures.md §9.2), a script kind on the NetSecurity
module (``templates/ipsec_rule.ps1.j2``).

A connection security rule says which traffic must (Require) or should (Request) be protected
with IPsec, how the computers authenticate (the rule's phase 1 authentication set) and how the
traffic is protected (its quick mode crypto set). This kind owns one rule and, by derived names,
its two sets: ``<rule>-phase1`` and ``<rule>-quickmode``. Reads the ActiveStore, writes the
PersistentStore (as the firewall kinds; see ``firewall.py``).

Two rules of this module keep a write from ever demanding IPsec where nobody asked for it:

- **Never broader than asked, at any moment.** A new rule is created by one ``New-NetIPsecRule``
  call that carries every filter (protocol, ports, addresses, profile), both security levels and
  both sets, so it never exists with less filtering than desired. An existing rule is moved in
  steps computed by :func:`transition`: first one call to the intersection of what it is and what
  is desired (narrowing only), then one call to the desired rule (widening only); where that
  intersection is empty (ports 389 → 636, TCP → UDP) the rule is disabled first, changed while it
  governs nothing, and enabled last. Within one call every property moves the same way, so even a
  call that Windows applied property by property would pass only through rules no broader than
  the one before or the one desired ([U] whether one ``Set-NetIPsecRule`` call commits its
  properties at once; nothing here relies on it). "Broader" orders each filter by the traffic it
  matches and the security levels None < Request < Require.
- **Require only after the peers negotiate.** A move to Require (either direction) is held at
  Request until the read shows, under the rule as it stands, a main mode security association
  (``Get-NetIPsecMainModeSA``, RemoteEndpoint) with every peer; see :func:`require_gate`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
    PROFILES,
    PROTOCOL,
    Address,
    PortSpec,
    address_list,
    address_names,
    canonical_address,
    canonical_port,
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

__all__ = ["FAMILY_KINDS", "IpsecRule", "QuickModeProposal", "RequireGate", "Scope", "held_back", "require_gate",
           "transition"]

Security = Literal["None", "Request", "Require"]
Encryption = Literal["None", "DES", "DES3", "AES128", "AES192", "AES256", "AESGCM128", "AESGCM192", "AESGCM256"]
Hash = Literal["None", "MD5", "SHA1", "SHA256", "SHA384", "AESGMAC128", "AESGMAC192", "AESGMAC256"]
PfsGroup = Literal["None", "DH1", "DH2", "DH14", "DH19", "DH20", "DH24", "SameAsMainMode"]
ENCRYPTIONS = ("None", "DES", "DES3", "AES128", "AES192", "AES256", "AESGCM128", "AESGCM192", "AESGCM256")
HASHES = ("None", "MD5", "SHA1", "SHA256", "SHA384", "AESGMAC128", "AESGMAC192", "AESGMAC256")
PFS_GROUPS = ("None", "DH1", "DH2", "DH14", "DH19", "DH20", "DH24", "SameAsMainMode")
SECURITY_ORDER = ("None", "Request", "Require")

# [I] How a phase 1 proposal reads back (AuthenticationMethod); the CIM class documents numbers
# (MSFT_NetIKEKerbAuthProposal: 65002 machine Kerberos), the cmdlets print names.
AUTH_METHODS = {"machinekerberos": "MachineKerberos", "machinekerb": "MachineKerberos", "kerberos": "MachineKerberos",
                "65002": "MachineKerberos", "2": "MachineKerberos", "machinecert": "MachineCert",
                "machinecertificate": "MachineCert", "5": "MachineCert"}
OBJECT_PREFIX = "ipsec rule "
SETS_OBJECT = "_ipsec_sets"
PREFLIGHT = "RequirePreflight"
GATE = "_require_gate"
OPT_OUT = "require_without_negotiation"


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
        "Request", description="Require: inbound traffic that is not protected is dropped; Request: protection is "
        "tried, clear traffic still allowed; None. A move to Require waits for the peers to negotiate (see "
        "require_without_negotiation).")
    outbound_security: Security = Field(
        "Request", description="Require, Request or None, for outbound traffic (Require: outbound traffic to a peer "
        "that does not negotiate is dropped).")
    require_without_negotiation: bool = Field(
        False, description="Move to Require even though the read does not show a main mode SA with every peer "
        "under the rule at Request (or the peers are a subnet, range or keyword, for which SAs prove nothing). "
        "Risk: from that moment every packet of the rule's traffic to or from a peer that does not negotiate is "
        "dropped; for domain controllers that is LDAP, Kerberos and Group Policy, and Exchange stops working.")
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
        if self.require_without_negotiation and "Require" not in (self.inbound_security, self.outbound_security):
            raise ValueError("require_without_negotiation is for a rule with inbound_security or outbound_security "
                             "Require")
        return self

    @property
    def phase1_set(self) -> str:
        return f"{self.name}-phase1"

    @property
    def quickmode_set(self) -> str:
        return f"{self.name}-quickmode"

    @property
    def gated(self) -> bool:
        """Whether a move to Require waits for the peers' main mode SAs (a rule kept disabled
        governs nothing, so it does not wait; enabling it later is a move to Require)."""
        return (self.enabled and "Require" in (self.inbound_security, self.outbound_security)
                and not self.require_without_negotiation)


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




# ---------------------------------------------------------------------------------------------
# What a rule governs, and the steps between two rules that never govern more than either.


@dataclass(frozen=True)
class Scope:
    """What a connection security rule governs and how strongly: the traffic it matches (protocol,
    ports, addresses, profiles; ``("Any",)`` for any) and the security it asks of that traffic in
    each direction. A disabled rule governs nothing. Tokens are canonical (``canonical_port``,
    ``canonical_address``); ports are ``("Any",)`` whenever the protocol is Any."""

    enabled: bool
    inbound: str
    outbound: str
    protocol: str
    local_ports: tuple[str, ...]
    remote_ports: tuple[str, ...]
    local_addresses: tuple[str, ...]
    remote_addresses: tuple[str, ...]
    profiles: tuple[str, ...]

    def key(self) -> tuple[Any, ...]:
        """What two scopes are compared by (lists as sets)."""
        return (self.enabled, self.inbound.casefold(), self.outbound.casefold(), self.protocol.casefold(),
                frozenset(self.local_ports), frozenset(self.remote_ports), frozenset(self.local_addresses),
                frozenset(self.remote_addresses), _profile_set(self.profiles))

    def same_filters(self, other: Scope) -> bool:
        """Equal but for ``enabled``."""
        return self.key()[1:] == other.key()[1:]


def scope_of(props: Mapping[str, Any]) -> Scope:
    """A rule's scope from its properties (as observed or desired: ``Enabled``, ``Protocol`` …)."""
    protocol = str(PROTOCOL.key(props.get("Protocol")))
    any_ports = protocol.casefold() == "any"

    def ports(value: Any) -> tuple[str, ...]:
        tokens = tuple(dict.fromkeys(canonical_port(p) for p in split_list(value)))
        return ("Any",) if any_ports or not tokens or "Any" in tokens else tokens

    def addresses(value: Any) -> tuple[str, ...]:
        tokens = tuple(dict.fromkeys(canonical_address(a) for a in split_list(value)))
        return ("Any",) if not tokens or "Any" in tokens else tokens

    profiles = tuple(split_list(props.get("Profile")))
    return Scope(bool(BOOL.key(props.get("Enabled", True))), _security(props.get("InboundSecurity")),
                 _security(props.get("OutboundSecurity")), "Any" if any_ports else protocol,
                 ports(props.get("LocalPort")), ports(props.get("RemotePort")), addresses(props.get("LocalAddress")),
                 addresses(props.get("RemoteAddress")),
                 ("Any",) if not profiles or _profile_set(profiles) == _profile_set(("Any",)) else profiles)


def _security(value: Any) -> str:
    text = "None" if value is None else str(value)
    return next((s for s in SECURITY_ORDER if s.casefold() == text.casefold()), text)


def _profile_set(profiles: Sequence[str]) -> frozenset[str]:
    folded = {p.casefold() for p in profiles}
    if not folded or folded & {"any", "notapplicable"}:
        return frozenset(p.casefold() for p in PROFILES)
    return frozenset(folded)


def _weaker(a: str, b: str) -> str:
    """The lower of two security levels (None < Request < Require); an unknown level counts as the
    strongest, so it never survives a narrowing."""
    rank = {s.casefold(): n for n, s in enumerate(SECURITY_ORDER)}
    return a if rank.get(a.casefold(), 3) <= rank.get(b.casefold(), 3) else b


_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


def _port_span(token: str) -> tuple[int, int] | None:
    match = _RANGE.fullmatch(token)
    return None if match is None else (int(match.group(1)), int(match.group(2) or match.group(1)))


def _address_span(token: str) -> tuple[int, int, int] | None:
    """(IP version, first, last) of an address, subnet or range; None for a keyword."""
    try:
        if "/" in token:
            net = ipaddress.ip_network(token, strict=False)
            return net.version, int(net.network_address), int(net.broadcast_address)
        if "-" in token:
            first, last = (ipaddress.ip_address(t) for t in token.split("-", 1))
            return first.version, int(first), int(last)
        ip = ipaddress.ip_address(token)
        return ip.version, int(ip), int(ip)
    except ValueError:
        return None


def _address_text(version: int, first: int, last: int) -> str:
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return str(make(first)) if first == last else f"{make(first)}-{make(last)}"


def _meet_tokens(a: Sequence[str], b: Sequence[str], span: Any, text: Any) -> tuple[str, ...] | None:
    """The tokens matching what both lists match (Any is everything; keywords meet only
    themselves, as their extent is not known here); None when nothing is left."""
    if "Any" in a:
        return tuple(b)
    if "Any" in b:
        return tuple(a)
    out: list[str] = []
    for x in a:
        for y in b:
            sx, sy = span(x), span(y)
            if sx is None or sy is None:
                if x.casefold() == y.casefold():
                    out.append(x)
                continue
            if sx[:-2] != sy[:-2]:  # IPv4 against IPv6
                continue
            first, last = max(sx[-2], sy[-2]), min(sx[-1], sy[-1])
            if first > last:
                continue
            out.append(x if (first, last) == sx[-2:] else y if (first, last) == sy[-2:] else text(sx, first, last))
    return tuple(dict.fromkeys(out)) or None


def _meet_ports(a: Sequence[str], b: Sequence[str]) -> tuple[str, ...] | None:
    return _meet_tokens(a, b, _port_span, lambda s, f, last: str(f) if f == last else f"{f}-{last}")


def _meet_addresses(a: Sequence[str], b: Sequence[str]) -> tuple[str, ...] | None:
    return _meet_tokens(a, b, _address_span, lambda s, f, last: _address_text(s[0], f, last))


def narrowed(before: Scope, after: Scope) -> Scope | None:
    """The largest scope inside both (each filter intersected, each security level the lower);
    None when the two share no traffic, or the intersection would request nothing in both
    directions (a rule with None both ways is an IPsec exemption [V] MS-FASP FW_CS_RULE_ACTION
    DO_NOT_SECURE, which is not narrower but different)."""
    inbound, outbound = _weaker(before.inbound, after.inbound), _weaker(before.outbound, after.outbound)
    if inbound == "None" and outbound == "None":
        return None
    if before.protocol.casefold() == "any":
        protocol = after.protocol
    elif after.protocol.casefold() in ("any", before.protocol.casefold()):
        protocol = before.protocol
    else:
        return None
    if protocol.casefold() == "any":
        local_ports: tuple[str, ...] | None = ("Any",)
        remote_ports: tuple[str, ...] | None = ("Any",)
    else:
        local_ports = _meet_ports(before.local_ports, after.local_ports)
        remote_ports = _meet_ports(before.remote_ports, after.remote_ports)
    local = _meet_addresses(before.local_addresses, after.local_addresses)
    remote = _meet_addresses(before.remote_addresses, after.remote_addresses)
    common = _profile_set(before.profiles) & _profile_set(after.profiles)
    if local_ports is None or remote_ports is None or local is None or remote is None or not common:
        return None
    if common == _profile_set(after.profiles):
        profiles = after.profiles
    elif common == _profile_set(before.profiles):
        profiles = before.profiles
    else:
        profiles = tuple(p for p in PROFILES if p.casefold() in common)
    return Scope(before.enabled and after.enabled, inbound, outbound, protocol, local_ports, remote_ports, local,
                 remote, profiles)


def transition(before: Scope, after: Scope) -> list[Scope]:
    """The scopes an existing rule passes through on its way from ``before`` to ``after``, one
    ``Set-NetIPsecRule`` call each (``after`` last; empty when nothing changes).

    Each step only narrows or only widens: the rule is never broader than ``before`` or than
    ``after``. A disabled rule governs nothing, so it is reshaped while disabled and enabled last;
    a rule that must end disabled is disabled first; otherwise the rule goes first to
    :func:`narrowed` (before ∩ after) and then to ``after``, and where that intersection is empty it
    is disabled, reshaped and enabled again.
    """
    if before.key() == after.key():
        return []
    if not before.enabled:
        path = [replace(after, enabled=False), after]
    elif not after.enabled:
        path = [replace(before, enabled=False), after]
    else:
        meet = narrowed(before, after)
        path = ([replace(before, enabled=False), replace(after, enabled=False), after] if meet is None
                else [meet, after])
    out: list[Scope] = []
    for scope in path:
        if scope.key() != (out[-1] if out else before).key():
            out.append(scope)
    return out


# ---------------------------------------------------------------------------------------------
# Require only after the peers negotiate.


def _one_address(token: str) -> bool:
    try:
        ipaddress.ip_address(token)
    except ValueError:
        return False
    return True


def _covers(tokens: Sequence[str], address: str) -> bool:
    """Whether a rule's remote addresses take in one peer address (keywords other than Any are
    not known here, so they do not count)."""
    span = _address_span(address)
    for token in tokens:
        if token == "Any":
            return True
        other = _address_span(token)
        if span is not None and other is not None and other[0] == span[0] and other[1] <= span[1] <= other[2]:
            return True
    return False


DIRECTIONS = ("InboundSecurity", "OutboundSecurity")


@dataclass(frozen=True)
class RequireGate:
    """What a write may do about Require now: ``blockers`` say why not (sentence fragments, the
    last one saying what is held; empty: nothing waits), ``hold`` the directions kept at Request,
    ``held_peers`` the peers kept out of a rule already at Require."""

    blockers: tuple[str, ...] = ()
    hold: tuple[str, ...] = ()
    held_peers: tuple[str, ...] = ()


def _effective(rule: Mapping[str, Any], direction: str) -> str:
    """The security a rule asks in one direction: a disabled rule asks nothing."""
    return _security(rule.get(direction)) if BOOL.key(rule.get("Enabled", True)) else "None"


def require_gate(rule: Mapping[str, Any], want: Mapping[str, Any], peers: Sequence[str],
                 negotiated: Sequence[str] | None, labels: Mapping[str, str]) -> RequireGate:
    """Whether an existing rule may get Require where it is wanted, and what waits if not.

    ``rule`` is the rule as observed, ``want`` as desired, ``peers`` the desired remote addresses
    (host names resolved), ``negotiated`` the RemoteEndpoints of the host's main mode SAs (None:
    not read) and ``labels`` how to name a peer address (``dc02.contoso.com (10.0.20.2)``).

    - A direction that moves to Require (it asks less now, or the rule is disabled) waits until
      every peer shows a main mode SA under the rule as it stands: enabled, requesting IPsec,
      already covering the peer, with the authentication and key module it keeps. Until then that
      direction stays at Request.
    - A change of authentication, key module or quick mode offers on a rule at Require goes through
      Request too (lowered before the sets change): an SA made with the old settings says nothing
      of the new ones.
    - A peer added to a direction already at Require must have a main mode SA (under any rule);
      until then it is left out of the rule (or, if no desired peer would be left, the rule goes
      to Request with all of them).

    A main mode SA is how Windows shows that two computers negotiated [V] WPS Get-NetIPsecMainModeSA
    ("which computers have connections with this computer"). A subnet, range or keyword cannot be
    vouched for by SAs (every host in it would have to negotiate). [I] An SA is dropped after some
    idle minutes and renewed by traffic: a peer that has exchanged nothing lately shows no SA, which
    holds Require back too (the safe way round). Ports or protocols widened on a rule already at
    Require are not held: its peers negotiate already, or their traffic is already dropped.
    """
    wanted = [d for d in DIRECTIONS if _security(want.get(d)) == "Require"]
    if not wanted:
        return RequireGate()
    current = scope_of(rule)
    have = {canonical_address(p) for p in negotiated or ()}
    desired = list(dict.fromkeys(canonical_address(p) for p in peers))
    settings = []
    if "Authentication" in want and not AUTHENTICATION.equal(want["Authentication"], rule.get("Authentication")):
        settings.append("its computer authentication changes in this run, and no peer has negotiated with the new one")
    if "KeyModule" in want and not TEXT.equal(want["KeyModule"], rule.get("KeyModule")):
        settings.append("its key module changes in this run, and no peer has negotiated with the new one")
    if ("Encryption" in want and not ENCRYPTION.equal(want["Encryption"], rule.get("Encryption"))) or \
            ("PerfectForwardSecrecy" in want and not TEXT.equal(want["PerfectForwardSecrecy"],
                                                               rule.get("PerfectForwardSecrecy"))):
        settings.append("its quick mode offers change in this run, and no peer has negotiated with the new ones")
    moving = wanted if settings else [d for d in wanted if _effective(rule, d) != "Require"]
    if moving:
        reasons = list(settings)
        if not current.enabled:
            reasons.insert(0, "the rule is disabled, so no peer has negotiated under it")
        elif current.inbound == "None" and current.outbound == "None":
            reasons.insert(0, "the rule requests IPsec in neither direction yet")
        for peer in desired:
            name = labels.get(peer, peer)
            if not _one_address(peer):
                reasons.append(f"{name} is a subnet, range or keyword: main mode SAs cannot show that every host in it "
                               "negotiates")
            elif not _covers(current.remote_addresses, peer):
                reasons.append(f"{name} is not among the rule's peers yet")
            elif peer not in have:
                reasons.append(f"no main mode SA with {name}")
        if not reasons:
            return RequireGate()
        return RequireGate((*reasons, "the rule stays at Request"), tuple(moving))
    held = [p for p in desired if not _covers(current.remote_addresses, p) and (not _one_address(p) or p not in have)]
    if not held:
        return RequireGate()
    reasons = [f"{labels.get(p, p)} is a subnet, range or keyword: main mode SAs cannot show that every host in it "
               "negotiates" if not _one_address(p) else f"no main mode SA with {labels.get(p, p)}" for p in held]
    if len(held) == len(desired):
        return RequireGate((*reasons, "the rule goes to Request with its new peers"), tuple(wanted))
    names = ", ".join(labels.get(p, p) for p in held)
    return RequireGate((*reasons, f"{names} {'is' if len(held) == 1 else 'are'} left out of the rule at Require "
                        "for now"), (), tuple(held))


def held_back(want: Mapping[str, Any], gate: RequireGate) -> dict[str, Any]:
    """The wanted rule with what the gate holds back: its held directions at Request, its held peers
    left out of the remote addresses."""
    out = dict(want)
    for direction in gate.hold:
        out[direction] = "Request"
    if gate.held_peers:
        out["RemoteAddress"] = [a for a in want["RemoteAddress"] if canonical_address(a) not in gate.held_peers]
    return out


@dataclass(frozen=True)
class _PreflightComparer(Comparer):
    """What stands between the rule and Require, said as one sentence."""

    def delta(self, before: Any, after: Any) -> str | None:
        if before is None:
            return ("the rule does not exist yet: it is created at Request, and Require follows on a later run once "
                    "every peer shows a main mode SA under it")
        blockers = [str(b) for b in before or ()]
        if not blockers:
            return None
        return (f"Require is held back: {'; '.join(blockers)} ({OPT_OUT}: true requires anyway, and drops the "
                "traffic of any peer that does not negotiate)")


PREFLIGHT_COMPARER = _PreflightComparer("what keeps the rule from Require (none wanted)",
                                        lambda v: tuple(str(b) for b in v or ()))


class IpsecRule(Kind[IpsecRuleParams]):
    """An IPsec connection security rule (guide: "IPsec"; procedures.md §9.2) for named peers or
    subnets: inbound and outbound security (Require / Request / None), transport mode, computer
    authentication by Kerberos or by certificate from a named CA, and optionally the quick mode
    encryption offers and perfect forward secrecy.

    **Not for Exchange and its domain controllers, unless you accept that it is unsupported.**
    Microsoft does not support restricting or altering network traffic between internal Exchange
    servers, or between Exchange servers and domain controllers, on any port or protocol [V]
    (learn.microsoft.com, "Network ports for clients and mail flow in Exchange"). IPsec alters
    that traffic; Require can drop it. The shipped ``playbooks/ipsec.yml`` is therefore opt-in and
    not in the baseline.

    **Reads** ``Get-NetIPsecRule -IPsecRuleName`` (ActiveStore) with its port and address filters
    (for that rule only), the rule's own sets ``Get-NetIPsecPhase1AuthSet`` /
    ``Get-NetIPsecQuickModeCryptoSet`` with their proposals, and, when the rule wants Require, the
    host's main mode SAs (``Get-NetIPsecMainModeSA``, RemoteEndpoint). **Writes** the
    PersistentStore: the sets first (``New-``/``Set-NetIPsecPhase1AuthSet`` with
    ``New-NetIPsecAuthProposal -Machine -Kerberos`` or ``-Machine -Cert -Authority``;
    ``New-``/``Set-NetIPsecQuickModeCryptoSet`` with ``New-NetIPsecQuickModeCryptoProposal``); then a
    missing rule is created by one ``New-NetIPsecRule`` with every filter, both security levels and
    both sets (never a rule that later calls narrow); an existing rule is changed by whole-scope
    ``Set-NetIPsecRule`` calls that first narrow and then widen (disabled in between where the old
    and new rule share no traffic), see :func:`transition`. Compared in Python: security levels,
    mode, key module, protocol, ports and addresses as sets, profiles, and the proposals in order
    (a rule pointing at another set shows as that set). Host names among the peers are resolved on
    the host at read time. Nothing is deleted. No restart.

    **Require waits for negotiation.** A move to Require (``RequirePreflight`` in the state) is
    made only when the read shows a main mode SA with every peer under the rule as it stands, at
    Request, with its authentication unchanged (:func:`require_gate`). Otherwise the rule is
    created or kept at Request with everything else applied, and the outcome names the peers that
    have not negotiated: ``drifted`` in check, ``failed`` in apply (exit 2) — the security the
    playbook asks for is not in force, and another apply will not put it there until the peers
    negotiate, so a scheduler must not read it as a change made (``drifted``/``fixed``, exit 3). A
    later apply moves to Require once the SAs show. The same wait applies to enabling a disabled
    rule at Require, to a new authentication or key module on a rule at Require (it goes through
    Request), and to a peer added to a rule already at Require (left out until it shows an SA).
    ``require_without_negotiation: true`` skips the wait (and is needed for subnet or keyword
    peers): traffic to a peer that does not negotiate is then dropped at once.

    **Anti-lockout**: inbound Require from a keyword address (Any, LocalSubnet …) over the WinRM
    port the inventory connects on, or Exchange's remote PowerShell (80/443), is refused before
    anything is sent: the machine hardening runs from would have to speak IPsec.

    **Pitfalls**: Kerberos computer authentication needs the domain controllers reachable without
    IPsec: keep Kerberos (88) and DNS (53) out of a rule that covers the DCs (name the ports to
    protect) [I]. Request sends in the clear while it negotiates and stays in the clear if the peer
    does not answer [V] (WFP "Negotiation Discovery"; MS-FASP FW_CS_RULE_ACTION_BOUNDARY); Require
    drops what is not protected. None in both directions is an exemption, refused here. IKEv2
    cannot use Kerberos [I]. How the proposals read back (AuthenticationMethod names vs numbers,
    proposal property names) is [I]; both forms are accepted. Group Policy connection security
    rules replace local ones unless AllowLocalIPsecRules [I].
    """

    name = "ipsec_rule"
    summary = "An IPsec connection security rule for named peers or subnets, with its auth and crypto sets"
    params_model = IpsecRuleParams
    channel = "script"
    template = "ipsec_rule.ps1.j2"
    variants = (MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {
        PREFLIGHT: PREFLIGHT_COMPARER,
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
        notes = [f"the sets {params.phase1_set} (and {params.quickmode_set}) are created or updated only where the "
                 "read differs; host names among the peers are resolved on the host"]
        if params.gated:
            notes.append("Require is set only once the read shows a main mode SA with every peer under the rule at "
                         "Request: a missing rule is created at Request, and a later apply moves it to Require")
        return tuple(notes)

    def read(self, params: IpsecRuleParams, ctx: Context) -> tuple[Call, ...]:
        return (ScriptCall(self.name, "read", {
            "name": params.name, "phase1_set": params.phase1_set,
            "quickmode_set": params.quickmode_set if params.encryption is not None else None,
            "resolve": address_names([*params.remote_addresses, *params.local_addresses]),
            "sa": params.gated}),)

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
        resolved = dict(value.get("resolved") or {})
        negotiated = None if value.get("main_mode_peers") is None else host_list(value.get("main_mode_peers"))
        sets = {SETS_OBJECT: {"_resolved": resolved, "_negotiated": negotiated,
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
        if params.gated:
            peers = resolve_addresses(params.remote_addresses, resolved, ctx.host)
            want = {"InboundSecurity": params.inbound_security, "OutboundSecurity": params.outbound_security,
                    "Authentication": self._authentication(params), "KeyModule": params.key_module}
            gate = require_gate(props, want, peers, negotiated, _peer_labels(resolved))
            props[PREFLIGHT] = list(gate.blockers)
            props[GATE] = {"hold": list(gate.hold), "held_peers": list(gate.held_peers)}
        return {self._object(params): props, **sets}

    def _authentication(self, params: IpsecRuleParams) -> list[dict[str, Any]]:
        if params.authentication == "certificate":
            return [{"method": "MachineCert", "authority": params.certificate_authority,
                     "authority_type": params.certificate_authority_type}]
        return [{"method": "MachineKerberos"}]

    def desire(self, params: IpsecRuleParams, ctx: Context, observed: State | None) -> State:
        resolved = None if observed is None else (observed.get(SETS_OBJECT) or {}).get("_resolved", {})
        want: dict[str, Any] = {PREFLIGHT: []} if params.gated else {}
        want.update({
            "Enabled": params.enabled, "Mode": "Transport", "InboundSecurity": params.inbound_security,
            "OutboundSecurity": params.outbound_security, "KeyModule": params.key_module,
            "Protocol": params.protocol, "LocalPort": [port_text(p) for p in params.local_ports] or ["Any"],
            "RemotePort": [port_text(p) for p in params.remote_ports] or ["Any"],
            "LocalAddress": resolve_addresses(params.local_addresses, resolved, ctx.host),
            "RemoteAddress": resolve_addresses(params.remote_addresses, resolved, ctx.host),
            "Profile": list(params.profiles), "Authentication": self._authentication(params),
        })
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
        data: dict[str, Any] = {"name": params.name, "lower": [], "phase1": None, "quickmode": None, "create": None,
                                "steps": []}
        if seen is not None and str(seen.get("_source") or "").casefold() == "grouppolicy":
            changed = [p for p in want if p != PREFLIGHT and not self.comparers[p].equal(want[p], seen.get(p))]
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
        held = PREFLIGHT in want and (seen is None or not PREFLIGHT_COMPARER.equal(want[PREFLIGHT],
                                                                                 seen.get(PREFLIGHT)))
        gate = _gate_of(seen, want) if held else RequireGate()
        target = held_back(want, gate)
        if seen is None:
            data["create"] = self._create(params, target)
        else:
            # A direction at Require that must go through Request is lowered before the sets change:
            # a new authentication or crypto offer is never required before a peer negotiated it.
            lower = {d: "Request" if d in gate.hold and _effective(seen, d) == "Require" else _security(seen.get(d))
                     for d in DIRECTIONS}
            if any(_security(seen.get(d)) != lower[d] for d in DIRECTIONS):
                data["lower"] = [{"inbound_security": lower["InboundSecurity"],
                                  "outbound_security": lower["OutboundSecurity"]}]
                seen = {**seen, **lower}
            data["steps"] = self._steps(params, target, seen)
        if data["phase1"] is None and data["quickmode"] is None and data["create"] is None and not data["steps"] \
                and not data["lower"]:
            if held and seen is not None:
                raise ControlFailed(f"not changed on {ctx.host}: "
                                    f"{PREFLIGHT_COMPARER.delta(seen.get(PREFLIGHT), want[PREFLIGHT])}")
            return ()
        return (ScriptCall(self.name, "write", data),)

    def _create(self, params: IpsecRuleParams, want: Mapping[str, Any]) -> dict[str, Any]:
        """One New-NetIPsecRule with everything: the rule exists only as desired (or held at Request)."""
        scope = scope_of(want)
        return {"display_name": want.get("DisplayName", params.name), "enabled": "True" if scope.enabled else "False",
                "key_module": want["KeyModule"], **_scope_values(scope),
                "phase1_auth_set": params.phase1_set,
                "quick_mode_crypto_set": params.quickmode_set if params.encryption is not None else None}

    def _steps(self, params: IpsecRuleParams, want: Mapping[str, Any], seen: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The Set-NetIPsecRule calls from the rule as seen to the rule wanted, in order: the
        neutral bindings (quick mode set, display name), then the scopes of :func:`transition`, each
        in one call, with Enabled in a call of its own (off before reshaping, on after)."""
        before, after = scope_of(seen), scope_of(want)
        steps: list[dict[str, Any]] = []
        if params.encryption is not None and str(seen.get("_quickmode") or "").casefold() != \
                params.quickmode_set.casefold():
            steps.append({"call": "quickmode", "quick_mode_crypto_set": params.quickmode_set})
        display = want.get("DisplayName")
        if display is not None and not self.comparers["DisplayName"].equal(display, seen.get("DisplayName")):
            steps.append({"call": "display", "display_name": display})
        # Mode (always Transport, written by the template), key module and the phase 1 set ride on
        # every scope call: they change what protects the traffic, not how much traffic is governed.
        neutral = {"key_module": want["KeyModule"], "phase1_auth_set": params.phase1_set}
        neutral_differs = (not TEXT.equal(want["Mode"], seen.get("Mode"))
                           or not TEXT.equal(want["KeyModule"], seen.get("KeyModule"))
                           or str(seen.get("_phase1") or "").casefold() != params.phase1_set.casefold())
        reshape: list[dict[str, Any]] = []
        previous = before
        for scope in transition(before, after):
            call = {"call": "scope", **neutral, **_scope_values(scope)}
            if previous.enabled and not scope.enabled:
                reshape.append({"call": "enabled", "enabled": "False"})
                if not scope.same_filters(previous):
                    reshape.append(call)
            elif not previous.enabled and scope.enabled:
                if not scope.same_filters(previous):
                    reshape.append(call)
                reshape.append({"call": "enabled", "enabled": "True"})
            else:
                reshape.append(call)
            previous = scope
        if neutral_differs and not any(s["call"] == "scope" for s in reshape):
            # Mode, key module or the phase 1 set alone: one call that keeps the filters as they are.
            reshape.insert(0, {"call": "scope", **neutral, **_scope_values(replace(after, enabled=before.enabled))})
        return steps + reshape


def _gate_of(seen: Mapping[str, Any] | None, want: Mapping[str, Any]) -> RequireGate:
    """The gate observe recorded for the rule; for a rule not there yet, every Require direction
    waits (it is created at Request)."""
    if seen is None or not isinstance(seen.get(GATE), Mapping):
        return RequireGate(hold=tuple(d for d in DIRECTIONS if _security(want.get(d)) == "Require"))
    record = seen[GATE]
    return RequireGate(tuple(seen.get(PREFLIGHT) or ()), tuple(record.get("hold") or ()),
                       tuple(record.get("held_peers") or ()))


def _scope_values(scope: Scope) -> dict[str, Any]:
    """A scope as the write block's parameters (ports Any with protocol Any [I] as Windows takes them)."""
    return {"inbound_security": scope.inbound, "outbound_security": scope.outbound,
            "profile": ", ".join(scope.profiles), "protocol": scope.protocol, "local_ports": list(scope.local_ports),
            "remote_ports": list(scope.remote_ports), "local_addresses": list(scope.local_addresses),
            "remote_addresses": list(scope.remote_addresses)}


def _peer_labels(resolved: Mapping[str, Any]) -> dict[str, str]:
    """Peer address → ``name (address)`` for the names the host resolved."""
    out: dict[str, str] = {}
    for name, addresses in resolved.items():
        for address in split_list(addresses):
            out.setdefault(canonical_address(address), f"{name} ({address})")
    return out


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
