"""Lab model of a directory (Active Directory) answering the LDAP requests hardening sends.

A lab host with a ``directory`` key is a domain controller's directory as ldap3 would see it
over LDAP; :meth:`~hardening.lab.LabHost.ldap` hands it :class:`~hardening.model.LdapCall` data
and it answers exactly what :class:`~hardening.targets.directory.DirectoryTarget` returns: a
search's entries as ``[{"dn": ..., "attributes": {requested name: [values]}}]`` (attributes
named in ``binary`` as bytes, the others as str, an attribute the directory would not return
absent), None for a modify, and a refusal as :class:`LabLdapError` worded as that target words it
(``no such object: DN``, ``modify DN: insufficient access rights ...``).

What is simulated:

- **The rootDSE.** A base search on ``""`` returns ``defaultNamingContext``,
  ``configurationNamingContext``, ``schemaNamingContext``, ``rootDomainNamingContext``,
  ``namingContexts``, ``dnsHostName``, ``serverName``, ``highestCommittedUSN``,
  ``supportedLDAPVersion`` and ``supportedControl`` (which lists the security-descriptor flags
  control, 1.2.840.113556.1.4.801). Only scope ``base`` is answered there.
- **Objects.** The naming-context heads (``domainDNS`` with the domain's ``objectSid``,
  ``configuration``, ``dMD``), every object of the lab file, the containers between them and
  their naming context (created as plain ``container`` objects when the file does not declare
  them) and the principals (below). DNs compare case-insensitively (attribute types and values,
  spaces around ``,`` and ``=`` ignored); the stored spelling is the lab file's and is what a
  search returns. A DN's parent is everything after its first unescaped comma (``\\,`` is part of
  a value).
- **Searches.** Scopes ``base``, ``one`` and ``subtree``; neither a one-level nor a subtree
  search crosses into another naming context (AD answers that part with referrals, which the
  directory target drops). An unknown base is ``no such object: DN``. Filters are RFC 4515:
  ``&``, ``|``, ``!``, equality, presence (``=*``), substrings (``*``), ``>=``/``<=`` (as
  integers when both sides are), ``~=`` (as equality), ``\\XX`` escapes and AD's bitwise
  matching rules (1.2.840.113556.1.4.803 and .804; any other matching rule is refused as an
  invalid filter). Names and values compare case-insensitively; a missing attribute is false, so
  ``!`` of it is true, as AD answers. ``objectClass`` matches any class of the object;
  ``objectCategory`` matches a class by name (``objectCategory=msExchExchangeServer``) or by the
  schema DN of a class (``CN=ms-Exch-Exchange-Server,...``, hyphens ignored).
- **Attributes.** Only the names asked for, keyed by the requested spelling: the object's plain
  attributes, ``objectClass``, ``distinguishedName``, ``name``, its RDN attribute (``cn``, ``ou``,
  ``dc``), ``uSNChanged`` (an integer as a string; each object starts at its own number, from
  ``usn_changed`` or counted up from 5000, parents first), ``objectSid`` (the binary SID) and
  ``nTSecurityDescriptor``. ``*`` returns nothing, as through the directory target.
- **The SACL.** ``nTSecurityDescriptor`` read with ``sd_flags`` 0x8 is a SACL-only
  self-relative descriptor (SE_SELF_RELATIVE, SE_SACL_PRESENT, SE_SACL_AUTO_INHERITED, and
  SE_SACL_PROTECTED when the object blocks inheritance; no owner, group or DACL) whose SACL
  holds the object's explicit entries, then the inherited ones. With ``can_read_sacl: false``
  (the bound account lacks SeSecurityPrivilege) the attribute is absent, as AD omits it, and a
  SACL write is refused with insufficient access rights.
- **Inheritance.** An object's inherited entries are its parent's entries (explicit, then
  inherited) that carry CONTAINER_INHERIT, nearest ancestor first: each copy gets INHERITED and
  loses INHERIT_ONLY, and an entry with NO_PROPAGATE_INHERIT reaches the direct children only
  (their copy loses CONTAINER_INHERIT, OBJECT_INHERIT and NO_PROPAGATE_INHERIT). An entry with
  INHERIT_ONLY stays in the explicit list of the object it is set on (it does not apply there).
  A protected object inherits nothing. OBJECT_INHERIT alone is not inherited (every AD object is
  a container).
- **SACL writes.** A modify replacing ``nTSecurityDescriptor`` (one binary value) with
  ``sd_flags`` exactly 0x8 stores the SACL's explicit entries and its protection; the inherited
  entries it carries are dropped (the directory recomputes them). ``uSNChanged`` moves only when
  the stored entries or protection change: rewriting the same SACL leaves it, as AD and Samba do.
  Without ``sd_flags``, or with owner, group or DACL bits, the write is refused: the lab never
  pretends to write an owner, a group or a DACL. Reading ``nTSecurityDescriptor`` with other flags
  is refused for the same reason.
- **Plain attribute writes.** ``replace`` (no values: remove), ``add`` (a value already there:
  attributeOrValueExists) and ``delete`` (no values: the whole attribute; a value or attribute not
  there: noSuchAttribute) on the stored values, all changes of one modify or none, ``uSNChanged``
  moved once when something changed (writing the values already there moves nothing).
  ``objectClass``, ``distinguishedName``, ``uSNChanged``, ``objectSid``, ``name`` and the RDN
  attribute cannot be written.
- **Principals.** ``principals`` (``DOMAIN\\name`` or ``user@domain`` → SID) become objects under
  ``CN=Users`` (or ``CN=Builtin`` for ``BUILTIN\\``) of the default naming context with
  ``sAMAccountName``, ``objectSid`` (and ``userPrincipalName`` for ``user@domain``), so a search
  ``(sAMAccountName=name)`` there resolves a name to its SID. They are groups, computers when the
  name ends with ``$``, users when named ``user@domain``.

Not simulated: replication and other domain controllers, the schema (any attribute name is
accepted, values are strings, no syntax or single-value checks), object creation, deletion and
renames, object-type-specific inheritance (an entry's inherited object type does not limit which
children inherit it), owners, groups and DACLs, access checks beyond ``can_read_sacl``, other
controls (paging, sorting), referrals, ``objectGUID``, timestamps, and ``objectCategory`` as a
value (it is matched by filters, returned only when the lab file sets it).

State (``state["directory"]``, plain JSON data kept in the lab's sidecar)::

    naming_contexts: {default: DN, configuration: DN, schema: DN}
    dns_host_name: str
    domain_sid: str
    can_read_sacl: bool
    principals: {"DOMAIN\\\\name": "S-1-5-..."}
    highest_usn: int
    objects: {DN: {objectClass: [str], sacl: [str], sacl_protected: bool, usn_changed: int,
                   attributes: {name: [str]}}}

``sacl`` lists the explicit entries, each as its canonical SDDL ACE string from
:mod:`hardening.security_descriptor` (``(AU;SA;WP;;;WD)``; an entry of another type in its raw
form ``(0x11;0x00;raw:...)``). SDDL aliases relative to a domain (``DA``, ``EA``) are not read:
write those SIDs in full.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ...model import LdapCall
from ...security_descriptor import (
    ACL_REVISION,
    ACL_REVISION_DS,
    CONTAINER_INHERIT,
    INHERIT_ONLY,
    INHERITED,
    NO_PROPAGATE_INHERIT,
    OBJECT_INHERIT,
    SE_SACL_AUTO_INHERITED,
    SE_SACL_PRESENT,
    SE_SACL_PROTECTED,
    SE_SELF_RELATIVE,
    SECURITY_DESCRIPTOR_REVISION,
    SYSTEM_AUDIT_OBJECT_ACE_TYPE,
    Ace,
    AuditAce,
    ace_from_bytes,
    ace_from_sddl,
    parse_sacl,
    sid_to_bytes,
)
from .common import LabLdapError, LdapHandler, State, StateSection

__all__ = ["LDAP", "SECTIONS", "LabDirectory", "LabDirectoryObject", "dn_key", "parent_dn", "parse_filter",
           "sid_bytes"]

SD_FLAGS_SACL = 0x8
SUPPORTED_CONTROLS = [
    "1.2.840.113556.1.4.319",  # paged results
    "1.2.840.113556.1.4.801",  # security descriptor flags
    "1.2.840.113556.1.4.473",  # server-side sort
    "1.2.840.113556.1.4.528",  # notification
    "1.2.840.113556.1.4.417",  # show deleted
    "1.2.840.113556.1.4.1339",  # domain scope
    "1.2.840.113556.1.4.1340",  # search options
    "1.2.840.113556.1.4.1413",  # permissive modify
    "2.16.840.1.113730.3.4.9",  # virtual list view
    "2.16.840.1.113730.3.4.10",
]
FIRST_USN = 5000
BITWISE_RULES = ("1.2.840.113556.1.4.803", "1.2.840.113556.1.4.804")
# Attributes the lab computes: never written by a modify, never stored under ``attributes``.
COMPUTED = {"objectclass", "distinguishedname", "usnchanged", "name", "ntsecuritydescriptor"}
READ_ONLY = COMPUTED | {"objectsid"}
SID_RE = re.compile(r"^S-1-\d+(-\d+)*$", re.IGNORECASE)
INSUFFICIENT = ("insufficientAccessRights: 00002098: SecErr: DSID-03150F94, problem 4003 (INSUFF_ACCESS_RIGHTS), "
                "data 0: the bound account lacks SeSecurityPrivilege (can_read_sacl: false)")


# --- distinguished names ---------------------------------------------------------------------

def _split_unescaped(text: str, separator: str, limit: int = -1) -> list[str]:
    """``text`` split at each ``separator`` not escaped by a backslash (at most ``limit`` splits)."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == separator and limit != 0:
            parts.append("".join(current))
            current = []
            limit -= 1
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _rdns(dn: str) -> list[str]:
    """The RDNs of a DN, nearest first; ``""`` (the rootDSE) has none. Raises ValueError on a
    malformed DN (an RDN without ``type=value``)."""
    if not dn.strip():
        return []
    rdns = [r.strip() for r in _split_unescaped(dn, ",")]
    for rdn in rdns:
        pair = _split_unescaped(rdn, "=", 1)
        if len(pair) != 2 or not pair[0].strip() or not pair[1].strip():
            raise ValueError(f"{dn!r} is not a distinguished name (RDN {rdn!r} is not type=value)")
    return rdns


