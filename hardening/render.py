"""Turning requests into text: PowerShell bundles for Windows hosts, cmdlet lines for plans.

User values reach PowerShell only as one JSON literal per call, bound to ``$Call`` and read as
``$Desired`` — never pasted into code. :func:`ps_quote` doubles every character PowerShell
treats as a single quote (' ‘ ’ ‚ ‛), and the JSON is ASCII-only, so a value cannot end the
literal. Kind templates hold no user data at all: they are fixed PowerShell.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import jinja2

from .ldif import ldif_text
from .model import AddRemove, Bundle, CmdletCall, LdapCall, ScriptCall, Section, Switch
from .resources import data_dir

__all__ = [
    "WINRS_BOOTSTRAP",
    "bundle_script",
    "cmdlet_text",
    "ps_expandable",
    "ps_json",
    "ps_literal",
    "ps_quote",
    "section_text",
    "winrs_command_line",
]

# PowerShell's tokenizer ends a single-quoted string at any of these (and doubles escape them).
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_QUOTE_RE = re.compile(f"([{SINGLE_QUOTES}])")
CALL_MARKER = "# hardening:call"


# WinRS runs this (as -EncodedCommand, short enough for cmd.exe's 8191 characters) and it runs the
# bundle read whole from stdin: no command-line limit, and multi-line blocks stay whole (feeding a
# script to "-Command -" makes PowerShell run it line by line, like an interactive console).
WINRS_BOOTSTRAP = "$ErrorActionPreference = 'Stop'; & ([scriptblock]::Create([Console]::In.ReadToEnd()))"


def winrs_command_line() -> str:
    """The command WinRS runs for a bundle; the bundle itself follows on stdin."""
    encoded = base64.b64encode(WINRS_BOOTSTRAP.encode("utf-16-le")).decode("ascii")
    return f"powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand {encoded}"


def ps_quote(text: str) -> str:
    """A PowerShell single-quoted string literal holding ``text`` verbatim."""
    return "'" + _QUOTE_RE.sub(r"\1\1", text) + "'"


# A single-quoted literal has no escapes, so a value with control characters (NUL …) is written as
# a double-quoted one: every character PowerShell would expand or end the string at is escaped.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BACKTICK_ESCAPES = {"\x00": "`0", "\x07": "`a", "\x08": "`b", "\x0c": "`f", "\x0b": "`v", "\n": "`n",
                     "\r": "`r", "\t": "`t", "`": "``", "$": "`$", '"': '`"', "\u201c": "`\u201c",
                     "\u201d": "`\u201d", "\u201e": "`\u201e"}


def ps_expandable(text: str) -> str:
    """A double-quoted PowerShell literal holding ``text`` exactly, for values a single-quoted one
    cannot carry: nothing in it expands (``$`` and backticks are escaped)."""
    out = []
    for ch in text:
        if ch in _BACKTICK_ESCAPES:
            out.append(_BACKTICK_ESCAPES[ch])
        elif _CONTROL.match(ch):
            out.append(f"$([char]0x{ord(ch):02X})")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def ps_json(value: Any) -> str:
    """``value`` as compact, ASCII-only JSON inside one single-quoted PowerShell literal."""
    return ps_quote(json.dumps(value, ensure_ascii=True, separators=(",", ":")))


def ps_literal(value: Any) -> str:
    """A cmdlet argument as PowerShell text (for plans and snapshots; PSRP sends data)."""
    if value is None:
        return "$null"
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ",".join(ps_literal(v) for v in value) if value else "@()"
    if isinstance(value, AddRemove):
        entries = [f"{key}={ps_literal(items)}" for key, items in (("Add", value.add), ("Remove", value.remove))
                   if items]
        return "@{" + "; ".join(entries) + "}"
    text = str(value)
    return ps_expandable(text) if _CONTROL.search(text) else ps_quote(text)


def cmdlet_text(call: CmdletCall) -> str:
    """``Set-PopSettings -Server 'MAIL01' -LoginType 'SecureLogin'``."""
    parts = [call.cmdlet]
    for name, value in call.parameters:
        parts.append(f"-{name}" if isinstance(value, Switch) else f"-{name} {ps_literal(value)}")
    return " ".join(parts)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["ps_json"] = ps_json
    env.filters["ps_quote"] = ps_quote
    return env


def _block(call: ScriptCall) -> str:
    module = _environment().get_template(f"{call.kind}.ps1.j2").module
    macro = getattr(module, call.op, None)
    if macro is None:
        raise LookupError(f"template {call.kind}.ps1.j2 has no {call.op} block")
    return str(macro()).strip("\n")


def bundle_script(sections: Iterable[Section]) -> str:
    """One PowerShell script for the script sections of a bundle (one pipeline on the host).

    Each call runs in its own scope and try/catch and writes one compressed JSON record:
    ``{"id":…,"n":…,"ok":true,"state":…}`` or ``{"id":…,"n":…,"ok":false,"error":…}``.
    """
    calls = []
    for section in sections:
        for n, call in enumerate(section.calls):
            if not isinstance(call, ScriptCall):
                raise TypeError(f"section {section.id} mixes cmdlet calls into a script bundle")
            calls.append({"kind": call.kind, "op": call.op, "body": _block(call),
                          "literal": ps_json({"id": section.id, "n": n, "data": call.data})})
    return _environment().get_template("bundle.ps1.j2").render(calls=calls, marker=CALL_MARKER)


def section_text(section: Section) -> str:
    """A section as a person reviews it: the script with its JSON literal, cmdlet lines, or LDIF."""
    if section.channel == "script":
        return bundle_script([section])
    if section.channel == "directory":
        return "\n\n".join(ldif_text(c) for c in section.calls if isinstance(c, LdapCall))
    return "\n".join(cmdlet_text(c) for c in section.calls if isinstance(c, CmdletCall))


def bundle_text(bundle: Bundle) -> str:
    """Every section of a bundle as text: the Windows script, then the Exchange cmdlet lines and
    the directory requests."""
    script = [s for s in bundle if s.channel == "script"]
    others = [s for s in bundle if s.channel != "script"]
    parts = [bundle_script(script)] if script else []
    parts += [section_text(s) for s in others]
    return "\n".join(parts)


def data_literal(data: Mapping[str, Any]) -> str:
    """The JSON literal of a call's data, as the bundle carries it (for tests and review)."""
    return ps_json(data)
