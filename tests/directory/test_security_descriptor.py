"""hardening.security_descriptor: audit ACEs and SACLs as bytes and SDDL, without a DC.

Expected bytes are built here with struct from MS-DTYP's layouts (2.4.2.2 SID, 2.4.4.1 ACE,
2.4.5 ACL, 2.4.6 SECURITY_DESCRIPTOR), independently of the module under test.
"""

from __future__ import annotations

import io
import itertools
import struct
import uuid

import pytest
from winacl.dtyp.security_descriptor import SECURITY_DESCRIPTOR

from hardening.security_descriptor import (
    AUDIT_FAILURE,
    AUDIT_SUCCESS,
    CONTAINER_INHERIT,
    INHERIT_ONLY,
    INHERITANCE,
    INHERITED,
    NO_PROPAGATE_INHERIT,
    OBJECT_INHERIT,
    RIGHTS,
    SDDL_SID_ALIASES,
    AuditAce,
    OtherAce,
    Sacl,
    SddlError,
    ace_from_bytes,
    ace_from_sddl,
    inheritance_flags,
    parse_sacl,
    rights_mask,
    rights_names,
    sacl_descriptor,
)

USER_CLASS = "bf967a86-0de6-11d0-a285-00aa003049e2"  # the schema GUID of class "user"
MEMBER_ATTR = "bf9679c0-0de6-11d0-a285-00aa003049e2"  # the schema GUID of attribute "member"
DOMAIN_USER = "S-1-5-21-1004336348-1177238915-682003330-1105"


# --- independent builders --------------------------------------------------------------------


def sid_bytes(text: str) -> bytes:
    """MS-DTYP 2.4.2.2: revision, count, 48-bit big-endian authority, little-endian sub-authorities."""
    parts = text.split("-")
    assert parts[:2] == ["S", "1"]
    authority, subs = int(parts[2]), [int(p) for p in parts[3:]]
    return bytes([1, len(subs)]) + authority.to_bytes(6, "big") + b"".join(struct.pack("<I", s) for s in subs)


def ace_bytes(ace_type: int, flags: int, mask: int, sid: str, extra: bytes = b"") -> bytes:
    body = struct.pack("<I", mask) + sid_bytes(sid) + extra
    return struct.pack("<BBH", ace_type, flags, 4 + len(body)) + body


def object_ace_bytes(flags: int, mask: int, sid: str, obj: str | None, inh: str | None) -> bytes:
    presence = (1 if obj else 0) | (2 if inh else 0)
    guids = (uuid.UUID(obj).bytes_le if obj else b"") + (uuid.UUID(inh).bytes_le if inh else b"")
    body = struct.pack("<II", mask, presence) + guids + sid_bytes(sid)
    return struct.pack("<BBH", 0x07, flags, 4 + len(body)) + body


def acl_bytes(revision: int, aces: list[bytes]) -> bytes:
    data = b"".join(aces)
    return struct.pack("<BBHHH", revision, 0, 8 + len(data), len(aces), 0) + data


def descriptor(control: int, parts: list[tuple[str, bytes]]) -> bytes:
    """A self-relative SD whose parts (owner/group/sacl/dacl) follow the header in the order given."""
    offsets = {"owner": 0, "group": 0, "sacl": 0, "dacl": 0}
    body = b""
    for name, data in parts:
        offsets[name] = 20 + len(body)
        body += data
    header = struct.pack(
        "<BBHIIII", 1, 0, control, offsets["owner"], offsets["group"], offsets["sacl"], offsets["dacl"]
    )
    return header + body


# The SACL Samba returned in the lab (samba-ad.md §7): two explicit entries written from
# S:(AU;CISAFA;0x40020;;;WD)(AU;FA;0x10000;;;S-1-5-11), then the one inherited from the parent.
SAMBA_ACES = [
    (ace_bytes(0x02, 0xC2, 0x40020, "S-1-1-0"), "(AU;CISAFA;WPWD;;;WD)", False),
    (ace_bytes(0x02, 0x80, 0x10000, "S-1-5-11"), "(AU;FA;SD;;;AU)", False),
    (ace_bytes(0x02, 0xD2, 0x40020, "S-1-1-0"), "(AU;CIIDSAFA;WPWD;;;WD)", True),
]
# A mandatory label ACE (type 0x11): mask NO_WRITE_UP, SID High integrity.
LABEL_ACE = struct.pack("<BBH", 0x11, 0x00, 20) + struct.pack("<I", 1) + sid_bytes("S-1-16-12288")


# --- single ACEs -----------------------------------------------------------------------------


