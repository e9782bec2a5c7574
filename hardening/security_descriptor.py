"""Audit entries (SACL ACEs) of Active Directory objects: bytes, SDDL and .NET names.

A directory object's ``nTSecurityDescriptor`` is a self-relative SECURITY_DESCRIPTOR (MS-DTYP
2.4.6). This module reads the SACL out of one (:func:`parse_sacl`), builds the SACL-only
descriptor that is written back with the SD-flags control 0x8 (:func:`sacl_descriptor`), and
gives each ACE a value type that compares by meaning, renders as canonical SDDL and parses
SDDL back: :class:`AuditAce` for SYSTEM_AUDIT_ACE (0x02) and SYSTEM_AUDIT_OBJECT_ACE (0x07),
:class:`OtherAce` for anything else, kept byte for byte. :data:`RIGHTS` and
:data:`INHERITANCE` carry the .NET ``ActiveDirectoryRights`` and
``ActiveDirectorySecurityInheritance`` names that playbooks use.

winacl 0.1.9 decodes each audit ACE and converts SIDs between string and bytes. This module
works around these gaps in it:

* It does no bounds checking: a truncated descriptor decodes silently as zeros (SID ``S-1-0``,
  mask 0). We check the header, ACL and ACE sizes with :mod:`struct` first and hand winacl
  the exact bytes of one audit ACE at a time.
* It raises on ACE types it doesn't implement (0x04, 0x08, 0x0E, 0x10, anything above 0x13),
  even in the DACL, which we don't need. We walk the SACL ourselves and never parse the DACL.
* It re-encodes ACEs rather than keeping them: it recomputes AceSize, drops bytes after the
  SID, pads data after the SID to the wrong length (``ACE.add_padding``), and its object ACE
  classes don't derive from ``ACE``, so they have no ``to_bytes()``. We encode audit ACEs
  ourselves and keep every other ACE's bytes as read.
* Its SDDL can't be used. SYSTEM_AUDIT_OBJECT_ACE has no ``to_sddl``.
  ``SECURITY_DESCRIPTOR.to_sddl`` writes the DACL's control flags after ``S:``. ``from_sddl``
  refuses concatenated rights (``WPWD``) and sets ``P``/``AI`` on both ACLs.
  ``SID.from_sddl`` resolves BUILTIN aliases (``BA`` …), ``LS``/``NS``/``ED`` and the integrity
  levels under the domain SID, and maps ``CG`` to ``S-1-3``. This module writes and reads its
  own SDDL with its own alias table.
* ``SECURITY_DESCRIPTOR.__eq__`` compares Control, Owner and Group with themselves, and
  ``ACL.__eq__`` compares sets, so it ignores order and duplicates. Our frozen dataclasses
  compare field by field, in order.
* ``SE_SACL.SE_SACL_DEFAULTED`` is 0x0008, which is SE_DACL_DEFAULTED. Control bits are
  defined here.
"""

from __future__ import annotations

import re
import struct
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeAlias

from winacl.dtyp.ace import ACE as _WinAce
from winacl.dtyp.sid import SID as _WinSid

__all__ = [
    "ACE_INHERITED_OBJECT_TYPE_PRESENT",
    "ACE_OBJECT_TYPE_PRESENT",
    "ACL_REVISION",
    "ACL_REVISION_DS",
    "AUDIT_FAILURE",
    "AUDIT_SUCCESS",
    "CONTAINER_INHERIT",
    "INHERITANCE",
    "INHERITED",
    "INHERIT_ONLY",
    "NO_PROPAGATE_INHERIT",
    "OBJECT_INHERIT",
    "RIGHTS",
    "SDDL_SID_ALIASES",
    "SECURITY_DESCRIPTOR_REVISION",
    "SE_SACL_AUTO_INHERITED",
    "SE_SACL_PRESENT",
    "SE_SACL_PROTECTED",
    "SE_SELF_RELATIVE",
    "SYSTEM_AUDIT_ACE_TYPE",
    "SYSTEM_AUDIT_OBJECT_ACE_TYPE",
    "Ace",
    "AuditAce",
    "OtherAce",
    "Sacl",
    "SddlError",
    "ace_from_bytes",
    "ace_from_sddl",
    "inheritance_flags",
    "parse_sacl",
    "rights_mask",
    "rights_names",
    "sacl_descriptor",
    "sid_from_bytes",
    "sid_to_bytes",
]


class SddlError(ValueError):
    """SDDL text, a right, a flag or a name that can't be read; the message names the token."""


# --- MS-DTYP numbers -------------------------------------------------------------------------

# 2.4.6 SECURITY_DESCRIPTOR: Revision, Sbz1, Control, OffsetOwner, OffsetGroup, OffsetSacl,
# OffsetDacl.
SECURITY_DESCRIPTOR_REVISION = 1
SE_SELF_RELATIVE = 0x8000
SE_SACL_PROTECTED = 0x2000
SE_SACL_AUTO_INHERITED = 0x0800
SE_SACL_PRESENT = 0x0010
_SD_HEADER = struct.Struct("<BBHIIII")

# 2.4.5 ACL: AclRevision, Sbz1, AclSize, AceCount, Sbz2.
ACL_REVISION = 0x02
ACL_REVISION_DS = 0x04
_ACL_HEADER = struct.Struct("<BBHHH")
_MAX_ACL_SIZE = 0xFFFF  # AclSize is 16 bits

