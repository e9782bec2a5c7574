"""Pure value comparison with typed normalisers.

A kind says, per property, how its values compare (``BOOL``, ``TEXT``, ``FLAGS``, ``SID`` …).
:func:`diff` turns a desired and an observed state into :class:`~hardening.model.Change` rows.
A state is ``{object: {property: value}}``; an object observed as ``None`` does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .model import Change

__all__ = [
    "BOOL",
    "EXACT",
    "FLAGS",
    "SID",
    "TEXT",
    "TEXT_SET",
    "WELL_KNOWN_SIDS",
    "Comparer",
    "State",
    "describe_change",
    "diff",
    "display",
    "sid_of",
]

State = Mapping[str, Mapping[str, Any] | None]


@dataclass(frozen=True)
class Comparer:
    """How one property compares: ``key`` maps a value to what is compared.

    ``item`` (for set-like properties) names one element for people, so a difference can be
    said as what to add and what to remove instead of two long lists.
    """

    name: str
    key: Callable[[Any], Any]
    item: Callable[[Any], str] | None = None

    def delta(self, before: Any, after: Any) -> str | None:
        """``add X; remove Y`` for set-like properties; None where that does not apply."""
        if self.item is None:
            return None
        try:
            before_items = {self.key([b]): b for b in _items(before)}
            after_items = {self.key([a]): a for a in _items(after)}
        except (TypeError, ValueError):
            return None
        added = [self.item(v) for k, v in after_items.items() if k not in before_items]
        removed = [self.item(v) for k, v in before_items.items() if k not in after_items]
        parts = ([f"add {', '.join(added)}"] if added else []) + ([f"remove {', '.join(removed)}"] if removed else [])
        return "; ".join(parts) or None

    def equal(self, desired: Any, observed: Any) -> bool:
        try:
            return bool(self.key(desired) == self.key(observed))
        except (TypeError, ValueError):
            return False


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "$true", "$false"}:
        return value.strip().lower().lstrip("$") == "true"
    if isinstance(value, int):
        return value != 0
    raise ValueError(f"not a boolean: {value!r}")


def _text(value: Any) -> str:
    return "" if value is None else str(value).casefold()


def split_list(value: Any) -> list[str]:
    """A list, or the comma-separated string that deserialised enums and lists arrive as."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Iterable):
        return [str(part).strip() for part in value if str(part).strip()]
    return [str(value)]


def _flags(value: Any) -> frozenset[str]:
    return frozenset(part.casefold() for part in split_list(value))


# Well-known principals by their English names. Compare by SID: names are localised.
WELL_KNOWN_SIDS: dict[str, str] = {
    "everyone": "S-1-1-0",
    "creator owner": "S-1-3-0",
    "network": "S-1-5-2",
    "interactive": "S-1-5-4",
    "authenticated users": "S-1-5-11",
    "system": "S-1-5-18",
    "local system": "S-1-5-18",
    "nt authority\\system": "S-1-5-18",
    "local service": "S-1-5-19",
    "nt authority\\local service": "S-1-5-19",
    "network service": "S-1-5-20",
    "nt authority\\network service": "S-1-5-20",
    "nt authority\\authenticated users": "S-1-5-11",
    "administrators": "S-1-5-32-544",
    "builtin\\administrators": "S-1-5-32-544",
    "users": "S-1-5-32-545",
    "builtin\\users": "S-1-5-32-545",
    "guests": "S-1-5-32-546",
    "builtin\\guests": "S-1-5-32-546",
    "server operators": "S-1-5-32-549",
    "builtin\\server operators": "S-1-5-32-549",
    "backup operators": "S-1-5-32-551",
    "builtin\\backup operators": "S-1-5-32-551",
}
SID_NAMES: dict[str, str] = {
    "S-1-1-0": "Everyone",
    "S-1-3-0": "CREATOR OWNER",
    "S-1-5-2": "NETWORK",
    "S-1-5-4": "INTERACTIVE",
    "S-1-5-11": "Authenticated Users",
    "S-1-5-18": "SYSTEM",
    "S-1-5-19": "LOCAL SERVICE",
    "S-1-5-20": "NETWORK SERVICE",
    "S-1-5-32-544": "Administrators",
    "S-1-5-32-545": "Users",
    "S-1-5-32-546": "Guests",
    "S-1-5-32-549": "Server Operators",
    "S-1-5-32-551": "Backup Operators",
}
SID_PATTERN = re.compile(r"^S-1-\d+(-\d+)+$", re.IGNORECASE)


def sid_of(principal: str) -> str | None:
    """The SID of a SID string or a well-known name; None for names only the host can resolve."""
    text = principal.strip()
    if SID_PATTERN.match(text):
        return text.upper()
    return WELL_KNOWN_SIDS.get(text.casefold())


def _sid(value: Any) -> str:
    text = str(value).strip()
    return sid_of(text) or text.casefold()


def _items(value: Any) -> list[Any]:
    if isinstance(value, str):
        return split_list(value)
    return list(value or [])


EXACT = Comparer("exact", lambda v: v)
BOOL = Comparer("bool", _bool)
TEXT = Comparer("text, case-insensitive", _text)
FLAGS = Comparer("set of flags, case-insensitive", _flags, item=str)
TEXT_SET = Comparer("set of strings, case-insensitive", _flags, item=str)
SID = Comparer("SID", _sid)


def display(value: Any) -> str:
    """A value the way an administrator reads it (PowerShell spelling for booleans)."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (list, tuple, frozenset, set)):
        return ", ".join(display(v) for v in value) if value else "(empty)"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {display(v)}" for k, v in value.items()) + "}"
    return str(value)


def describe_change(change: Change, comparers: Mapping[str, Comparer]) -> str:
    """``obj.prop is X, should be Y``, or ``obj.prop: add …; remove …`` for set-like properties."""
    prop = change.path.rsplit(".", 1)[-1]
    comparer = comparers.get(prop, EXACT)
    delta = comparer.delta(change.before, change.after)
    if delta:
        return f"{change.path}: {delta}"
    return f"{change.path} is {display(change.before)}, should be {display(change.after)}"


def diff(desired: State, observed: State, comparers: Mapping[str, Comparer]) -> tuple[Change, ...]:
    """Every property of ``desired`` that ``observed`` does not match, in desired's order.

    An object missing from ``observed`` (or observed as None) differs in every desired property.
    Properties without a declared comparer compare exactly.
    """
    changes: list[Change] = []
    for obj, props in desired.items():
        seen = observed.get(obj)
        if props is None:
            if seen is not None:
                changes.append(Change(obj, "present", "absent"))
            continue
        for prop, want in props.items():
            have = None if seen is None else seen.get(prop)
            comparer = comparers.get(prop, EXACT)
            if seen is None or not comparer.equal(want, have):
                changes.append(Change(f"{obj}.{prop}", have, want))
    return tuple(changes)
