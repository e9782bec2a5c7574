"""What a host is: OS, PowerShell, Exchange version, roles and paths.

Facts are read once per host unless the inventory declares them, and decide which variant of
each kind applies. Declared facts win over read ones, key by key. The Windows facts (one round
trip) hold the OS, Exchange's version, roles, install path and transport queue path; where a
control needs the paths Exchange keeps in its configuration (mailbox databases, transport logs),
one more round trip asks the Exchange endpoint for them. A host with directory controls also
gets the directory's naming contexts from its rootDSE (in the same round trip as the Windows
facts, or alone for a domain controller reached over LDAP only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .model import CmdletCall, LdapCall, ScriptCall, Section

__all__ = [
    "DIRECTORY_FACTS_SECTION_ID",
    "EXCHANGE_FACTS_SECTION_ID",
    "EXCHANGE_PATH_ROLES",
    "FACTS_SECTION_ID",
    "PATH_ROLES",
    "SE_FIRST_BUILD",
    "Facts",
    "directory_facts_from",
    "directory_facts_section",
    "exchange_facts_from",
    "exchange_facts_section",
    "facts_section",
    "needs_exchange_facts",
]

FACTS_SECTION_ID = "_facts"
EXCHANGE_FACTS_SECTION_ID = "_exchange_facts"
DIRECTORY_FACTS_SECTION_ID = "_directory_facts"
# rootDSE attributes → the keys of Facts.naming_contexts
ROOT_DSE_CONTEXTS = {"defaultNamingContext": "default", "configurationNamingContext": "configuration",
                     "schemaNamingContext": "schema", "rootDomainNamingContext": "root"}

# Folders a control can name by role instead of by path (``paths_from``). The first two come with
# the Windows facts; the others from the Exchange endpoint.
PATH_ROLES = ("exchange_install", "transport_queue", "mailbox_databases", "mailbox_database_logs", "transport_logs")
EXCHANGE_PATH_ROLES = frozenset({"mailbox_databases", "mailbox_database_logs", "transport_logs"})
TRANSPORT_LOG_PROPERTIES = ("MessageTrackingLogPath", "ReceiveProtocolLogPath", "SendProtocolLogPath",
                            "ConnectivityLogPath")

# [U] Exchange SE reports 15.2 like 2019; its RTM build is believed to be 15.2.2562. Override per
# host with the declared fact ``exchange_release: SE`` (or ``2019``) if this guess is wrong.
SE_FIRST_BUILD = 2562

# Windows Server 2016+ all report 10.0; the build tells them apart [I].
OS_BUILDS = {14393: "2016", 17763: "2019", 20348: "2022", 26100: "2025"}


@dataclass(frozen=True)
class Facts:
    """A host's facts. Unknown values are None; ``exchange_roles`` is empty without Exchange."""

    computer_name: str | None = None
    os_caption: str | None = None
    os_version: str | None = None
    powershell_version: str | None = None
    exchange_version: str | None = None
    exchange_roles: tuple[str, ...] = ()
    exchange_install_path: str | None = None
    transport_queue_path: str | None = None
    mailbox_databases: tuple[Mapping[str, str], ...] = ()
    transport_log_paths: tuple[str, ...] = ()
    exchange_site: str | None = None
    # The directory's naming contexts (default, configuration, schema, root) and the DC answering.
    naming_contexts: Mapping[str, str] = field(default_factory=dict)
    directory_server: str | None = None
    declared: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], declared: Mapping[str, Any] | None = None) -> Facts:
        """Build from what the facts section returned, then overlay the inventory's declared facts."""
        merged = {**data, **(declared or {})}
        roles = merged.get("exchange_roles") or ()
        if isinstance(roles, str):
            roles = tuple(r.strip() for r in roles.split(",") if r.strip())
        return cls(
            computer_name=_opt(merged.get("computer_name")),
            os_caption=_opt(merged.get("os_caption")),
            os_version=_opt(merged.get("os_version")),
            powershell_version=_opt(merged.get("powershell_version")),
            exchange_version=_opt(merged.get("exchange_version")),
            exchange_roles=tuple(str(r) for r in roles),
            exchange_install_path=_opt(merged.get("exchange_install_path")),
            transport_queue_path=_opt(merged.get("transport_queue_path")),
            mailbox_databases=tuple(dict(d) for d in merged.get("mailbox_databases") or ()),
            transport_log_paths=tuple(str(p) for p in merged.get("transport_log_paths") or ()),
            exchange_site=_opt(merged.get("exchange_site")),
            naming_contexts={str(k): str(v) for k, v in (merged.get("naming_contexts") or {}).items()},
            directory_server=_opt(merged.get("directory_server")),
            declared=dict(declared or {}),
        )

    def with_exchange(self, values: Mapping[str, Any]) -> Facts:
        """These facts plus what the Exchange (or directory) facts section returned (declared facts
        still win)."""
        merged = {**self.to_json(), **values, **self.declared}
        return Facts.from_mapping({k: v for k, v in merged.items() if k != "declared"}, self.declared)

    def paths(self, role: str) -> tuple[str, ...]:
        """The folders of a path role (see ``PATH_ROLES``), without duplicates, in a stable order."""
        found: list[str | None]
        if role == "exchange_install":
            found = [self.exchange_install_path]
        elif role == "transport_queue":
            found = [self.transport_queue_path]
        elif role == "mailbox_databases":
            found = [_folder(d.get("edb_file_path")) for d in self.mailbox_databases]
        elif role == "mailbox_database_logs":
            found = [d.get("log_folder_path") for d in self.mailbox_databases]
        elif role == "transport_logs":
            found = list(self.transport_log_paths)
        else:
            raise ValueError(f"unknown path role {role!r}; roles are {', '.join(PATH_ROLES)}")
        out: dict[str, str] = {}
        for path in found:
            if path:
                out.setdefault(path.rstrip("\\").casefold(), path.rstrip("\\"))
        return tuple(out.values())

    @property
    def os_release(self) -> str | None:
        """``2003``, ``2016`` … ``2025``, or None when unknown."""
        if "os_release" in self.declared:
            return str(self.declared["os_release"])
        parts = _numbers(self.os_version)
        if parts[:2] == (5, 2):
            return "2003"
        if parts[:2] == (10, 0) and len(parts) > 2:
            return OS_BUILDS.get(parts[2])
        return None

    @property
    def exchange_release(self) -> str | None:
        """``2003``, ``2016``, ``2019`` or ``SE``; None when Exchange is absent or unknown."""
        if "exchange_release" in self.declared:
            return str(self.declared["exchange_release"])
        parts = _numbers(self.exchange_version)
        if parts[:2] == (6, 5):
            return "2003"
        if parts[:2] == (15, 1):
            return "2016"
        if parts[:2] == (15, 2):
            return "SE" if len(parts) > 2 and parts[2] >= SE_FIRST_BUILD else "2019"
        return None

    @property
    def exchange_product(self) -> str | None:
        """The catalogue's product label, e.g. ``Exchange Server 2019``."""
        release = self.exchange_release
        return f"Exchange Server {release}" if release else None

    @property
    def windows_product(self) -> str | None:
        """The catalogue's product label, e.g. ``Windows Server 2022``."""
        release = self.os_release
        return f"Windows Server {release}" if release else None

    @property
    def has_exchange_paths(self) -> bool:
        """Whether the Exchange-side facts (databases, transport logs) are known."""
        return bool(self.mailbox_databases or self.transport_log_paths) or "mailbox_databases" in self.declared

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["exchange_roles"] = list(self.exchange_roles)
        data["mailbox_databases"] = [dict(d) for d in self.mailbox_databases]
        data["transport_log_paths"] = list(self.transport_log_paths)
        data["naming_contexts"] = dict(self.naming_contexts)
        data["declared"] = dict(self.declared)
        data.update(os_release=self.os_release, exchange_release=self.exchange_release)
        return data