# 2.4.4.1 ACE_HEADER: AceType, AceFlags, AceSize.
_ACE_HEADER = struct.Struct("<BBH")
SYSTEM_AUDIT_ACE_TYPE = 0x02
SYSTEM_AUDIT_OBJECT_ACE_TYPE = 0x07
# ACEs with the object layout (Mask, Flags, GUIDs, SID). An ACL holding one has to be
# ACL_REVISION_DS.
_OBJECT_ACE_TYPES = frozenset({0x05, 0x06, 0x07, 0x08, 0x0B, 0x0C, 0x0F, 0x10})

OBJECT_INHERIT = 0x01
CONTAINER_INHERIT = 0x02
NO_PROPAGATE_INHERIT = 0x04
INHERIT_ONLY = 0x08
INHERITED = 0x10
AUDIT_SUCCESS = 0x40  # SUCCESSFUL_ACCESS_ACE_FLAG
AUDIT_FAILURE = 0x80  # FAILED_ACCESS_ACE_FLAG

# 2.4.4.4 and 2.4.4.10: the object ACE's Flags field says which GUIDs follow the Flags.
ACE_OBJECT_TYPE_PRESENT = 0x1
ACE_INHERITED_OBJECT_TYPE_PRESENT = 0x2
_OBJECT_FLAGS = struct.Struct("<II")  # Mask, Flags

# 2.4.2.2 SID: Revision, SubAuthorityCount, IdentifierAuthority (6 bytes, big-endian), then
# SubAuthorityCount little-endian 32-bit values.
_SID_REVISION = 1
_SID_MAX_SUB_AUTHORITIES = 15
_SID_FIXED = 8
_GUID_SIZE = 16
_MAX_MASK = 0xFFFFFFFF

# The AceFlags an AuditAce can hold, in SDDL order. An ACE with any other bit set (0x20) is
# kept as an OtherAce, because SDDL has no token for that bit.
_FLAG_TOKENS: tuple[tuple[str, int], ...] = (
    ("OI", OBJECT_INHERIT),
    ("CI", CONTAINER_INHERIT),
    ("NP", NO_PROPAGATE_INHERIT),
    ("IO", INHERIT_ONLY),
    ("ID", INHERITED),
    ("SA", AUDIT_SUCCESS),
    ("FA", AUDIT_FAILURE),
)
_KNOWN_FLAGS = sum(bit for _, bit in _FLAG_TOKENS)  # distinct bits: the sum is their OR

# SDDL rights for directory objects (MS-DTYP 2.5.1.1 and the ACE strings page): the
# directory-service, standard and generic rights, in the order we render them. The file
# (FA FR FW FX), registry (KA …) and label (NR NW NX) tokens are left out on purpose: their
# bits mean something else on a directory object.
_RIGHT_TOKENS: tuple[tuple[str, int], ...] = (
    ("CC", 0x00000001),
    ("DC", 0x00000002),
    ("LC", 0x00000004),
    ("SW", 0x00000008),
    ("RP", 0x00000010),
    ("WP", 0x00000020),
    ("DT", 0x00000040),
    ("LO", 0x00000080),
    ("CR", 0x00000100),
    ("SD", 0x00010000),
    ("RC", 0x00020000),
    ("WD", 0x00040000),
    ("WO", 0x00080000),
    ("GA", 0x10000000),
    ("GX", 0x20000000),
    ("GW", 0x40000000),
    ("GR", 0x80000000),
)
_RIGHT_BY_TOKEN = dict(_RIGHT_TOKENS)
_TOKEN_BITS = sum(bit for _, bit in _RIGHT_TOKENS)


# --- .NET names ----------------------------------------------------------------------------

#: ``System.DirectoryServices.ActiveDirectoryRights``, spelt as .NET spells it, to mask bits.
#: The four Generic* members are the .NET values (a mapped mask, e.g. GenericRead = 0x20094),
#: not the GENERIC_* bits 0x80000000 … that the SDDL tokens GR GW GX GA stand for.
RIGHTS: Mapping[str, int] = MappingProxyType(
    {
        "CreateChild": 0x1,
        "DeleteChild": 0x2,
        "ListChildren": 0x4,
        "Self": 0x8,
        "ReadProperty": 0x10,
        "WriteProperty": 0x20,
        "DeleteTree": 0x40,
        "ListObject": 0x80,
        "ExtendedRight": 0x100,
        "Delete": 0x10000,
        "ReadControl": 0x20000,
        "WriteDacl": 0x40000,
        "WriteOwner": 0x80000,
        "Synchronize": 0x100000,
        "AccessSystemSecurity": 0x1000000,
        "GenericRead": 0x20094,  # 131220
        "GenericWrite": 0x20028,  # 131112
        "GenericExecute": 0x20004,  # 131076
        "GenericAll": 0xF01FF,  # 983551
    }
)
_RIGHT_BY_FOLDED = {name.casefold(): value for name, value in RIGHTS.items()}
# Names of one bit each, low bit first: what rights_names() decomposes a mask into.
_SINGLE_BIT_RIGHTS = tuple(
    sorted(((n, v) for n, v in RIGHTS.items() if v & (v - 1) == 0), key=lambda item: item[1])
)