def _rdn_key(rdn: str) -> str:
    kind, value = _split_unescaped(rdn, "=", 1)
    return f"{kind.strip().casefold()}={value.strip().casefold()}"


def dn_key(dn: str) -> tuple[str, ...]:
    """A DN as compared: its RDNs, nearest first, case-folded and without spaces around ``,``/``=``."""
    return tuple(_rdn_key(r) for r in _rdns(dn))


def parent_dn(dn: str) -> str:
    """Everything after the first unescaped comma (``""`` for a naming context's top RDN alone)."""
    parts = _split_unescaped(dn, ",", 1)
    return parts[1].strip() if len(parts) == 2 else ""


def _rdn_parts(dn: str) -> tuple[str, str]:
    """The first RDN's attribute type and (unescaped) value."""
    rdns = _rdns(dn)
    if not rdns:
        return "", ""
    kind, value = _split_unescaped(rdns[0], "=", 1)
    return kind.strip(), _unescape_dn_value(value.strip())


def _unescape_dn_value(value: str) -> str:
    out = bytearray()
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            pair = value[i + 1:i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                out.append(int(pair, 16))
                i += 3
                continue
            out += value[i + 1].encode("utf-8")
            i += 2
            continue
        out += ch.encode("utf-8")
        i += 1
    return out.decode("utf-8", "replace")


def _escape_dn_value(value: str) -> str:
    out = "".join(f"\\{ch}" if ch in ',+"\\<>;=' else ch for ch in value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


# --- SIDs -------------------------------------------------------------------------------------

def sid_bytes(sid: str) -> bytes:
    """A SID string (S-1-5-21-...) in its binary form (MS-DTYP 2.4.2.2), as objectSid holds it."""
    if not SID_RE.match(sid):
        raise ValueError(f"{sid!r} is not a SID (S-1-...)")
    return sid_to_bytes(sid)


# --- SACL entries as stored -----------------------------------------------------------------

def _split_sddl_aces(text: str) -> list[str]:
    """``(A;...)(B;...)`` as its ACE strings (a conditional expression's parentheses nest)."""
    aces: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "(":
            if depth == 0:
                if text[start:i].strip():
                    raise ValueError(f"unexpected {text[start:i].strip()!r} between SDDL ACE strings")
                start = i
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced ')' in SDDL ACE strings")
            if depth == 0:
                aces.append(text[start:i + 1])
                start = i + 1
    if depth != 0:
        raise ValueError("unbalanced '(' in SDDL ACE strings")
    if text[start:].strip():
        raise ValueError(f"unexpected {text[start:].strip()!r} after the SDDL ACE strings")
    return aces


def _ace_from_text(text: str) -> Ace:
    """One stored entry from its SDDL (an ``AU``/``OU`` ACE, or another type's raw form)."""
    return ace_from_sddl(text)


def _stored_aces(value: str | list[str]) -> list[str]:
    """A lab file's ``sacl`` (concatenated SDDL ACE strings, or a list of them) as state:
    each entry's canonical SDDL."""
    items = _split_sddl_aces(value) if isinstance(value, str) else [
        piece for item in value for piece in _split_sddl_aces(item)]
    return [ace_from_sddl(item).to_sddl() for item in items]


def _with_flags(ace: Ace, flags: int) -> Ace:
    if isinstance(ace, AuditAce):
        return AuditAce(ace.sid, ace.mask, flags, ace.object_type, ace.inherited_object_type)
    data = ace.to_bytes()
    return ace_from_bytes(data[:1] + bytes((flags,)) + data[2:])


def _descriptor(aces: list[Ace], *, protected: bool) -> bytes:
    """The SACL-only self-relative descriptor AD returns with sd_flags 0x8: Control
    SE_SELF_RELATIVE | SE_SACL_PRESENT | SE_SACL_AUTO_INHERITED (| SE_SACL_PROTECTED), no owner,
    group or DACL, the SACL's entries in the order given (explicit, then inherited).
    (:func:`~hardening.security_descriptor.sacl_descriptor` builds what is written, so it refuses
    inherited entries; what is read carries them.)"""
    body = b"".join(ace.to_bytes() for ace in aces)
    revision = ACL_REVISION_DS if any(_is_object_ace(a) for a in aces) else ACL_REVISION
    control = (SE_SELF_RELATIVE | SE_SACL_PRESENT | SE_SACL_AUTO_INHERITED
               | (SE_SACL_PROTECTED if protected else 0))
    header = struct.pack("<BBHIIII", SECURITY_DESCRIPTOR_REVISION, 0, control, 0, 0, 20, 0)
    return header + struct.pack("<BBHHH", revision, 0, 8 + len(body), len(aces), 0) + body


def _is_object_ace(ace: Ace) -> bool:
    # the object ACE types (MS-DTYP 2.4.4.1): an ACL holding one is ACL_REVISION_DS
    return ace.ace_type in (0x05, 0x06, SYSTEM_AUDIT_OBJECT_ACE_TYPE, 0x08, 0x0B, 0x0C, 0x0F, 0x10)


def _inherited_copy(ace: Ace) -> Ace | None:
    """What a child inherits of its parent's entry, or None when the entry does not propagate."""
    flags = ace.flags
    if not flags & CONTAINER_INHERIT:
        return None
    flags = (flags | INHERITED) & ~INHERIT_ONLY
    if flags & NO_PROPAGATE_INHERIT:
        flags &= ~(CONTAINER_INHERIT | OBJECT_INHERIT | NO_PROPAGATE_INHERIT)
    return _with_flags(ace, flags)


# --- the lab file -----------------------------------------------------------------------------

Value = str | int | bool


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"  # LDAP's Boolean syntax
    return str(value)


class LabDirectoryObject(BaseModel):
    """An object of the simulated directory."""

    model_config = ConfigDict(extra="forbid")
    objectClass: list[str] = Field(default_factory=lambda: ["top", "container"],
                                   description="Its classes, most general first (top, container).")
    sacl: str | list[str] = Field("", description="Its explicit audit entries as SDDL ACE strings, concatenated "
                                  "((AU;CISA;WP;;;WD)(AU;FA;RP;;;AU)) or listed; empty: none.")
    sacl_protected: bool = Field(False, description="The SACL blocks inheritance (SE_SACL_PROTECTED).")
    usn_changed: int | None = Field(None, ge=1, description="Its uSNChanged (default: counted up from 5000).")
    attributes: dict[str, Value | list[Value]] = Field(default_factory=dict,
                                                        description="Plain attributes (strings, or lists of them).")

    @field_validator("sacl")
    @classmethod
    def _sacl(cls, value: str | list[str]) -> str | list[str]:
        try:
            _stored_aces(value)
        except ValueError as exc:
            raise ValueError(f"not a list of audit entries in SDDL: {exc}") from None
        return value

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, Value | list[Value]]) -> dict[str, Value | list[Value]]:
        for name in value:
            if name.casefold() in COMPUTED:
                raise ValueError(f"{name} is computed by the lab: set it with the object's own keys")
        return value