def test_everyone_audit_ace_matches_the_documented_layout() -> None:
    ace = AuditAce("S-1-1-0", 0x20, AUDIT_SUCCESS)
    assert ace.to_bytes() == bytes.fromhex("02401400" "20000000" "010100000000000100000000")


@pytest.mark.parametrize(("raw", "sddl", "inherited"), SAMBA_ACES, ids=["explicit-wd", "explicit-au", "inherited"])
def test_audit_ace_round_trips(raw: bytes, sddl: str, inherited: bool) -> None:
    ace = AuditAce.from_bytes(raw)
    assert ace.to_bytes() == raw
    assert ace.to_sddl() == sddl
    assert ace.inherited is inherited
    assert AuditAce.from_sddl(sddl) == ace
    assert AuditAce.from_sddl(sddl).to_bytes() == raw
    assert ace_from_bytes(raw) == ace


def test_samba_sddl_with_hex_mask_gives_the_same_entry() -> None:
    assert AuditAce.from_sddl("(AU;CISAFA;0x40020;;;WD)") == AuditAce.from_bytes(SAMBA_ACES[0][0])
    assert AuditAce.from_sddl("(AU;FA;0x10000;;;S-1-5-11)") == AuditAce.from_bytes(SAMBA_ACES[1][0])


@pytest.mark.parametrize(
    ("obj", "inh", "presence"),
    [(USER_CLASS, MEMBER_ATTR, 3), (USER_CLASS, None, 1), (None, USER_CLASS, 2)],
    ids=["both", "object-only", "inherited-only"],
)
def test_object_audit_ace_round_trips(obj: str | None, inh: str | None, presence: int) -> None:
    raw = object_ace_bytes(0x42, 0x20, "S-1-5-11", obj, inh)
    ace = AuditAce.from_bytes(raw)
    assert (ace.object_type, ace.inherited_object_type) == (obj, inh)
    assert (ace.sid, ace.mask, ace.flags, ace.ace_type) == ("S-1-5-11", 0x20, 0x42, 0x07)
    assert ace.to_bytes() == raw
    assert struct.unpack_from("<I", raw, 8)[0] == presence
    assert len(raw) == 4 + 4 + 4 + 16 * bin(presence).count("1") + 12
    assert ace.to_sddl() == f"(OU;CISA;WP;{obj or ''};{inh or ''};AU)"
    assert AuditAce.from_sddl(ace.to_sddl()).to_bytes() == raw


def test_guid_is_stored_in_mixed_endian_order() -> None:
    raw = AuditAce("S-1-1-0", 0x20, 0x40, object_type=USER_CLASS).to_bytes()
    assert raw[12:28] == bytes.fromhex("867a96bfe60dd011a28500aa003049e2")


def test_fields_are_normalised_so_equal_entries_compare_equal() -> None:
    a = AuditAce("s-1-5-32-544", 0x20, 0x40, object_type="{" + USER_CLASS.upper() + "}")
    assert a.sid == "S-1-5-32-544"
    assert a.object_type == USER_CLASS
    assert a == AuditAce("S-1-5-32-544", 0x20, 0x40, object_type=USER_CLASS)
    assert AuditAce("S-1-005-011", 1, 0).sid == "S-1-5-11"


def test_large_identifier_authority_renders_as_hex() -> None:
    ace = AuditAce("S-1-0x0000FFFFFFFF-1", 0x20, 0)
    assert ace.sid == "S-1-4294967295-1"  # below 2**32: decimal
    big = AuditAce("S-1-0x010000000000-1", 0x20, 0)
    assert big.sid == "S-1-0x010000000000-1"
    assert big.to_bytes()[8 + 2 : 8 + 8] == bytes.fromhex("010000000000")
    assert AuditAce.from_bytes(big.to_bytes()) == big
    assert AuditAce.from_sddl(big.to_sddl()) == big


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"sid": "WD", "mask": 1, "flags": 0}, "not a SID string"),
        ({"sid": "S-1-5-" + "-".join(["1"] * 16), "mask": 1, "flags": 0}, "at most 15"),
        ({"sid": "S-1-5-4294967296", "mask": 1, "flags": 0}, "32 bits"),
        ({"sid": "S-1-1-0", "mask": -1, "flags": 0}, "32-bit"),
        ({"sid": "S-1-1-0", "mask": 1 << 32, "flags": 0}, "32-bit"),
        ({"sid": "S-1-1-0", "mask": 1, "flags": 0x20}, "bits outside"),
        ({"sid": "S-1-1-0", "mask": 1, "flags": 0x100}, "bits outside"),
        ({"sid": "S-1-1-0", "mask": 1, "flags": 0, "object_type": "user"}, "not a GUID"),
    ],
)
def test_audit_ace_refuses_bad_fields(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        AuditAce(**kwargs)  # type: ignore[arg-type]


# --- ACEs AuditAce can't carry ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        ace_bytes(0x02, 0x40, 0x20, "S-1-1-0", extra=b"\0\0\0\0"),  # bytes after the SID
        ace_bytes(0x02, 0x60, 0x20, "S-1-1-0"),  # AceFlags bit 0x20, which SDDL can't name
        object_ace_bytes(0x40, 0x20, "S-1-1-0", None, None),  # 0x07 without GUIDs
        struct.pack("<BBHII", 0x07, 0x40, 32, 0x20, 0x4) + sid_bytes("S-1-1-0") + b"\0" * 8,  # unknown object flag
        LABEL_ACE,
    ],
    ids=["trailing-bytes", "flag-0x20", "object-without-guid", "object-flag-0x4", "mandatory-label"],
)
def test_other_aces_are_kept_byte_for_byte(raw: bytes) -> None:
    ace = ace_from_bytes(raw)
    assert isinstance(ace, OtherAce)
    assert ace.data == raw
    assert ace.to_bytes() == raw
    assert ace.ace_type == raw[0]
    assert ace_from_sddl(ace.to_sddl()) == ace
    with pytest.raises(ValueError, match="canonical"):
        AuditAce.from_bytes(raw)