#: ``System.DirectoryServices.ActiveDirectorySecurityInheritance`` to AceFlags, as .NET maps
#: them when it builds an ACE.
INHERITANCE: Mapping[str, int] = MappingProxyType(
    {
        "None": 0,
        "All": CONTAINER_INHERIT,
        "Descendents": CONTAINER_INHERIT | INHERIT_ONLY,
        "SelfAndChildren": CONTAINER_INHERIT | NO_PROPAGATE_INHERIT,
        "Children": CONTAINER_INHERIT | NO_PROPAGATE_INHERIT | INHERIT_ONLY,
    }
)
_INHERITANCE_BY_FOLDED = {name.casefold(): value for name, value in INHERITANCE.items()}


def rights_mask(names: Iterable[str]) -> int:
    """OR together ``ActiveDirectoryRights`` names, matched without regard to case.

    A single string is one name, or several separated by commas as .NET writes them
    (``"WriteProperty, WriteDacl"``); it is not taken as a sequence of letters.
    An unknown name raises :class:`SddlError`, which lists the known names.
    """
    if isinstance(names, str):
        names = names.split(",")
    mask = 0
    for name in names:
        value = _RIGHT_BY_FOLDED.get(name.strip().casefold())
        if value is None:
            raise SddlError(f"unknown right {name!r}; known rights: {', '.join(RIGHTS)}")
        mask |= value
    return mask


def rights_names(mask: int) -> tuple[str, ...]:
    """Split a mask into single-bit ``ActiveDirectoryRights`` names, low bit first.

    Bits that no single-bit name covers come last, as one lower-case hex string (``"0x80000000"``).
    The composite names (GenericRead …) are never used: a decomposition into bits is unique.
    """
    _check_mask(mask)
    names: list[str] = []
    rest = mask
    for name, bit in _SINGLE_BIT_RIGHTS:
        if mask & bit:
            names.append(name)
            rest &= ~bit
    if rest:
        names.append(f"0x{rest:x}")
    return tuple(names)


def inheritance_flags(name: str) -> int:
    """The AceFlags for an ``ActiveDirectorySecurityInheritance`` name, matched without regard to case."""
    value = _INHERITANCE_BY_FOLDED.get(name.strip().casefold())
    if value is None:
        raise SddlError(f"unknown inheritance {name!r}; known: {', '.join(INHERITANCE)}")
    return value


# --- SIDs and GUIDs --------------------------------------------------------------------------

#: Two-letter SDDL aliases of well-known SIDs that don't depend on a domain, and the SIDs they
#: stand for (the "SID strings" page of the Windows docs; Samba's sddl.c has the same table).
#: Each SID has one alias, so the table reads both ways.
SDDL_SID_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "WD": "S-1-1-0",  # Everyone
        "CO": "S-1-3-0",  # Creator Owner
        "CG": "S-1-3-1",  # Creator Group
        "OW": "S-1-3-4",  # Owner Rights
        "NU": "S-1-5-2",  # Network
        "IU": "S-1-5-4",  # Interactive
        "SU": "S-1-5-6",  # Service
        "AN": "S-1-5-7",  # Anonymous Logon
        "ED": "S-1-5-9",  # Enterprise Domain Controllers
        "PS": "S-1-5-10",  # Principal Self
        "AU": "S-1-5-11",  # Authenticated Users
        "RC": "S-1-5-12",  # Restricted Code
        "SY": "S-1-5-18",  # Local System
        "LS": "S-1-5-19",  # Local Service
        "NS": "S-1-5-20",  # Network Service
        "WR": "S-1-5-33",  # Write Restricted Code
        "BA": "S-1-5-32-544",  # BUILTIN\Administrators
        "BU": "S-1-5-32-545",  # BUILTIN\Users
        "BG": "S-1-5-32-546",  # BUILTIN\Guests
        "PU": "S-1-5-32-547",  # Power Users
        "AO": "S-1-5-32-548",  # Account Operators
        "SO": "S-1-5-32-549",  # Server Operators
        "PO": "S-1-5-32-550",  # Print Operators
        "BO": "S-1-5-32-551",  # Backup Operators
        "RE": "S-1-5-32-552",  # Replicator
        "RU": "S-1-5-32-554",  # Pre-Windows 2000 Compatible Access
        "RD": "S-1-5-32-555",  # Remote Desktop Users
        "NO": "S-1-5-32-556",  # Network Configuration Operators
        "MU": "S-1-5-32-558",  # Performance Monitor Users
        "LU": "S-1-5-32-559",  # Performance Log Users
        "IS": "S-1-5-32-568",  # IIS_IUSRS
        "CY": "S-1-5-32-569",  # Cryptographic Operators
        "ER": "S-1-5-32-573",  # Event Log Readers
        "CD": "S-1-5-32-574",  # Certificate Service DCOM Access
        "RA": "S-1-5-32-575",  # RDS Remote Access Servers
        "ES": "S-1-5-32-576",  # RDS Endpoint Servers
        "MS": "S-1-5-32-577",  # RDS Management Servers
        "HA": "S-1-5-32-578",  # Hyper-V Administrators
        "AA": "S-1-5-32-579",  # Access Control Assistance Operators
        "RM": "S-1-5-32-580",  # Remote Management Users
        "UD": "S-1-5-84-0-0-0-0-0",  # User-Mode Drivers
        "AC": "S-1-15-2-1",  # All Application Packages
        "LW": "S-1-16-4096",  # Low integrity
        "ME": "S-1-16-8192",  # Medium integrity
        "MP": "S-1-16-8448",  # Medium Plus integrity
        "HI": "S-1-16-12288",  # High integrity
        "SI": "S-1-16-16384",  # System integrity
        "AS": "S-1-18-1",  # Authentication authority asserted identity
        "SS": "S-1-18-2",  # Service asserted identity
    }
)
_ALIAS_BY_SID = {sid: alias for alias, sid in SDDL_SID_ALIASES.items()}
# Aliases that stand for a RID under the domain, forest or machine SID, which we don't know.
_DOMAIN_RELATIVE_ALIASES = frozenset(
    {"AP", "CA", "CN", "DA", "DC", "DD", "DG", "DU", "EA", "EK", "KA", "LA", "LG", "PA", "RO", "RS", "SA"}
)

