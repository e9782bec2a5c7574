"""The text form of directory requests: LDIF (RFC 2849), for ``plan``, snapshots and review.

A modify is real LDIF that ``ldapmodify`` accepts, including the security-descriptor control
line, so a reviewer can apply exactly what the tool would send. A search has no LDIF form; it
is shown as a comment with its base, scope, filter, attributes and control. Values that LDIF
cannot carry as plain text (binary data, leading spaces or colons, non-ASCII) are base64
(``attr:: ...``), and long lines are folded at 76 characters as the RFC allows.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from .model import LdapCall

__all__ = ["SD_FLAGS_OID", "ldif_text", "sd_flags_control_value"]

# LDAP_SERVER_SD_FLAGS_OID (MS-ADTS 3.1.1.3.4.1.11)
SD_FLAGS_OID = "1.2.840.113556.1.4.801"
SD_PARTS = ((0x1, "owner"), (0x2, "group"), (0x4, "DACL"), (0x8, "SACL"))
FOLD = 76


def sd_flags_control_value(flags: int) -> bytes:
    """The control's BER value: ``SEQUENCE { INTEGER flags }``."""
    length = max(1, (flags.bit_length() + 8) // 8)  # room for the sign bit: 0x80 is 02 02 00 80
    integer = flags.to_bytes(length, "big", signed=False)
    return bytes((0x30, 2 + len(integer), 0x02, len(integer))) + integer


def _safe(value: str) -> bool:
    """RFC 2849 SAFE-STRING: ASCII without NUL, CR, LF, not starting with space, ':' or '<',
    and (our choice, for a value read back exactly) not ending with a space."""
    if not value:
        return True
    if value[0] in " :<" or value.endswith(" "):
        return False
    return all(0 < ord(ch) < 128 and ch not in "\r\n" for ch in value)


def _line(name: str, value: str | bytes) -> str:
    if isinstance(value, bytes):
        return f"{name}:: {base64.b64encode(value).decode('ascii')}"
    if _safe(value):
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}"


def _fold(line: str) -> Iterable[str]:
    yield line[:FOLD]
    for start in range(FOLD, len(line), FOLD - 1):
        yield " " + line[start:start + FOLD - 1]


def _describe_flags(flags: int) -> str:
    parts = [name for bit, name in SD_PARTS if flags & bit]
    return f"0x{flags:x}: {', '.join(parts) or 'nothing'}" + (" only" if len(parts) == 1 else "")


def ldif_text(call: LdapCall) -> str:
    """One directory request as LDIF (a modify) or as an LDIF comment (a search)."""
    if call.op == "search":
        lines = [f"# search base {call.dn!r} scope {call.scope} filter {call.filter}",
                 f"#   attributes {', '.join(call.attributes) or '(all)'}"]
        if call.sd_flags is not None:
            lines.append(f"#   control {SD_FLAGS_OID} (security descriptor flags {_describe_flags(call.sd_flags)})")
        return "\n".join(lines)
    out = [_line("dn", call.dn)]
    if call.sd_flags is not None:
        value = base64.b64encode(sd_flags_control_value(call.sd_flags)).decode("ascii")
        out.append(f"# security descriptor flags {_describe_flags(call.sd_flags)}: the rest is never written")
        out.append(f"control: {SD_FLAGS_OID} true:: {value}")
    out.append("changetype: modify")
    for attribute, action, values in call.changes:
        out.append(f"{action}: {attribute}")
        out += [_line(attribute, v) for v in values]
        out.append("-")
    return "\n".join(folded for line in out for folded in _fold(line))
