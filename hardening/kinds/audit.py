"""Auditing kinds (guide: "Enable auditing").

Exchange kinds (cmdlets over the ``Microsoft.Exchange`` endpoint): the administrator audit log
(``admin_audit_log``), mailbox audit logging per mailbox (``mailbox_audit``) and the accounts that
bypass it (``mailbox_audit_bypass``). Script kinds (Windows PowerShell 5.1): the advanced audit
policy by subcategory GUID (``audit_policy``, ``templates/audit_policy.ps1.j2``) and audit entries
(SACLs) on mail directories (``file_sacl``, ``templates/file_sacl.ps1.j2``).

Organisation-wide objects. The admin audit log configuration and the bypass associations exist
once per Exchange organisation, however many servers a playbook runs on; so do the mailboxes of
``mailbox_audit`` with ``scope: organization`` or ``databases``. Each of these kinds has
``org_host``, a host-name pattern: only matching hosts read and write the object, the others
report ``not_applicable`` with a sentence naming the pattern. Its default ``*`` lets every host
act (each read is one cmdlet call; a drifted object is written by every host that saw it
drifted, with identical values, each write verified); set it to one host (the shipped playbook
takes it from the variable ``audit_org_host``) to read and write it once per run.

There is no on-premises organisation-wide switch for mailbox auditing: ``Set-OrganizationConfig
-AuditDisabled`` exists in Exchange Online only [V] (OPS Set-OrganizationConfig; the cmdlet
catalogue lists the parameter for Exchange Online alone), so no kind writes it; new mailboxes
start with ``AuditEnabled $false`` and are caught by the next run of ``mailbox_audit``.
"""

from __future__ import annotations

import fnmatch
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..compare import BOOL, SID_NAMES, TEXT, TEXT_SET, Comparer, State, sid_of, split_list
from ..model import Call, CmdletCall, ScriptCall
from ..render import cmdlet_text
from .base import Caveat, Context, ControlFailed, Kind, KindParams, NotApplicable, canonical_names, host_objects
from .files import (
    APPLIES_TO,
    RIGHTS,
    AppliesTo,
    PathParams,
    RightName,
    _one_or_list,
    normalise_mask,
    rights_names,
    target_paths,
)
from .files import MODERN as WINDOWS_MODERN
from .platforms import is_edge_transport
from .transport import MODERN as EXCHANGE_MODERN

__all__ = [
    "FAMILY_KINDS",
    "FILE_SYSTEM_GUID",
    "SUBCATEGORIES",
    "TIMESPAN",
    "AdminAuditLog",
    "AuditPolicy",
    "FileSacl",
    "MailboxAudit",
    "MailboxAuditBypass",
    "timespan_seconds",
    "timespan_text",
]

# --- time spans ----------------------------------------------------------------------------------

_TIMESPAN = re.compile(r"^(-)?(?:(\d+)\.)?(\d+):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?$")
_DURATION = re.compile(r"^(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
DAY = 86400


def timespan_seconds(value: Any) -> float:
    """Seconds of a time span as Exchange shows an EnhancedTimeSpan (``90.00:00:00``, ``12:00:00``),
    an xs:duration (``P90D``, how PSRP carries a .NET TimeSpan), a deserialised TimeSpan property
    bag (``TotalSeconds``/``Ticks``) or a whole number of days."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a time span: {value!r}")
    if isinstance(value, (int, float)):
        return float(value) * DAY
    if isinstance(value, Mapping):
        if value.get("TotalSeconds") is not None:
            return float(value["TotalSeconds"])
        if value.get("Ticks") is not None:
            return int(value["Ticks"]) / 10_000_000
        raise ValueError(f"not a time span: {value!r}")
    text = str(value).strip()
    if text.isdigit():
        return float(text) * DAY
    match = _TIMESPAN.match(text)
    if match:
        sign, days, hours, minutes, seconds, fraction = match.groups()
        total = (int(days or 0) * DAY + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
                 + (int(fraction.ljust(7, "0")) / 10_000_000 if fraction else 0.0))
        return -total if sign else total
    match = _DURATION.match(text)
    if match and text not in {"P", "-P", "PT", "-PT"}:
        sign, days, hours, minutes, seconds = match.groups()
        total = int(days or 0) * DAY + int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
        return -total if sign else total
    raise ValueError(f"not a time span: {value!r}")


def timespan_text(seconds: float) -> str:
    """A time span the way Exchange writes and shows it: ``90.00:00:00``, ``12:00:00``."""
    whole = round(seconds)
    days, rest = divmod(whole, DAY)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}.{clock}" if days else clock


TIMESPAN = Comparer("time span (EnhancedTimeSpan, compared in seconds)", timespan_seconds)


def _longer_kept(wanted_days: int, seen: Any, mode: str) -> Any:
    """The age limit to desire: in at_least mode a longer observed limit is kept as it is (lowering
    an age limit deletes the older entries); otherwise the wanted limit."""
    wanted = timespan_text(wanted_days * DAY)
    if mode == "at_least" and seen is not None:
        try:
            if timespan_seconds(seen) >= wanted_days * DAY:
                return seen
        except ValueError:
            pass
    return wanted


# --- organisation-wide objects -------------------------------------------------------------------

ORG_HOST_PATTERN = r"^[A-Za-z0-9*?._-]{1,255}$"
ORG_HOST_DESCRIPTION = (
    "Host-name pattern (glob on the inventory name or computer name, case-insensitive) of the hosts "
    "that read and write this organisation-wide object; other hosts report not_applicable. '*' (the "
    "default) lets every host act; name one host to read and write it once per run."
)


def check_org_host(pattern: str, ctx: Context, what: str) -> None:
    """Not applicable on hosts that do not match ``org_host`` (the object is organisation-wide)."""
    wanted = pattern.casefold()
    if not any(fnmatch.fnmatchcase(name.casefold(), wanted) for name in (ctx.host, ctx.server)):
        raise NotApplicable(f"{what} is organisation-wide and managed from hosts matching org_host "
                            f"{pattern!r}, not from {ctx.host}")


def _strings(value: Any) -> list[str]:
    """A multi-valued property as a list of its values (a list arrives as one; a string is split)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None and str(v) != ""]
    return split_list(value)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _optional_one_or_list(schema: dict[str, Any]) -> None:
    """The JSON Schema of an optional list that also takes one bare item (as the validator does)."""
    for branch in schema.get("anyOf", []):
        if branch.get("type") == "array":
            branch["anyOf"] = [dict(branch["items"]), {k: v for k, v in branch.items() if k != "anyOf"}]
            for key in [k for k in branch if k != "anyOf"]:
                del branch[key]


def _no_empty_strings(values: list[str] | None) -> list[str] | None:
    if values is not None and any(v == "" for v in values):
        raise ValueError("an empty string is not a value here")
    return values


# --- admin_audit_log ---------------------------------------------------------------------------

ADMIN_AUDIT_OBJECT = "Admin Audit Log Settings"