class LabDirectory(BaseModel):
    """The directory a lab host serves over LDAP (a domain controller)."""

    model_config = ConfigDict(extra="forbid")
    naming_contexts: dict[str, str] = Field(description="default (the domain's DN); configuration and schema "
                                            "default to CN=Configuration,<default> and CN=Schema,<configuration>.")
    dns_host_name: str = Field(description="The DC's DNS name (rootDSE dnsHostName).")
    domain_sid: str = Field(description="The domain's SID (objectSid of the domain object).")
    can_read_sacl: bool = Field(True, description="The bound account holds SeSecurityPrivilege; false: "
                                "nTSecurityDescriptor is absent from SACL reads and SACL writes are refused.")
    principals: dict[str, str] = Field(default_factory=dict, description="DOMAIN\\name → SID, found by "
                                       "sAMAccountName under the default naming context.")
    objects: dict[str, LabDirectoryObject] = Field(default_factory=dict, description="Objects by DN.")

    @field_validator("naming_contexts")
    @classmethod
    def _contexts(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - {"default", "configuration", "schema"})
        if unknown:
            raise ValueError(f"unknown naming context {', '.join(unknown)} (default, configuration, schema)")
        if "default" not in value:
            raise ValueError("naming_contexts needs default: the domain's DN (DC=lab,DC=example,DC=test)")
        out = {"default": value["default"]}
        out["configuration"] = value.get("configuration") or f"CN=Configuration,{out['default']}"
        out["schema"] = value.get("schema") or f"CN=Schema,{out['configuration']}"
        for dn in out.values():
            if not _rdns(dn):
                raise ValueError("a naming context is a DN, not empty")
        return out

    @model_validator(mode="after")
    def _consistent(self) -> LabDirectory:
        for sid in [self.domain_sid, *self.principals.values()]:
            sid_bytes(sid)
        contexts = [dn_key(dn) for dn in self.naming_contexts.values()]
        seen: dict[tuple[str, ...], str] = {}
        for dn in self.objects:
            key = dn_key(dn)
            if key in seen:
                raise ValueError(f"objects {seen[key]!r} and {dn!r} are the same DN")
            seen[key] = dn
            if not any(key[len(key) - len(c):] == c for c in contexts if len(key) >= len(c)):
                raise ValueError(f"object {dn!r} is in none of the naming contexts "
                                 f"({'; '.join(self.naming_contexts.values())})")
        for name in self.principals:
            if not name.rpartition("\\")[2]:
                raise ValueError(f"principal {name!r} has no name (DOMAIN\\name)")
        return self


