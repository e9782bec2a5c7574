"""Lab model of auditing: Exchange's admin audit log configuration (``Get/Set-AdminAuditLogConfig``),
mailboxes and their audit settings (``Get/Set-Mailbox``), mailbox audit bypass associations
(``Get/Set-MailboxAuditBypassAssociation``), and the Windows advanced audit policy that the
``audit_policy`` template's blocks read and write (the ``file_sacl`` blocks in :mod:`.files` use it
too, for the File System subcategory).

Simplifications, on purpose: each lab host holds its own copy of the organisation-wide objects (the
admin audit log settings, the bypass associations), where a real organisation has one; mailboxes
live on the host whose databases hold them, and ``Get-Mailbox -Database`` knows only this host's
databases. Exchange's documented surprises are kept: ``Get-Mailbox`` without ``-ResultSize`` stops at
1000, and ``Get-MailboxAuditBypassAssociation -Identity`` with an unknown identity answers with
every account instead of an error.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...kinds.audit import (
    ACTIONS,
    EXCHANGE_2019_ACTIONS,
    SUBCATEGORIES,
    SUBCATEGORY_NAMES,
    guid_text,
    timespan_seconds,
    timespan_text,
)
from ...model import CmdletCall
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
    enum_param,
)

__all__ = ["CMDLETS", "SCRIPTS", "SECTIONS", "bypass_lost", "consequences", "policy_row", "set_policy_flags"]

# --- admin audit log ---------------------------------------------------------------------------

# [V] OPS Set-AdminAuditLogConfig / EXD admin-audit-logging: the defaults of a new organisation.
ADMIN_AUDIT_DEFAULTS: dict[str, Any] = {
    "Name": "Admin Audit Log Settings", "Identity": "Admin Audit Log Settings", "AdminAuditLogEnabled": True,
    "LogLevel": "None", "TestCmdletLoggingEnabled": False, "AdminAuditLogCmdlets": ["*"],
    "AdminAuditLogParameters": ["*"], "AdminAuditLogExcludedCmdlets": [], "AdminAuditLogAgeLimit": "90.00:00:00",
    "UnifiedAuditLogIngestionEnabled": False,
}
MULTI = ("AdminAuditLogCmdlets", "AdminAuditLogParameters", "AdminAuditLogExcludedCmdlets")


def _values(name: str, value: Any) -> list[str]:
    """A multi-valued parameter as PSRP delivers it: a list (or one string) of values, kept exactly."""
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(v, str) for v in items):
        raise LabCmdletError(f"Cannot process argument transformation on parameter '{name}'.")
    return items


def _timespan(name: str, value: Any) -> str:
    try:
        seconds = timespan_seconds(value)
    except ValueError:
        raise LabCmdletError(f"Cannot process argument transformation on parameter '{name}'. Cannot convert value "
                             f"\"{value}\" to type \"Microsoft.Exchange.Data.EnhancedTimeSpan\".") from None
    if seconds < 0:
        raise LabCmdletError(f"The value of parameter '{name}' can't be negative.")
    return timespan_text(seconds)


def _get_admin(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    bind(call, {"DomainController"})
    return [copy.deepcopy(state["admin_audit_log"])]


def _set_admin(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = bind(call, {"AdminAuditLogEnabled", "LogLevel", "AdminAuditLogAgeLimit", "AdminAuditLogCmdlets",
                       "AdminAuditLogParameters", "AdminAuditLogExcludedCmdlets", "TestCmdletLoggingEnabled",
                       "DomainController"})
    config = copy.deepcopy(state["admin_audit_log"])
    for name in ("AdminAuditLogEnabled", "TestCmdletLoggingEnabled"):
        if name in args:
            config[name] = bool_param(name, args[name])
    if "LogLevel" in args:
        config["LogLevel"] = enum_param("LogLevel", "AuditLogLevel", args["LogLevel"], ["None", "Verbose"])
    if "AdminAuditLogAgeLimit" in args:
        config["AdminAuditLogAgeLimit"] = _timespan("AdminAuditLogAgeLimit", args["AdminAuditLogAgeLimit"])
    for name in MULTI:
        if name in args:
            config[name] = _values(name, args[name])
    if config["AdminAuditLogExcludedCmdlets"] == ["*"]:
        raise LabCmdletError("AdminAuditLogExcludedCmdlets can't contain only the wildcard character (*).")
    for name in ("AdminAuditLogCmdlets", "AdminAuditLogParameters"):
        if not config[name]:
            raise LabCmdletError(f"The {name} property can't be empty.")
    state["admin_audit_log"] = config
    return []


def _build_admin(value: dict[str, Any], host: Any) -> dict[str, Any]:
    config = {**copy.deepcopy(ADMIN_AUDIT_DEFAULTS), **copy.deepcopy(value)}
    for name in MULTI:
        config[name] = _values(name, config[name])
    return config


# --- mailboxes ---------------------------------------------------------------------------------

# [V] OPS Set-Mailbox: the actions audited by default on Exchange 2019 (AuditOwner: none).
DEFAULT_AUDIT_ADMIN = ["Update", "Move", "MoveToDeletedItems", "SoftDelete", "HardDelete", "FolderBind", "SendAs",
                       "SendOnBehalf", "Create", "UpdateFolderPermissions", "UpdateCalendarDelegation",
                       "UpdateInboxRules"]
DEFAULT_AUDIT_DELEGATE = ["Create", "HardDelete", "SendAs", "UpdateFolderPermissions", "UpdateInboxRules"]
DEFAULT_RESULT_SIZE = 1000  # [V] OPS: what Get-* cmdlets return without -ResultSize


def _result_size(value: Any) -> int | None:
    if value is None:
        return DEFAULT_RESULT_SIZE
    if isinstance(value, str) and value.casefold() == "unlimited":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise LabCmdletError(f"Cannot process argument transformation on parameter 'ResultSize'. Cannot convert value "
                         f"\"{value}\" to type \"Microsoft.Exchange.Data.Unlimited`1[System.UInt32]\".")


def _limit(items: list[dict[str, Any]], size: int | None) -> list[dict[str, Any]]:
    return items if size is None else items[:size]


def _names_of(obj: dict[str, Any]) -> set[str]:
    names = {str(obj.get(k)).casefold() for k in ("Identity", "Name", "Alias", "SamAccountName", "DistinguishedName",
                                                  "Guid", "PrimarySmtpAddress", "UserPrincipalName") if obj.get(k)}
    sam = obj.get("SamAccountName") or obj.get("Alias")
    if sam:
        names.add(f"contoso\\{sam}".casefold())
    return names


def _find(items: list[dict[str, Any]], identity: Any) -> list[dict[str, Any]]:
    wanted = str(identity).casefold()
    return [item for item in items if wanted in _names_of(item)]


def _one(items: list[dict[str, Any]], identity: Any) -> dict[str, Any]:
    found = _find(items, identity)
    if not found:
        raise LabCmdletError(f"The operation couldn't be performed because object '{identity}' couldn't be found on "
                             "the domain controller.")
    if len(found) > 1:
        raise LabCmdletError(f"The operation couldn't be performed because '{identity}' matches multiple entries.")
    return found[0]


def _get_mailbox(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = bind(call, {"Identity", "Server", "Database", "ResultSize"})
    if len({"Identity", "Server", "Database"} & set(args)) > 1:
        raise LabCmdletError("Parameter set cannot be resolved using the specified named parameters.")
    size = _result_size(args.get("ResultSize"))
    mailboxes = state["mailboxes"]
    if "Server" in args:
        if str(args["Server"]).split(".")[0].casefold() != str(state["computer_name"]).casefold():
            raise LabCmdletError(f"The specified server '{args['Server']}' could not be found (this simulated endpoint "
                                 f"serves {state['computer_name']} only).")
    elif "Database" in args:
        names = {str(d["Name"]).casefold() for d in state["mailbox_databases"]}
        if str(args["Database"]).casefold() not in names:
            raise LabCmdletError(f"The operation couldn't be performed because object '{args['Database']}' couldn't "
                                 "be found on the domain controller.")
        mailboxes = [m for m in mailboxes if str(m["Database"]).casefold() == str(args["Database"]).casefold()]
    elif "Identity" in args:
        mailboxes = [_one(mailboxes, args["Identity"])]
    return copy.deepcopy(_limit(mailboxes, size))


def _actions(state: State, prop: str, value: Any) -> list[str]:
    names = _values(prop, value)
    release_2019 = not str((state.get("exchange") or {}).get("version", "15.2")).startswith("15.1")
    out = []
    for name in names:
        match = next((a for a in ACTIONS[prop] if a.casefold() == name.casefold()), None)
        if match is None or (match in EXCHANGE_2019_ACTIONS and not release_2019):
            valid = [a for a in ACTIONS[prop] if release_2019 or a not in EXCHANGE_2019_ACTIONS]
            raise LabCmdletError(f"Cannot process argument transformation on parameter '{prop}'. Cannot convert value "
                                 f"\"{name}\" to type \"MailboxAuditOperations\". Valid values: {', '.join(valid)}")
        out.append(match)
    if "None" in out and len(out) > 1:
        raise LabCmdletError(f"The value None of parameter '{prop}' can't be combined with other values.")
    return [a for a in out if a != "None"]


def _set_mailbox(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = bind(call, {"Identity", "AuditEnabled", "AuditLogAgeLimit", "AuditOwner", "AuditDelegate", "AuditAdmin"})
    if "Identity" not in args:
        raise LabCmdletError("Cannot process command because of one or more missing mandatory parameters: Identity.")
    mailbox = _one(state["mailboxes"], args["Identity"])
    updated = copy.deepcopy(mailbox)
    if "AuditEnabled" in args:
        updated["AuditEnabled"] = bool_param("AuditEnabled", args["AuditEnabled"])
    if "AuditLogAgeLimit" in args:
        updated["AuditLogAgeLimit"] = _timespan("AuditLogAgeLimit", args["AuditLogAgeLimit"])
    for prop in ACTIONS:
        if prop in args:
            updated[prop] = _actions(state, prop, args[prop])
    mailbox.clear()
    mailbox.update(updated)
    return []


def _build_mailboxes(value: list[dict[str, Any]], host: Any) -> list[dict[str, Any]]:
    out = []
    for raw in value:
        if "Name" not in raw or "Database" not in raw:
            raise ValueError("a mailbox needs Name and Database")
        name = str(raw["Name"])
        alias = str(raw.get("Alias") or name.replace(" ", "").lower())
        mailbox = {
            "Name": name, "Alias": alias, "SamAccountName": alias, "Identity": f"contoso.com/Users/{name}",
            "DistinguishedName": f"CN={name},CN=Users,DC=contoso,DC=com",
            "Guid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"lab:{host.computer_name}:{name}")),
            "PrimarySmtpAddress": f"{alias}@contoso.com", "RecipientTypeDetails": "UserMailbox",
            "AuditEnabled": False, "AuditLogAgeLimit": "90.00:00:00", "AuditAdmin": list(DEFAULT_AUDIT_ADMIN),
            "AuditDelegate": list(DEFAULT_AUDIT_DELEGATE), "AuditOwner": [], **copy.deepcopy(raw),
        }
        mailbox["AuditLogAgeLimit"] = timespan_text(timespan_seconds(mailbox["AuditLogAgeLimit"]))
        for prop in ACTIONS:
            mailbox[prop] = [a for a in _values(prop, mailbox[prop]) if a != "None"]
        out.append(mailbox)
    return out


# --- mailbox audit bypass ----------------------------------------------------------------------


def _associations(state: State) -> list[dict[str, Any]]:
    """Every user (and listed computer) account: those in the lab file, then every mailbox's owner."""
    explicit = state["mailbox_audit_bypass"]
    listed = {str(a["Identity"]).casefold() for a in explicit}
    derived = [{"Name": m["Name"], "SamAccountName": m["SamAccountName"], "Identity": m["Identity"],
                "DistinguishedName": m["DistinguishedName"], "Guid": m["Guid"], "ObjectClass": "user",
                "AuditBypassEnabled": False}
               for m in state["mailboxes"] if str(m["Identity"]).casefold() not in listed]
    return [*explicit, *derived]


