"""Lab model of disk quotas: NTFS volume quotas (the ``volume_quota`` blocks, answered as
``Win32_Volume`` and ``Win32_QuotaSetting`` would), FSRM folder quotas (the ``fsrm_quota`` blocks),
``Set-MailboxDatabase`` on the mailbox databases that :mod:`.server` holds, and
``Get-MailboxStatistics`` for the mailboxes that :mod:`.audit` holds, with the sizes of the
``mailbox_statistics`` section (a mailbox not listed there is empty).

FSRM: a host without the ``fsrm`` section has no FSRM role (no SrmSvc service, no cmdlets); one
with it may still lack the PowerShell module (``module: false``, the management tools not
installed). Each quota may carry its folder's ``usage`` (default 0), which only the rehearsal's
consequences read.

What it assumes rather than knows: ``Win32_QuotaSetting.State`` numbers 0 disabled, 1 track,
2 enforce (the kind's default ``state_numbers``; unverified on Windows), and "no limit" is -1.
A folder exists when the lab knows it: a ``directories`` entry, an Exchange folder (install path,
queue, database and log folders, transport logs), an FSRM quota's folder, a volume root, or any
parent of these. It does not scan volumes, count usage per owner, or refuse writes over a limit.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...errors import InputError, SourceLocation
from ...kinds.quota import EXCHANGE_QUOTA_MAX, UNLIMITED, format_size, parse_size, size_key
from ...model import CmdletCall, Switch
from .common import (
    Breakage,
    CmdletHandler,
    LabCmdletError,
    LabScriptError,
    Organization,
    ScriptHandler,
    State,
    StateSection,
    bind,
    bool_param,
    require_server,
)

__all__ = ["CMDLETS", "QUOTA_PROPERTIES", "SCRIPTS", "SECTIONS", "consequences", "lab_quota", "over_quota"]

STATE_NUMBERS = {"disabled": 0, "track": 1, "enforce": 2}
QUOTA_PROPERTIES = ("IssueWarningQuota", "ProhibitSendQuota", "ProhibitSendReceiveQuota",
                    "RecoverableItemsWarningQuota", "RecoverableItemsQuota")
# [V] OPS Set-MailboxDatabase: the orders Exchange itself insists on.
EXCHANGE_ORDER = (("IssueWarningQuota", "ProhibitSendReceiveQuota"), ("ProhibitSendQuota", "ProhibitSendReceiveQuota"),
                  ("RecoverableItemsWarningQuota", "RecoverableItemsQuota"))
SIZE_TYPE = "Microsoft.Exchange.Data.Unlimited`1[Microsoft.Exchange.Data.ByteQuantifiedSize]"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabVolume(_Strict):
    """A volume in a lab file: its file system and NTFS quota settings."""

    file_system: Literal["NTFS", "ReFS", "FAT32", "exFAT"] = "NTFS"
    state: Literal["disabled", "track", "enforce"] = "disabled"
    default_warning_level: int | str = Field("unlimited", description="Bytes, '1GB' or unlimited.")
    default_limit: int | str = Field("unlimited", description="Bytes, '2GB' or unlimited.")
    log_warning_exceeded: bool = False
    log_limit_exceeded: bool = False


class LabFsrmQuota(_Strict):
    """An FSRM quota in a lab file (FSRM's own default is a hard limit)."""

    size: int | str = Field(description="Bytes or '10GB'.")
    soft_limit: bool = False
    disabled: bool = False
    description: str = ""
    template: str = ""
    usage: int | str = Field(0, description="How much the folder holds now: bytes or '30GB'.")


class LabFsrm(_Strict):
    """File Server Resource Manager on a lab host (absent: the role service is not installed)."""

    quotas: dict[str, LabFsrmQuota] = Field(default_factory=dict, description="Quotas by folder path.")
    service: Literal["Running", "Stopped"] = Field("Running", description="The SrmSvc service's status.")
    module: bool = Field(True, description="false: the FileServerResourceManager cmdlets are not installed.")


class LabMailboxStatistics(_Strict):
    """What Get-MailboxStatistics says of one mailbox of the lab host (by its Name in mailboxes)."""

    total_item_size: int | str = Field(0, description="TotalItemSize: bytes or '14GB'.")
    total_deleted_item_size: int | str = Field(0, description="TotalDeletedItemSize (Recoverable Items): bytes or "
                                               "'2GB'.")


def _root(path: str) -> str:
    text = str(path).strip()
    return text.rstrip("\\") + "\\"


def _norm(path: Any) -> str:
    return str(path).strip().rstrip("\\").casefold()


def _lab_size(value: Any, host: Any, key: str, *, allow_unlimited: bool = True) -> Any:
    """A size written in a lab file, or the lab file's error saying where."""
    try:
        return parse_size(value, allow_unlimited=allow_unlimited)
    except ValueError as exc:
        raise InputError(SourceLocation(f"lab host {host.computer_name}"), str(exc), key=key) from None


def _host_bytes(value: Any, host: Any, key: str) -> int:
    size = _lab_size(value, host, key)
    return -1 if size == UNLIMITED else int(size)


def _build_volumes(value: dict[str, LabVolume], host: Any) -> dict[str, Any]:
    volumes = {"C:\\": LabVolume(), **{_root(k): v for k, v in value.items()}}
    return {root: {"FileSystem": v.file_system, "State": STATE_NUMBERS[v.state],
                   "DefaultWarningLimit": _host_bytes(v.default_warning_level, host, f"quota_volumes.{root}"),
                   "DefaultLimit": _host_bytes(v.default_limit, host, f"quota_volumes.{root}"),
                   "WarningExceededNotification": v.log_warning_exceeded,
                   "ExceededNotification": v.log_limit_exceeded}
            for root, v in volumes.items()}


def _build_fsrm(value: LabFsrm | None, host: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    quotas = {}
    for path, quota in value.quotas.items():
        key = path.rstrip("\\") if len(path.rstrip("\\")) > 2 else path  # a drive root keeps its backslash
        quotas[key] = {"size": int(_lab_size(quota.size, host, f"fsrm.quotas.{path}", allow_unlimited=False)),
                       "soft_limit": quota.soft_limit, "disabled": quota.disabled,
                       "description": quota.description, "template": quota.template,
                       "usage": int(_lab_size(quota.usage, host, f"fsrm.quotas.{path}.usage", allow_unlimited=False))}
    return {"quotas": quotas, "service": value.service, "module": value.module}


def _build_statistics(value: dict[str, LabMailboxStatistics], host: Any) -> dict[str, dict[str, int]]:
    return {name: {"item": int(_lab_size(v.total_item_size, host, f"mailbox_statistics.{name}",
                                         allow_unlimited=False)),
                   "deleted": int(_lab_size(v.total_deleted_item_size, host, f"mailbox_statistics.{name}",
                                            allow_unlimited=False))}
            for name, v in value.items()}


def _parent(path: str) -> str | None:
    head, sep, _ = path.rstrip("\\").rpartition("\\")
    return head if sep else None


def known_folders(state: State) -> set[str]:
    """Every folder the lab host has (normalised), with all their parents."""
    found: list[str] = list(state.get("directories", {}))
    exchange = state.get("exchange") or {}
    install = exchange.get("install_path")
    if install:
        found.append(install)
        found.append(exchange.get("queue_path") or install.rstrip("\\") + "\\TransportRoles\\data\\Queue")
    for database in state.get("mailbox_databases", []):
        found += [p for p in (_parent(str(database.get("EdbFilePath") or "")), database.get("LogFolderPath")) if p]
    found += [str(v) for k, v in (state.get("transport_service") or {}).items() if k.endswith("LogPath") and v]
    found += list((state.get("fsrm") or {}).get("quotas") or {})
    found += list(state.get("quota_volumes", {}))
    out: set[str] = set()
    for path in found:
        current: str | None = _norm(path)
        while current:
            out.add(current)
            current = _parent(current)
    return out


def _exists(state: State, path: Any) -> bool:
    return _norm(path) in known_folders(state)


def _volume_of(state: State, path: Any) -> tuple[str, dict[str, Any]] | None:
    full = _norm(path) + "\\"
    best: tuple[str, dict[str, Any]] | None = None
    for root, volume in state.get("quota_volumes", {}).items():
        if full.startswith(root.casefold()) and (best is None or len(root) > len(best[0])):
            best = (root, volume)
    return best


def _volume_read(state: State, data: Any) -> dict[str, Any]:
    path = data["path"]
    if not _exists(state, path):
        return {"exists": False}
    found = _volume_of(state, path)
    if found is None:
        return {"exists": True, "volume": None}
    root, volume = found
    if volume["FileSystem"] != "NTFS":
        return {"exists": True, "volume": root, "file_system": volume["FileSystem"], "supported": False}
    return {"exists": True, "volume": root, "file_system": "NTFS", "supported": True,
            "state": volume["State"], "default_limit": volume["DefaultLimit"],
            "default_warning_limit": volume["DefaultWarningLimit"],
            "exceeded_notification": volume["ExceededNotification"],
            "warning_exceeded_notification": volume["WarningExceededNotification"]}


def _volume_write(state: State, data: Any) -> dict[str, Any]:
    path = data["path"]
    if not _exists(state, path):
        raise LabScriptError(f"Cannot find path '{path}' because it does not exist.")
    found = _volume_of(state, path)
    if found is None:
        raise LabScriptError(f"No volume holds {path}.")
    root, volume = found
    if volume["FileSystem"] != "NTFS":
        raise LabScriptError(f"The volume {root} has no NTFS disk quotas.")
    updated = dict(volume)
    if "state" in data:
        if data["state"] not in STATE_NUMBERS.values():
            raise LabScriptError("Set-CimInstance : Invalid parameter (State)")  # the lab knows only 0, 1, 2
        updated["State"] = int(data["state"])
    for key, prop in (("default_limit", "DefaultLimit"), ("default_warning_limit", "DefaultWarningLimit")):
        if key in data:
            updated[prop] = int(data[key])
    for key, prop in (("exceeded_notification", "ExceededNotification"),
                      ("warning_exceeded_notification", "WarningExceededNotification")):
        if key in data:
            updated[prop] = bool(data[key])
    state["quota_volumes"][root] = updated
    return {"written": True, "volume": root}


def _fsrm(state: State) -> dict[str, Any]:
    fsrm = state.get("fsrm")
    if fsrm is None or not fsrm.get("module", True):
        raise LabScriptError("The term 'Get-FsrmQuota' is not recognized as the name of a cmdlet.")
    return fsrm  # type: ignore[no-any-return]


def _quota_key(fsrm: dict[str, Any], path: Any) -> str | None:
    return next((k for k in fsrm["quotas"] if _norm(k) == _norm(path)), None)


def _fsrm_read(state: State, data: Any) -> dict[str, Any]:
    fsrm = state.get("fsrm")
    if fsrm is None:
        return {"service": None, "module": False}
    found = {"service": fsrm["service"], "module": fsrm["module"]}
    if not fsrm["module"]:
        return found
    path = data["path"]
    if not _exists(state, path):
        return {**found, "exists": False}
    key = _quota_key(fsrm, path)
    if key is None:
        return {**found, "exists": True, "quota": None}
    quota = fsrm["quotas"][key]
    return {**found, "exists": True,
            "quota": {"path": key, "size": quota["size"], "soft_limit": quota["soft_limit"],
                      "disabled": quota["disabled"], "description": quota["description"],
                      "template": quota["template"], "usage": quota["usage"]}}


def _fsrm_write(state: State, data: Any) -> dict[str, Any]:
    fsrm = _fsrm(state)
    path = str(data["path"])
    key = _quota_key(fsrm, path)
    if data.get("create"):
        if key is not None:
            raise LabScriptError(f"New-FsrmQuota : 0x80045303, The specified object already exists. ({path})")
        if not _exists(state, path):
            raise LabScriptError(f"New-FsrmQuota : 0x80070003, The system cannot find the path specified. ({path})")
        if "size" not in data:
            raise LabScriptError("New-FsrmQuota : Cannot validate argument on parameter 'Size'.")
        fsrm["quotas"][path] = {"size": int(data["size"]), "soft_limit": bool(data.get("soft_limit")),
                                "disabled": bool(data.get("disabled")), "description": str(data.get("description", "")),
                                "template": "", "usage": 0}
        return {"written": True}
    if key is None:
        raise LabScriptError(f"No FSRM quota exists on {path}.")
    quota = fsrm["quotas"][key]
    if "size" in data:
        quota["size"] = int(data["size"])
    for field in ("soft_limit", "disabled"):
        if field in data:
            quota[field] = bool(data[field])
    if "description" in data:
        quota["description"] = str(data["description"])
    return {"written": True}


def lab_quota(name: str, value: Any) -> str:
    """A quota argument as Set-MailboxDatabase binds it, stored as Exchange prints it."""
    try:
        size = size_key(value) if isinstance(value, int) else parse_size(str(value))
    except ValueError:
        raise LabCmdletError(f"Cannot process argument transformation on parameter '{name}'. Cannot convert value "
                             f"\"{value}\" to type \"{SIZE_TYPE}\".") from None
    if size != UNLIMITED and isinstance(size, int) and size > EXCHANGE_QUOTA_MAX:
        raise LabCmdletError(f"Cannot process argument transformation on parameter '{name}'. The value {value} is "
                             f"out of range: it must be at most {EXCHANGE_QUOTA_MAX} bytes or unlimited.")
    return format_size(size)


def _set_database(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = bind(call, {"Identity", *QUOTA_PROPERTIES})
    if "Identity" not in args:
        raise LabCmdletError("Cannot process command because of one or more missing mandatory parameters: Identity.")
    if "Mailbox" not in state["exchange"].get("roles", []):
        raise LabCmdletError(f"The server {state['computer_name']} has no Mailbox role (no mailbox databases).")
    index = next((i for i, d in enumerate(state["mailbox_databases"])
                  if str(d["Name"]).casefold() == str(args["Identity"]).casefold()), None)
    if index is None:
        raise LabCmdletError(f"The operation couldn't be performed because object '{args['Identity']}' couldn't be "
                             "found.")
    updated = copy.deepcopy(state["mailbox_databases"][index])
    for prop in QUOTA_PROPERTIES:
        if prop in args:
            updated[prop] = lab_quota(prop, args[prop])
    for low, high in EXCHANGE_ORDER:
        if not _ordered(updated.get(low), updated.get(high)):
            raise LabCmdletError(f"The value of property '{low}' ({updated.get(low)}) must be less than or equal to "
                                 f"that of property '{high}' ({updated.get(high)}).")
    state["mailbox_databases"][index] = updated
    return []


def _switch(args: dict[str, Any], name: str) -> bool:
    """A switch parameter: present (Switch() in process, nil from the endpoint) or $true/$false."""
    if name not in args:
        return False
    value = args[name]
    if value is None or isinstance(value, Switch):
        return True
    return bool_param(name, value)


def _statistics(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    """Get-MailboxStatistics -Server (every mailbox of the host's databases; -IncludePassive and
    -NoADLookup accepted, with no effect here: the lab holds one copy of each database) or
    -Database. Sizes come as Exchange's deserialised ByteQuantifiedSize text."""
    args = bind(call, {"Server", "Database", "IncludePassive", "NoADLookup"})
    if len({"Server", "Database"} & set(args)) != 1:
        raise LabCmdletError("Parameter set cannot be resolved using the specified named parameters.")
    for switch in ("IncludePassive", "NoADLookup"):
        _switch(args, switch)
    if "IncludePassive" in args and "Database" in args:
        raise LabCmdletError("Parameter set cannot be resolved using the specified named parameters.")
    if "Mailbox" not in state["exchange"].get("roles", []):
        raise LabCmdletError(f"The server {state['computer_name']} has no Mailbox role (no mailbox databases).")
    names = [str(d["Name"]) for d in state["mailbox_databases"]]
    if "Server" in args:
        require_server(state, args["Server"])
    else:
        wanted = str(args["Database"]).casefold()
        if wanted not in {n.casefold() for n in names}:
            raise LabCmdletError(f"The operation couldn't be performed because object '{args['Database']}' couldn't "
                                 "be found on the domain controller.")
        names = [n for n in names if n.casefold() == wanted]
    sizes = state.get("mailbox_statistics") or {}
    mailboxes = state.get("mailboxes") or []
    unknown = sorted(set(sizes) - {str(m["Name"]) for m in mailboxes})
    if unknown:
        raise LabCmdletError(f"lab file: mailbox_statistics names {', '.join(unknown)}, which no mailbox of "
                             f"{state['computer_name']} is")
    out = []
    for mailbox in mailboxes:
        database = next((n for n in names if n.casefold() == str(mailbox["Database"]).casefold()), None)
        if database is None:
            continue
        size = sizes.get(str(mailbox["Name"]), {"item": 0, "deleted": 0})
        out.append({"DisplayName": mailbox["Name"], "MailboxGuid": mailbox.get("Guid"), "Database": database,
                    "DatabaseName": database, "ServerName": state["computer_name"],
                    "TotalItemSize": format_size(size["item"]), "TotalDeletedItemSize": format_size(size["deleted"]),
                    "DisconnectDate": None, "IsArchiveMailbox": False})
    return out


def _ordered(low: Any, high: Any) -> bool:
    try:
        a, b = size_key(low), size_key(high)
    except ValueError:
        return True
    if b == UNLIMITED:
        return True
    return a != UNLIMITED and int(a) <= int(b)


SECTIONS: dict[str, StateSection] = {
    "quota_volumes": StateSection(dict[str, LabVolume], {}, _build_volumes,
                                  "Volumes by root ('D:\\'): file system and NTFS quota settings (C:\\ always "
                                  "exists)."),
    "fsrm": StateSection(LabFsrm | None, None, _build_fsrm,
                         "File Server Resource Manager and its quotas by folder (absent: not installed)."),
    "mailbox_statistics": StateSection(dict[str, LabMailboxStatistics], {}, _build_statistics,
                                       "Mailbox sizes by mailbox Name (Get-MailboxStatistics; mailboxes not listed "
                                       "are empty)."),
}
SCRIPTS: dict[tuple[str, str], ScriptHandler] = {
    ("volume_quota", "read"): _volume_read,
    ("volume_quota", "write"): _volume_write,
    ("fsrm_quota", "read"): _fsrm_read,
    ("fsrm_quota", "write"): _fsrm_write,
}
CMDLETS: dict[str, CmdletHandler] = {
    "set-mailboxdatabase": _set_database,
    "get-mailboxstatistics": _statistics,
}


# --- the rehearsal: what the hosts' quotas stop ----------------------------------------------------------
#
# The lab's own reading of Exchange's and FSRM's behaviour, written apart from the kinds (nothing here
# comes from hardening.kinds.quota's decisions):
# - [V] OPS Set-MailboxDatabase / Set-Mailbox: "If the mailbox reaches or exceeds this size, the mailbox
#   can't send or receive new messages. Messages sent to the mailbox are returned to the sender"
#   (ProhibitSendReceiveQuota), "... can't send new messages" (ProhibitSendQuota); a database's quotas
#   apply to the mailboxes "that don't have their own ... quota configured" — a mailbox with
#   UseDatabaseQuotaDefaults false has its own (Set-Mailbox). The mailbox's size is TotalItemSize [I].
# - [V] procedures §5.2 / TechNet cc734227: FSRM's quota minifilter rejects writes that would exceed a
#   hard quota, and a quota covers its folder and everything below it; that ESE then dismounts the
#   database and transport applies back pressure is [I]. A hard quota with room left is a risk, not yet a
#   breakage: only a full one (usage at or above its size) is reported.

_BYTES_TEXT = re.compile(r"\(\s*([0-9][0-9,.' \u00a0\u202f]*)\s*bytes\s*\)", re.IGNORECASE)
_SIZE_TEXT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(B|KB|MB|GB|TB)?\s*$", re.IGNORECASE)
_FACTORS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def _limit(value: Any) -> int | None:
    """A quota as the lab holds it, in bytes; None for Unlimited (or no value)."""
    if value is None or (isinstance(value, str) and value.strip().casefold() in {"unlimited", ""}):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value)
    exact = _BYTES_TEXT.search(text)
    if exact:
        return int(re.sub(r"[^0-9]", "", exact.group(1)))
    plain = _SIZE_TEXT.match(text)
    if plain:
        return int(float(plain.group(1)) * _FACTORS[(plain.group(2) or "B").upper()])
    raise ValueError(f"lab state: {value!r} is not a quota")


def _gb(size: int) -> str:
    return f"{size / (1 << 30):.2f}".rstrip("0").rstrip(".") + " GB"


def _own_quotas(mailbox: dict[str, Any]) -> bool:
    value = mailbox.get("UseDatabaseQuotaDefaults", True)
    return value is False or (isinstance(value, str) and value.strip().casefold() in {"false", "$false"})


def over_quota(host: str, state: State) -> list[Breakage]:
    """The mailboxes of one host that a quota stops: at or above the ProhibitSendReceiveQuota that
    applies to them (their database's, or their own), mail to them is refused; at or above the
    ProhibitSendQuota, they cannot send."""
    found: list[Breakage] = []
    databases = {str(d["Name"]).casefold(): d for d in state.get("mailbox_databases") or []}
    sizes = state.get("mailbox_statistics") or {}
    for mailbox in state.get("mailboxes") or []:
        name = str(mailbox["Name"])
        database = databases.get(str(mailbox.get("Database")).casefold())
        if database is None:
            continue
        own = _own_quotas(mailbox)
        limits = mailbox if own else database
        whose = "its own" if own else f"{database['Name']}'s"
        size = int((sizes.get(name) or {}).get("item", 0))
        receive, send = _limit(limits.get("ProhibitSendReceiveQuota")), _limit(limits.get("ProhibitSendQuota"))
        if receive is not None and size >= receive:
            found.append(Breakage(host, "mail-over-quota", f"{name} ({_gb(size)}) is at or above {whose} "
                                  f"ProhibitSendReceiveQuota {_gb(receive)}: mail to it is refused and its senders "
                                  "get an NDR; it cannot send either"))
        elif send is not None and size >= send:
            found.append(Breakage(host, "mail-over-quota", f"{name} ({_gb(size)}) is at or above {whose} "
                                  f"ProhibitSendQuota {_gb(send)}: it cannot send mail"))
    return found


def _exchange_data(state: State) -> list[tuple[str, str]]:
    """(what, folder) for the folders ESE and transport must be able to write."""
    out: list[tuple[str, str]] = []
    for database in state.get("mailbox_databases") or []:
        edb = _parent(str(database.get("EdbFilePath") or ""))
        if edb:
            out.append((f"mailbox database {database['Name']}", edb))
        if database.get("LogFolderPath"):
            out.append((f"the transaction logs of {database['Name']}", str(database["LogFolderPath"])))
    exchange = state.get("exchange") or {}
    if exchange.get("install_path"):
        install = str(exchange["install_path"]).rstrip("\\")
        queue = exchange.get("queue_path") or install + "\\TransportRoles\\data\\Queue"
        out.append(("the transport queue", str(queue)))
    return out


def full_hard_quotas(host: str, state: State) -> list[Breakage]:
    """Full hard FSRM quotas that cover a folder Exchange writes to."""
    found: list[Breakage] = []
    for path, quota in ((state.get("fsrm") or {}).get("quotas") or {}).items():
        if quota["soft_limit"] or quota["disabled"] or quota["usage"] < quota["size"]:
            continue
        covered = [what for what, folder in _exchange_data(state)
                   if _norm(folder) == _norm(path) or _norm(folder).startswith(_norm(path) + "\\")]
        if covered:
            found.append(Breakage(host, "fsrm-hard-quota", f"the hard FSRM quota on {path} is full "
                                  f"({_gb(quota['usage'])} of {_gb(quota['size'])}) and covers {', '.join(covered)}: "
                                  "writes there are refused (a database dismounts, transport stops accepting mail)"))
    return found


def consequences(org: Organization, hosts: Mapping[str, State]) -> list[Breakage]:
    """Mail the hosts' quotas refuse, and full hard FSRM quotas on Exchange data."""
    return [b for name, state in hosts.items() for b in (*over_quota(name, state), *full_hard_quotas(name, state))]