def _build(value: LabDirectory | None, host: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    contexts = dict(value.naming_contexts)
    default = contexts["default"]
    heads: dict[str, dict[str, Any]] = {
        default: {"objectClass": ["top", "domain", "domainDNS"], "attributes": {"objectSid": [value.domain_sid]}},
        contexts["configuration"]: {"objectClass": ["top", "configuration"], "attributes": {}},
        contexts["schema"]: {"objectClass": ["top", "dMD"], "attributes": {}},
    }
    declared: dict[tuple[str, ...], tuple[str, dict[str, Any]]] = {}
    for dn, spec in value.objects.items():
        declared[dn_key(dn)] = (dn, {
            "objectClass": list(spec.objectClass),
            "sacl": _stored_aces(spec.sacl),
            "sacl_protected": spec.sacl_protected,
            "usn_changed": spec.usn_changed,
            "attributes": {k: [_text(x) for x in (v if isinstance(v, list) else [v])]
                           for k, v in spec.attributes.items()},
        })
    for dn, head in heads.items():  # a declared head keeps its settings and gains the head's classes
        key = dn_key(dn)
        if key in declared:
            obj = declared[key][1]
            for cls in head["objectClass"]:
                if cls.casefold() not in {c.casefold() for c in obj["objectClass"]}:
                    obj["objectClass"].append(cls)
            for name, values in head["attributes"].items():
                obj["attributes"].setdefault(name, values)
        else:
            declared[key] = (dn, {"objectClass": head["objectClass"], "sacl": [], "sacl_protected": False,
                                  "usn_changed": None, "attributes": head["attributes"]})
    for account, sid in value.principals.items():
        domain, _, name = account.rpartition("\\")
        upn = None
        if not domain and "@" in name:
            upn, name = name, name.split("@", 1)[0]
        container = "CN=Builtin" if domain.casefold() == "builtin" else "CN=Users"
        dn = f"CN={_escape_dn_value(name.rstrip('$'))},{container},{default}"
        key = dn_key(dn)
        if name.endswith("$"):
            classes = ["top", "person", "organizationalPerson", "user", "computer"]
        elif upn is not None:
            classes = ["top", "person", "organizationalPerson", "user"]
        else:
            classes = ["top", "group"]
        if key not in declared:
            declared[key] = (dn, {"objectClass": classes, "sacl": [], "sacl_protected": False, "usn_changed": None,
                                  "attributes": {}})
        attributes = declared[key][1]["attributes"]
        attributes.setdefault("sAMAccountName", [name])
        attributes.setdefault("objectSid", [sid])
        if upn is not None:
            attributes.setdefault("userPrincipalName", [upn])
    context_keys = [dn_key(dn) for dn in contexts.values()]
    for key, (dn, _) in list(declared.items()):  # the containers between an object and its naming context
        context = max((c for c in context_keys if key[len(key) - len(c):] == c), key=len)
        ancestor = parent_dn(dn)
        while len(dn_key(ancestor)) > len(context):
            if dn_key(ancestor) not in declared:
                declared[dn_key(ancestor)] = (ancestor, {"objectClass": ["top", "container"], "sacl": [],
                                                         "sacl_protected": False, "usn_changed": None,
                                                         "attributes": {}})
            ancestor = parent_dn(ancestor)
    ordered = sorted(declared.values(), key=lambda item: len(dn_key(item[0])))  # parents first (stable)
    usn = FIRST_USN - 1
    objects: dict[str, Any] = {}
    for dn, obj in ordered:
        if obj["usn_changed"] is None:
            usn += 1
            obj["usn_changed"] = usn
        objects[dn] = obj
    return {
        "naming_contexts": contexts,
        "dns_host_name": value.dns_host_name,
        "domain_sid": value.domain_sid,
        "can_read_sacl": value.can_read_sacl,
        "principals": dict(value.principals),
        "highest_usn": max([usn, *(o["usn_changed"] for o in objects.values())]),
        "objects": objects,
    }


# --- filters ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filter:
    """A parsed RFC 4515 filter: ``op`` is and, or, not, equal, approx, present, substring, ge, le
    or extensible; ``parts`` the sub-filters; ``pieces`` a substring's (initial, any..., final)."""

    op: str
    attribute: str = ""
    value: str = ""
    parts: tuple[Filter, ...] = ()
    pieces: tuple[str, ...] = ()
    rule: str = ""


class FilterError(ValueError):
    """A filter the directory target (ldap3) would refuse before sending it."""


def _unescape_filter_value(text: str) -> str:
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "\\":
            pair = text[i + 1:i + 3]
            if len(pair) != 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                raise FilterError(f"bad escape {text[i:i + 3]!r} (\\ is followed by two hex digits)")
            out.append(int(pair, 16))
            i += 3
        else:
            out += text[i].encode("utf-8")
            i += 1
    return out.decode("utf-8", "replace")


def parse_filter(text: str) -> Filter:
    """An LDAP filter string (RFC 4515) parsed; raises :class:`FilterError`."""
    text = text.strip()
    parsed, end = _parse(text, 0)
    if end != len(text):
        raise FilterError(f"unexpected {text[end:]!r} after the filter")
    return parsed


def _parse(text: str, i: int) -> tuple[Filter, int]:
    if i >= len(text) or text[i] != "(":
        raise FilterError("a filter is enclosed in parentheses")
    i += 1
    if i < len(text) and text[i] in "&|!":
        op = {"&": "and", "|": "or", "!": "not"}[text[i]]
        i += 1
        parts = []
        while i < len(text) and text[i] == "(":
            part, i = _parse(text, i)
            parts.append(part)
        if i >= len(text) or text[i] != ")":
            raise FilterError("a filter is not closed")
        if op == "not" and len(parts) != 1:
            raise FilterError("! takes exactly one filter")
        return Filter(op, parts=tuple(parts)), i + 1
    end = text.find(")", i)
    if end < 0:
        raise FilterError("a filter is not closed")
    return _item(text[i:end]), end + 1


def _item(item: str) -> Filter:
    if "(" in item:
        raise FilterError(f"'(' in the value of {item!r} must be escaped as \\28")
    match = re.match(r"^([A-Za-z0-9;.\-]*)((?::dn)?(?::[A-Za-z0-9.\-]+)?:=|~=|>=|<=|=)(.*)$", item, re.DOTALL)
    if match is None or (not match.group(1) and not match.group(2).endswith(":=")):
        raise FilterError(f"{item!r} is not attribute=value")
    attribute, op, raw = match.groups()
    if not attribute:
        raise FilterError(f"{item!r} has no attribute")
    if op.endswith(":=") and op != "=":
        rule = op[:-2].removeprefix(":dn").lstrip(":")
        if rule not in BITWISE_RULES:
            raise FilterError(f"the lab's directory does not simulate the matching rule {rule or '(none)'!r} "
                              f"(it knows {' and '.join(BITWISE_RULES)})")
        return Filter("extensible", attribute, _unescape_filter_value(raw), rule=rule)
    if op in ("~=", ">=", "<="):
        return Filter({"~=": "approx", ">=": "ge", "<=": "le"}[op], attribute, _unescape_filter_value(raw))
    if raw == "*":
        return Filter("present", attribute)
    if "*" in raw:
        return Filter("substring", attribute, pieces=tuple(_unescape_filter_value(p) for p in raw.split("*")))
    return Filter("equal", attribute, _unescape_filter_value(raw))


def _category_names(value: str) -> set[str]:
    """What an objectCategory value names: a class name, or a schema DN's CN without hyphens."""
    name = value
    if "=" in value:
        with contextlib.suppress(ValueError):
            name = _rdn_parts(value)[1]
    return {value.casefold(), name.casefold(), name.replace("-", "").casefold()}


def _as_int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _matches(f: Filter, view: Mapping[str, list[str]]) -> bool:
    if f.op == "and":
        return all(_matches(p, view) for p in f.parts)
    if f.op == "or":
        return any(_matches(p, view) for p in f.parts)
    if f.op == "not":
        return not _matches(f.parts[0], view)
    name = f.attribute.casefold()
    if name == "objectcategory" and f.op in ("equal", "approx"):
        wanted = _category_names(f.value)
        candidates = {c.casefold() for c in view.get("objectclass", [])}
        for declared in view.get("objectcategory", []):
            candidates |= _category_names(declared)
        return bool(wanted & candidates)
    values = view.get(name)
    if values is None:  # every object has a class and a category, the rootDSE included
        return f.op == "present" and name in ("objectclass", "objectcategory")
    if f.op == "present":
        return True
    if f.op in ("equal", "approx"):
        if name == "distinguishedname":
            try:
                return any(dn_key(v) == dn_key(f.value) for v in values)
            except ValueError:
                return False
        return any(v.casefold() == f.value.casefold() for v in values)
    if f.op in ("ge", "le"):
        return any(_ordered(v, f.value, f.op) for v in values)
    if f.op == "substring":
        return any(_substring(v.casefold(), [p.casefold() for p in f.pieces]) for v in values)
    return any(_extensible(v, f) for v in values)


def _ordered(value: str, wanted: str, op: str) -> bool:
    left, right = _as_int(value), _as_int(wanted)
    if left is not None and right is not None:
        return left >= right if op == "ge" else left <= right
    return value.casefold() >= wanted.casefold() if op == "ge" else value.casefold() <= wanted.casefold()


def _substring(value: str, pieces: list[str]) -> bool:
    initial, middle, final = pieces[0], pieces[1:-1], pieces[-1]
    if not value.startswith(initial):
        return False
    position = len(initial)
    for piece in middle:
        found = value.find(piece, position)
        if found < 0:
            return False
        position = found + len(piece)
    return len(value) - position >= len(final) and value.endswith(final)


def _extensible(value: str, f: Filter) -> bool:
    """AD's bitwise matching rules: AND (803: every bit set) and OR (804: any bit set)."""
    left, right = _as_int(value), _as_int(f.value)
    if left is None or right is None:
        return False
    return (left & right) == right if f.rule == BITWISE_RULES[0] else bool(left & right)


# --- reading objects --------------------------------------------------------------------------

def _directory(state: State) -> dict[str, Any]:
    directory: dict[str, Any] = state["directory"]
    return directory


def _find(directory: Mapping[str, Any], dn: str) -> str | None:
    """The stored spelling of ``dn``, if the directory holds it."""
    key = dn_key(dn)
    return next((stored for stored in directory["objects"] if dn_key(stored) == key), None)


def _base(directory: Mapping[str, Any], call: LdapCall) -> str:
    """The stored spelling of the call's DN; no such object, or a DN that is not one, refused."""
    try:
        stored = _find(directory, call.dn)
    except ValueError as exc:
        raise LabLdapError(f"{call.op} {call.dn}: invalidDNSyntax: {exc}") from None
    if stored is None:
        raise LabLdapError(f"no such object: {call.dn}")
    return stored


def _context_of(directory: Mapping[str, Any], key: tuple[str, ...]) -> tuple[str, ...]:
    contexts = [dn_key(dn) for dn in directory["naming_contexts"].values()]
    return max((c for c in contexts if len(key) >= len(c) and key[len(key) - len(c):] == c), key=len, default=())


def _explicit(obj: Mapping[str, Any]) -> list[Ace]:
    return [_ace_from_text(text) for text in obj.get("sacl", [])]


def _inherited(directory: Mapping[str, Any], dn: str) -> list[Ace]:
    """The entries ``dn`` inherits: its parent's (explicit then inherited) that propagate."""
    obj = directory["objects"][dn]
    if obj.get("sacl_protected"):
        return []
    key = dn_key(dn)
    if key == _context_of(directory, key):
        return []  # a naming context's head inherits from no other naming context
    parent = _find(directory, parent_dn(dn))
    if parent is None:
        return []
    out = []
    for ace in _explicit(directory["objects"][parent]) + _inherited(directory, parent):
        child = _inherited_copy(ace)
        if child is not None:
            out.append(child)
    return out


def _view(directory: Mapping[str, Any], dn: str) -> dict[str, list[str]]:
    """The object's values by case-folded name, as filters see them (strings)."""
    obj = directory["objects"][dn]
    view = {name.casefold(): list(values) for name, values in obj["attributes"].items()}
    kind, value = _rdn_parts(dn)
    view.setdefault(kind.casefold(), [value])
    view["name"] = [value]
    view["objectclass"] = list(obj["objectClass"])
    view["distinguishedname"] = [dn]
    view["usnchanged"] = [str(obj["usn_changed"])]
    return view


def _root_dse(state: State) -> dict[str, list[str]]:
    directory = _directory(state)
    contexts = directory["naming_contexts"]
    server = directory["dns_host_name"].split(".")[0].upper()
    return {
        "configurationNamingContext": [contexts["configuration"]],
        "defaultNamingContext": [contexts["default"]],
        "dnsHostName": [directory["dns_host_name"]],
        "highestCommittedUSN": [str(directory["highest_usn"])],
        "namingContexts": [contexts["default"], contexts["configuration"], contexts["schema"]],
        "rootDomainNamingContext": [contexts["default"]],
        "schemaNamingContext": [contexts["schema"]],
        "serverName": [f"CN={server},CN=Servers,CN=Default-First-Site-Name,CN=Sites,{contexts['configuration']}"],
        "supportedControl": list(SUPPORTED_CONTROLS),
        "supportedLDAPVersion": ["3", "2"],
    }


def _wants_descriptor(call: LdapCall) -> bool:
    return any(a.casefold() == "ntsecuritydescriptor" for a in call.attributes)


def _check_descriptor_read(call: LdapCall) -> None:
    if _wants_descriptor(call) and call.sd_flags != SD_FLAGS_SACL:
        flags = "no sd_flags" if call.sd_flags is None else f"sd_flags 0x{call.sd_flags:x}"
        raise LabLdapError(f"search {call.dn}: the lab simulates only the SACL of nTSecurityDescriptor (sd_flags "
                           f"0x8), not its owner, group or DACL; this search asked with {flags}")


def _raw_value(directory: Mapping[str, Any], dn: str, name: str) -> list[str | bytes] | None:
    """One attribute of an object as the directory returns it, or None when it returns nothing."""
    folded = name.casefold()
    obj = directory["objects"][dn]
    if folded == "ntsecuritydescriptor":
        if not directory["can_read_sacl"]:
            return None  # AD omits the attribute when the SACL may not be read
        aces = _explicit(obj) + _inherited(directory, dn)
        return [_descriptor(aces, protected=bool(obj.get("sacl_protected")))]
    if folded == "objectsid":
        sids = next((v for k, v in obj["attributes"].items() if k.casefold() == folded), None)
        return None if sids is None else [sid_bytes(s) for s in sids]
    values = _view(directory, dn).get(folded)
    return None if values is None else list(values)


def _entry(call: LdapCall, dn: str, values: Callable[[str], list[str | bytes] | None]) -> dict[str, Any]:
    """What the directory target makes of an entry: the requested names, binary ones as bytes."""
    binary = {b.casefold() for b in call.binary}
    attributes: dict[str, list[Any]] = {}
    for name in call.attributes:
        found = values(name)
        if found is None:
            continue
        if name.casefold() in binary:
            attributes[name] = [v if isinstance(v, bytes) else v.encode("utf-8") for v in found]
        else:
            attributes[name] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in found]
    return {"dn": dn, "attributes": attributes}