def test_other_ace_sddl_form() -> None:
    ace = OtherAce(LABEL_ACE)
    assert ace.to_sddl() == "(0x11;0x00;raw:" + LABEL_ACE.hex() + ")"
    assert OtherAce.from_sddl(ace.to_sddl().upper().replace("RAW:", "raw:").replace("0X", "0x")) == ace
    assert not ace.inherited
    inherited = OtherAce(bytes([0x11, 0x10]) + LABEL_ACE[2:])
    assert inherited.inherited
    assert inherited.to_sddl().startswith("(0x11;0x10;raw:1110")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("(0x11;0x00;" + LABEL_ACE.hex() + ")", "is not"),
        ("(0x12;0x00;raw:" + LABEL_ACE.hex() + ")", "do not match"),
        ("(0x11;0x00;raw:" + LABEL_ACE.hex()[:-2] + ")", "AceSize"),
        ("(0x02;0x40;raw:" + ace_bytes(0x02, 0x40, 0x20, "S-1-1-0").hex() + ")", "canonical audit ACE"),
    ],
)
def test_other_ace_from_sddl_refuses(text: str, fragment: str) -> None:
    with pytest.raises(SddlError, match=fragment):
        OtherAce.from_sddl(text)


def test_other_ace_refuses_canonical_audit_bytes_and_bad_sizes() -> None:
    with pytest.raises(ValueError, match="AuditAce"):
        OtherAce(SAMBA_ACES[0][0])
    with pytest.raises(ValueError, match="AceSize says"):
        OtherAce(LABEL_ACE + b"\0\0\0\0")
    with pytest.raises(ValueError, match="4-byte header"):
        OtherAce(b"\x11\x00")
    with pytest.raises(ValueError, match="AceSize says"):
        AuditAce.from_bytes(SAMBA_ACES[0][0][:-4])
    with pytest.raises(ValueError, match="AceSize says"):
        ace_from_bytes(SAMBA_ACES[0][0] + b"\0\0\0\0")


# --- SACLs from descriptors ------------------------------------------------------------------


def test_parse_sacl_only_descriptor_as_samba_returns_it() -> None:
    raw = descriptor(0x8810, [("sacl", acl_bytes(2, [a for a, _, _ in SAMBA_ACES]))])
    sacl = parse_sacl(raw)
    assert (sacl.present, sacl.protected, sacl.auto_inherited) == (True, False, True)
    assert [a.to_sddl() for a in sacl.aces] == [s for _, s, _ in SAMBA_ACES]
    assert [a.to_bytes() for a in sacl.explicit] == [SAMBA_ACES[0][0], SAMBA_ACES[1][0]]
    assert [a.to_bytes() for a in sacl.inherited] == [SAMBA_ACES[2][0]]
    assert sacl.to_sddl() == "S:AI(AU;CISAFA;WPWD;;;WD)(AU;FA;SD;;;AU)(AU;CIIDSAFA;WPWD;;;WD)"


