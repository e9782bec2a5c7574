"""The text form of directory requests: LDIF (RFC 2849), for ``plan``, snapshots and review.

A modify is real LDIF that ``ldapmodify`` accepts, including the security-descriptor control
line, so a reviewer can apply exactly what the tool would send. A search has no LDIF form; it
is shown as comment lines with its base, scope, filter, attributes and control.

Nothing a value holds can start a line of its own, so a plan fed to ``ldapmodify`` carries
exactly the records the tool would send, and no more:

- **Values of a modify** (the DN and attribute values) are written as text only when they are
  RFC 2849 SAFE-STRINGs of printable ASCII (no control character at all, not even the TAB, ESC
  or DEL that SAFE-STRING allows, so a terminal shows them as they are) that neither start with
  a space, ``:`` or ``<`` nor end with a space. Any other value (binary data, non-ASCII, line
  breaks, NUL) is base64 (``attr:: ...``). Long lines are folded at 76 characters as the RFC allows.
- **Values in a comment** (a search's base and filter) are always written as
  JSON strings: double-quoted, ASCII only, with ``"`` and ``\\`` escaped and every control
  character and line separator escaped (``\\n``, ``\\r``, ``\\u0000``, ``\\u0085``,
  ``\\u2028``, ``\\u2029`` …). So a comment is one line, whatever the value, and
  ``json.loads`` gives the value back exactly. Comment lines are not folded (a folded comment is
  still a comment to ldapmodify, but not to a reader that looks for ``#`` on every line).
- Attribute names are not values: a name that is not an LDAP attribute description (in a
  search, also ``*``, ``+`` or ``1.1``) is refused with ``ValueError``, never written.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable

from .model import LdapCall

__all__ = ["SD_FLAGS_OID", "comment_value", "ldif_text", "sd_flags_control_value"]

# LDAP_SERVER_SD_FLAGS_OID (MS-ADTS 3.1.1.3.4.1.11)
SD_FLAGS_OID = "1.2.840.113556.1.4.801"
SD_PARTS = ((0x1, "owner"), (0x2, "group"), (0x4, "DACL"), (0x8, "SACL"))
FOLD = 76


def sd_flags_control_value(flags: int) -> bytes:
    """The control's BER value: ``SEQUENCE { INTEGER flags }``."""
    length = max(1, (flags.bit_length() + 8) // 8)  # room for the sign bit: 0x80 is 02 02 00 80
    integer = flags.to_bytes(length, "big", signed=False)
    return bytes((0x30, 2 + len(integer), 0x02, len(integer))) + integer


# An attribute description (RFC 4512: a name or an OID, then options); nothing else is written
# where LDIF expects one.
_ATTRIBUTE = re.compile(r"(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*")


def _safe(value: str) -> bool:
    """Printable ASCII (a subset of RFC 2849's SAFE-STRING: no control character at all), not
    starting with space, ':' or '<', and (our choice, for a value read back exactly) not ending
    with a space."""
    if not value:
        return True
    if value[0] in " :<" or value.endswith(" "):
        return False
    return all(32 <= ord(ch) < 127 for ch in value)


def comment_value(value: str) -> str:
    """A value as it is written in a comment line: a JSON string, ASCII, every control character
    and line separator escaped, so it can never end the comment."""
    return json.dumps(value, ensure_ascii=True)


def _attribute(name: str, selector: bool = False) -> str:
    """An attribute description as is; a search may also ask for ``*`` (every user attribute),
    ``+`` (every operational one) or ``1.1`` (none), RFC 4511 4.5.1.8."""
    if not (_ATTRIBUTE.fullmatch(name) or (selector and name in ("*", "+", "1.1"))):
        raise ValueError(f"not an LDAP attribute description: {comment_value(name)[:200]}")
    return name


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
        lines = [f"# search base {comment_value(call.dn)} scope {call.scope} filter {comment_value(call.filter)}",
                 f"#   attributes {', '.join(_attribute(a, selector=True) for a in call.attributes) or '(all)'}"]
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
        out.append(f"{action}: {_attribute(attribute)}")
        out += [_line(attribute, v) for v in values]
        out.append("-")
    return "\n".join(folded for line in out for folded in _fold(line))
