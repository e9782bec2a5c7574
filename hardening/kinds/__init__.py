"""Every kind, by the key a playbook control names it with.

Adding a kind: its class in a family module here, its template (script kinds), its lab model,
its JSON cases and snapshots under tests/, and one line below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .base import Context, ControlFailed, Kind, KindParams, NotApplicable, Variant
from .exchange import PopImapLogin, ReceiveConnectorTls
from .files import NtfsAcl

__all__ = ["KINDS", "Context", "ControlFailed", "Kind", "KindParams", "NotApplicable", "Variant"]

KINDS: Mapping[str, Kind[Any]] = MappingProxyType({
    kind.name: kind
    for kind in (
        ReceiveConnectorTls(),
        PopImapLogin(),
        NtfsAcl(),
    )
})
