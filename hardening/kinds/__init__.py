"""Every kind, by the key a playbook control names it with.

Each family module in this package declares ``FAMILY_KINDS``, a tuple of its kind instances;
they are collected here, so adding a kind touches only its own family module (plus its
template, lab model, cases, snapshots and docs), never a shared list.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .base import Caveat, Context, ControlFailed, Kind, KindParams, NotApplicable, Variant, caveats_for, without_held

__all__ = [
    "KINDS",
    "Caveat",
    "Context",
    "ControlFailed",
    "Kind",
    "KindParams",
    "NotApplicable",
    "Variant",
    "caveats_for",
    "without_held",
]

_NOT_FAMILIES = {"base", "platforms"}


def _collect() -> Mapping[str, Kind[Any]]:
    kinds: dict[str, Kind[Any]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_FAMILIES or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for kind in getattr(module, "FAMILY_KINDS", ()):
            if kind.name in kinds:
                raise RuntimeError(f"kind {kind.name!r} is declared twice ({module.__name__})")
            kinds[kind.name] = kind
    return MappingProxyType(dict(sorted(kinds.items())))


KINDS: Mapping[str, Kind[Any]] = _collect()