def test_parse_full_descriptor_finds_the_sacl_wherever_it_sits() -> None:
    dacl = acl_bytes(4, [ace_bytes(0x00, 0x02, 0xF01FF, "S-1-5-32-544"), LABEL_ACE])
    sacl = acl_bytes(4, [SAMBA_ACES[0][0], object_ace_bytes(0x42, 0x20, DOMAIN_USER, USER_CLASS, None)])
    raw = descriptor(
        0x8000 | 0x2000 | 0x0010 | 0x0004,
        [("dacl", dacl), ("owner", sid_bytes("S-1-5-32-544")), ("sacl", sacl), ("group", sid_bytes("S-1-5-18"))],
    )
    parsed = parse_sacl(raw)
    assert parsed == Sacl(
        present=True,
        protected=True,
        auto_inherited=False,
        aces=(
            AuditAce("S-1-1-0", 0x40020, 0xC2),
            AuditAce(DOMAIN_USER, 0x20, 0x42, object_type=USER_CLASS),
        ),
    )
    assert parsed.to_sddl() == f"S:P(AU;CISAFA;WPWD;;;WD)(OU;CISA;WP;{USER_CLASS};;{DOMAIN_USER})"


def test_the_dacl_is_never_parsed() -> None:
    # An ACE type winacl has no class for (0x08, SYSTEM_ALARM_OBJECT) and an unknown type 0x15
    # in the DACL don't matter: only the SACL is read.
    junk = [struct.pack("<BBH", 0x08, 0, 8) + b"\0" * 4, struct.pack("<BBH", 0x15, 0, 8) + b"\0" * 4]
    raw = descriptor(0x8014, [("dacl", acl_bytes(4, junk)), ("sacl", acl_bytes(2, [SAMBA_ACES[1][0]]))])
    assert parse_sacl(raw).aces == (AuditAce("S-1-5-11", 0x10000, AUDIT_FAILURE),)


@pytest.mark.parametrize(
    "raw",
    [
        descriptor(0x8000, []),  # what Samba returns for an object without a SACL (sdflags 0x8)
        descriptor(0x8004, [("dacl", acl_bytes(2, [ace_bytes(0x00, 0, 0x20094, "S-1-5-11")]))]),
        descriptor(0x8000, [("sacl", acl_bytes(2, [SAMBA_ACES[0][0]]))]),  # offset set, SE_SACL_PRESENT not
    ],
    ids=["empty", "dacl-only", "present-bit-clear"],
)
def test_descriptor_without_sacl(raw: bytes) -> None:
    sacl = parse_sacl(raw)
    assert (sacl.present, sacl.aces) == (False, ())
    assert sacl.to_sddl() == ""


def test_null_and_empty_sacl_are_present_without_entries() -> None:
    null = parse_sacl(descriptor(0x8010, []))
    empty = parse_sacl(descriptor(0x8010, [("sacl", acl_bytes(2, []))]))
    assert null == empty == Sacl(True, False, False, ())
    assert null.to_sddl() == "S:"