def _search(state: State, call: LdapCall) -> list[dict[str, Any]]:
    directory = _directory(state)
    try:
        condition = parse_filter(call.filter)
    except FilterError as exc:
        raise LabLdapError(f"search {call.dn}: invalid filter {call.filter!r}: {exc}") from None
    _check_descriptor_read(call)
    if not call.dn.strip():
        if call.scope != "base":
            raise LabLdapError(f"search {call.dn!r}: the lab answers the rootDSE with scope base only")
        view = {k.casefold(): v for k, v in _root_dse(state).items()}
        if not _matches(condition, view):
            return []

        def root_value(name: str) -> list[str | bytes] | None:
            values = view.get(name.casefold())
            return None if values is None else list(values)
        return [_entry(call, "", root_value)]
    base = _base(directory, call)
    base_key = dn_key(base)
    context = _context_of(directory, base_key)
    found: list[str] = []
    for dn in directory["objects"]:
        key = dn_key(dn)
        if call.scope == "base":
            inside = key == base_key
        elif call.scope == "one":
            inside = key[1:] == base_key and _context_of(directory, key) == context
        else:
            inside = key[len(key) - len(base_key):] == base_key and _context_of(directory, key) == context
        if inside and _matches(condition, _view(directory, dn)):
            found.append(dn)
    found.sort(key=lambda dn: dn_key(dn) != base_key)  # the base first, then in stored order
    return [_entry(call, dn, functools.partial(_raw_value, directory, dn)) for dn in found]


