"""The lab's models, one module per family of kinds, collected here.

A family module declares ``SECTIONS`` (keys of a lab host in the lab file, with their type and
how they become state), ``CMDLETS`` (simulated Exchange cmdlets by lower-case name) and
``SCRIPTS`` (simulated template blocks by (kind, op)) and ``LDAP`` (simulated directory
requests by LDAP operation: search, modify), and may define ``consequences(org, hosts)``: what the
hosts' state breaks in the organisation (see :mod:`hardening.lab.rehearsal`). Every module of this package except
``common`` is a family; adding one touches nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from types import MappingProxyType, ModuleType

from .common import (
    Breakage,
    CmdletHandler,
    Consequences,
    Dag,
    LabCmdletError,
    LabLdapError,
    LabScriptError,
    LdapHandler,
    Organization,
    ScriptHandler,
    StateSection,
)

__all__ = ["CMDLETS", "CONSEQUENCES", "LDAP", "SCRIPTS", "SECTIONS", "Breakage", "Dag", "LabCmdletError",
           "LabLdapError", "LabScriptError", "Organization", "StateSection"]


def _families() -> tuple[ModuleType, ...]:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "common" and not m.name.startswith("_"))
    # core first: other families' sections may refer to what it holds (accounts, services)
    names.sort(key=lambda n: n != "core")
    return tuple(importlib.import_module(f"{__name__}.{name}") for name in names)


FAMILIES = _families()


def _merge(attribute: str) -> Mapping[object, object]:
    merged: dict[object, object] = {}
    for family in FAMILIES:
        for key, value in getattr(family, attribute, {}).items():
            if key in merged:
                raise RuntimeError(f"lab model {family.__name__} declares {attribute} {key!r} twice")
            merged[key] = value
    return MappingProxyType(merged)


SECTIONS: Mapping[str, StateSection] = _merge("SECTIONS")  # type: ignore[assignment]
CMDLETS: Mapping[str, CmdletHandler] = _merge("CMDLETS")  # type: ignore[assignment]
SCRIPTS: Mapping[tuple[str, str], ScriptHandler] = _merge("SCRIPTS")  # type: ignore[assignment]
LDAP: Mapping[str, LdapHandler] = _merge("LDAP")  # type: ignore[assignment]
# What each family says an apply broke in the organisation (its own model of Windows/Exchange behaviour).
CONSEQUENCES: tuple[Consequences, ...] = tuple(f.consequences for f in FAMILIES if hasattr(f, "consequences"))