GOOD_SACL = acl_bytes(2, [SAMBA_ACES[0][0]])


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "shorter than its 20-byte header"),
        (descriptor(0x8010, [("sacl", GOOD_SACL)])[:19], "shorter than its 20-byte header"),
        (b"\x02" + descriptor(0x8010, [("sacl", GOOD_SACL)])[1:], "revision 2"),
        (descriptor(0x0010, [("sacl", GOOD_SACL)]), "not self-relative"),
        (struct.pack("<BBHIIII", 1, 0, 0x8010, 0, 0, 10, 0) + GOOD_SACL, "outside"),
        (struct.pack("<BBHIIII", 1, 0, 0x8010, 0, 0, 200, 0) + GOOD_SACL, "outside"),
        (descriptor(0x8010, [("sacl", GOOD_SACL)])[:-4], "does not fit"),
        (descriptor(0x8010, [("sacl", b"\x03" + GOOD_SACL[1:])]), "SACL revision 3"),
        (descriptor(0x8010, [("sacl", struct.pack("<BBHHH", 2, 0, 4, 0, 0))]), "does not fit"),
        (descriptor(0x8010, [("sacl", struct.pack("<BBHHH", 2, 0, 8, 1, 0))]), "starts past its end"),
        (descriptor(0x8010, [("sacl", GOOD_SACL[:4] + b"\x02\x00" + GOOD_SACL[6:])]), "ACE #1 starts past"),
        (descriptor(0x8010, [("sacl", acl_bytes(2, [struct.pack("<BBH", 2, 0, 0)]))]), "AceSize 0"),
        (descriptor(0x8010, [("sacl", acl_bytes(2, [struct.pack("<BBH", 0x11, 0, 6) + b"\0\0"]))]), "AceSize 6"),
        (
            descriptor(0x8010, [("sacl", acl_bytes(2, [SAMBA_ACES[0][0][:2] + b"\x40\x00" + SAMBA_ACES[0][0][4:]]))]),
            "runs past the end of the SACL",
        ),
        (
            descriptor(0x8010, [("sacl", acl_bytes(2, [SAMBA_ACES[0][0][:9] + b"\x05" + SAMBA_ACES[0][0][10:]]))]),
            "runs past its end",
        ),
        (
            descriptor(0x8010, [("sacl", acl_bytes(2, [SAMBA_ACES[0][0][:8] + b"\x02" + SAMBA_ACES[0][0][9:]]))]),
            "bad SID",
        ),
        (
            descriptor(0x8010, [("sacl", acl_bytes(4, [struct.pack("<BBHII", 7, 0, 28, 0x20, 3) + b"\0" * 16]))]),
            "no room for its SID",
        ),
        (descriptor(0x8010, [("sacl", acl_bytes(4, [struct.pack("<BBHI", 7, 0, 8, 0x20)]))]), "too short"),
    ],
    ids=[
        "empty",
        "short-header",
        "sd-revision",
        "absolute",
        "sacl-in-header",
        "sacl-past-end",
        "acl-truncated",
        "acl-revision",
        "acl-size-too-small",
        "count-too-big",
        "second-ace-missing",
        "ace-size-zero",
        "ace-size-unaligned",
        "ace-past-acl",
        "sid-overruns-ace",
        "sid-revision",
        "object-ace-sid-missing",
        "object-ace-too-short",
    ],
)
def test_malformed_descriptors_raise_value_error(raw: bytes, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_sacl(raw)


# --- building the descriptor to write --------------------------------------------------------


def test_sacl_descriptor_layout_byte_by_byte() -> None:
    aces = [AuditAce.from_bytes(SAMBA_ACES[0][0]), AuditAce.from_bytes(SAMBA_ACES[1][0])]
    raw = sacl_descriptor(aces)
    ace_data = SAMBA_ACES[0][0] + SAMBA_ACES[1][0]
    assert raw[0] == 1  # Revision
    assert raw[1] == 0  # Sbz1
    assert struct.unpack_from("<H", raw, 2)[0] == 0x8010  # SE_SELF_RELATIVE | SE_SACL_PRESENT
    assert struct.unpack_from("<IIII", raw, 4) == (0, 0, 20, 0)  # owner, group, SACL, DACL offsets
    assert raw[20] == 2  # ACL_REVISION: no object ACE
    assert raw[21] == 0  # Sbz1
    assert struct.unpack_from("<H", raw, 22)[0] == 8 + len(ace_data)  # AclSize
    assert struct.unpack_from("<H", raw, 24)[0] == 2  # AceCount
    assert struct.unpack_from("<H", raw, 26)[0] == 0  # Sbz2
    assert raw[28:] == ace_data
    assert raw == descriptor(0x8010, [("sacl", acl_bytes(2, [SAMBA_ACES[0][0], SAMBA_ACES[1][0]]))])


def test_sacl_descriptor_protected_and_object_aces() -> None:
    obj = AuditAce("S-1-5-11", 0x20, 0x42, object_type=USER_CLASS)
    raw = sacl_descriptor([AuditAce("S-1-1-0", 0x10000, 0x80), obj], protected=True)
    assert struct.unpack_from("<H", raw, 2)[0] == 0xA010
    assert raw[20] == 4  # ACL_REVISION_DS
    assert parse_sacl(raw) == Sacl(True, True, False, (AuditAce("S-1-1-0", 0x10000, 0x80), obj))


@pytest.mark.parametrize(
    ("other", "revision"),
    [(LABEL_ACE, 2), (object_ace_bytes(0x40, 0x20, "S-1-1-0", None, None), 4)],
    ids=["label-keeps-revision-2", "object-type-needs-revision-4"],
)
def test_sacl_descriptor_keeps_other_aces(other: bytes, revision: int) -> None:
    raw = sacl_descriptor([OtherAce(other), AuditAce("S-1-1-0", 0x20, 0x40)])
    assert raw[20] == revision
    assert raw[28 : 28 + len(other)] == other
    assert [a.to_bytes() for a in parse_sacl(raw).aces] == [other, ace_bytes(0x02, 0x40, 0x20, "S-1-1-0")]


def test_sacl_descriptor_empty_and_refusals() -> None:
    assert sacl_descriptor([]) == descriptor(0x8010, [("sacl", struct.pack("<BBHHH", 2, 0, 8, 0, 0))])
    with pytest.raises(ValueError, match="explicit"):
        sacl_descriptor([AuditAce.from_bytes(SAMBA_ACES[2][0])])
    with pytest.raises(TypeError, match="AuditAce or OtherAce"):
        sacl_descriptor(["(AU;SA;WP;;;WD)"])  # type: ignore[list-item]


def test_explicit_aces_survive_read_and_rewrite_unchanged() -> None:
    raw = descriptor(0x8810, [("sacl", acl_bytes(2, [SAMBA_ACES[0][0], LABEL_ACE, SAMBA_ACES[2][0]]))])
    rewritten = sacl_descriptor(parse_sacl(raw).explicit)
    assert rewritten == descriptor(0x8010, [("sacl", acl_bytes(2, [SAMBA_ACES[0][0], LABEL_ACE]))])


# --- SDDL ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "(AU;CISAFA;WPWD;;;WD)",
        "(au;facisa;wdwp;;;wd)",
        "AU;CISAFA;0x40020;;;S-1-1-0",
        "( AU ; CI SAFA ; WP WD ; ; ; s-1-1-0 )",
        "(AU;SAFACI;0X40020;;;S-1-1-0)",
    ],
)
def test_from_sddl_accepts_the_documented_spellings(text: str) -> None:
    assert AuditAce.from_sddl(text) == AuditAce("S-1-1-0", 0x40020, 0xC2)
    assert ace_from_sddl(text) == AuditAce("S-1-1-0", 0x40020, 0xC2)