# --- writing objects --------------------------------------------------------------------------

def _write_sacl(directory: Mapping[str, Any], call: LdapCall, obj: dict[str, Any], action: str,
                values: tuple[str | bytes, ...]) -> bool:
    """Store the SACL of a SACL-only descriptor; True when the stored entries changed."""
    if call.sd_flags != SD_FLAGS_SACL:
        flags = "no sd_flags" if call.sd_flags is None else f"sd_flags 0x{call.sd_flags:x}"
        raise LabLdapError(f"modify {call.dn}: the lab simulates only SACL-only writes of nTSecurityDescriptor "
                           f"(sd_flags 0x8); it never writes an owner, group or DACL, and this modify has {flags}")
    if not directory["can_read_sacl"]:
        raise LabLdapError(f"modify {call.dn}: insufficient access rights for the bound account ({INSUFFICIENT})")
    if action != "replace" or len(values) != 1 or not isinstance(values[0], bytes):
        raise LabLdapError(f"modify {call.dn}: constraintViolation: nTSecurityDescriptor is replaced with one "
                           "binary security descriptor")
    try:
        sacl = parse_sacl(values[0])
    except ValueError as exc:
        raise LabLdapError(f"modify {call.dn}: constraintViolation: not a security descriptor ({exc})") from None
    explicit = [ace.to_sddl() for ace in sacl.explicit]
    before = ([_ace_from_text(t).to_bytes() for t in obj.get("sacl", [])], bool(obj.get("sacl_protected")))
    after = ([_ace_from_text(t).to_bytes() for t in explicit], bool(sacl.protected))
    obj["sacl"] = explicit
    obj["sacl_protected"] = bool(sacl.protected)
    return before != after