def _get_bypass(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = bind(call, {"Identity", "ResultSize", "DomainController"})
    everyone = _associations(state)
    size = _result_size(args.get("ResultSize"))
    if "Identity" in args:
        found = _find(everyone, args["Identity"])
        # [V] OPS: "a non-existent value for the Identity parameter returns *all* objects".
        return copy.deepcopy(found if found else _limit(everyone, size))
    return copy.deepcopy(_limit(everyone, size))


def _set_bypass(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = bind(call, {"Identity", "AuditBypassEnabled", "DomainController"})
    if "Identity" not in args:
        raise LabCmdletError("Cannot process command because of one or more missing mandatory parameters: Identity.")
    account = _one(_associations(state), args["Identity"])
    enabled = bool_param("AuditBypassEnabled", args.get("AuditBypassEnabled"))
    explicit = state["mailbox_audit_bypass"]
    stored = next((a for a in explicit if a["Identity"] == account["Identity"]), None)
    if stored is None:
        stored = copy.deepcopy(account)
        explicit.append(stored)
    stored["AuditBypassEnabled"] = enabled
    return []


def _build_bypass(value: list[dict[str, Any]], host: Any) -> list[dict[str, Any]]:
    out = []
    for raw in value:
        if "Name" not in raw:
            raise ValueError("a bypass association needs Name")
        name = str(raw["Name"])
        computer = raw.get("ObjectClass") == "computer"
        sam = str(raw.get("SamAccountName") or (name + "$" if computer else name))
        container = "Computers" if computer else "Users"
        out.append({"Name": name, "SamAccountName": sam, "Identity": f"contoso.com/{container}/{name}",
                    "DistinguishedName": f"CN={name},CN={container},DC=contoso,DC=com",
                    "Guid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"lab:account:{name}")), "ObjectClass": "user",
                    "AuditBypassEnabled": False, **copy.deepcopy(raw)})
    return out


def _build_needed(value: dict[str, str], host: Any) -> dict[str, str]:
    return dict(value)


def bypass_lost(host: str, state: State) -> list[Breakage]:
    """The service accounts that need their mailbox audit bypass (``bypass_needed``) and no longer
    have it on this host's copy of the organisation's associations.

    What it models: [V] OPS Set-MailboxAuditBypassAssociation — bypass exists for "service accounts
    for applications that access mailboxes frequently", and without it their access "to any mailbox"
    is logged. That the entries land in each mailbox's Recoverable Items\\Audits folder and count
    toward its Recoverable Items quota is [V] where they are stored (EXD) and [I] for the quota
    (procedures §3.2). Which accounts need bypass is the lab file's say (``bypass_needed``), as it is
    a site's: nothing here reads the kind's parameters."""
    enabled = {str(a.get("Name")).casefold(): a.get("AuditBypassEnabled")
               for a in state.get("mailbox_audit_bypass") or []}
    found: list[Breakage] = []
    for account, why in (state.get("bypass_needed") or {}).items():
        value = enabled.get(account.casefold())
        if value is True or (isinstance(value, str) and value.strip().casefold() == "true"):
            continue
        found.append(Breakage(host, "bypass-removed", f"{account} no longer bypasses mailbox audit logging, yet {why}: "
                              "each mailbox it opens now logs its access in that mailbox's Recoverable Items\\Audits "
                              "folder, which counts toward the mailbox's Recoverable Items quota"))
    return found


def consequences(org: Organization, hosts: Mapping[str, State]) -> list[Breakage]:
    """Service accounts that lost the mailbox audit bypass they need."""
    return [b for name, state in hosts.items() for b in bypass_lost(name, state)]


# --- the advanced audit policy -----------------------------------------------------------------

Setting = Literal["none", "success", "failure", "both"]
SETTING_VALUES = {"none": 0, "success": 1, "failure": 2, "both": 3}
# auditpol's "Inclusion Setting" texts by language ([V] the German ones: AuditPolicyDsc#42 thread,
# mondoohq/mql#8286), to show that the kinds do not depend on them.
INCLUSION_TEXTS = {
    "en": ("No Auditing", "Success", "Failure", "Success and Failure"),
    "de": ("Keine Überwachung", "Erfolg", "Fehler", "Erfolg und Fehler"),
}
# Roughly what a Windows Server 2016-2022 member server audits out of the box [I].
WINDOWS_DEFAULTS: dict[str, Setting] = {
    "Security State Change": "success", "System Integrity": "both", "Other System Events": "both",
    "Logon": "both", "Logoff": "success", "Account Lockout": "success", "Special Logon": "success",
    "Network Policy Server": "both", "Audit Policy Change": "success", "Authentication Policy Change": "success",
    "User Account Management": "success", "Security Group Management": "success",
}


class LabAuditPolicy(BaseModel):
    """The advanced audit policy of a lab host."""

    model_config = ConfigDict(extra="forbid")
    subcategories: dict[str, Setting] = Field(
        default_factory=dict, description="Subcategory (English name or GUID) → none/success/failure/both, over "
        "the Windows defaults.")
    force_subcategory_settings: bool | None = Field(
        None, description="SCENoApplyLegacyAuditPolicy: true 1, false 0, none = the value is absent.")
    language: Literal["en", "de"] = Field("en", description="The language auditpol prints its settings in.")
    backup_values: bool = Field(True, description="false: auditpol's backup gives no numbers (the kinds then "
                                "read the English text, and fail on any other language).")


def _guid_of(name: str) -> str:
    if name in SUBCATEGORIES:
        return SUBCATEGORIES[name]
    key = guid_text(name)
    if key in SUBCATEGORY_NAMES:
        return key
    raise ValueError(f"unknown audit subcategory {name!r}")


def _build_policy(value: LabAuditPolicy, host: Any) -> dict[str, Any]:
    settings = {guid: 0 for guid in SUBCATEGORY_NAMES}
    for name, setting in {**WINDOWS_DEFAULTS, **value.subcategories}.items():
        settings[_guid_of(name)] = SETTING_VALUES[setting]
    force = value.force_subcategory_settings
    return {"subcategories": settings, "force": None if force is None else int(force), "language": value.language,
            "backup_values": value.backup_values}


def policy_row(state: State, guid: str) -> dict[str, Any]:
    """One subcategory as the templates' read blocks report it: GUID, name, text and number."""
    policy = state["audit_policy"]
    value = policy["subcategories"][guid]
    return {"guid": guid, "name": SUBCATEGORY_NAMES[guid], "setting": INCLUSION_TEXTS[policy["language"]][value],
            "value": value if policy["backup_values"] else None}


def set_policy_flags(state: State, guid: str, success: bool | None, failure: bool | None) -> None:
    """``auditpol /set /subcategory:{guid}`` with the flags given (None leaves a flag as it is)."""
    settings = state["audit_policy"]["subcategories"]
    key = guid_text(guid)
    if key not in settings:
        raise LabScriptError(f"auditpol.exe /set /subcategory:{{{key}}} failed (exit code 87): Error 0x00000057 "
                             "occurred: The parameter is incorrect.")
    value = settings[key]
    if success is not None:
        value = (value | 1) if success else (value & ~1)
    if failure is not None:
        value = (value | 2) if failure else (value & ~2)
    settings[key] = value


def _read_policy(state: State, data: Any) -> dict[str, Any]:
    return {"subcategories": [policy_row(state, guid) for guid in state["audit_policy"]["subcategories"]],
            "force_subcategory_settings": state["audit_policy"]["force"]}


def _write_policy(state: State, data: Any) -> dict[str, Any]:
    entries = data.get("subcategories") or []
    for entry in entries if isinstance(entries, list) else [entries]:
        set_policy_flags(state, str(entry["guid"]), entry.get("success"), entry.get("failure"))
    if "force_subcategory_settings" in data:
        state["audit_policy"]["force"] = int(bool(data["force_subcategory_settings"]))
    return {"written": True}


SECTIONS: dict[str, StateSection] = {
    "admin_audit_log": StateSection(dict[str, Any], {}, _build_admin,
                                    "Get-AdminAuditLogConfig properties over Exchange's defaults (one copy per "
                                    "lab host; a real organisation has one)."),
    "mailboxes": StateSection(list[dict[str, Any]], [], _build_mailboxes,
                              "Mailboxes with Exchange's property names (Name and Database required; audit "
                              "settings default to Exchange 2019's)."),
    "mailbox_audit_bypass": StateSection(list[dict[str, Any]], [], _build_bypass,
                                         "Accounts' mailbox audit bypass associations (Name; AuditBypassEnabled); "
                                         "every mailbox owner has one too (false)."),
    "bypass_needed": StateSection(dict[str, str], {}, _build_needed,
                                  "Accounts that need their mailbox audit bypass (service accounts that open every "
                                  "mailbox), by Name, with what depends on it; only the rehearsal reads it."),
    "audit_policy": StateSection(LabAuditPolicy, LabAuditPolicy(), _build_policy,
                                 "The advanced audit policy: subcategories over Windows' defaults, the force "
                                 "option, auditpol's language."),
}
CMDLETS: dict[str, CmdletHandler] = {
    "get-adminauditlogconfig": _get_admin,
    "set-adminauditlogconfig": _set_admin,
    "get-mailbox": _get_mailbox,
    "set-mailbox": _set_mailbox,
    "get-mailboxauditbypassassociation": _get_bypass,
    "set-mailboxauditbypassassociation": _set_bypass,
}
SCRIPTS: dict[tuple[str, str], ScriptHandler] = {
    ("audit_policy", "read"): _read_policy,
    ("audit_policy", "write"): _write_policy,
}