@pytest.mark.parametrize("guid", [USER_CLASS, USER_CLASS.upper(), f"{{{USER_CLASS}}}", f"{{{USER_CLASS.upper()}}}"])
def test_from_sddl_guid_spellings(guid: str) -> None:
    ace = AuditAce.from_sddl(f"(OU;SA;WP;{guid};{guid};AU)")
    assert ace.object_type == ace.inherited_object_type == USER_CLASS


def test_to_sddl_rights_are_tokens_only_when_they_cover_the_mask() -> None:
    assert AuditAce("S-1-1-0", 0xF01FF, 0).to_sddl() == "(AU;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;WD)"
    assert AuditAce("S-1-1-0", 0x20094, 0).to_sddl() == "(AU;;LCRPLORC;;;WD)"
    assert AuditAce("S-1-1-0", 0xF0000000, 0).to_sddl() == "(AU;;GAGXGWGR;;;WD)"
    # Synchronize (0x100000) has no token: the whole mask goes hex, never "WP0x100000".
    assert AuditAce("S-1-1-0", 0x100020, 0).to_sddl() == "(AU;;0x100020;;;WD)"
    assert AuditAce("S-1-1-0", 0x1000000, 0).to_sddl() == "(AU;;0x1000000;;;WD)"
    assert AuditAce("S-1-1-0", 0, 0).to_sddl() == "(AU;;0x0;;;WD)"


def test_to_sddl_flag_order_and_sid_forms() -> None:
    assert AuditAce("S-1-5-18", 0x20, 0xDF).to_sddl() == "(AU;OICINPIOIDSAFA;WP;;;SY)"
    assert AuditAce(DOMAIN_USER, 0x20, 0x40).to_sddl() == f"(AU;SA;WP;;;{DOMAIN_USER})"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("(A;;WP;;;WD)", "'A'.*not an audit ACE"),
        ("(AU;XX;WP;;;WD)", "unknown ACE flag 'XX'"),
        ("(AU;SAF;WP;;;WD)", "'SAF'"),
        ("(AU;SA;WPQQ;;;WD)", "unknown right 'QQ'"),
        ("(AU;SA;FA;;;WD)", "unknown right 'FA'"),
        ("(AU;SA;WPW;;;WD)", "'WPW'"),
        ("(AU;SA;;;;WD)", "empty rights"),
        ("(AU;SA;123;;;WD)", "'123'.*hex"),
        ("(AU;SA;0x1_0;;;WD)", "'0x1_0'"),
        ("(AU;SA;0xg;;;WD)", "'0xg'"),
        ("(AU;SA;0x100000000;;;WD)", "'0x100000000'.*32-bit"),
        ("(AU;SA;WP;;;DA)", "'DA'.*domain SID.*full SID"),
        ("(AU;SA;WP;;;ea)", "'ea'.*domain SID"),
        ("(AU;SA;WP;;;ZZ)", "unknown SID alias 'ZZ'"),
        ("(AU;SA;WP;;;S-1-5-x)", "'S-1-5-x'"),
        ("(AU;SA;WP;;;Everyone)", "'Everyone'"),
        ("(AU;SA;WP;not-a-guid;;WD)", "GUID 'not-a-guid'"),
        ("(OU;SA;WP;{" + USER_CLASS + ";;WD)", "GUID"),
        ("(OU;SA;WP;;;WD)", "OU needs"),
        (f"(AU;SA;WP;{USER_CLASS};;WD)", "AU takes no GUIDs"),
        ("(AU;SA;WP;;WD)", "5 fields"),
        ("(AU;SA;WP;;;WD;(x))", "7 fields"),
        ("(AU;SA;WP;;;WD", "parentheses"),
    ],
)
def test_from_sddl_rejections_name_the_token(text: str, fragment: str) -> None:
    with pytest.raises(SddlError, match=fragment):
        AuditAce.from_sddl(text)


