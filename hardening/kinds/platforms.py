"""Platform predicates shared by the kinds' variants (declared once, used by many kinds)."""

from __future__ import annotations

from ..facts import Facts

__all__ = [
    "EXCHANGE_MODERN_PRODUCTS",
    "WINDOWS_MODERN_PRODUCTS",
    "is_edge_transport",
    "is_modern_exchange",
    "is_modern_windows",
]

EXCHANGE_MODERN_PRODUCTS = ("Exchange Server 2016", "Exchange Server 2019", "Exchange Server SE")
WINDOWS_MODERN_PRODUCTS = ("Windows Server 2016", "Windows Server 2019", "Windows Server 2022", "Windows Server 2025")


def is_modern_exchange(facts: Facts) -> bool:
    """Exchange 2016, 2019 or SE."""
    return facts.exchange_release in {"2016", "2019", "SE"}


def is_modern_windows(facts: Facts) -> bool:
    """Windows Server 2016 to 2025 (with Windows PowerShell 5.1)."""
    return facts.os_release in {"2016", "2019", "2022", "2025"}


def is_edge_transport(facts: Facts) -> bool:
    """An Edge Transport server, by its declared or read roles: it has no mailboxes, no mailbox
    databases and none of their cmdlets (Edge runs a reduced Exchange cmdlet set [I])."""
    roles = {r.casefold() for r in facts.exchange_roles}
    return bool(roles & {"edgetransport", "edge"}) and "mailbox" not in roles
