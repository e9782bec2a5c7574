"""Directory kinds (guide: "Enable auditing" on Exchange objects in Active Directory; legacy
Exchange 2003 settings kept in AD).

They reach a domain controller over LDAP (:mod:`hardening.targets.directory`), not a Windows
host: the inventory gives the host ``ldap_url`` (and ``transport: ldap`` if it is reached over
LDAP only). The configuration partition replicates to every DC of the forest, so run these
controls against one DC per forest.

``ad_audit_rule`` manages audit entries (SACL ACEs) of one object. The SACL is read and written
with the security-descriptor control set to SACL only (0x8): owner, group and DACL are never
sent, so never rewritten. Entries are compared by their bytes; the SACL written holds only
explicit entries (the directory recomputes inherited ones) and keeps every explicit entry that is
not an audit entry (a mandatory label …) byte for byte, in both modes. An account without
SeSecurityPrivilege ("Manage auditing and security log") gets the object back *without* the
attribute; that is reported as exactly that, never taken for an empty SACL.

SACL entries produce events only where the DCs' audit policy audits "Directory Service Access"
(reads and writes, event 4662) or "Directory Service Changes" (event 5136): a run that has the
SACL set but that policy off (or unchecked) says so on the ``ad_audit_rule`` outcome.

``ad_attribute`` sets one attribute of one object, or of every object a search finds, to a value,
or sets and clears flag bits in an integer attribute keeping the other bits: Exchange 2003 keeps
its SMTP and POP3 virtual servers' settings in AD (``protocolCfgSMTPServer``,
``msExchAccessSSLFlags`` …), and the System Attendant copies them to the IIS metabase.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BeforeValidator, Field, field_validator, model_validator

from ..compare import Comparer, State, sid_of
from ..model import Call, LdapCall, Outcome, Status
from ..security_descriptor import (
    AUDIT_FAILURE,
    AUDIT_SUCCESS,
    INHERITANCE,
    RIGHTS,
    SDDL_SID_ALIASES,
    Ace,
    AuditAce,
    OtherAce,
    SddlError,
    parse_sacl,
    rights_mask,
    sacl_descriptor,
    sid_from_bytes,
)
from .base import Context, ControlFailed, Kind, KindParams, NotApplicable, Variant, canonical_names

__all__ = ["FAMILY_KINDS", "AdAttribute", "AdAuditRule", "ldap_escape"]

SACL_ONLY = 0x8
SD = "nTSecurityDescriptor"
DIRECTORY = Variant("directory", "Active Directory or Samba AD over LDAP (naming contexts read from the rootDSE)",
                    (), lambda facts: bool(facts.naming_contexts))
# Audit policy subcategories whose events SACL entries on directory objects produce.
DS_SUBCATEGORIES = {"directory service access": "0CCE923B-69AE-11D9-BED3-505054503030",
                    "directory service changes": "0CCE923C-69AE-11D9-BED3-505054503030"}

def _right_name(value: Any) -> Any:
    """A right's name as .NET spells it, whatever the case; an unknown one is refused with the list."""
    if not isinstance(value, str):
        return value
    name = canonical_names(value, list(RIGHTS))
    if name not in RIGHTS:
        raise ValueError(f"unknown right {value!r}; rights are {', '.join(RIGHTS)}")
    return name


RightName = Annotated[str, BeforeValidator(_right_name)]
InheritanceName = Literal["None", "All", "Descendents", "SelfAndChildren", "Children"]


def ldap_escape(value: str) -> str:
    """A value for an LDAP filter (RFC 4515): ``* ( ) \\ NUL`` escaped."""
    return "".join(f"\\{ord(ch):02x}" if ch in "*()\\\0" else ch for ch in value)


def _guid(value: Any) -> Any:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value).strip().strip("{}"))
    except ValueError:
        raise ValueError(f"{value!r} is not a GUID (e.g. bf967a86-0de6-11d0-a285-00aa003049e2)") from None


def _entries_key(entries: Any) -> tuple[bytes, ...]:
    """A list of SDDL audit entries as the sorted bytes of each: equal multisets of ACEs compare equal."""
    return tuple(sorted(AuditAce.from_sddl(str(e)).to_bytes() for e in entries or ()))


ENTRIES = Comparer("audit entries, by their bytes", _entries_key, item=str)


