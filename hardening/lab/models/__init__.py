"""The lab's models, one module per family of kinds, assembled here.

A family module declares ``SECTIONS`` (keys of a lab host in the lab file, with their type and
how they become state), ``CMDLETS`` (simulated Exchange cmdlets by lower-case name) and
``SCRIPTS`` (simulated template blocks by (kind, op)). Adding a family is one import below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType, ModuleType

from . import core, files, pop_imap, transport
from .common import CmdletHandler, LabCmdletError, LabScriptError, ScriptHandler, StateSection

__all__ = ["CMDLETS", "SCRIPTS", "SECTIONS", "LabCmdletError", "LabScriptError", "StateSection"]

FAMILIES: tuple[ModuleType, ...] = (core, transport, pop_imap, files)


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
