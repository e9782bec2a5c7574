"""Reading a bundle script the way a Windows host would read its data.

The lab is not a PowerShell interpreter. It finds each call by its marker line and decodes the
single-quoted JSON literal bound to ``$Call`` exactly as PowerShell's tokenizer does (any of
' ‘ ’ ‚ ‛ ends the string; two in a row stand for the second one), then parses the JSON.
Anything it cannot read this way is refused with an error, not guessed at.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["DecodedCall", "UnreadableScript", "decode_bundle", "read_single_quoted"]

SINGLE_QUOTES = frozenset("'\u2018\u2019\u201a\u201b")
MARKER = re.compile(r"^# hardening:call kind=(?P<kind>[a-z0-9_]+) op=(?P<op>[a-z]+)\n&\s*\{\n"
                    r"\s*\$Call = ConvertFrom-Json -InputObject ", re.MULTILINE)


class UnreadableScript(ValueError):
    """The script is not a hardening bundle the lab understands."""


@dataclass(frozen=True)
class DecodedCall:
    """One call of a bundle: its kind, block, section id, index and data."""

    kind: str
    op: str
    id: str
    n: int
    data: Any


def read_single_quoted(text: str, start: int) -> tuple[str, int]:
    """The value of the single-quoted literal opening at ``text[start]``, and the index after it."""
    if start >= len(text) or text[start] not in SINGLE_QUOTES:
        raise UnreadableScript(f"expected a single-quoted string at offset {start}")
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch in SINGLE_QUOTES:
            if i + 1 < len(text) and text[i + 1] in SINGLE_QUOTES:
                out.append(text[i + 1])
                i += 2
                continue
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise UnreadableScript("unterminated single-quoted string")


def decode_bundle(script: str) -> list[DecodedCall]:
    """Every call of a bundle script, in order."""
    calls: list[DecodedCall] = []
    for match in MARKER.finditer(script):
        literal, end = read_single_quoted(script, match.end())
        if script[end] != "\n":
            raise UnreadableScript(f"unexpected text after the $Call literal of {match.group('kind')}")
        try:
            record = json.loads(literal)
        except ValueError as exc:
            raise UnreadableScript(f"the $Call literal is not JSON: {exc}") from None
        calls.append(DecodedCall(match.group("kind"), match.group("op"), str(record["id"]), int(record["n"]),
                                 record.get("data")))
    if not calls and script.strip():
        raise UnreadableScript("no hardening calls found; the lab answers only the bundles hardening sends")
    return calls