class AdminAuditLogParams(KindParams):
    """Parameters of ``admin_audit_log``."""

    admin_audit_log_enabled: bool | None = Field(
        None, description="AdminAuditLogEnabled: log every cmdlet that changes something (not Get-*).")
    log_level: Literal["None", "Verbose"] | None = Field(
        None, description="LogLevel: Verbose also logs each changed property's old and new value.")
    admin_audit_log_age_limit_days: int | None = Field(
        None, ge=1, description="AdminAuditLogAgeLimit in days (Exchange's default is 90). 0 would purge the log "
        "and is refused.")
    age_limit_mode: Literal["at_least", "exact"] = Field(
        "at_least", description="at_least: a longer age limit already set is kept (lowering it deletes older "
        "entries); exact: the limit is set to exactly this.")
    admin_audit_log_cmdlets: list[str] | None = Field(
        None, min_length=1, description="AdminAuditLogCmdlets, compared as a set; ['*'] audits every cmdlet.",
        json_schema_extra=_optional_one_or_list)
    admin_audit_log_parameters: list[str] | None = Field(
        None, min_length=1, description="AdminAuditLogParameters, compared as a set; ['*'] records every parameter.",
        json_schema_extra=_optional_one_or_list)
    admin_audit_log_excluded_cmdlets: list[str] | None = Field(
        None, description="AdminAuditLogExcludedCmdlets, compared as a set; [] clears the list (written as $null).",
        json_schema_extra=_optional_one_or_list)
    test_cmdlet_logging_enabled: bool | None = Field(
        None, description="TestCmdletLoggingEnabled: also log Test-* cmdlets (verbose; Exchange's default is false).")
    org_host: str = Field("*", pattern=ORG_HOST_PATTERN, description=ORG_HOST_DESCRIPTION)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: Any) -> Any:
        return canonical_names(value, ("None", "Verbose"))

    @field_validator("admin_audit_log_cmdlets", "admin_audit_log_parameters", "admin_audit_log_excluded_cmdlets",
                     mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _one_or_many(value)

    @field_validator("admin_audit_log_cmdlets", "admin_audit_log_parameters", "admin_audit_log_excluded_cmdlets")
    @classmethod
    def _not_empty(cls, value: list[str] | None) -> list[str] | None:
        return _no_empty_strings(value)

    @model_validator(mode="after")
    def _something(self) -> AdminAuditLogParams:
        if self.admin_audit_log_excluded_cmdlets == ["*"]:
            raise ValueError("admin_audit_log_excluded_cmdlets cannot be only '*' (Exchange refuses it); "
                             "set admin_audit_log_enabled: false instead")
        if all(getattr(self, name) is None for name in ADMIN_AUDIT_PROPERTIES):
            raise ValueError("set at least one of " + ", ".join(ADMIN_AUDIT_PROPERTIES))
        return self


# parameter → Exchange property, in the order Set-AdminAuditLogConfig is written
ADMIN_AUDIT_PROPERTIES = {
    "admin_audit_log_enabled": "AdminAuditLogEnabled",
    "log_level": "LogLevel",
    "admin_audit_log_age_limit_days": "AdminAuditLogAgeLimit",
    "admin_audit_log_cmdlets": "AdminAuditLogCmdlets",
    "admin_audit_log_parameters": "AdminAuditLogParameters",
    "admin_audit_log_excluded_cmdlets": "AdminAuditLogExcludedCmdlets",
    "test_cmdlet_logging_enabled": "TestCmdletLoggingEnabled",
}
MULTI_VALUED = ("AdminAuditLogCmdlets", "AdminAuditLogParameters", "AdminAuditLogExcludedCmdlets")


class AdminAuditLog(Kind[AdminAuditLogParams]):
    """Exchange's administrator audit log: ``AdminAuditLogEnabled``, ``LogLevel``,
    ``AdminAuditLogAgeLimit``, the audited cmdlets and parameters (``*`` for all), the excluded
    cmdlets and ``TestCmdletLoggingEnabled``.

    Reads ``Get-AdminAuditLogConfig``; writes ``Set-AdminAuditLogConfig`` with only the properties
    that differ, then re-reads. Neither cmdlet takes ``-Identity`` or ``-Server`` (the object is
    the organisation's single ``Admin Audit Log Settings``; ``Set-AdminAuditLogConfig -Identity`` is
    "reserved for internal Microsoft use" [V] OPS), so see ``org_host`` for several Exchange hosts.
    Age limits are compared as time spans (``90.00:00:00`` equals 90 days however written); in
    ``at_least`` mode a longer limit is kept, because lowering it deletes older entries [V] OPS.
    No restart; open shells pick the change up within 60 minutes and the config replicates
    through AD [V] EXD. STIG EX16-MB-000010 (logging enabled), EX16-MB-000060 (parameters ``*``).
    """

    name = "admin_audit_log"
    summary = "Exchange administrator audit log: enabled, level, age limit, audited cmdlets and parameters"
    params_model = AdminAuditLogParams
    channel = "exchange"
    variants = (EXCHANGE_MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {
        "AdminAuditLogEnabled": BOOL, "LogLevel": TEXT, "AdminAuditLogAgeLimit": TIMESPAN,
        "AdminAuditLogCmdlets": TEXT_SET, "AdminAuditLogParameters": TEXT_SET,
        "AdminAuditLogExcludedCmdlets": TEXT_SET, "TestCmdletLoggingEnabled": BOOL,
    }
    # No -Identity or -Server exists on these cmdlets: the object is one per organisation.
    org_wide_cmdlets: ClassVar[frozenset[str]] = frozenset({"Get-AdminAuditLogConfig", "Set-AdminAuditLogConfig"})

    def read(self, params: AdminAuditLogParams, ctx: Context) -> tuple[Call, ...]:
        check_org_host(params.org_host, ctx, "the admin audit log configuration")
        return (CmdletCall("Get-AdminAuditLogConfig"),)

    def observe(self, params: AdminAuditLogParams, ctx: Context, values: Sequence[Any]) -> State:
        check_org_host(params.org_host, ctx, "the admin audit log configuration")
        objects = host_objects(values[0])
        if len(objects) != 1:
            raise ControlFailed(f"Get-AdminAuditLogConfig returned {len(objects)} objects, expected 1")
        config = objects[0]
        state: dict[str, Any] = {}
        for prop in ADMIN_AUDIT_PROPERTIES.values():
            state[prop] = _strings(config.get(prop)) if prop in MULTI_VALUED else config.get(prop)
        return {ADMIN_AUDIT_OBJECT: state}

    def desire(self, params: AdminAuditLogParams, ctx: Context, observed: State | None) -> State:
        seen = (observed or {}).get(ADMIN_AUDIT_OBJECT) or {}
        want: dict[str, Any] = {}
        for field, prop in ADMIN_AUDIT_PROPERTIES.items():
            value = getattr(params, field)
            if value is None:
                continue
            if prop == "AdminAuditLogAgeLimit":
                value = _longer_kept(value, seen.get(prop) if observed is not None else None, params.age_limit_mode)
            want[prop] = list(value) if isinstance(value, list) else value
        return {ADMIN_AUDIT_OBJECT: want}

    def plan_notes(self, params: AdminAuditLogParams) -> tuple[str, ...]:
        if params.admin_audit_log_age_limit_days is not None and params.age_limit_mode == "at_least":
            return (f"AdminAuditLogAgeLimit: set to {params.admin_audit_log_age_limit_days} days only where it is "
                    "shorter; a longer limit is kept (lowering it deletes older entries)",)
        return ()

    def write(self, params: AdminAuditLogParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        seen = (observed or {}).get(ADMIN_AUDIT_OBJECT) or {}
        args: list[tuple[str, Any]] = []
        for prop, value in (desired[ADMIN_AUDIT_OBJECT] or {}).items():
            if observed is not None and self.comparers[prop].equal(value, seen.get(prop)):
                continue
            if prop in MULTI_VALUED:
                # Exchange clears a multi-valued property with $null; @() would not bind.
                value = tuple(value) if value else None
            args.append((prop, value))
        return (CmdletCall("Set-AdminAuditLogConfig", tuple(args)),) if args else ()


# --- mailbox_audit -----------------------------------------------------------------------------

# [V] OPS Set-Mailbox, on-premises values (cloud-only ones left out).
AdminAction = Literal[
    "Copy", "Create", "FolderBind", "HardDelete", "MessageBind", "Move", "MoveToDeletedItems", "SendAs",
    "SendOnBehalf", "SoftDelete", "Update", "AddFolderPermissions", "ModifyFolderPermissions",
    "RemoveFolderPermissions", "UpdateFolderPermissions", "UpdateCalendarDelegation", "UpdateInboxRules", "None",
]
DelegateAction = Literal[
    "Create", "FolderBind", "HardDelete", "Move", "MoveToDeletedItems", "SendAs", "SendOnBehalf", "SoftDelete",
    "Update", "AddFolderPermissions", "ModifyFolderPermissions", "RemoveFolderPermissions",
    "UpdateFolderPermissions", "UpdateInboxRules", "None",
]
OwnerAction = Literal[
    "Create", "HardDelete", "MailboxLogin", "Move", "MoveToDeletedItems", "SoftDelete", "Update",
    "AddFolderPermissions", "ModifyFolderPermissions", "RemoveFolderPermissions", "None",
]
ACTIONS: dict[str, tuple[str, ...]] = {
    "AuditAdmin": get_args(AdminAction), "AuditDelegate": get_args(DelegateAction),
    "AuditOwner": get_args(OwnerAction),
}
# [V] OPS Set-Mailbox: "Available only in Exchange 2019 and the cloud-based service".
EXCHANGE_2019_ACTIONS = frozenset({"AddFolderPermissions", "ModifyFolderPermissions", "RemoveFolderPermissions",
                                   "UpdateFolderPermissions", "UpdateCalendarDelegation", "UpdateInboxRules"})
ACTION_FIELDS = {"audit_admin": "AuditAdmin", "audit_delegate": "AuditDelegate", "audit_owner": "AuditOwner"}


def _canonical_actions(names: Sequence[str], prop: str) -> list[str]:
    """Actions in the documented order, without None (an empty set is how None reads)."""
    folded = {n.casefold() for n in names}
    known = [a for a in ACTIONS[prop] if a.casefold() in folded and a != "None"]
    unknown = sorted(n for n in names if n.casefold() not in {a.casefold() for a in ACTIONS[prop]})
    return known + unknown


class MailboxAuditParams(KindParams):
    """Parameters of ``mailbox_audit``."""

    scope: Literal["server", "databases", "organization"] = Field(
        "server", description="Which mailboxes: server (Get-Mailbox -Server <this host>), databases (each of "
        "`databases`), organization (every mailbox, from the org_host hosts only).")
    databases: list[str] | None = Field(None, description="Mailbox database names (scope databases).")
    audit_enabled: bool | None = Field(None, description="AuditEnabled (false on-premises by default).")
    audit_log_age_limit_days: int | None = Field(
        None, ge=1, description="AuditLogAgeLimit in days (default 90; 0 would remove every entry and is refused).")
    age_limit_mode: Literal["at_least", "exact"] = Field(
        "at_least", description="at_least: a longer age limit already set is kept; exact: set exactly this.")
    audit_owner: list[OwnerAction] | None = Field(None, description="AuditOwner actions (the owner's own).",
                                                  json_schema_extra=_optional_one_or_list)
    audit_delegate: list[DelegateAction] | None = Field(None, description="AuditDelegate actions.",
                                                        json_schema_extra=_optional_one_or_list)
    audit_admin: list[AdminAction] | None = Field(None, description="AuditAdmin actions.",
                                                  json_schema_extra=_optional_one_or_list)
    actions_mode: Literal["at_least", "exact"] = Field(
        "at_least", description="at_least: these actions are audited and the mailbox's others are kept; exact: "
        "exactly these ([None] alone audits nothing).")
    org_host: str = Field("*", pattern=ORG_HOST_PATTERN, description=ORG_HOST_DESCRIPTION + " Only for scope "
                          "databases and organization (scope server splits the mailboxes by host already).")

    @field_validator("audit_owner", "audit_delegate", "audit_admin", mode="before")
    @classmethod
    def _action_names(cls, value: Any, info: ValidationInfo) -> Any:
        return canonical_names(_one_or_many(value), ACTIONS[ACTION_FIELDS[str(info.field_name)]])

    @model_validator(mode="after")
    def _consistent(self) -> MailboxAuditParams:
        if (self.scope == "databases") != bool(self.databases):
            raise ValueError("databases is required with scope databases, and only there")
        if self.databases and len({d.casefold() for d in self.databases}) != len(self.databases):
            raise ValueError("databases names a database twice")
        if self.scope == "server" and self.org_host != "*":
            raise ValueError("org_host applies to scope databases or organization, not server")
        for field in ACTION_FIELDS:
            actions = getattr(self, field)
            if actions and "None" in actions and (len(actions) > 1 or self.actions_mode != "exact"):
                raise ValueError(f"{field}: None means no auditing; use it alone, with actions_mode exact")
        if all(getattr(self, f) is None for f in ("audit_enabled", "audit_log_age_limit_days", *ACTION_FIELDS)):
            raise ValueError("set at least one of audit_enabled, audit_log_age_limit_days, audit_owner, "
                             "audit_delegate, audit_admin")
        return self


class MailboxAudit(Kind[MailboxAuditParams]):
    """Mailbox audit logging per mailbox: ``AuditEnabled``, ``AuditLogAgeLimit`` and the audited
    ``AuditOwner``/``AuditDelegate``/``AuditAdmin`` actions (compared as sets).

    Reads every selected mailbox with one ``Get-Mailbox ... -ResultSize Unlimited`` per server,
    database or organisation (never one call per mailbox; without ``-ResultSize`` Exchange stops
    at 1000); writes one ``Set-Mailbox -Identity`` per mailbox that differs, with only the
    parameters that differ. Cost [I]: each mailbox object crosses whole (a few KB), so scope
    organization on a large organisation moves megabytes; prefer scope server on each host.
    ``-Server`` selects by the mailbox's home server (ServerName), which in a DAG need not be the
    server holding the active copy [I]; scope organization on one host covers every mailbox.
    On-premises mailboxes start with ``AuditEnabled $false`` [V] OPS, and there is no org-wide
    switch (``Set-OrganizationConfig -AuditDisabled`` is Exchange Online only [V]): run this
    regularly to catch new mailboxes. Actions added in Exchange 2019 (``*FolderPermissions``,
    ``UpdateCalendarDelegation``, ``UpdateInboxRules``) fail the control on Exchange 2016.
    Audit entries count towards the mailbox's Recoverable Items quota [I]. No restart.
    """

    name = "mailbox_audit"
    summary = "Mailbox audit logging per mailbox: AuditEnabled, age limit, owner/delegate/admin actions"
    params_model = MailboxAuditParams
    channel = "exchange"
    variants = (EXCHANGE_MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {
        "AuditEnabled": BOOL, "AuditLogAgeLimit": TIMESPAN, "AuditOwner": TEXT_SET, "AuditDelegate": TEXT_SET,
        "AuditAdmin": TEXT_SET,
    }
    # Scope databases names its object with -Database, scope organization has none to name.
    org_wide_cmdlets: ClassVar[frozenset[str]] = frozenset({"Get-Mailbox"})

    def _where(self, params: MailboxAuditParams, ctx: Context) -> str:
        if params.scope == "server":
            return f"on {ctx.server}"
        if params.scope == "databases":
            return f"in {', '.join(params.databases or ())}"
        return "in the organisation"

    def read(self, params: MailboxAuditParams, ctx: Context) -> tuple[Call, ...]:
        unlimited = ("ResultSize", "Unlimited")
        if params.scope == "server":
            return (CmdletCall("Get-Mailbox", (("Server", ctx.server), unlimited)),)
        check_org_host(params.org_host, ctx, f"auditing of the mailboxes {self._where(params, ctx)}")
        if params.scope == "databases":
            return tuple(CmdletCall("Get-Mailbox", (("Database", db), unlimited)) for db in params.databases or ())
        return (CmdletCall("Get-Mailbox", (unlimited,)),)

    def observe(self, params: MailboxAuditParams, ctx: Context, values: Sequence[Any]) -> State:
        if params.scope != "server":
            check_org_host(params.org_host, ctx, f"auditing of the mailboxes {self._where(params, ctx)}")
        mailboxes: dict[str, Mapping[str, Any]] = {}
        for call, value in zip(self.read(params, ctx), values, strict=True):
            if value is None:  # no answer at all (an empty database answers with an empty list)
                text = cmdlet_text(call) if isinstance(call, CmdletCall) else "Get-Mailbox"
                raise ControlFailed(f"{text} gave no answer")
            for mailbox in host_objects(value):
                mailboxes.setdefault(str(mailbox.get("Identity")), mailbox)
        if not mailboxes:
            raise NotApplicable(f"no mailboxes {self._where(params, ctx)}")
        state: dict[str, Any] = {}
        for identity in sorted(mailboxes, key=str.casefold):
            mailbox = mailboxes[identity]
            state[identity] = {
                "AuditEnabled": mailbox.get("AuditEnabled"),
                "AuditLogAgeLimit": mailbox.get("AuditLogAgeLimit"),
                **{prop: _canonical_actions(_strings(mailbox.get(prop)), prop) for prop in ACTIONS},
            }
        return state

    def desire(self, params: MailboxAuditParams, ctx: Context, observed: State | None) -> State:
        if ctx.facts.exchange_release == "2016":
            for field, prop in ACTION_FIELDS.items():
                newer = sorted(EXCHANGE_2019_ACTIONS & set(getattr(params, field) or ()))
                if newer:
                    raise ControlFailed(f"{prop} {', '.join(newer)}: only Exchange 2019 and later have "
                                        f"{'this action' if len(newer) == 1 else 'these actions'}; {ctx.server} "
                                        "runs Exchange 2016")
        targets = observed if observed is not None else {
            f"<each mailbox {self._where(params, ctx)} that differs>": {}}
        desired: dict[str, Any] = {}
        for identity, seen in targets.items():
            seen = seen or {}
            want: dict[str, Any] = {}
            if params.audit_enabled is not None:
                want["AuditEnabled"] = params.audit_enabled
            if params.audit_log_age_limit_days is not None:
                want["AuditLogAgeLimit"] = _longer_kept(params.audit_log_age_limit_days,
                                                        seen.get("AuditLogAgeLimit") if observed is not None else None,
                                                        params.age_limit_mode)
            for field, prop in ACTION_FIELDS.items():
                actions = getattr(params, field)
                if actions is None:
                    continue
                wanted = [a for a in actions if a != "None"]
                if params.actions_mode == "at_least" and observed is not None:
                    wanted = [*seen.get(prop, []), *wanted]
                want[prop] = _canonical_actions(wanted, prop)
            desired[identity] = want
        return desired

    def plan_notes(self, params: MailboxAuditParams) -> tuple[str, ...]:
        notes = []
        if params.actions_mode == "at_least" and any(getattr(params, f) for f in ACTION_FIELDS):
            notes.append("audit actions: each mailbox's current actions plus these (none removed)")
        if params.audit_log_age_limit_days is not None and params.age_limit_mode == "at_least":
            notes.append(f"AuditLogAgeLimit: set to {params.audit_log_age_limit_days} days only where it is shorter")
        return tuple(notes)

    def write(self, params: MailboxAuditParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        calls: list[Call] = []
        for identity, want in desired.items():
            seen = (observed or {}).get(identity) or {}
            args: list[tuple[str, Any]] = [("Identity", identity)]
            for prop, value in (want or {}).items():
                if observed is not None and self.comparers[prop].equal(value, seen.get(prop)):
                    continue
                if prop in ACTIONS:
                    value = tuple(value) if value else ("None",)
                args.append((prop, value))
            if len(args) > 1:
                calls.append(CmdletCall("Set-Mailbox", tuple(args)))
        return tuple(calls)


# --- mailbox_audit_bypass ----------------------------------------------------------------------

BYPASS_OBJECT = "Mailbox audit bypass"


def _is_named(account: Mapping[str, Any], name: str) -> bool:
    """Whether an association object is the account a playbook names (by any of its usual names)."""
    wanted = name.casefold()
    forms = {str(account.get(k)).casefold() for k in ("Identity", "Name", "SamAccountName", "DistinguishedName",
                                                      "Guid", "UserPrincipalName") if account.get(k)}
    if wanted in forms:
        return True
    sam = str(account.get("SamAccountName") or account.get("Name") or "").casefold()
    return bool(sam) and wanted.rpartition("\\")[2] == sam and "\\" in wanted


def _account_names(value: Any) -> Any:
    """A list of account names, or one comma-separated string of them (what a ``{{ var }}`` renders
    to); an empty string is no account."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _distinct_names(value: list[str]) -> list[str]:
    _no_empty_strings(value)
    if len({v.casefold() for v in value}) != len(value):
        raise ValueError("names an account twice")
    return value


BypassUnknown = Literal["report", "remove"]


class MailboxAuditBypassParams(KindParams):
    """Parameters of ``mailbox_audit_bypass``."""

    allowed: list[str] = Field(
        default_factory=list, description="Accounts that keep AuditBypassEnabled $true: the site's reviewed service "
        "accounts that open every mailbox (backup, archiving, journaling). By name, DOMAIN\\name, UPN or identity; a "
        "YAML list, or one comma-separated string (what a variable renders to; a distinguished name needs the list "
        "form). Each must resolve to exactly one account, or the control fails.",
        json_schema_extra=_one_or_list)
    remove: list[str] = Field(
        default_factory=list, description="Accounts whose bypass is removed (AuditBypassEnabled $false) where they "
        "have it: the control removes bypass only from accounts named here (and, with unknown: remove, from those "
        "named in neither list). Same forms as allowed; each must resolve to exactly one account.",
        json_schema_extra=_one_or_list)
    unknown: BypassUnknown = Field(
        "report", description="Accounts that bypass auditing and are named in neither list. report (default): left "
        "as they are, and the outcome stays drifted naming them until they are reviewed into allowed or remove. "
        "remove: their bypass is removed too, so a backup or archiving account nobody listed is audited from then on.")
    org_host: str = Field("*", pattern=ORG_HOST_PATTERN, description=ORG_HOST_DESCRIPTION)

    @field_validator("allowed", "remove", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _account_names(value)

    @field_validator("allowed", "remove")
    @classmethod
    def _names(cls, value: list[str], info: ValidationInfo) -> list[str]:
        try:
            return _distinct_names(value)
        except ValueError as exc:
            raise ValueError(f"{info.field_name} {exc}") from None

    @field_validator("unknown", mode="before")
    @classmethod
    def _unknown_name(cls, value: Any) -> Any:
        return canonical_names(value, get_args(BypassUnknown))

    @model_validator(mode="after")
    def _disjoint(self) -> MailboxAuditBypassParams:
        both = sorted({a.casefold() for a in self.allowed} & {r.casefold() for r in self.remove})
        if both:
            raise ValueError(f"{', '.join(both)} cannot be both allowed and removed")
        return self


# Observed properties of the bypass object: accounts named in remove that still bypass; accounts
# that bypass and are named in neither list; allowed accounts that bypass (shown, never changed).
NAMED = "NamedForRemoval"
UNREVIEWED = "UnreviewedBypassing"
ALLOWED = "AllowedBypassing"


def unreviewed_sentence(accounts: Sequence[str]) -> str:
    """Why accounts nobody named keep their bypass, and what to do about them."""
    one = len(accounts) == 1
    review = ("review it: name it in allowed if it must keep bypass (a backup, archiving or journaling service "
              "account that opens every mailbox), otherwise in remove" if one else
              "review them: name in allowed those that must keep bypass (backup, archiving and journaling service "
              "accounts that open every mailbox) and the others in remove")
    return (f"not removed: {len(accounts)} account{'' if one else 's'} bypass{'es' if one else ''} mailbox audit "
            f"logging and {'is' if one else 'are'} named in neither allowed nor remove ({', '.join(accounts)}); "
            f"{review}, or set unknown: remove to remove every bypass nobody allowed")


class MailboxAuditBypass(Kind[MailboxAuditBypassParams]):
    """Mailbox audit bypass only where the site says so: the accounts named in ``remove`` lose
    ``AuditBypassEnabled $true``; the ``allowed`` ones keep it; an account that bypasses and is
    named in neither is *reported*, not changed, by default.

    Why: Exchange's bypass exists "for user or computer accounts such as service accounts for
    applications that access mailboxes frequently" [V OPS Set-MailboxAuditBypassAssociation] —
    backup agents, archiving and journaling services. Removing it from such an account makes
    every one of its mailbox accesses an audit entry in each mailbox's Recoverable Items\\Audits
    folder, which counts toward the mailbox's Recoverable Items quota [I, procedures §3.2]. A
    playbook cannot know a site's service accounts, so nothing is removed that the playbook does not
    name: with ``unknown: report`` (default) such accounts keep their bypass and the outcome stays
    ``drifted`` (a finding: "you must monitor mailbox audit bypass associations at regular
    intervals" [V OPS]) with a sentence naming them and saying how to review them;
    ``unknown: remove`` removes them too.

    Reads ``Get-MailboxAuditBypassAssociation -ResultSize Unlimited`` once (every user and computer
    account) plus ``-Identity`` once per named account, to resolve it: Exchange answers an unknown
    identity with *every* account rather than an error [V] OPS, so a name in ``allowed`` or
    ``remove`` that does not match exactly one account fails the control instead of silently
    matching nothing (or everyone). Writes ``Set-MailboxAuditBypassAssociation -Identity <account>
    -AuditBypassEnabled $false`` per account to fix; never sets bypass. An allowed account is
    allowed to bypass, never required to. Not applicable on Edge Transport servers (no mailboxes).
    Org-wide: see ``org_host``. No restart; the change reaches the mailbox servers through AD
    replication and their caches [I].
    """

    name = "mailbox_audit_bypass"
    summary = "Mailbox audit bypass removed from the named accounts; others that bypass are reported, not removed"
    params_model = MailboxAuditBypassParams
    channel = "exchange"
    variants = (EXCHANGE_MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {NAMED: TEXT_SET, UNREVIEWED: TEXT_SET, ALLOWED: TEXT_SET}
    org_wide_cmdlets: ClassVar[frozenset[str]] = frozenset({"Get-MailboxAuditBypassAssociation"})

    @staticmethod
    def _named(params: MailboxAuditBypassParams) -> list[str]:
        return [*params.allowed, *params.remove]

    def _applies(self, params: MailboxAuditBypassParams, ctx: Context) -> None:
        check_org_host(params.org_host, ctx, "mailbox audit bypass")
        if is_edge_transport(ctx.facts):
            raise NotApplicable(f"{ctx.host} is an Edge Transport server: it has no mailboxes and no audit bypass")

    def read(self, params: MailboxAuditBypassParams, ctx: Context) -> tuple[Call, ...]:
        self._applies(params, ctx)
        return (CmdletCall("Get-MailboxAuditBypassAssociation", (("ResultSize", "Unlimited"),)),
                *(CmdletCall("Get-MailboxAuditBypassAssociation", (("Identity", name),))
                  for name in self._named(params)))

    def observe(self, params: MailboxAuditBypassParams, ctx: Context, values: Sequence[Any]) -> State:
        self._applies(params, ctx)
        resolved: dict[str, str] = {}
        for name, value in zip(self._named(params), values[1:], strict=True):
            found = [a for a in host_objects(value) if _is_named(a, name)]
            if len(found) != 1:
                which = "allowed" if name in params.allowed else "remove"
                raise ControlFailed(f"{which} account {name!r} matches {'no' if not found else len(found)} accounts "
                                    f"on {ctx.server}; name exactly one account (Exchange answers an unknown "
                                    "identity with every account)")
            resolved[str(found[0].get("Identity")).casefold()] = "allowed" if name in params.allowed else "remove"
        bypassing = sorted((str(a.get("Identity")) for a in host_objects(values[0])
                            if _true(a.get("AuditBypassEnabled"))), key=str.casefold)
        return {BYPASS_OBJECT: {
            NAMED: [a for a in bypassing if resolved.get(a.casefold()) == "remove"],
            UNREVIEWED: [a for a in bypassing if a.casefold() not in resolved],
            ALLOWED: [a for a in bypassing if resolved.get(a.casefold()) == "allowed"],
        }}

    def desire(self, params: MailboxAuditBypassParams, ctx: Context, observed: State | None) -> State:
        return {BYPASS_OBJECT: {NAMED: [], UNREVIEWED: []}}

    def caveats(self, params: MailboxAuditBypassParams, ctx: Context, observed: State,
                desired: State) -> tuple[Caveat, ...]:
        unreviewed = list((observed.get(BYPASS_OBJECT) or {}).get(UNREVIEWED) or [])
        if params.unknown == "report" and unreviewed:
            return (Caveat(BYPASS_OBJECT, (UNREVIEWED,), unreviewed_sentence(unreviewed)),)
        return ()

    def write(self, params: MailboxAuditBypassParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        want = desired.get(BYPASS_OBJECT) or {}
        removing_unknown = UNREVIEWED in want and params.unknown == "remove"
        if observed is None:
            who = [*(["<each account named in remove that bypasses>"] if NAMED in want and params.remove else []),
                   *(["<each account that bypasses and is named in neither allowed nor remove>"]
                     if removing_unknown else [])]
            return tuple(CmdletCall("Set-MailboxAuditBypassAssociation", (("Identity", account),
                                                                           ("AuditBypassEnabled", False)))
                         for account in who)
        seen = observed.get(BYPASS_OBJECT) or {}
        accounts = [*(seen.get(NAMED) or [] if NAMED in want else []), *(seen.get(UNREVIEWED) or [] if removing_unknown
                                                                          else [])]
        return tuple(CmdletCall("Set-MailboxAuditBypassAssociation", (("Identity", account),
                                                                       ("AuditBypassEnabled", False)))
                     for account in accounts)

    def plan_notes(self, params: MailboxAuditBypassParams) -> tuple[str, ...]:
        if params.unknown == "remove":
            return ("every account that bypasses and is not allowed is set back to $false, named or not",)
        return ("accounts that bypass and are named in neither allowed nor remove are reported, not changed "
                "(unknown: report)",)


def _true(value: Any) -> bool:
    try:
        return bool(BOOL.key(value))
    except ValueError:
        return False


# --- audit_policy ------------------------------------------------------------------------------

# The advanced audit policy subcategories of Windows Server 2016-2025 and their GUIDs (ntsecapi.h;
# [V] several code-index tables agree, reference procedures.md §3.1). English names for the
# playbook only: auditpol prints them localised, so hosts are compared by GUID.
SubcategoryName = Literal[
    "Security State Change", "Security System Extension", "System Integrity", "IPsec Driver", "Other System Events",
    "Logon", "Logoff", "Account Lockout", "IPsec Main Mode", "IPsec Quick Mode", "IPsec Extended Mode",
    "Special Logon", "Other Logon/Logoff Events", "File System", "Registry", "Kernel Object", "SAM",
    "Certification Services", "Application Generated", "Handle Manipulation", "File Share",
    "Filtering Platform Packet Drop", "Filtering Platform Connection", "Other Object Access Events",
    "Sensitive Privilege Use", "Non Sensitive Privilege Use", "Other Privilege Use Events", "Process Creation",
    "Process Termination", "DPAPI Activity", "RPC Events", "Audit Policy Change", "Authentication Policy Change",
    "Authorization Policy Change", "MPSSVC Rule-Level Policy Change", "Filtering Platform Policy Change",
    "Other Policy Change Events", "User Account Management", "Computer Account Management",
    "Security Group Management", "Distribution Group Management", "Application Group Management",
    "Other Account Management Events", "Directory Service Access", "Directory Service Changes",
    "Directory Service Replication", "Detailed Directory Service Replication", "Credential Validation",
    "Kerberos Service Ticket Operations", "Other Account Logon Events", "Kerberos Authentication Service",
    "Network Policy Server", "Detailed File Share", "Removable Storage", "Central Policy Staging",
    "User / Device Claims", "Plug and Play Events", "Group Membership", "Token Right Adjusted Events",
]
# 0CCE9210 … 0CCE924A in the order of SubcategoryName.
SUBCATEGORIES: dict[str, str] = {
    name: f"0CCE92{n:02X}-69AE-11D9-BED3-505054503030"
    for n, name in zip(range(0x10, 0x4B), get_args(SubcategoryName), strict=True)
}
SUBCATEGORY_NAMES = {guid: name for name, guid in SUBCATEGORIES.items()}
FILE_SYSTEM_GUID = SUBCATEGORIES["File System"]
# auditpol's English "Inclusion Setting" texts: used only when its backup gave no number [U: other languages].
INCLUSION_TEXTS = {"no auditing": (False, False), "success": (True, False), "failure": (False, True),
                   "success and failure": (True, True)}
POLICY_OPTIONS = "Audit policy options"
AuditSetting = Literal["success", "failure", "both", "none"]


def guid_text(value: Any) -> str:
    """A subcategory GUID the way this module keys them: upper case, no braces."""
    return str(value).strip().strip("{}").upper()


def decode_setting(row: Mapping[str, Any], label: str) -> tuple[bool, bool]:
    """(success, failure) of one subcategory row: the number from auditpol's backup (language-neutral),
    else its English text; a localised text with no number fails rather than guessing."""
    value = row.get("value")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3:
        return bool(value & 1), bool(value & 2)
    if isinstance(value, str) and value.strip().isdigit() and int(value) <= 3:
        return bool(int(value) & 1), bool(int(value) & 2)
    text = str(row.get("setting") or "").strip().casefold()
    if text in INCLUSION_TEXTS:
        return INCLUSION_TEXTS[text]
    raise ControlFailed(f"cannot tell the audit setting of {label} {{{guid_text(row.get('guid'))}}}: auditpol's "
                        f"backup gave no number and its text {row.get('setting')!r} is not English")


class SubcategoryAudit(KindParams):
    """One audit policy subcategory and what it must audit."""

    subcategory: SubcategoryName | None = Field(
        None, description="The subcategory's English name (auditpol's names are localised; it is matched by GUID).")
    guid: uuid.UUID | None = Field(
        None, description="Or the subcategory GUID, e.g. {0CCE9215-69AE-11D9-BED3-505054503030}.")
    audit: AuditSetting = Field(description="success, failure, both or none.")

    @field_validator("subcategory", mode="before")
    @classmethod
    def _name(cls, value: Any) -> Any:
        return canonical_names(value, get_args(SubcategoryName))

    @model_validator(mode="after")
    def _one(self) -> SubcategoryAudit:
        if (self.subcategory is None) == (self.guid is None):
            raise ValueError("give exactly one of subcategory and guid")
        return self

    @property
    def key(self) -> str:
        return SUBCATEGORIES[self.subcategory] if self.subcategory else guid_text(self.guid)

    @property
    def label(self) -> str:
        return self.subcategory or SUBCATEGORY_NAMES.get(self.key) or "{" + self.key + "}"


class AuditPolicyParams(KindParams):
    """Parameters of ``audit_policy``."""

    subcategories: list[SubcategoryAudit] = Field(default_factory=list, description="Subcategories to set.")
    mode: Literal["at_least", "exact"] = Field(
        "at_least", description="at_least: the listed flags are on and the others are left as they are; exact: "
        "success and failure are each exactly as listed (none turns both off).")
    force_subcategory_settings: bool | None = Field(
        None, description="'Audit: Force audit policy subcategory settings to override audit policy category "
        "settings' (HKLM\\SYSTEM\\CurrentControlSet\\Control\\Lsa SCENoApplyLegacyAuditPolicy = 1). Without it, "
        "legacy category settings from a policy can override subcategories. Always read and reported; compared "
        "only when set.")

    @model_validator(mode="after")
    def _consistent(self) -> AuditPolicyParams:
        keys = [s.key for s in self.subcategories]
        if len(set(keys)) != len(keys):
            raise ValueError("subcategories names a subcategory twice")
        if self.mode == "at_least" and any(s.audit == "none" for s in self.subcategories):
            raise ValueError("audit: none turns auditing off, which only mode exact does")
        if not self.subcategories and self.force_subcategory_settings is None:
            raise ValueError("set subcategories or force_subcategory_settings")
        return self


class AuditPolicy(Kind[AuditPolicyParams]):
    """The Windows advanced audit policy: success and failure auditing per subcategory, compared
    by subcategory GUID, and the "force subcategory settings" option.

    Reads with ``auditpol.exe /get /category:* /r`` (every subcategory's GUID and name) and
    ``auditpol.exe /backup`` (to a temporary file, deleted at once), whose ``Setting Value``
    column gives each setting as a number: auditpol's text ("Success and Failure") is localised,
    which breaks tools that parse it on non-English Windows (community.windows#14,
    AuditPolicyDsc#42); the English text is used only if the backup has no number for a row
    [U: that /backup lists every subcategory]. Writes ``auditpol.exe /set
    /subcategory:{GUID} /success:enable|disable /failure:enable|disable`` with only the flags that
    differ, and ``SCENoApplyLegacyAuditPolicy`` with ``New-ItemProperty``. Needs an elevated
    administrator. No restart.

    Group Policy: a GPO with Advanced Audit Policy Configuration (or legacy audit categories,
    unless the force option is on) overwrites local auditpol settings at its next refresh [I];
    a control fixed here then drifts again on the next check. Where a GPO manages auditing, use
    this kind with ``policy: monitor`` and fix the GPO.
    """

    name = "audit_policy"
    summary = "Windows advanced audit policy per subcategory (by GUID) and the force-subcategory option"
    params_model = AuditPolicyParams
    channel = "script"
    template = "audit_policy.ps1.j2"
    variants = (WINDOWS_MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {"Success": BOOL, "Failure": BOOL,
                                                   "ForceSubcategorySettings": BOOL}

    def read(self, params: AuditPolicyParams, ctx: Context) -> tuple[Call, ...]:
        return (ScriptCall(self.name, "read", {}),)

    def observe(self, params: AuditPolicyParams, ctx: Context, values: Sequence[Any]) -> State:
        value = values[0] if isinstance(values[0], Mapping) else {}
        rows = value.get("subcategories") or []
        rows = rows if isinstance(rows, list) else [rows]
        by_guid = {guid_text(r.get("guid")): r for r in rows if isinstance(r, Mapping)}
        if not by_guid:
            raise ControlFailed(f"auditpol listed no subcategories on {ctx.host}")
        state: dict[str, Any] = {}
        for entry in params.subcategories:
            row = by_guid.get(entry.key)
            if row is None:
                named = "" if entry.label.startswith("{") else f"{entry.label} "
                raise ControlFailed(f"auditpol on {ctx.host} does not list subcategory {named}{{{entry.key}}}")
            success, failure = decode_setting(row, entry.label)
            state[entry.label] = {"Success": success, "Failure": failure}
        force = value.get("force_subcategory_settings")
        state[POLICY_OPTIONS] = {"ForceSubcategorySettings": None if force is None else bool(int(force))}
        return state

    def desire(self, params: AuditPolicyParams, ctx: Context, observed: State | None) -> State:
        desired: dict[str, Any] = {}
        for entry in params.subcategories:
            success, failure = entry.audit in ("success", "both"), entry.audit in ("failure", "both")
            if params.mode == "exact":
                desired[entry.label] = {"Success": success, "Failure": failure}
            else:
                desired[entry.label] = {**({"Success": True} if success else {}),
                                        **({"Failure": True} if failure else {})}
        if params.force_subcategory_settings is not None:
            desired[POLICY_OPTIONS] = {"ForceSubcategorySettings": params.force_subcategory_settings}
        return desired

    def write(self, params: AuditPolicyParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        changes: list[dict[str, Any]] = []
        for entry in params.subcategories:
            want = desired.get(entry.label) or {}
            seen = (observed or {}).get(entry.label) or {}
            flags = {prop.lower(): value for prop, value in want.items()
                     if observed is None or not BOOL.equal(value, seen.get(prop))}
            if flags:
                changes.append({"guid": "{" + entry.key + "}", **flags})
        data: dict[str, Any] = {"subcategories": changes} if changes else {}
        options = desired.get(POLICY_OPTIONS)
        if options is not None:
            seen_options = (observed or {}).get(POLICY_OPTIONS) or {}
            force = options["ForceSubcategorySettings"]
            if observed is None or not BOOL.equal(force, seen_options.get("ForceSubcategorySettings")):
                data["force_subcategory_settings"] = force
        return (ScriptCall(self.name, "write", data),) if data else ()


# --- file_sacl ---------------------------------------------------------------------------------

# System.Security.AccessControl.AuditFlags
AUDIT_FLAGS = {"success": 1, "failure": 2, "both": 3}
FLAG_NAMES = {1: "Success", 2: "Failure", 3: "Success and Failure"}
FILE_SYSTEM_POLICY = "Audit policy: File System"


class AuditEntry(KindParams):
    """One audit rule (SACL entry): whose access, which rights, on success or failure, where."""

    principal: str = Field(description="SID (S-1-1-0), well-known name (Everyone, Administrators …) or "
                           "DOMAIN\\name, resolved to a SID on the host.")
    rights: list[RightName] = Field(description="FileSystemRights name or names whose use is audited, e.g. "
                                    "[Delete, ChangePermissions, TakeOwnership].", json_schema_extra=_one_or_list)
    type: Literal["success", "failure", "both"] = Field("both", description="Audit successful attempts, failed "
                                                        "ones, or both.")
    applies_to: AppliesTo = "this_folder_subfolders_and_files"

    @field_validator("rights", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _one_or_many(value)


def audit_mask(names: Sequence[str]) -> int:
    """The access mask of an audit rule: the rights as given (unlike allow rules, .NET adds no
    Synchronize to a FileSystemAuditRule [V] .NET FileSystemAuditRule.AccessMaskFromRights)."""
    mask = 0
    for name in names:
        mask |= RIGHTS[name]
    return mask


def audit_ace(sid: str, mask: int, inheritance: int, propagation: int, flags: int) -> dict[str, Any]:
    """An audit entry as the state holds it: readable (names) and exact (numbers)."""
    applies = next((k for k, v in APPLIES_TO.items() if v == (inheritance, propagation)),
                   f"inheritance {inheritance}, propagation {propagation}")
    return {"type": FLAG_NAMES.get(flags, f"flags {flags}"), "principal": sid.upper(),
            "name": SID_NAMES.get(sid.upper()), "rights": ", ".join(rights_names(mask)), "mask": mask,
            "applies_to": applies, "inheritance": inheritance, "propagation": propagation, "flags": flags}


def _audit_key(entry: Mapping[str, Any]) -> tuple[str, int, int, int, int]:
    return (str(entry["principal"]).upper(), int(entry["inheritance"]), int(entry["propagation"]),
            int(entry["flags"]), int(entry["mask"]))


def merge_audit(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Entries as Windows keeps them [I] (.NET CommonAcl merges audit ACEs): rules of one principal
    and inheritance with the same audit flags become one entry with the union of their rights, and
    entries with the same rights one with the union of their flags, until nothing merges any more; an
    entry that another one covers (no more rights, no more flags) adds nothing and is dropped."""
    current = {(str(e["principal"]).upper(), int(e["inheritance"]), int(e["propagation"]), int(e["flags"]),
                int(e["mask"])) for e in entries}
    while True:
        by_flags: dict[tuple[str, int, int, int], int] = {}
        for sid, inheritance, propagation, flags, mask in current:
            key = (sid, inheritance, propagation, flags)
            by_flags[key] = by_flags.get(key, 0) | mask
        by_mask: dict[tuple[str, int, int, int], int] = {}
        for (sid, inheritance, propagation, flags), mask in by_flags.items():
            same_rights = (sid, inheritance, propagation, mask)
            by_mask[same_rights] = by_mask.get(same_rights, 0) | flags
        merged = {(sid, inheritance, propagation, flags, mask)
                  for (sid, inheritance, propagation, mask), flags in by_mask.items()}
        if merged == current:
            break
        current = merged
    kept = [e for e in current if not any(_covers(o, e) for o in current if o != e)]
    return sorted((audit_ace(sid, mask, inheritance, propagation, flags)
                   for sid, inheritance, propagation, flags, mask in kept), key=_audit_key)


def _covers(big: tuple[str, int, int, int, int], small: tuple[str, int, int, int, int]) -> bool:
    """Whether one entry already audits everything another does (same principal and inheritance)."""
    return (big[:3] == small[:3] and big[3] & small[3] == small[3] and big[4] & small[4] == small[4])


def audit_text(entry: Mapping[str, Any]) -> str:
    """``Failure Everyone [Delete, ChangePermissions]`` (with where it applies, when not the usual subtree)."""
    who = entry.get("name") or entry["principal"]
    where = "" if entry["applies_to"] == "this_folder_subfolders_and_files" else f" ({entry['applies_to']})"
    return f"{entry['type']} {who} [{entry['rights']}]{where}"


AUDIT = Comparer("set of audit entries", lambda v: frozenset(_audit_key(e) for e in v or ()), item=audit_text)


class FileSaclParams(PathParams):
    """Parameters of ``file_sacl``."""

    mode: Literal["exact", "at_least"] = Field(
        "at_least", description="exact: the explicit audit entries are exactly `audit`; at_least: these are "
        "present and others are kept.")
    audit: list[AuditEntry] = Field(default_factory=list, description="Explicit audit entries.")
    file_system_policy: Literal["enable", "ignore"] = Field(
        "enable", description="enable: also read the audit policy subcategory File System and switch on the "
        "success/failure auditing these entries need (never off); without it a SACL logs nothing. ignore: "
        "leave the audit policy to a GPO or to audit_policy.")

    @model_validator(mode="after")
    def _entries(self) -> FileSaclParams:
        if not self.audit and self.mode != "exact":
            raise ValueError("give audit entries (or mode exact with none, to remove every explicit entry)")
        return self


class FileSacl(Kind[FileSaclParams]):
    """Audit entries (the SACL) of directories: explicit entries exact or at least, compared by
    SID, rights mask, applies-to and success/failure flags, never by localised names. Inherited
    entries are not compared (they belong to the parent).

    Acts on one ``path`` or every folder of a role from facts (``paths_from``: mailbox database
    and log folders, transport queue and logs, install path). Reads with ``Get-Acl -LiteralPath
    -Audit``; writes only the SACL, through the directory's ``GetAccessControl('Audit')`` and
    ``SetAccessControl`` (owner and DACL untouched). Both need SeSecurityPrivilege, held only by an
    elevated administrator [I]: the read checks ``whoami.exe /priv`` first and fails the control
    with a sentence when it is missing, never reading a SACL it cannot see as empty.

    A SACL logs nothing unless the audit policy subcategory File System audits the same outcome:
    with ``file_system_policy: enable`` (default) the first path's read also reads that
    subcategory (as ``audit_policy`` does: numbers from ``auditpol /backup``), the state shows it
    as ``Audit policy: File System`` and apply switches on what the entries need. Pitfall:
    auditing reads, or Everyone with FullControl, on database, log and queue folders floods the
    Security log (the store touches them constantly); audit deletes, permission and owner changes
    [I] procedures.md §3.3. ``icacls /save`` does not back up SACLs. No restart.
    """

    name = "file_sacl"
    summary = "Audit entries (SACL) on directories, and the File System audit subcategory they need"
    params_model = FileSaclParams
    channel = "script"
    template = "file_sacl.ps1.j2"
    variants = (WINDOWS_MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {"Audit": AUDIT, "Success": BOOL, "Failure": BOOL}

    def _principals(self, params: FileSaclParams) -> list[str]:
        return sorted({e.principal for e in params.audit if sid_of(e.principal) is None})

    def _needed(self, params: FileSaclParams) -> int:
        flags = 0
        for entry in params.audit:
            flags |= AUDIT_FLAGS[entry.type]
        return flags if params.file_system_policy == "enable" else 0

    def read(self, params: FileSaclParams, ctx: Context) -> tuple[Call, ...]:
        principals = self._principals(params)
        policy = self._needed(params) != 0
        return tuple(ScriptCall(self.name, "read", {"path": path, "principals": principals,
                                                    "policy": policy and n == 0})
                     for n, path in enumerate(target_paths(params, ctx)))

    def observe(self, params: FileSaclParams, ctx: Context, values: Sequence[Any]) -> State:
        state: dict[str, Any] = {}
        policy: Mapping[str, Any] | None = None
        for path, value in zip(target_paths(params, ctx), values, strict=True):
            value = value or {}
            if not value.get("exists"):
                raise ControlFailed(f"directory {path} does not exist on {ctx.host}")
            entries = host_objects(value.get("audit"))
            state[path] = {
                "Audit": sorted((_from_host(e) for e in entries if not e.get("inherited")), key=_audit_key),
                "_inherited": sorted((_from_host(e) for e in entries if e.get("inherited")), key=_audit_key),
                "_resolved": dict(value.get("resolved") or {}),
            }
            if isinstance(value.get("policy"), Mapping):
                policy = value["policy"]
        if policy is not None:
            success, failure = decode_setting(policy, "File System")
            state[FILE_SYSTEM_POLICY] = {"Success": success, "Failure": failure}
        return state

    def _sid(self, principal: str, resolved: Mapping[str, str]) -> str:
        sid = sid_of(principal) or resolved.get(principal)
        if sid is None:
            raise ControlFailed(f"principal {principal!r} could not be resolved to a SID on the host")
        return sid

    def desire(self, params: FileSaclParams, ctx: Context, observed: State | None) -> State:
        desired: dict[str, Any] = {}
        for path in target_paths(params, ctx):
            seen = (observed or {}).get(path) or {}
            # In plan mode nothing was read: principals are shown by name; the host resolves them.
            resolved = {p: p for p in self._principals(params)} if observed is None else seen.get("_resolved", {})
            wanted = [audit_ace(self._sid(e.principal, resolved), audit_mask(e.rights), *APPLIES_TO[e.applies_to],
                                AUDIT_FLAGS[e.type]) for e in params.audit]
            entries = wanted if params.mode == "exact" else [*seen.get("Audit", []), *wanted]
            desired[path] = {"Audit": merge_audit(entries)}
        needed = self._needed(params)
        if needed:
            desired[FILE_SYSTEM_POLICY] = {**({"Success": True} if needed & 1 else {}),
                                           **({"Failure": True} if needed & 2 else {})}
        return desired

    def plan_notes(self, params: FileSaclParams) -> tuple[str, ...]:
        return ("Audit: each folder's current explicit entries plus these",) if params.mode == "at_least" else ()

    def write(self, params: FileSaclParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        calls: list[Call] = []
        for path in target_paths(params, ctx):
            want = desired[path] or {}
            seen = (observed or {}).get(path) or {}
            if observed is None or not AUDIT.equal(want["Audit"], seen.get("Audit")):
                calls.append(ScriptCall(self.name, "write", {"path": path,
                                                             "audit": [_to_host(e) for e in want["Audit"]]}))
        policy = desired.get(FILE_SYSTEM_POLICY)
        if policy:
            seen_policy = (observed or {}).get(FILE_SYSTEM_POLICY) or {}
            flags = {prop.lower(): True for prop, value in policy.items()
                     if observed is None or not BOOL.equal(value, seen_policy.get(prop))}
            if flags:
                calls.append(ScriptCall(self.name, "write", {"policy": flags}))
        return tuple(calls)




def _from_host(entry: Mapping[str, Any]) -> dict[str, Any]:
    return audit_ace(str(entry["sid"]), normalise_mask(int(entry["rights"])), int(entry.get("inheritance", 0)),
                     int(entry.get("propagation", 0)), int(entry.get("flags", 0)))


def _to_host(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"sid": entry["principal"], "rights": entry["mask"], "inheritance": entry["inheritance"],
            "propagation": entry["propagation"], "flags": entry["flags"]}


FAMILY_KINDS = (AdminAuditLog(), MailboxAudit(), MailboxAuditBypass(), AuditPolicy(), FileSacl())