class AuditEntry(KindParams):
    """One audit entry (SACL ACE): who, which rights, success and/or failure, inheritance."""

    principal: str = Field(description="A SID (S-1-5-…), a well-known name (Everyone, Authenticated Users …), an "
                           "SDDL alias (WD, AU …), or an account as DOMAIN\\name, name or user@domain, looked up "
                           "in the directory (sAMAccountName or userPrincipalName).", min_length=1)
    rights: list[RightName] = Field(min_length=1, description="ActiveDirectoryRights names: " + ", ".join(RIGHTS))
    audit: Literal["success", "failure", "both"] = Field("both", description="Audit successful access, failed "
                                                         "access, or both.")
    inheritance: InheritanceName = Field(
        "All", description="ActiveDirectorySecurityInheritance: None (this object), All (this object and all "
        "descendants), Descendents (descendants only), SelfAndChildren, Children (direct children only).")
    object_type: uuid.UUID | None = Field(None, description="Only for this property, property set, extended right "
                                          "or child class (its schemaIDGUID or rightsGuid).")
    inherited_object_type: uuid.UUID | None = Field(None, description="Only inherited by objects of this class "
                                                    "(its schemaIDGUID).")

    @field_validator("inheritance", mode="before")
    @classmethod
    def _inheritance(cls, value: Any) -> Any:
        if isinstance(value, str) and value.casefold() == "descendants":  # the English spelling
            return "Descendents"
        return canonical_names(value, get_args(InheritanceName))

    @field_validator("object_type", "inherited_object_type", mode="before")
    @classmethod
    def _guids(cls, value: Any) -> Any:
        return _guid(value)

    def ace(self, sid: str) -> AuditAce:
        flags = INHERITANCE[self.inheritance]
        flags |= {"success": AUDIT_SUCCESS, "failure": AUDIT_FAILURE, "both": AUDIT_SUCCESS | AUDIT_FAILURE}[self.audit]
        return AuditAce(sid, rights_mask(self.rights), flags,
                        str(self.object_type) if self.object_type else None,
                        str(self.inherited_object_type) if self.inherited_object_type else None)


class AdAuditRuleParams(KindParams):
    """Parameters of ``ad_audit_rule``."""

    dn: str = Field(min_length=3, description="The object's distinguished name, e.g. CN=Microsoft Exchange,"
                    "CN=Services,{{ facts.naming_contexts.configuration }}.")
    entries: list[AuditEntry] = Field(default_factory=list, description="The audit entries the object must have.")
    mode: Literal["at_least", "exact"] = Field(
        "at_least", description="at_least: add the listed entries, keep every other; exact: the object's explicit "
        "audit entries are exactly the listed ones (others are removed; inherited ones are the parents' business).")

    @model_validator(mode="after")
    def _consistent(self) -> AdAuditRuleParams:
        if not self.entries and self.mode == "at_least":
            raise ValueError("entries is empty: nothing to ensure (mode exact with no entries removes them all)")
        for n, entry in enumerate(self.entries):
            if entry.inheritance == "None" and entry.inherited_object_type is not None:
                raise ValueError(f"entries[{n}]: inherited_object_type needs an inheritance other than None")
        return self


def _principal_filter(principal: str) -> str:
    if "\\" in principal:
        return f"(sAMAccountName={ldap_escape(principal.split(chr(92), 1)[1])})"
    if "@" in principal:
        return f"(userPrincipalName={ldap_escape(principal)})"
    return f"(sAMAccountName={ldap_escape(principal)})"


def known_sid(principal: str) -> str | None:
    """The SID of a SID string, a well-known name or an SDDL alias, without asking the directory."""
    text = principal.strip()
    return sid_of(text) or (SDDL_SID_ALIASES.get(text.upper()) if len(text) == 2 else None)


