"""Domain Security (mutual TLS) between an Exchange organisation and a partner domain: what the
transport kinds need beyond a send connector's own properties, as small pure functions.

Mutual TLS works only when all of these hold [V] (OPS Set-TransportConfig -TLSSendDomainSecureList
/ -TLSReceiveDomainSecureList, Set-SendConnector -DomainSecureEnabled, Set-ReceiveConnector
-DomainSecureEnabled):

- the send connector that serves the partner domain has ``DomainSecureEnabled $true`` and uses DNS
  routing (not smart hosts), and its ``AddressSpaces`` cover the domain;
- the partner domain is in the transport configuration's ``TLSSendDomainSecureList`` and
  ``TLSReceiveDomainSecureList``, by its exact name: "The wildcard character (*) isn't supported
  in the domains listed" in either list;
- a receive connector that receives the partner's mail has ``DomainSecureEnabled $true`` and
  ``Tls`` in ``AuthMechanism`` (and no ``ExternalAuthoritative``).

The transport configuration is one object per organisation (``Get-TransportConfig`` names no
object). Both lists are multi-valued: they are changed with ``@{Add=...}``
(:class:`~hardening.model.AddRemove`), never written whole, so the partner is added and every
other entry is kept, and two partner controls writing in the same run do not undo each other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..compare import Comparer, split_list
from ..model import AddRemove, Call, CmdletCall

__all__ = [
    "AT_LEAST_ONE",
    "INCLUDES",
    "LISTS",
    "RECEIVE_OBJECT",
    "RECEIVE_PROPERTY",
    "RECEIVE_REQUIREMENT",
    "TRANSPORT_CONFIG",
    "exact_domain",
    "receive_side",
    "transport_config_calls",
    "transport_config_state",
    "uncovered",
]

# The transport configuration as an object of a kind's state, and its two lists.
TRANSPORT_CONFIG = "TransportConfig"
LISTS = ("TLSSendDomainSecureList", "TLSReceiveDomainSecureList")
# The receive side, which the send connector's control reads but never writes.
RECEIVE_OBJECT = "ReceiveConnectors"
RECEIVE_PROPERTY = "DomainSecure"
RECEIVE_REQUIREMENT = ("<at least one receive connector with DomainSecureEnabled True and Tls in AuthMechanism "
                       "(Set-ReceiveConnector -DomainSecureEnabled $true; not written by this control)>")

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EXACT_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


def exact_domain(value: str) -> str:
    """A partner domain for Domain Security: an exact name, never a wildcard (refused with why)."""
    shown = repr(value if len(value) <= 60 else value[:60] + "…")
    if "*" in value:
        raise ValueError(f"{shown}: Domain Security (mutual TLS) needs each partner domain by its exact name; "
                         "Exchange does not support wildcards in TLSSendDomainSecureList and "
                         "TLSReceiveDomainSecureList (Set-TransportConfig), so name the domain itself, e.g. "
                         "'fabrikam.com'")
    if len(value) > 255 or not _EXACT_DOMAIN.match(value):
        raise ValueError(f"{shown} is not a domain name: letters, digits and hyphens in dot-separated labels")
    return value


@dataclass(frozen=True)
class _Includes(Comparer):
    """A multi-valued property compared as "holds at least these": others may be there too."""

    def equal(self, desired: Any, observed: Any) -> bool:
        try:
            return bool(self.key(desired) <= self.key(observed))
        except (TypeError, ValueError):
            return False

    def delta(self, before: Any, after: Any) -> str | None:
        have = self.key(before)
        missing = [item for item in split_list(after) if item.casefold() not in have]
        return f"add {', '.join(missing)}" if missing else None


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [] if value is None else [value]


def _folded_set(value: Any) -> frozenset[str]:
    return frozenset(item.casefold() for item in split_list(value))


@dataclass(frozen=True)
class _Requires(Comparer):
    """A requirement this control reads but does not write: met when something is there, or when
    nothing is required (a rollback's before-state asks for nothing, so it never fails on it)."""

    def equal(self, desired: Any, observed: Any) -> bool:
        return not split_list(desired) or bool(split_list(observed))

    def delta(self, before: Any, after: Any) -> str | None:
        # Said the same way in a drift and in a fixed sentence: what the read found, what is needed.
        needed = [str(item).strip("<>") for item in _items(after)]
        if not needed or split_list(before):
            return None
        return f"none when read; needs {'; '.join(needed)}"


INCLUDES = _Includes("holds these entries, case-insensitive (others are kept)", _folded_set, item=str)
AT_LEAST_ONE = _Requires("at least one entry when one is required", lambda value: bool(split_list(value)))


def uncovered(domains: Sequence[str], address_spaces: Sequence[str]) -> list[str]:
    """The domains none of a send connector's SMTP address spaces routes: ``*`` covers every
    domain, ``*.fabrikam.com`` its subdomains, ``fabrikam.com`` itself. Whether ``*.fabrikam.com``
    also routes fabrikam.com is not documented [U]; it is not assumed."""
    spaces = [s.casefold() for s in address_spaces]

    def covered(domain: str) -> bool:
        d = domain.casefold()
        return any(s == "*" or s == d or (s.startswith("*.") and d.endswith(s[1:])) for s in spaces)

    return [d for d in domains if not covered(d)]


def transport_config_state(objects: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The two lists of the one transport configuration ``Get-TransportConfig`` returned."""
    if len(objects) != 1:
        raise ValueError(f"Get-TransportConfig returned {len(objects)} objects, expected 1")
    return {name: split_list(objects[0].get(name)) for name in LISTS}


def _domain_secure_receiver(connector: Mapping[str, Any]) -> bool:
    auth = {a.casefold() for a in split_list(connector.get("AuthMechanism"))}
    enabled = connector.get("DomainSecureEnabled")
    on = enabled is True or (isinstance(enabled, str) and enabled.strip().casefold() in {"true", "$true"})
    return on and "tls" in auth and "externalauthoritative" not in auth


def receive_side(receive_connectors: Iterable[Mapping[str, Any]], edge_subscriptions: Sequence[str]) -> list[str]:
    """What can receive the partner's mail over mutual TLS, as far as this host can tell: the
    receive connectors with DomainSecureEnabled and Tls (and no ExternalAuthoritative), and each
    Edge subscription (its receive connectors live in the Edge's AD LDS, which a Mailbox server's
    endpoint does not return [I]; an Edge's default receive connector has DomainSecureEnabled
    $true by default [V] OPS), named as such rather than assumed away."""
    ready = sorted((str(c.get("Identity") or c.get("Name")) for c in receive_connectors if _domain_secure_receiver(c)),
                   key=str.casefold)
    return ready + [f"{edge} (Edge subscription: its receive connectors are not read from here)"
                    for edge in edge_subscriptions]


def transport_config_calls(domains: Sequence[str], observed: Mapping[str, Any] | None) -> tuple[Call, ...]:
    """``Set-TransportConfig`` adding to each list the domains it lacks (all of them in plan
    mode, when nothing was read); nothing when both lists hold them already."""
    args: list[tuple[str, AddRemove]] = []
    for name in LISTS:
        have = _folded_set((observed or {}).get(name)) if observed is not None else frozenset()
        missing = tuple(d for d in domains if d.casefold() not in have)
        if missing:
            args.append((name, AddRemove(add=missing)))
    return (CmdletCall("Set-TransportConfig", tuple(args)),) if args else ()