def _write_plain(call: LdapCall, obj: dict[str, Any], name: str, action: str,
                 values: tuple[str | bytes, ...]) -> bool:
    """Change one plain attribute; True when its stored values changed."""
    try:
        texts = [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]
    except UnicodeDecodeError:
        raise LabLdapError(f"modify {call.dn}: the lab stores {name} as text and this value is not UTF-8") from None
    attributes: dict[str, list[str]] = obj["attributes"]
    stored = next((k for k in attributes if k.casefold() == name.casefold()), None)
    current = list(attributes.get(stored, [])) if stored is not None else []
    if action == "replace":
        updated = texts
    elif action == "add":
        if not texts:
            raise LabLdapError(f"modify {call.dn}: protocolError: add of {name} needs a value")
        for text in texts:
            if any(text.casefold() == c.casefold() for c in current):
                raise LabLdapError(f"modify {call.dn}: attributeOrValueExists: {name} already holds {text!r}")
        updated = current + texts
    else:
        if stored is None:
            raise LabLdapError(f"modify {call.dn}: noSuchAttribute: the object has no {name}")
        updated = []
        if texts:
            for text in texts:
                if not any(text.casefold() == c.casefold() for c in current):
                    raise LabLdapError(f"modify {call.dn}: noSuchAttribute: {name} does not hold {text!r}")
            updated = [c for c in current if not any(c.casefold() == t.casefold() for t in texts)]
    if stored is not None:
        del attributes[stored]
    if updated:
        attributes[stored or name] = updated
    return updated != current