class AdAuditRule(Kind[AdAuditRuleParams]):
    """Audit entries (SACL ACEs) on an Active Directory object, such as the Exchange organisation
    in the configuration partition (guide: auditing Exchange objects in AD).

    Read: one BASE search of the object for ``nTSecurityDescriptor`` with the security-descriptor
    control at SACL only, plus one search per principal named by account. Compared: the object's
    explicit audit entries, as a multiset of ACE bytes (shown as SDDL). ``at_least`` adds what is
    missing after the existing entries; ``exact`` writes the listed entries only. Written: the
    SACL alone (control 0x8), explicit entries only, the SACL's protection from inheritance kept
    as it was, and any non-audit explicit ACE kept byte for byte; the plan shows it as LDIF.

    Reported per object: ``audit_entries`` (explicit, compared) and ``inherited_entries`` (from
    parents, for information). A second run writes nothing, so the object's ``uSNChanged`` stays.
    Fails with a sentence when the bound account may not read the SACL (the attribute comes back
    absent without SeSecurityPrivilege), when the object does not exist, or when an account
    named as principal is not found.
    """

    name = "ad_audit_rule"
    summary = "Audit entries (SACL) on an Active Directory object, e.g. the Exchange organisation"
    params_model = AdAuditRuleParams
    channel = "directory"
    variants = (DIRECTORY,)
    comparers: ClassVar[Mapping[str, Comparer]] = {"audit_entries": ENTRIES}

    def _lookups(self, params: AdAuditRuleParams) -> list[str]:
        return sorted({e.principal for e in params.entries if known_sid(e.principal) is None}, key=str.casefold)

    def read(self, params: AdAuditRuleParams, ctx: Context) -> tuple[Call, ...]:
        calls: list[Call] = [LdapCall("search", params.dn, attributes=(SD, "uSNChanged"), binary=(SD,),
                                      sd_flags=SACL_ONLY)]
        base = ctx.facts.naming_contexts.get("default", "")
        for principal in self._lookups(params):
            calls.append(LdapCall("search", base, scope="subtree", filter=_principal_filter(principal),
                                  attributes=("objectSid",), binary=("objectSid",)))
        return tuple(calls)

    def observe(self, params: AdAuditRuleParams, ctx: Context, values: Sequence[Any]) -> State:
        entries = values[0] if values and isinstance(values[0], list) else []
        if not entries:
            raise ControlFailed(f"no such object: {params.dn}")
        attributes = entries[0].get("attributes", {})
        if not attributes.get(SD):
            raise ControlFailed(
                f"the directory returned {params.dn} without its nTSecurityDescriptor: the bound account may not "
                "read SACLs (it needs SeSecurityPrivilege, 'Manage auditing and security log', held by "
                "Administrators on domain controllers); this is not an empty SACL, nothing was compared")
        try:
            sacl = parse_sacl(bytes(attributes[SD][0]))
        except ValueError as exc:
            raise ControlFailed(f"the security descriptor of {params.dn} is malformed: {exc}") from None
        sids: dict[str, str] = {}
        for principal, found in zip(self._lookups(params), values[1:], strict=False):
            matches = [e for e in found or [] if e.get("attributes", {}).get("objectSid")]
            if not matches:
                raise ControlFailed(f"principal {principal!r} not found in the directory (searched sAMAccountName or "
                                    "userPrincipalName under the domain)")
            if len(matches) > 1:
                raise ControlFailed(f"principal {principal!r} is ambiguous: {', '.join(m['dn'] for m in matches)}")
            sids[principal] = sid_from_bytes(bytes(matches[0]["attributes"]["objectSid"][0]))
        usn = attributes.get("uSNChanged")
        return {params.dn: {
            "audit_entries": [a.to_sddl() for a in sacl.explicit if isinstance(a, AuditAce)],
            "inherited_entries": [a.to_sddl() for a in sacl.inherited],
            "_other_aces": [a.data.hex() for a in sacl.explicit if isinstance(a, OtherAce)],
            "_protected": sacl.protected,
            "_usn": int(usn[0]) if usn else None,
            "_sids": sids,
        }}

    def _wanted(self, params: AdAuditRuleParams, observed: State | None) -> list[AuditAce]:
        found = dict(((observed or {}).get(params.dn) or {}).get("_sids") or {})
        out: list[AuditAce] = []
        for entry in params.entries:
            sid = known_sid(entry.principal) or found.get(entry.principal)
            if sid is None:
                raise NotApplicable(f"principal {entry.principal!r} is looked up in the directory by the read; "
                                    "give a SID or a well-known name to plan without reading")
            ace = entry.ace(sid)
            if ace not in out:
                out.append(ace)
        return out

    def desire(self, params: AdAuditRuleParams, ctx: Context, observed: State | None) -> State:
        wanted = self._wanted(params, observed)
        if params.mode == "exact" or observed is None:
            return {params.dn: {"audit_entries": [a.to_sddl() for a in wanted]}}
        have = list((observed.get(params.dn) or {}).get("audit_entries") or [])
        have_bytes = {AuditAce.from_sddl(e).to_bytes() for e in have}
        return {params.dn: {"audit_entries": have + [a.to_sddl() for a in wanted
                                                     if a.to_bytes() not in have_bytes]}}

    def write(self, params: AdAuditRuleParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        want = list((desired.get(params.dn) or {}).get("audit_entries") or [])
        seen = (observed or {}).get(params.dn) or {}
        if observed is not None and ENTRIES.equal(want, seen.get("audit_entries")):
            return ()
        aces: list[Ace] = [OtherAce(bytes.fromhex(h)) for h in seen.get("_other_aces") or []]
        try:
            aces += [AuditAce.from_sddl(e) for e in want]
        except SddlError as exc:
            raise ControlFailed(f"cannot build the SACL: {exc}") from None
        descriptor = sacl_descriptor(aces, protected=bool(seen.get("_protected")))
        return (LdapCall("modify", params.dn, sd_flags=SACL_ONLY, changes=((SD, "replace", (descriptor,)),)),)

    def plan_notes(self, params: AdAuditRuleParams) -> tuple[str, ...]:
        notes = ["the SACL written keeps the entries the read finds (mode at_least) and any non-audit entry; "
                 "shown here with the listed entries only"] if params.mode == "at_least" else []
        if self._lookups(params):
            notes.append("accounts named as principals are looked up by the read: " + ", ".join(self._lookups(params)))
        return tuple(notes)

    def review(self, outcome: Outcome, outcomes: Sequence[Outcome]) -> str | None:
        """Whether the run shows the DCs' audit policy logging what this SACL audits."""
        if outcome.status not in {Status.COMPLIANT, Status.FIXED, Status.DRIFTED}:
            return None
        checked = [o for o in outcomes if o.kind == "audit_policy" and _audits_ds(o.params)]
        if not checked:
            return ("the run did not check the audit policy of the domain controllers: SACL entries produce events "
                    "only where 'Directory Service Access' (or 'Directory Service Changes') is audited; add an "
                    "audit_policy control for them (playbooks/ad-auditing.yml has one)")
        off = [o for o in checked if not _policy_on(o)]
        if off:
            hosts = ", ".join(f"{o.host} ({o.status.value})" for o in off)
            return (f"the SACL is set but the audit policy 'Directory Service Access' is not on for {hosts}: no "
                    "events are logged there until it is")
        return None


def _audits_ds(params: Mapping[str, Any]) -> bool:
    for sub in params.get("subcategories") or []:
        name = str(sub.get("subcategory") or "").casefold()
        guid = str(sub.get("guid") or "").strip("{}").upper()
        if (name in DS_SUBCATEGORIES or guid in DS_SUBCATEGORIES.values()) and sub.get("audit") != "none":
            return True
    return False


def _policy_on(outcome: Outcome) -> bool:
    """Whether a DS subcategory audits something on that host after the run (or already did)."""
    if outcome.status not in {Status.COMPLIANT, Status.FIXED}:
        return False
    state = outcome.after or outcome.before
    for name, props in state.items():
        if name.casefold() in DS_SUBCATEGORIES and isinstance(props, Mapping) and any(props.values()):
            return True
    return False


# --- ad_attribute -------------------------------------------------------------------------------------


class AttributeSearch(KindParams):
    """The objects a search finds (e.g. every Exchange 2003 SMTP virtual server)."""

    base: str = Field(min_length=3, description="Search base DN.")
    scope: Literal["one", "subtree"] = "subtree"
    filter: str = Field(min_length=3, description="LDAP filter, e.g. (objectClass=protocolCfgSMTPServer).")

    @field_validator("filter")
    @classmethod
    def _parenthesised(cls, value: str) -> str:
        if not (value.startswith("(") and value.endswith(")")) or value.count("(") != value.count(")"):
            raise ValueError("an LDAP filter is parenthesised, e.g. (objectClass=protocolCfgSMTPServer)")
        return value


class AdAttributeParams(KindParams):
    """Parameters of ``ad_attribute``."""

    dn: str | None = Field(None, description="One object's distinguished name.")
    search: AttributeSearch | None = Field(None, description="Or every object a search finds.")
    attribute: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9-]*$", description="The attribute's lDAPDisplayName.")
    value: str | int | list[str] | None = Field(None, description="The exact value (a list for a multi-valued "
                                                "attribute, compared as a set).")
    set_bits: int | None = Field(None, ge=0, le=0xFFFFFFFF, description="Flag bits that must be on (the other bits "
                                 "are kept); an absent attribute counts as 0.")
    clear_bits: int | None = Field(None, ge=0, le=0xFFFFFFFF, description="Flag bits that must be off.")

    @model_validator(mode="after")
    def _consistent(self) -> AdAttributeParams:
        if (self.dn is None) == (self.search is None):
            raise ValueError("give exactly one of dn and search")
        bits = self.set_bits is not None or self.clear_bits is not None
        if bits == (self.value is not None):
            raise ValueError("give value, or set_bits and/or clear_bits (not both)")
        if self.set_bits is not None and self.clear_bits is not None and self.set_bits & self.clear_bits:
            raise ValueError(f"set_bits and clear_bits share bits 0x{self.set_bits & self.clear_bits:x}")
        if self.attribute.casefold() in {"ntsecuritydescriptor", "objectclass", "objectsid", "distinguishedname",
                                         "cn", "name"}:
            raise ValueError(f"{self.attribute} is not set with ad_attribute (use ad_audit_rule for SACLs)")
        return self