# MS-DTYP 2.4.2.1: "S-1-", the authority in decimal or as 0x and 12 hex digits, then the
# sub-authorities. [0-9] rather than \d, which would let other scripts' digits through.
_SID_RE = re.compile(r"S-1-(0x[0-9a-f]{12}|[0-9]+)((?:-[0-9]+)*)", re.IGNORECASE)
_HEX_RE = re.compile(r"[0-9a-f]+", re.IGNORECASE)
# OtherAce's own form: (0x<type>;0x<flags>;raw:<hex>).
_OTHER_SDDL_RE = re.compile(r"0x([0-9a-f]{2});0x([0-9a-f]{2});raw:((?:[0-9a-f]{2})+)", re.IGNORECASE)
_GUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def _canonical_sid(text: str) -> str:
    """``S-1-…`` in any case to the canonical string; ValueError if it isn't a SID."""
    match = _SID_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a SID string (S-1-<authority>-<sub-authority>…)")
    authority = match.group(1)
    subs = [int(part) for part in match.group(2).split("-")[1:]]
    value = int(authority, 16) if authority[:2].lower() == "0x" else int(authority)
    if value >= 1 << 48:
        raise ValueError(f"SID {text!r}: the identifier authority does not fit in 48 bits")
    if len(subs) > _SID_MAX_SUB_AUTHORITIES:
        raise ValueError(f"SID {text!r} has {len(subs)} sub-authorities; at most 15 are allowed")
    if any(sub > _MAX_MASK for sub in subs):
        raise ValueError(f"SID {text!r}: a sub-authority does not fit in 32 bits")
    # winacl's parser wants "S-1-" in capitals and a lower-case "0x"; we checked the rest.
    rest = (f"0x{value:012x}" if authority[:2].lower() == "0x" else str(value)) + "".join(f"-{s}" for s in subs)
    return str(_WinSid.from_string("S-1-" + rest))


def _sid_bytes(sid: str) -> bytes:
    return bytes(_WinSid.from_string(sid).to_bytes())


def sid_to_bytes(sid: str) -> bytes:
    """A SID string (``S-1-5-21-…``, any case) in its binary form (MS-DTYP 2.4.2.2), as
    ``objectSid`` holds it; ValueError if it is not a SID."""
    return _sid_bytes(_canonical_sid(sid))


def sid_from_bytes(data: bytes) -> str:
    """``S-1-5-21-…`` from a binary SID (``objectSid``); ValueError on anything else (checked here:
    winacl reads short input as zeros)."""
    if len(data) < 8 or data[0] != 1 or len(data) != 8 + 4 * data[1]:
        raise ValueError(f"not a SID: {data.hex()}")
    authority = int.from_bytes(data[2:8], "big")
    subs = [int.from_bytes(data[8 + 4 * i:12 + 4 * i], "little") for i in range(data[1])]
    return "S-1-" + "-".join(str(n) for n in (authority, *subs))