def facts_section() -> Section:
    """The section that reads a host's facts (template ``facts.ps1.j2``)."""
    return Section(FACTS_SECTION_ID, (ScriptCall("facts", "read", {}),))


def exchange_facts_section(server: str) -> Section:
    """The section that asks the Exchange endpoint for paths it keeps in its configuration."""
    return Section(EXCHANGE_FACTS_SECTION_ID, (
        CmdletCall("Get-ExchangeServer", (("Identity", server),)),
        CmdletCall("Get-MailboxDatabase", (("Server", server),)),
        CmdletCall("Get-TransportService", (("Identity", server),)),
    ))


def exchange_facts_from(values: tuple[Any, ...], errors: tuple[str | None, ...]) -> dict[str, Any]:
    """Facts from the Exchange facts section's outputs. An Edge server has no mailbox databases
    (that call fails there), so each call counts on its own."""
    out: dict[str, Any] = {}
    server, databases, transport = (_first_list(v) if e is None else None for v, e in zip(values, errors, strict=True))
    if server:
        out["exchange_site"] = _opt(server[0].get("Site"))
    if databases is not None:
        out["mailbox_databases"] = [{"name": str(d.get("Name")), "edb_file_path": str(d.get("EdbFilePath") or ""),
                                     "log_folder_path": str(d.get("LogFolderPath") or "")} for d in databases]
    if transport:
        out["transport_log_paths"] = [str(transport[0][p]) for p in TRANSPORT_LOG_PROPERTIES if transport[0].get(p)]
    return out