def _modify(state: State, call: LdapCall) -> None:
    directory = _directory(state)
    if not call.dn.strip():
        raise LabLdapError("modify '': unwillingToPerform: the lab does not simulate writes to the rootDSE")
    stored = _base(directory, call)
    rdn_kind = _rdn_parts(stored)[0].casefold()
    obj = copy.deepcopy(directory["objects"][stored])  # all changes or none
    changed = False
    for name, action, values in call.changes:
        folded = name.casefold()
        if folded == "ntsecuritydescriptor":
            changed = _write_sacl(directory, call, obj, action, values) or changed
        elif folded in READ_ONLY or folded == rdn_kind:
            raise LabLdapError(f"modify {call.dn}: constraintViolation: the lab does not simulate writing {name}")
        else:
            changed = _write_plain(call, obj, name, action, values) or changed
    if changed:
        directory["highest_usn"] += 1
        obj["usn_changed"] = directory["highest_usn"]
    directory["objects"][stored] = obj


SECTIONS: dict[str, StateSection] = {
    "directory": StateSection(LabDirectory | None, None, _build,
                              "A directory served over LDAP (a domain controller): naming_contexts, dns_host_name, "
                              "domain_sid, can_read_sacl, principals, objects (DN → objectClass, sacl in SDDL, "
                              "sacl_protected, usn_changed, attributes). None: the host is not a directory."),
}
LDAP: dict[str, LdapHandler] = {
    "search": _search,
    "modify": _modify,
}