def _canonical_guid(text: str) -> str:
    """A GUID in any case, with or without braces, to lower case without braces."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    if _GUID_RE.fullmatch(body) is None:
        raise ValueError(f"{text!r} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
    return body.lower()


def _check_mask(mask: int) -> None:
    if not 0 <= mask <= _MAX_MASK:
        raise ValueError(f"access mask {mask!r} is not a 32-bit unsigned value")


# --- ACEs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditAce:
    """One audit entry: SYSTEM_AUDIT_ACE (0x02), or SYSTEM_AUDIT_OBJECT_ACE (0x07) when a GUID is given.

    Fields are normalised when the object is built, so equal entries compare equal: ``sid``
    becomes the canonical ``S-1-…`` string (upper-case S, decimal authority below 2**32), GUIDs
    become lower case without braces. ``flags`` may hold only the seven AceFlags SDDL can name
    (OI CI NP IO ID SA FA); ``mask`` is 32 bits. Anything else raises ValueError.
    """

    sid: str
    mask: int
    flags: int
    object_type: str | None = None
    inherited_object_type: str | None = None

    def __post_init__(self) -> None:
        # Frozen: normalise through object.__setattr__, once, here.
        object.__setattr__(self, "sid", _canonical_sid(self.sid))
        _check_mask(self.mask)
        if not 0 <= self.flags <= 0xFF or self.flags & ~_KNOWN_FLAGS:
            raise ValueError(
                f"AceFlags 0x{self.flags:x} has bits outside OI CI NP IO ID SA FA (0x{_KNOWN_FLAGS:02x})"
            )
        for name in ("object_type", "inherited_object_type"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _canonical_guid(value))

    @property
    def inherited(self) -> bool:
        """True when the DS put this entry here by inheritance (INHERITED_ACE)."""
        return bool(self.flags & INHERITED)

    @property
    def ace_type(self) -> int:
        """0x07 when a GUID is set, else 0x02."""
        if self.object_type is None and self.inherited_object_type is None:
            return SYSTEM_AUDIT_ACE_TYPE
        return SYSTEM_AUDIT_OBJECT_ACE_TYPE

    def to_bytes(self) -> bytes:
        """The ACE as it sits in an ACL: header and body. SID and GUIDs are whole 4-byte units,
        so the size is already a multiple of 4 and needs no padding."""
        body = bytearray()
        if self.ace_type == SYSTEM_AUDIT_ACE_TYPE:
            body += struct.pack("<I", self.mask)
        else:
            presence = 0
            guids = b""
            if self.object_type is not None:
                presence |= ACE_OBJECT_TYPE_PRESENT
                guids += uuid.UUID(self.object_type).bytes_le
            if self.inherited_object_type is not None:
                presence |= ACE_INHERITED_OBJECT_TYPE_PRESENT
                guids += uuid.UUID(self.inherited_object_type).bytes_le
            body += _OBJECT_FLAGS.pack(self.mask, presence) + guids
        body += _sid_bytes(self.sid)
        return _ACE_HEADER.pack(self.ace_type, self.flags, _ACE_HEADER.size + len(body)) + bytes(body)

    @classmethod
    def from_bytes(cls, data: bytes) -> AuditAce:
        """Read one ACE. ValueError unless ``data`` is exactly what :meth:`to_bytes` writes for
        some AuditAce; :func:`ace_from_bytes` takes any ACE."""
        ace = _decode_audit(bytes(data))
        if ace is None:
            raise ValueError(
                "not an audit ACE in canonical form (type 0x02, or 0x07 with a GUID; flags from"
                " OI CI NP IO ID SA FA; nothing after the SID); read it with ace_from_bytes()"
            )
        return ace

    def to_sddl(self) -> str:
        """Canonical SDDL, e.g. ``(AU;CISAFA;WPWD;;;WD)`` or ``(OU;CISA;WP;<guid>;<guid>;AU)``.

        Flags in the order OI CI NP IO ID SA FA. Rights as two-letter tokens in a fixed order
        when the tokens cover the mask exactly, else the whole mask as lower-case hex; never a
        mix, because SDDL has no syntax for one and Windows' parser rejects it. SID as its
        alias when it has one. Two different entries never render alike, and
        :meth:`from_sddl` gives back an equal entry.
        """
        kind = "AU" if self.ace_type == SYSTEM_AUDIT_ACE_TYPE else "OU"
        flags = "".join(token for token, bit in _FLAG_TOKENS if self.flags & bit)
        if self.mask and not self.mask & ~_TOKEN_BITS:
            rights = "".join(token for token, bit in _RIGHT_TOKENS if self.mask & bit)
        else:
            rights = f"0x{self.mask:x}"
        sid = _ALIAS_BY_SID.get(self.sid, self.sid)
        return f"({kind};{flags};{rights};{self.object_type or ''};{self.inherited_object_type or ''};{sid})"

    @classmethod
    def from_sddl(cls, text: str) -> AuditAce:
        """Parse one ``AU`` or ``OU`` ACE string; :class:`SddlError` names what is wrong.

        Accepted: tokens in any case and order, concatenated (``WPWD``, ``wdwp``) or separated
        by spaces; a hex mask (``0x40020``); SID aliases or ``S-1-…`` strings; GUIDs in any case,
        with or without braces; whitespace around fields; the parentheses may be left out.
        Refused: aliases relative to a domain (``DA``, ``EA`` …), since no domain SID is known
        here; ``OU`` without a GUID and ``AU`` with one; rights outside the directory tokens.
        """
        fields = _sddl_fields(text)
        if len(fields) != 6:
            raise SddlError(
                f"ACE {text!r} has {len(fields)} fields; an audit ACE has 6"
                " (type;flags;rights;object guid;inherited object guid;sid)"
            )
        kind, flags_text, rights_text, object_text, inherited_text, sid_text = fields
        kind = kind.upper()
        if kind not in ("AU", "OU"):
            raise SddlError(f"ACE type {fields[0]!r} in {text!r} is not an audit ACE (AU or OU)")
        object_type = _sddl_guid(object_text, text) if object_text else None
        inherited_object_type = _sddl_guid(inherited_text, text) if inherited_text else None
        has_guid = object_type is not None or inherited_object_type is not None
        if kind == "AU" and has_guid:
            raise SddlError(f"ACE {text!r}: AU takes no GUIDs; use OU for an object audit entry")
        if kind == "OU" and not has_guid:
            raise SddlError(f"ACE {text!r}: OU needs an object or inherited-object GUID; use AU without GUIDs")
        return cls(
            sid=_sddl_sid(sid_text, text),
            mask=_sddl_rights(rights_text, text),
            flags=_sddl_flags(flags_text, text),
            object_type=object_type,
            inherited_object_type=inherited_object_type,
        )


@dataclass(frozen=True)
class OtherAce:
    """An ACE of any other type in a SACL (mandatory label, callback, resource attribute …), kept byte for byte.

    Also holds audit ACEs that :class:`AuditAce` can't represent without changing bytes: extra
    bytes after the SID, an AceFlags bit SDDL can't name, a 0x07 ACE without GUIDs. Bytes
    that are a canonical audit ACE are refused (use :class:`AuditAce`), so every ACE has
    exactly one representation.
    """

    data: bytes

    def __post_init__(self) -> None:
        data = bytes(self.data)
        object.__setattr__(self, "data", data)
        if len(data) < _ACE_HEADER.size:
            raise ValueError(f"an ACE has a 4-byte header; got {len(data)} bytes")
        _, _, size = _ACE_HEADER.unpack_from(data)
        if size != len(data):
            raise ValueError(f"AceSize says {size} bytes but {len(data)} were given")
        if size % 4:
            raise ValueError(f"AceSize {size} is not a multiple of 4")
        if _decode_audit(data) is not None:
            raise ValueError("these bytes are a canonical audit ACE; use AuditAce.from_bytes()")

    @property
    def ace_type(self) -> int:
        """The AceType byte."""
        return self.data[0]

    @property
    def flags(self) -> int:
        """The AceFlags byte."""
        return self.data[1]

    @property
    def inherited(self) -> bool:
        """True when INHERITED_ACE is set."""
        return bool(self.data[1] & INHERITED)

    def to_bytes(self) -> bytes:
        """The ACE exactly as read."""
        return self.data

    def to_sddl(self) -> str:
        """``(0x<type>;0x<flags>;raw:<hex of the whole ACE>)``, e.g. ``(0x11;0x00;raw:1100140001000000…)``.

        Not Windows SDDL, which has no form for every ACE type, but readable (type and flags
        up front, as two-digit lower-case hex) and reversible (:meth:`from_sddl`). It can't be
        mistaken for an audit ACE: those start with ``AU``/``OU``.
        """
        return f"(0x{self.ace_type:02x};0x{self.flags:02x};raw:{self.data.hex()})"

    @classmethod
    def from_sddl(cls, text: str) -> OtherAce:
        """Parse what :meth:`to_sddl` writes; the type and flags have to match the raw bytes."""
        fields = _sddl_fields(text)
        match = _OTHER_SDDL_RE.fullmatch(";".join(fields))
        if match is None:
            raise SddlError(f"{text!r} is not (0x<type>;0x<flags>;raw:<hex of the whole ACE>)")
        kind, flags, data = int(match[1], 16), int(match[2], 16), bytes.fromhex(match[3])
        if data[:2] != bytes((kind, flags)):
            raise SddlError(f"{text!r}: type and flags do not match the raw bytes")
        try:
            return cls(data)
        except ValueError as exc:
            raise SddlError(f"{text!r}: {exc}") from None


Ace: TypeAlias = AuditAce | OtherAce


def ace_from_bytes(data: bytes) -> Ace:
    """One ACE's bytes (header included, exactly AceSize long) as an AuditAce when it is a
    canonical audit ACE, else as an OtherAce."""
    data = bytes(data)
    ace = _decode_audit(data)
    return ace if ace is not None else OtherAce(data)


def ace_from_sddl(text: str) -> Ace:
    """Parse either form that ``to_sddl`` writes: an ``AU``/``OU`` ACE or an OtherAce's raw form."""
    fields = _sddl_fields(text)
    if fields and fields[0].lower().startswith("0x"):
        return OtherAce.from_sddl(text)
    return AuditAce.from_sddl(text)