def test_sacl_to_sddl_control_flags() -> None:
    ace = AuditAce("S-1-1-0", 0x20, 0x40)
    assert Sacl(True, True, True, (ace,)).to_sddl() == "S:PAI(AU;SA;WP;;;WD)"
    assert Sacl(True, False, False, (ace, OtherAce(LABEL_ACE))).to_sddl() == (
        "S:(AU;SA;WP;;;WD)(0x11;0x00;raw:" + LABEL_ACE.hex() + ")"
    )
    assert Sacl(False, True, True, ()).to_sddl() == ""


def test_sid_aliases() -> None:
    expected = {
        "WD": "S-1-1-0", "CO": "S-1-3-0", "CG": "S-1-3-1", "AU": "S-1-5-11", "SY": "S-1-5-18",
        "BA": "S-1-5-32-544", "BU": "S-1-5-32-545", "BG": "S-1-5-32-546", "SO": "S-1-5-32-549",
        "BO": "S-1-5-32-551", "NS": "S-1-5-20", "LS": "S-1-5-19", "AN": "S-1-5-7", "PS": "S-1-5-10",
        "ED": "S-1-5-9", "NU": "S-1-5-2", "IU": "S-1-5-4", "RD": "S-1-5-32-555", "HI": "S-1-16-12288",
    }  # fmt: skip
    for alias, sid in expected.items():
        assert SDDL_SID_ALIASES[alias] == sid
    assert len(set(SDDL_SID_ALIASES.values())) == len(SDDL_SID_ALIASES)  # one alias per SID
    assert not {"DA", "DU", "EA", "SA", "LA", "RO"} & set(SDDL_SID_ALIASES)
    for alias, sid in SDDL_SID_ALIASES.items():
        ace = AuditAce(sid, 0x20, 0x40)
        assert ace.to_sddl() == f"(AU;SA;WP;;;{alias})"
        assert AuditAce.from_sddl(f"(AU;SA;WP;;;{alias.lower()})") == ace


# --- .NET names ------------------------------------------------------------------------------


def test_rights_values_are_the_dotnet_ones() -> None:
    assert RIGHTS["GenericRead"] == 131220
    assert RIGHTS["GenericWrite"] == 131112
    assert RIGHTS["GenericExecute"] == 131076
    assert RIGHTS["GenericAll"] == 983551
    assert RIGHTS["AccessSystemSecurity"] == 0x1000000
    assert RIGHTS["ExtendedRight"] == 0x100
    assert len(RIGHTS) == 19


def test_rights_mask() -> None:
    assert rights_mask(["WriteProperty", "WriteDacl"]) == 0x40020
    assert rights_mask(["writeproperty", " WRITEDACL "]) == 0x40020
    assert rights_mask("WriteProperty, WriteDacl") == 0x40020
    assert rights_mask("GenericAll") == 0xF01FF
    assert rights_mask([]) == 0
    with pytest.raises(SddlError, match=r"'WriteProp'.*WriteProperty"):
        rights_mask(["WriteProp"])


def test_rights_names() -> None:
    assert rights_names(0x40020) == ("WriteProperty", "WriteDacl")
    assert rights_names(0x20094) == ("ListChildren", "ReadProperty", "ListObject", "ReadControl")
    assert rights_names(0x80000020) == ("WriteProperty", "0x80000000")
    assert rights_names(0x06000000) == ("0x6000000",)
    assert rights_names(0) == ()
    for mask in (0x1, 0xF01FF, 0x11F01FF, 0x40020):
        assert rights_mask(rights_names(mask)) == mask
    with pytest.raises(ValueError):
        rights_names(-1)


def test_inheritance() -> None:
    assert dict(INHERITANCE) == {
        "None": 0,
        "All": CONTAINER_INHERIT,
        "Descendents": CONTAINER_INHERIT | INHERIT_ONLY,
        "SelfAndChildren": CONTAINER_INHERIT | NO_PROPAGATE_INHERIT,
        "Children": CONTAINER_INHERIT | NO_PROPAGATE_INHERIT | INHERIT_ONLY,
    }
    assert inheritance_flags("descendents") == 0x0A
    with pytest.raises(SddlError, match="'Descendants'"):
        inheritance_flags("Descendants")


# --- injectivity over a generated set ------------------------------------------------------------