def _as_int(values: Any) -> int | None:
    if not values:
        return None
    try:
        return int(str(values[0]))
    except ValueError:
        raise ControlFailed(f"not an integer attribute: {values[0]!r}") from None


class AdAttribute(Kind[AdAttributeParams]):
    """One attribute of a directory object (or of every object a search finds): an exact value, or
    flag bits set and cleared with the other bits kept.

    Made for Exchange 2003, which keeps its virtual servers' settings in AD: e.g. "require TLS" on
    the SMTP virtual servers is bit 0x8 of ``msExchAccessSSLFlags`` on every
    ``protocolCfgSMTPServer`` [U: the mapping of ESM's check box to that bit is believed, not
    verified]. Read: one search (BASE for ``dn``); written: one modify (replace) per object that
    differs; a search that finds nothing is not applicable, with the search in the sentence.
    """

    name = "ad_attribute"
    summary = "An attribute (or flag bits) of Active Directory objects, e.g. Exchange 2003 virtual servers"
    params_model = AdAttributeParams
    channel = "directory"
    variants = (DIRECTORY,)

    def read(self, params: AdAttributeParams, ctx: Context) -> tuple[Call, ...]:
        if params.search is not None:
            return (LdapCall("search", params.search.base, scope=params.search.scope, filter=params.search.filter,
                             attributes=(params.attribute,)),)
        assert params.dn is not None
        return (LdapCall("search", params.dn, attributes=(params.attribute,)),)

    def observe(self, params: AdAttributeParams, ctx: Context, values: Sequence[Any]) -> State:
        entries = values[0] if values and isinstance(values[0], list) else []
        if not entries:
            where = params.dn or f"{params.search.filter} under {params.search.base}"  # type: ignore[union-attr]
            raise NotApplicable(f"no object found: {where}")
        state: dict[str, dict[str, Any]] = {}
        for entry in entries:
            found = entry.get("attributes", {}).get(params.attribute)
            if params.value is None:
                state[entry["dn"]] = {params.attribute: _as_int(found)}
            elif isinstance(params.value, list):
                state[entry["dn"]] = {params.attribute: sorted(found or [], key=str.casefold)}
            else:
                state[entry["dn"]] = {params.attribute: found[0] if found else None}
        return state

    def desire(self, params: AdAttributeParams, ctx: Context, observed: State | None) -> State:
        objects = list(observed) if observed is not None else [params.dn or f"<each object of {params.search}>"]
        out: dict[str, dict[str, Any]] = {}
        for dn in objects:
            if params.value is not None:
                want: Any = (sorted(params.value, key=str.casefold) if isinstance(params.value, list)
                             else str(params.value))
            else:
                have = ((observed or {}).get(dn) or {}).get(params.attribute) or 0
                want = (int(have) | (params.set_bits or 0)) & ~(params.clear_bits or 0)
            out[dn] = {params.attribute: want}
        return out

    def write(self, params: AdAttributeParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        calls: list[Call] = []
        for dn, props in desired.items():
            want = (props or {}).get(params.attribute)
            have = ((observed or {}).get(dn) or {}).get(params.attribute, object())
            if observed is not None and _same(want, have):
                continue
            values = tuple(str(v) for v in want) if isinstance(want, list) else (str(want),)
            calls.append(LdapCall("modify", dn, changes=((params.attribute, "replace", values),)))
        return tuple(calls)

    def plan_notes(self, params: AdAttributeParams) -> tuple[str, ...]:
        notes = []
        if params.search is not None:
            notes.append(f"one modify per object the search {params.search.filter} finds that differs")
        if params.value is None:
            notes.append(f"the new value keeps the bits read, with 0x{params.set_bits or 0:x} set and "
                         f"0x{params.clear_bits or 0:x} cleared")
        return tuple(notes)


def _same(want: Any, have: Any) -> bool:
    if isinstance(want, list) and isinstance(have, list):
        return [w.casefold() for w in want] == [str(h).casefold() for h in have]
    if isinstance(want, int) and not isinstance(want, bool):
        return bool(have == want)
    return want is not None and have is not None and str(want) == str(have)


FAMILY_KINDS = (AdAuditRule(), AdAttribute())