def directory_facts_section() -> Section:
    """The section that reads the directory's rootDSE (naming contexts, the DC's name)."""
    return Section(DIRECTORY_FACTS_SECTION_ID, (
        LdapCall("search", "", attributes=(*ROOT_DSE_CONTEXTS, "dnsHostName")),))


def directory_facts_from(value: Any) -> dict[str, Any]:
    """Facts from the rootDSE search; raises ValueError when the answer holds no naming context."""
    entries = value if isinstance(value, list) else []
    attributes = entries[0].get("attributes", {}) if entries and isinstance(entries[0], Mapping) else {}
    contexts = {key: str(attributes[name][0]) for name, key in ROOT_DSE_CONTEXTS.items() if attributes.get(name)}
    if "default" not in contexts or "configuration" not in contexts:
        raise ValueError("the directory's rootDSE gave no defaultNamingContext/configurationNamingContext")
    host = attributes.get("dnsHostName")
    return {"naming_contexts": contexts, "directory_server": str(host[0]) if host else None}


def needs_exchange_facts(raw_params: Any) -> bool:
    """Whether a control's raw parameters name an Exchange path role or use one in a template."""
    if isinstance(raw_params, str):
        return raw_params in EXCHANGE_PATH_ROLES or (
            "{" in raw_params and any(f"facts.{key}" in raw_params for key in ("mailbox_databases",
                                                                               "transport_log_paths",
                                                                               "exchange_site")))
    if isinstance(raw_params, Mapping):
        return any(needs_exchange_facts(v) for v in raw_params.values())
    if isinstance(raw_params, (list, tuple)):
        return any(needs_exchange_facts(v) for v in raw_params)
    return False


def _first_list(value: Any) -> list[Mapping[str, Any]]:
    items = value if isinstance(value, list) else [value] if value is not None else []
    return [i for i in items if isinstance(i, Mapping)]


def _folder(path: str | None) -> str | None:
    if not path:
        return None
    head, sep, _ = path.rstrip("\\").rpartition("\\")
    return head if sep else None


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _numbers(version: str | None) -> tuple[int, ...]:
    out: list[int] = []
    for part in (version or "").split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)