def _decode_audit(data: bytes) -> AuditAce | None:
    """Decode an audit ACE with winacl once its sizes are checked.

    Returns None when ``data`` is well formed but isn't what AuditAce.to_bytes() would write
    (another type, extra bytes, an unnamed flag bit); raises ValueError when the body overruns
    the ACE, since winacl would read zeros past the end without a word.
    """
    if len(data) < _ACE_HEADER.size:
        raise ValueError(f"an ACE has a 4-byte header; got {len(data)} bytes")
    ace_type, ace_flags, size = _ACE_HEADER.unpack_from(data)
    if size != len(data):
        raise ValueError(f"AceSize says {size} bytes but {len(data)} were given")
    if ace_type not in (SYSTEM_AUDIT_ACE_TYPE, SYSTEM_AUDIT_OBJECT_ACE_TYPE):
        return None
    if ace_type == SYSTEM_AUDIT_ACE_TYPE:
        sid_at = _ACE_HEADER.size + 4
    else:
        if size < _ACE_HEADER.size + _OBJECT_FLAGS.size:
            raise ValueError(f"object audit ACE of {size} bytes is too short for its Mask and Flags")
        _, presence = _OBJECT_FLAGS.unpack_from(data, _ACE_HEADER.size)
        guids = bin(presence & (ACE_OBJECT_TYPE_PRESENT | ACE_INHERITED_OBJECT_TYPE_PRESENT)).count("1")
        sid_at = _ACE_HEADER.size + _OBJECT_FLAGS.size + guids * _GUID_SIZE
    if size < sid_at + _SID_FIXED:
        raise ValueError(f"audit ACE of {size} bytes has no room for its SID at offset {sid_at}")
    revision, count = data[sid_at], data[sid_at + 1]
    if revision != _SID_REVISION or count > _SID_MAX_SUB_AUTHORITIES:
        raise ValueError(f"audit ACE holds a bad SID (revision {revision}, {count} sub-authorities)")
    if size < sid_at + _SID_FIXED + 4 * count:
        raise ValueError(f"the SID in an audit ACE of {size} bytes runs past its end")
    if ace_flags & ~_KNOWN_FLAGS:
        return None
    parsed = _WinAce.from_bytes(data)
    ace = AuditAce(
        sid=str(parsed.Sid),
        mask=int(parsed.Mask),
        flags=int(parsed.AceFlags),
        object_type=_win_guid(parsed, "ObjectType"),
        inherited_object_type=_win_guid(parsed, "InheritedObjectType"),
    )
    # The round trip decides "canonical": it catches bytes after the SID, unknown object-flag
    # bits and a 0x07 ACE without GUIDs, none of which AuditAce can carry.
    return ace if ace.to_bytes() == data else None