FLAG_BITS = (
    OBJECT_INHERIT, CONTAINER_INHERIT, NO_PROPAGATE_INHERIT, INHERIT_ONLY, INHERITED, AUDIT_SUCCESS, AUDIT_FAILURE
)
ALL_FLAGS = sorted({sum(c) for n in range(len(FLAG_BITS) + 1) for c in itertools.combinations(FLAG_BITS, n)})
MASKS = (0, 0x20, 0x40020, 0xF01FF, 0x100000, 0x100020, 0x1000000, 0x80000000, 0xF0000000, 0xFFFFFFFF)
GUIDS = ((None, None), (USER_CLASS, None), (None, USER_CLASS), (USER_CLASS, MEMBER_ATTR), (MEMBER_ATTR, USER_CLASS))
SIDS = ("S-1-1-0", "S-1-5-11", "S-1-5-32-544", DOMAIN_USER, "S-1-5-21-1-2-3-512")


def generated_aces(flags: int) -> list[AuditAce]:
    return [AuditAce(sid, mask, flags, o, i) for mask in MASKS for o, i in GUIDS for sid in SIDS]


def test_flag_combinations_cover_all_128() -> None:
    assert len(ALL_FLAGS) == 128


@pytest.mark.parametrize("flags", ALL_FLAGS, ids=lambda f: f"flags-0x{f:02x}")
def test_round_trips_for_every_flag_combination(flags: int) -> None:
    for ace in generated_aces(flags):
        raw = ace.to_bytes()
        text = ace.to_sddl()
        assert AuditAce.from_bytes(raw) == ace
        assert AuditAce.from_sddl(text) == ace
        assert AuditAce.from_sddl(text).to_bytes() == raw
        assert AuditAce.from_sddl(text.lower()) == ace
        assert ace.inherited is bool(flags & INHERITED)
        assert ace_from_bytes(raw) == ace


def test_sddl_is_injective() -> None:
    aces: list[AuditAce | OtherAce] = [ace for flags in ALL_FLAGS for ace in generated_aces(flags)]
    aces += [OtherAce(LABEL_ACE), OtherAce(ace_bytes(0x02, 0x60, 0x20, "S-1-1-0"))]
    assert len(set(aces)) == len(aces)
    texts = {ace.to_sddl() for ace in aces}
    blobs = {ace.to_bytes() for ace in aces}
    assert len(texts) == len(blobs) == len(aces)
    for ace in aces[:: len(aces) // 500]:
        assert ace_from_sddl(ace.to_sddl()) == ace


# --- agreement with winacl -----------------------------------------------------------------------


def test_parse_agrees_with_winacl() -> None:
    sacl = acl_bytes(
        4,
        [
            SAMBA_ACES[0][0],
            SAMBA_ACES[1][0],
            object_ace_bytes(0x42, 0x130, DOMAIN_USER, USER_CLASS, MEMBER_ATTR),
            SAMBA_ACES[2][0],
        ],
    )
    raw = descriptor(0x8814, [("owner", sid_bytes("S-1-5-32-544")), ("sacl", sacl), ("dacl", acl_bytes(2, []))])
    ours = parse_sacl(raw).aces
    theirs = SECURITY_DESCRIPTOR.from_bytes(raw).Sacl.aces
    assert len(ours) == len(theirs) == 4
    for mine, other in zip(ours, theirs, strict=True):
        assert isinstance(mine, AuditAce)
        assert mine.sid == str(other.Sid)
        assert mine.mask == other.Mask
        assert mine.flags == int(other.AceFlags)
        # SYSTEM_AUDIT_OBJECT_ACE doesn't derive from winacl's ACE, so it has to_buffer() only.
        buffer = io.BytesIO()
        other.to_buffer(buffer)
        assert mine.to_bytes() == buffer.getvalue()
    assert isinstance(ours[2], AuditAce)
    assert ours[2].object_type == str(theirs[2].ObjectType)
    assert ours[2].inherited_object_type == str(theirs[2].InheritedObjectType)


def test_winacl_reads_what_we_write_unchanged() -> None:
    raw = sacl_descriptor(
        [AuditAce("S-1-1-0", 0x40020, 0xC2), AuditAce(DOMAIN_USER, 0x20, 0x42, USER_CLASS), OtherAce(LABEL_ACE)],
        protected=True,
    )
    parsed = SECURITY_DESCRIPTOR.from_bytes(raw)
    assert parsed.to_bytes() == raw
    assert int(parsed.Control) == 0xA010
    assert parsed.Sacl.AclRevision == 4
    assert [str(a.Sid) for a in parsed.Sacl.aces] == ["S-1-1-0", DOMAIN_USER, "S-1-16-12288"]