def _win_guid(parsed: object, name: str) -> str | None:
    guid = getattr(parsed, name, None)
    return None if guid is None else str(guid)


# --- SDDL fields ------------------------------------------------------------------------------


def _sddl_fields(text: str) -> list[str]:
    body = text.strip()
    if body.startswith("(") != body.endswith(")"):
        raise SddlError(f"unbalanced parentheses in ACE {text!r}")
    if body.startswith("("):
        body = body[1:-1]
    return [field.strip() for field in body.split(";")]


def _sddl_tokens(field: str, what: str, text: str) -> list[str]:
    """Two-letter tokens, concatenated, with optional spaces between groups."""
    tokens: list[str] = []
    for chunk in field.split():
        if len(chunk) % 2:
            raise SddlError(f"{what} {chunk!r} in {text!r} is not a run of two-letter tokens")
        tokens.extend(chunk[i : i + 2].upper() for i in range(0, len(chunk), 2))
    return tokens


def _sddl_flags(field: str, text: str) -> int:
    names = dict(_FLAG_TOKENS)
    flags = 0
    for token in _sddl_tokens(field, "flags", text):
        if token not in names:
            raise SddlError(f"unknown ACE flag {token!r} in {text!r}; known: {' '.join(names)}")
        flags |= names[token]
    return flags


def _sddl_rights(field: str, text: str) -> int:
    if not field:
        raise SddlError(f"empty rights in {text!r}; write 0x0 for no rights")
    if field[:2].lower() == "0x":
        # A regex, not int(): int() would also take "0x4_0" and " 40".
        if _HEX_RE.fullmatch(field[2:]) is None or int(field[2:], 16) > _MAX_MASK:
            raise SddlError(f"rights {field!r} in {text!r} is not a 32-bit hex mask")
        return int(field[2:], 16)
    if field.isdigit():
        raise SddlError(f"rights {field!r} in {text!r}: write a numeric mask as hex (0x…)")
    mask = 0
    for token in _sddl_tokens(field, "rights", text):
        if token not in _RIGHT_BY_TOKEN:
            raise SddlError(
                f"unknown right {token!r} in {text!r}; known: {' '.join(_RIGHT_BY_TOKEN)} or a hex mask 0x…"
            )
        mask |= _RIGHT_BY_TOKEN[token]
    return mask


def _sddl_guid(field: str, text: str) -> str:
    try:
        return _canonical_guid(field)
    except ValueError:
        raise SddlError(f"GUID {field!r} in {text!r} is not a GUID") from None


def _sddl_sid(field: str, text: str) -> str:
    alias = field.upper()
    if len(field) == 2:
        if alias in SDDL_SID_ALIASES:
            return SDDL_SID_ALIASES[alias]
        if alias in _DOMAIN_RELATIVE_ALIASES:
            raise SddlError(
                f"SID alias {field!r} in {text!r} is relative to a domain SID, which is not known"
                " here; write the full SID (S-1-5-21-…)"
            )
        raise SddlError(f"unknown SID alias {field!r} in {text!r}")
    try:
        return _canonical_sid(field)
    except ValueError as exc:
        raise SddlError(f"{exc} (in {text!r})") from None


# --- SACLs and descriptors --------------------------------------------------------------------


@dataclass(frozen=True)
class Sacl:
    """The SACL of a security descriptor and the SACL bits of its Control."""

    present: bool
    protected: bool
    auto_inherited: bool
    aces: tuple[Ace, ...]

    @property
    def explicit(self) -> tuple[Ace, ...]:
        """The ACEs set on this object; the ones a SACL write should carry."""
        return tuple(ace for ace in self.aces if not ace.inherited)

    @property
    def inherited(self) -> tuple[Ace, ...]:
        """The ACEs the DS copied from a parent; it recomputes them itself."""
        return tuple(ace for ace in self.aces if ace.inherited)

    def to_sddl(self) -> str:
        """``S:`` then ``P`` if protected, ``AI`` if auto-inherited, then the ACEs.

        An absent SACL gives ``""``, as Windows leaves the ``S:`` part out. A SACL that is
        present but NULL or empty gives ``S:`` with flags only.
        """
        if not self.present:
            return ""
        flags = ("P" if self.protected else "") + ("AI" if self.auto_inherited else "")
        return "S:" + flags + "".join(ace.to_sddl() for ace in self.aces)


def parse_sacl(descriptor: bytes) -> Sacl:
    """The SACL of a self-relative SECURITY_DESCRIPTOR, the full one or a SACL-only one (SD flags 0x8).

    Owner, group and DACL are skipped, not parsed. ValueError, with a sentence saying what is
    wrong, for a descriptor that isn't self-relative or whose SACL, ACL or ACE sizes don't fit.
    """
    data = bytes(descriptor)
    if len(data) < _SD_HEADER.size:
        raise ValueError(f"security descriptor of {len(data)} bytes is shorter than its 20-byte header")
    revision, _, control, _, _, sacl_at, _ = _SD_HEADER.unpack_from(data)
    if revision != SECURITY_DESCRIPTOR_REVISION:
        raise ValueError(f"security descriptor revision {revision}; only 1 exists")
    if not control & SE_SELF_RELATIVE:
        # An absolute descriptor holds pointers, not offsets; AD never sends one.
        raise ValueError("security descriptor is not self-relative (SE_SELF_RELATIVE is not set)")
    present = bool(control & SE_SACL_PRESENT)
    protected = bool(control & SE_SACL_PROTECTED)
    auto_inherited = bool(control & SE_SACL_AUTO_INHERITED)
    if not present or sacl_at == 0:
        # No SACL, or a NULL one (present flag, offset 0): no entries either way.
        return Sacl(present, protected, auto_inherited, ())
    if sacl_at < _SD_HEADER.size or sacl_at + _ACL_HEADER.size > len(data):
        raise ValueError(f"SACL offset {sacl_at} is outside the {len(data)}-byte descriptor")
    acl_revision, _, acl_size, count, _ = _ACL_HEADER.unpack_from(data, sacl_at)
    if acl_revision not in (ACL_REVISION, ACL_REVISION_DS):
        raise ValueError(f"SACL revision {acl_revision}; expected 2 or 4")
    end = sacl_at + acl_size
    if acl_size < _ACL_HEADER.size or end > len(data):
        raise ValueError(f"SACL of {acl_size} bytes at offset {sacl_at} does not fit the {len(data)}-byte descriptor")
    aces: list[Ace] = []
    at = sacl_at + _ACL_HEADER.size
    for index in range(count):
        if at + _ACE_HEADER.size > end:
            raise ValueError(f"SACL says {count} ACEs but ACE #{index} starts past its end")
        _, _, size = _ACE_HEADER.unpack_from(data, at)
        if size < _ACE_HEADER.size or size % 4:
            raise ValueError(f"ACE #{index} has AceSize {size}; it must be at least 4 and a multiple of 4")
        if at + size > end:
            raise ValueError(f"ACE #{index} ({size} bytes at offset {at}) runs past the end of the SACL")
        try:
            aces.append(ace_from_bytes(data[at : at + size]))
        except ValueError as exc:
            raise ValueError(f"ACE #{index} at offset {at}: {exc}") from None
        at += size
    return Sacl(present, protected, auto_inherited, tuple(aces))


def sacl_descriptor(aces: Sequence[Ace], *, protected: bool = False) -> bytes:
    """A self-relative descriptor that holds only a SACL with ``aces``, in the order given.

    Control is SE_SELF_RELATIVE | SE_SACL_PRESENT (| SE_SACL_PROTECTED); the owner, group and
    DACL offsets are 0. The ACL revision is 4 (ACL_REVISION_DS) when an object ACE is present,
    else 2. Written with SD flags 0x8, it replaces the explicit SACL and nothing else.

    Inherited ACEs are refused (ValueError): the DS recomputes them, so a caller passing them
    has mixed up ``Sacl.aces`` and ``Sacl.explicit``.
    """
    body = bytearray()
    revision = ACL_REVISION
    for ace in aces:
        if not isinstance(ace, AuditAce | OtherAce):
            raise TypeError(f"expected AuditAce or OtherAce, got {type(ace).__name__}")
        if ace.inherited:
            raise ValueError(f"inherited ACE {ace.to_sddl()} given; pass only explicit ACEs (Sacl.explicit)")
        if ace.ace_type in _OBJECT_ACE_TYPES:
            revision = ACL_REVISION_DS
        body += ace.to_bytes()
    acl_size = _ACL_HEADER.size + len(body)
    if acl_size > _MAX_ACL_SIZE:
        raise ValueError(f"a SACL of {acl_size} bytes exceeds the 64 KiB an ACL can hold")
    control = SE_SELF_RELATIVE | SE_SACL_PRESENT | (SE_SACL_PROTECTED if protected else 0)
    header = _SD_HEADER.pack(SECURITY_DESCRIPTOR_REVISION, 0, control, 0, 0, _SD_HEADER.size, 0)
    return header + _ACL_HEADER.pack(revision, 0, acl_size, len(aces), 0) + bytes(body)
