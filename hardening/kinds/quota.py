"""Disk quota kinds (guide: "Disk quotas"): NTFS volume quotas and FSRM folder quotas (script
kinds, ``templates/volume_quota.ps1.j2`` and ``templates/fsrm_quota.ps1.j2``), and Exchange's own
mailbox limits on mailbox databases (an Exchange kind: ``Get/Set-MailboxDatabase``).

Sizes are bytes in Python. Parameters also take ``2GB``, ``'500 MB'``, ``1.5TB`` (1024-based, as
Exchange and Windows count) and, where a limit may be absent, ``unlimited``. Observed values come
back in many forms — Exchange's deserialised ``"2 GB (2,147,483,648 bytes)"`` or ``"Unlimited"``,
WMI's ``-1`` for "no limit", FSRM's plain byte counts — and are compared in bytes (``SIZE``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from ..compare import BOOL, TEXT, Comparer, State
from ..facts import PATH_ROLES, Facts
from ..model import Call, CmdletCall, ScriptCall, Switch
from .base import Caveat, Context, ControlFailed, Kind, KindParams, NotApplicable, canonical_names, host_objects
from .files import MODERN as WINDOWS_MODERN
from .files import PathParams, PathRole, target_paths
from .platforms import is_edge_transport
from .transport import MODERN as EXCHANGE_MODERN

if TYPE_CHECKING:
    from ..inventory import Host

__all__ = [
    "EXCHANGE_QUOTA_MAX",
    "FAMILY_KINDS",
    "SIZE",
    "UNLIMITED",
    "FsrmQuota",
    "MailboxDatabaseQuota",
    "VolumeQuota",
    "exchange_size_text",
    "format_size",
    "parse_size",
    "size_key",
]

UNLIMITED: Literal["unlimited"] = "unlimited"
UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
_SIZE_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?b)?\s*$", re.IGNORECASE)
# Exchange's deserialised Unlimited<ByteQuantifiedSize>: "1.899 GB (2,039,480,320 bytes)"; the
# thousands separator follows the server's culture, so every non-digit in the brackets is dropped.
_EXCHANGE_TEXT = re.compile(r"\(([^()]*?)\s*bytes\s*\)\s*$", re.IGNORECASE)
# [V] OPS Set-MailboxDatabase: "a number up to 1.999999999 terabytes (2199023254528 bytes) or unlimited".
EXCHANGE_QUOTA_MAX = 2199023254528
SIGNED_64 = 2**63

Size = int | Literal["unlimited"]


def parse_size(value: Any, *, allow_unlimited: bool = True) -> Size:
    """A size as a playbook gives it: bytes (int or digits), a number with B/KB/MB/GB/TB
    (1024-based; decimals allowed), ``unlimited``, or Exchange's ``"2 GB (2,147,483,648 bytes)"``.
    Raises ValueError with a sentence for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is not a size: sizes are 0 or more bytes")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.casefold() == UNLIMITED:
            if not allow_unlimited:
                raise ValueError("unlimited is not possible here: give a size such as 10GB")
            return UNLIMITED
        exchange = _EXCHANGE_TEXT.search(text)
        if exchange and re.sub(r"\D", "", exchange.group(1)):
            return int(re.sub(r"\D", "", exchange.group(1)))
        match = _SIZE_TEXT.match(text)
        if match:
            try:
                number = Decimal(match.group(1))
            except InvalidOperation:  # pragma: no cover - the pattern only admits decimals
                number = None
            if number is not None:
                return int(number * UNITS[(match.group(2) or "b").casefold()])
    allowed = "bytes, or a number with B, KB, MB, GB or TB (1024-based) such as 2GB or '500 MB'"
    raise ValueError(f"{value!r} is not a size: use {allowed}" + (", or unlimited" if allow_unlimited else ""))


def size_key(value: Any) -> Size:
    """What a size compares as: bytes, or ``unlimited``. Lenient with what hosts return: WMI's
    "no limit" (-1, or 2^64-1 where the property is unsigned) is unlimited."""
    if isinstance(value, int) and not isinstance(value, bool) and (value < 0 or value >= SIGNED_64):
        return UNLIMITED
    if isinstance(value, float) and value.is_integer():
        return size_key(int(value))
    if isinstance(value, Mapping):
        # [I] An Unlimited<ByteQuantifiedSize> whose properties survived deserialisation.
        if _truthy(value.get("IsUnlimited")):
            return UNLIMITED
        if value.get("Value") is not None:
            return size_key(value["Value"])
        if value.get("ToBytes") is not None:
            return size_key(value["ToBytes"])
    return parse_size(value)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().casefold() in {"true", "$true"})


def format_size(value: Any) -> str:
    """A size the way Exchange prints it: ``2 GB (2,147,483,648 bytes)``, or ``Unlimited``."""
    size = size_key(value)
    if size == UNLIMITED:
        return "Unlimited"
    assert isinstance(size, int)
    unit, factor = next(((u, f) for u, f in reversed(UNITS.items()) if size >= f), ("b", 1))
    number = f"{Decimal(size) / Decimal(factor):.3f}".rstrip("0").rstrip(".")
    return f"{number} {unit.upper()} ({size:,} bytes)"


def exchange_size_text(value: Size) -> str:
    """The argument Exchange gets: ``Unlimited`` or the exact byte count in the largest whole
    unit (``2GB``, ``1900MB``, ``2040109465B``) — never a rounded decimal."""
    if value == UNLIMITED:
        return "Unlimited"
    assert isinstance(value, int)
    for unit, factor in reversed(UNITS.items()):
        if value and value % factor == 0:
            return f"{value // factor}{unit.upper()}"
    return f"{value}B"


def _within(value: Size, limit: Size) -> bool:
    """``value <= limit``, where unlimited is larger than any size."""
    if limit == UNLIMITED:
        return True
    if value == UNLIMITED:
        return False
    assert isinstance(value, int) and isinstance(limit, int)
    return value <= limit


SIZE = Comparer("size in bytes (Unlimited: no limit)", size_key)

# ECMA-262 patterns (editors use JavaScript regexes): no inline flags, letters spelt in both cases.
_NUMBER_PATTERN = r"\d+(\.\d+)?\s*([KkMmGgTt]?[Bb])?|.*\(.*bytes\s*\)"
_SIZE_SCHEMA: dict[str, Any] = {"anyOf": [
    {"type": "integer", "minimum": 0},
    {"type": "string", "pattern": rf"^\s*([Uu][Nn][Ll][Ii][Mm][Ii][Tt][Ee][Dd]|{_NUMBER_PATTERN})\s*$"},
]}
_BYTES_SCHEMA: dict[str, Any] = {"anyOf": [
    {"type": "integer", "minimum": 1},
    {"type": "string", "pattern": rf"^\s*({_NUMBER_PATTERN})\s*$"},
]}


def _size_input(value: Any) -> Any:
    return parse_size(value)


def _bytes_input(value: Any) -> Any:
    size = parse_size(value, allow_unlimited=False)
    if size == 0:
        raise ValueError("a quota of 0 bytes is not a quota: give a size such as 10GB")
    return size


# A size parameter: bytes, "2GB"/"500 MB", or unlimited. Validated before the type check, so a
# wrong value gets one sentence at the parameter's own location.
QuotaSize = Annotated[int | Literal["unlimited"], BeforeValidator(_size_input), WithJsonSchema(_SIZE_SCHEMA)]
ByteSize = Annotated[int, BeforeValidator(_bytes_input), WithJsonSchema(_BYTES_SCHEMA)]


# --- Exchange data folders: where hard limits stop Exchange -----------------------------------------

EXCHANGE_DATA_WHY = ("when it fills, ESE and transport cannot write: mailbox databases dismount and transport "
                     "applies back pressure (stops accepting mail)")


def _norm(path: str) -> str:
    return path.strip().rstrip("\\").casefold()


def overlaps(a: str, b: str) -> bool:
    """Whether one folder holds the other (or they are the same): a quota on either covers both."""
    x, y = _norm(a), _norm(b)
    return x == y or x.startswith(y + "\\") or y.startswith(x + "\\")


def exchange_data_folders(facts: Facts) -> list[tuple[str, str]]:
    """Every Exchange folder the facts know, with its role (install path, queue, databases, logs)."""
    return [(role, path) for role in PATH_ROLES for path in facts.paths(role)]


def exchange_data_conflict(path: str, facts: Facts, *, unknown_refused: bool = True) -> str | None:
    """Why a hard limit on ``path`` would reach Exchange data on this host, or None if it cannot.

    An Exchange host whose database folders are not known cannot be shown safe, so it is refused
    too unless ``unknown_refused`` is false (declare ``mailbox_databases`` in the inventory's facts,
    or use a soft limit)."""
    if facts.exchange_release is None and not facts.exchange_install_path:
        return None
    for role, folder in exchange_data_folders(facts):
        if overlaps(path, folder):
            where = "is" if _norm(path) == _norm(folder) else ("holds" if _norm(folder).startswith(
                _norm(path) + "\\") else "is inside")
            return f"{path} {where} the {role.replace('_', ' ')} folder {folder}"
    if unknown_refused and not facts.has_exchange_paths:
        return (f"{path} is on an Exchange server whose mailbox database and log folders are not known here, so "
                "it cannot be shown to hold none (declare mailbox_databases in the inventory's facts, or run it "
                "with a control that uses paths_from: mailbox_databases)")
    return None


# --- volume_quota ------------------------------------------------------------------------------------

VolumeState = Literal["disabled", "track", "enforce"]
STATE_NAMES: tuple[str, ...] = ("disabled", "track", "enforce")


class QuotaStateNumbers(KindParams):
    """The numbers ``Win32_QuotaSetting.State`` uses for each quota state.

    [U] Microsoft documents 0 disabled, 1 track, 2 enforce for the shell's DiskQuotaControl
    ``QuotaState``; whether ``Win32_QuotaSetting.State`` numbers the same way is unverified (a
    Microsoft Script Center sample sets State = 1 and calls it "enforce"). Check one host with
    ``fsutil quota query`` and override here if they differ.
    """

    disabled: int = Field(0, ge=0, description="State number meaning quotas are off. [U] default 0.")
    track: int = Field(1, ge=0, description="State number meaning usage is tracked, limits not enforced. "
                       "[U] default 1.")
    enforce: int = Field(2, ge=0, description="State number meaning limits are enforced. [U] default 2.")

    @model_validator(mode="after")
    def _distinct(self) -> QuotaStateNumbers:
        if len({self.disabled, self.track, self.enforce}) != 3:
            raise ValueError("disabled, track and enforce need three different numbers")
        return self

    def number(self, state: str) -> int:
        return int(getattr(self, state))

    def name(self, number: Any) -> str:
        for state in STATE_NAMES:
            if number == self.number(state):
                return state
        return f"unknown ({number})"


class VolumeQuotaParams(PathParams):
    """Parameters of ``volume_quota``."""

    path: str | None = Field(
        None, description="A drive ('D:' or 'D:\\') or any existing folder: the volume that holds it.")
    paths_from: PathRole | None = Field(
        None, description="Every volume that holds a folder of this role, from the host's facts: exchange_install, "
        "transport_queue, mailbox_databases, mailbox_database_logs, transport_logs.",
    )
    state: VolumeState | None = Field(
        None, description="disabled, track (record usage, log events, never refuse a write) or enforce (refuse "
        "writes over the limit).")
    default_warning_level: QuotaSize | None = Field(
        None, description="Default warning level for users new to the volume (DefaultWarningLimit): bytes, '1GB', "
        "or unlimited.")
    default_limit: QuotaSize | None = Field(
        None, description="Default quota limit for users new to the volume (DefaultLimit): bytes, '2GB', or "
        "unlimited.")
    log_warning_exceeded: bool | None = Field(
        None, description="Log an event when a user exceeds the warning level (WarningExceededNotification).")
    log_limit_exceeded: bool | None = Field(
        None, description="Log an event when a user exceeds the limit (ExceededNotification).")
    state_numbers: QuotaStateNumbers = Field(
        default_factory=QuotaStateNumbers, description="[U] How Win32_QuotaSetting.State numbers the states "
        "(default 0 disabled, 1 track, 2 enforce, as DiskQuotaControl documents).")

    @field_validator("state", mode="before")
    @classmethod
    def _state_name(cls, value: Any) -> Any:
        return canonical_names(value, STATE_NAMES)

    @model_validator(mode="after")
    def _consistent(self) -> VolumeQuotaParams:
        if all(v is None for v in (self.state, self.default_warning_level, self.default_limit,
                                    self.log_warning_exceeded, self.log_limit_exceeded)):
            raise ValueError("set at least one of state, default_warning_level, default_limit, "
                             "log_warning_exceeded, log_limit_exceeded")
        if (self.default_warning_level is not None and self.default_limit is not None
                and not _within(self.default_warning_level, self.default_limit)):
            raise ValueError(f"default_warning_level {format_size(self.default_warning_level)} is above "
                             f"default_limit {format_size(self.default_limit)}")
        if self.paths_from is not None and self.enforces_a_limit:
            raise ValueError(f"an enforced default_limit on the volumes of Exchange's {self.paths_from} folders is "
                             "refused: files owned by NETWORK SERVICE (transport) count against it, and "
                             f"{EXCHANGE_DATA_WHY}; use state: track (usage and events only) and enforce sizes "
                             "with mailbox_database_quota")
        return self

    @property
    def enforces_a_limit(self) -> bool:
        return self.state == "enforce" and self.default_limit not in (None, UNLIMITED)


def _drive(path: str) -> str:
    """``D:`` means the current folder of drive D to Windows; the volume is ``D:\\``."""
    return path + "\\" if re.fullmatch(r"[A-Za-z]:", path) else path


class VolumeQuota(Kind[VolumeQuotaParams]):
    """NTFS disk quotas of a volume: state (disabled, track, enforce), the default warning level
    and limit for users new to the volume, and whether exceeding them is logged.

    Acts on the volume that holds each ``path`` (a drive letter or any folder; mount points are
    found as the longest matching ``Win32_Volume`` name) or each folder of a ``paths_from`` role;
    folders on one volume make one object. Reads ``Get-CimInstance Win32_Volume`` and
    ``Win32_QuotaSetting``; writes the properties that differ with ``Set-CimInstance`` [I] (the
    guide's ``fsutil quota`` does the same through another door). A missing folder fails; a volume
    without NTFS quotas (ReFS, FAT) fails when named by ``path`` and is not applicable when a role's
    folders all lie on such volumes.

    Pitfalls: quotas are charged to the owner of each file, and a quota cannot limit an
    administrator; Exchange's stores run as SYSTEM, so NTFS quotas do not limit Exchange databases
    [I] — use ``mailbox_database_quota`` for mailbox sizes. An enforced default limit on a volume with
    Exchange data is refused (``paths_from`` at validation, ``path`` once the volume is known):
    transport writes as NETWORK SERVICE, and a full quota stops it. Turning quotas on starts a scan
    of the volume that can take a while [I]. ``State`` numbering is a parameter ([U],
    ``state_numbers``). Default limits apply to users new to the volume; existing per-user entries
    (``Win32_DiskQuota``) are not changed. No restart.
    """

    name = "volume_quota"
    summary = "NTFS disk quota state, default warning level and limit of volumes"
    params_model = VolumeQuotaParams
    channel = "script"
    template = "volume_quota.ps1.j2"
    variants = (WINDOWS_MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {
        "State": TEXT, "DefaultWarningLimit": SIZE, "DefaultLimit": SIZE,
        "WarningExceededNotification": BOOL, "ExceededNotification": BOOL,
    }

    def read(self, params: VolumeQuotaParams, ctx: Context) -> tuple[Call, ...]:
        return tuple(ScriptCall(self.name, "read", {"path": _drive(path)}) for path in target_paths(params, ctx))

    def observe(self, params: VolumeQuotaParams, ctx: Context, values: Sequence[Any]) -> State:
        state: dict[str, dict[str, Any]] = {}
        unsupported: list[str] = []
        for path, value in zip(target_paths(params, ctx), values, strict=True):
            value = value or {}
            if not value.get("exists"):
                raise ControlFailed(f"{path} does not exist on {ctx.host}")
            volume = value.get("volume")
            if not volume:
                raise ControlFailed(f"no volume holding {path} was found on {ctx.host}")
            volume = str(volume)
            if not value.get("supported"):
                unsupported.append(f"{volume} ({value.get('file_system') or 'unknown file system'}, holding {path})")
                continue
            if volume in state:
                state[volume]["_paths"].append(path)
                continue
            numbers = params.state_numbers
            state[volume] = {
                "State": numbers.name(value.get("state")),
                "DefaultWarningLimit": _host_size(value.get("default_warning_limit")),
                "DefaultLimit": _host_size(value.get("default_limit")),
                "WarningExceededNotification": value.get("warning_exceeded_notification"),
                "ExceededNotification": value.get("exceeded_notification"),
                "_paths": [path],
            }
        if unsupported:
            problem = (f"{', '.join(unsupported)}: no NTFS disk quotas on this file system "
                       "(ReFS and FAT volumes have none)")
            if params.path is not None:
                raise ControlFailed(problem)
            if not state:
                raise NotApplicable(f"every {params.paths_from} folder of {ctx.host} is on a volume without NTFS "
                                    f"quotas: {problem}")
            raise ControlFailed(f"{problem}; the other volumes were not checked: name the NTFS ones with path")
        if params.enforces_a_limit:
            for volume in state:
                conflict = self._exchange_volume(volume, ctx.facts)
                if conflict:
                    raise ControlFailed(f"an enforced default_limit on {volume} is refused: {conflict}; files owned "
                                        f"by NETWORK SERVICE (transport) count against it, and {EXCHANGE_DATA_WHY}")
        return state

    @staticmethod
    def _exchange_volume(volume: str, facts: Facts) -> str | None:
        for role, folder in exchange_data_folders(facts):
            if _norm(folder).startswith(_norm(volume) + "\\") or _norm(folder) == _norm(volume):
                return f"the volume holds the {role.replace('_', ' ')} folder {folder}"
        return None

    def desire(self, params: VolumeQuotaParams, ctx: Context, observed: State | None) -> State:
        keys = list(observed) if observed is not None else [_drive(p) for p in target_paths(params, ctx)]
        want: dict[str, Any] = {}
        if params.state is not None:
            want["State"] = params.state
        if params.default_warning_level is not None:
            want["DefaultWarningLimit"] = format_size(params.default_warning_level)
        if params.default_limit is not None:
            want["DefaultLimit"] = format_size(params.default_limit)
        if params.log_warning_exceeded is not None:
            want["WarningExceededNotification"] = params.log_warning_exceeded
        if params.log_limit_exceeded is not None:
            want["ExceededNotification"] = params.log_limit_exceeded
        return {key: dict(want) for key in keys}

    def write(self, params: VolumeQuotaParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        calls: list[Call] = []
        for volume, want in desired.items():
            seen = (observed or {}).get(volume) or {}
            data: dict[str, Any] = {"path": volume}
            for prop, value in (want or {}).items():
                if observed is not None and self.comparers[prop].equal(value, seen.get(prop)):
                    continue
                if prop == "State":
                    data["state"] = params.state_numbers.number(str(value))
                elif prop in ("DefaultWarningLimit", "DefaultLimit"):
                    size = size_key(value)
                    data[_SNAKE[prop]] = -1 if size == UNLIMITED else size  # [I] WMI's sint64 "no limit"
                else:
                    data[_SNAKE[prop]] = bool(value)
            if len(data) > 1:
                calls.append(ScriptCall(self.name, "write", data))
        return tuple(calls)

    def plan_notes(self, params: VolumeQuotaParams) -> tuple[str, ...]:
        if params.path is not None and re.fullmatch(r"[A-Za-z]:\\?", params.path):
            return ()
        return ("the volume of each folder is found on the host (Win32_Volume); folders on one volume are one "
                "object",)


_SNAKE = {"DefaultWarningLimit": "default_warning_limit", "DefaultLimit": "default_limit",
          "WarningExceededNotification": "warning_exceeded_notification",
          "ExceededNotification": "exceeded_notification"}


def _host_size(value: Any) -> Any:
    """A size from the host, shown as Exchange would (unparseable values are kept as they came)."""
    try:
        return format_size(value)
    except ValueError:
        return value


# --- fsrm_quota --------------------------------------------------------------------------------------

# [V] TechNet cc734227: "The File Server Resource Manager (FSRM) service (SrmSvc)"; the role service's
# feature name FS-Resource-Manager and its tools' RSAT-FSRM-Mgmt are [I] (procedures §5.2).
FSRM_SERVICE = "SrmSvc"
FSRM_NOT_INSTALLED = ("File Server Resource Manager is not installed on {host} (no {service} service): it has no FSRM "
                      "quotas to check. FSRM is opt-in (playbooks/fsrm.yml); where folder quotas are wanted, install "
                      "the FS-Resource-Manager role service first, or leave this host out of the control")
FSRM_NO_MODULE = ("File Server Resource Manager is installed on {host} (service {service} {status}) but its PowerShell "
                  "module is not (the FileServerResourceManager cmdlets are absent): install its management tools "
                  "(Install-WindowsFeature -Name RSAT-FSRM-Mgmt) to manage its quotas")


def fsrm_presence(value: Mapping[str, Any], host: str) -> None:
    """Refuse a read that found no FSRM: ``not_applicable`` when the role service is not installed
    (no SrmSvc), ``failed`` when it is installed but the cmdlets are absent."""
    service = value.get("service")
    if not service:
        raise NotApplicable(FSRM_NOT_INSTALLED.format(host=host, service=FSRM_SERVICE))
    if not value.get("module"):
        raise ControlFailed(FSRM_NO_MODULE.format(host=host, service=FSRM_SERVICE, status=str(service).lower()))


class FsrmQuotaParams(PathParams):
    """Parameters of ``fsrm_quota``."""

    path: str | None = Field(None, description="An existing folder; the quota covers it and everything below it.")
    size: ByteSize = Field(description="The quota's limit: bytes, or '10GB', '500 MB' (1024-based).")
    limit: Literal["soft", "hard"] = Field(
        "soft", description="soft: report and notify only (SoftLimit); hard: refuse writes over the limit. Only "
        "soft on Exchange data folders (refused otherwise).")
    description: str | None = Field(None, description="The quota's description (shown in FSRM).")
    disabled: bool = Field(False, description="true: the quota exists but is not tracked (Disabled).")

    @field_validator("limit", mode="before")
    @classmethod
    def _limit_name(cls, value: Any) -> Any:
        return canonical_names(value, ("soft", "hard"))

    @model_validator(mode="after")
    def _soft_on_exchange(self) -> FsrmQuotaParams:
        if self.limit == "hard" and self.paths_from is not None:
            raise ValueError(f"a hard FSRM quota on Exchange's {self.paths_from} folders is refused: "
                             f"{EXCHANGE_DATA_WHY}; use limit: soft (report only) and enforce mailbox sizes with "
                             "mailbox_database_quota")
        return self


class FsrmQuota(Kind[FsrmQuotaParams]):
    """File Server Resource Manager folder quotas: size, soft or hard limit, description and
    whether the quota is disabled, on folders given by ``path`` or by a ``paths_from`` role.

    Reads ``Get-FsrmQuota`` (matched by exact path, so wildcard characters in a path are never
    patterns); creates a missing quota with ``New-FsrmQuota -Path``; changes an existing one with
    ``Set-FsrmQuota -InputObject``, only the properties that differ. A quota covers the folder and
    everything below it, and quotas higher up restrict further [V]. A missing folder fails (it is
    never created). The read first looks for FSRM itself: a host without the role service (no
    ``SrmSvc`` service) is ``not_applicable`` with that reason — FSRM is an optional role, most
    Exchange servers do not have it, and the shipped control is opt-in (``playbooks/fsrm.yml``,
    not in the baseline); a host with the service but without the FileServerResourceManager
    cmdlets fails, saying to install the management tools. Thresholds, notifications and templates
    are not managed.

    Exchange data: a **hard** quota on a database, log or queue folder makes ESE and transport
    writes fail — mailbox databases dismount and transport applies back pressure [I]. So only
    soft quotas are accepted there: with ``paths_from`` a hard quota is refused when the playbook
    is loaded; with ``path`` it is refused before anything is read when the folder holds, or lies
    inside, an Exchange folder known from the facts (install path, queue, databases, logs), and on
    an Exchange server whose database folders are not known. No restart.
    """

    name = "fsrm_quota"
    summary = "FSRM folder quotas: size, soft or hard limit (soft only on Exchange data), description"
    params_model = FsrmQuotaParams
    channel = "script"
    template = "fsrm_quota.ps1.j2"
    variants = (WINDOWS_MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {
        "Size": SIZE, "SoftLimit": BOOL, "Disabled": BOOL, "Description": TEXT,
    }

    def preflight(self, params: FsrmQuotaParams, host: Host) -> str | None:
        if params.limit != "hard" or params.path is None:
            return None
        # Only what the declared facts show for certain; what they leave open is checked once the
        # host's facts are read (before anything is read for this control).
        conflict = exchange_data_conflict(params.path, Facts.from_mapping({}, host.facts), unknown_refused=False)
        return None if conflict is None else self._refusal(conflict)

    @staticmethod
    def _refusal(conflict: str) -> str:
        return (f"a hard FSRM quota there is refused: {conflict}; {EXCHANGE_DATA_WHY}. Use limit: soft (report "
                "only) and enforce mailbox sizes with mailbox_database_quota")

    def _paths(self, params: FsrmQuotaParams, ctx: Context) -> tuple[str, ...]:
        paths = target_paths(params, ctx)
        if params.limit == "hard":
            for path in paths:
                conflict = exchange_data_conflict(path, ctx.facts)
                if conflict:
                    raise ControlFailed(self._refusal(conflict))
        return paths

    def read(self, params: FsrmQuotaParams, ctx: Context) -> tuple[Call, ...]:
        return tuple(ScriptCall(self.name, "read", {"path": path}) for path in self._paths(params, ctx))

    def observe(self, params: FsrmQuotaParams, ctx: Context, values: Sequence[Any]) -> State:
        state: dict[str, dict[str, Any] | None] = {}
        for path, value in zip(self._paths(params, ctx), values, strict=True):
            value = value or {}
            fsrm_presence(value, ctx.host)
            if not value.get("exists"):
                raise ControlFailed(f"folder {path} does not exist on {ctx.host}; a quota needs an existing folder "
                                    "(it is never created)")
            quota = value.get("quota")
            if not isinstance(quota, Mapping):
                state[path] = None
                continue
            state[path] = {
                "Size": _host_size(quota.get("size")),
                "SoftLimit": quota.get("soft_limit"),
                "Disabled": quota.get("disabled"),
                "Description": quota.get("description") or None,
                "_template": quota.get("template") or None,
            }
        return state

    def desire(self, params: FsrmQuotaParams, ctx: Context, observed: State | None) -> State:
        want: dict[str, Any] = {"Size": format_size(params.size), "SoftLimit": params.limit == "soft",
                                "Disabled": params.disabled}
        if params.description is not None:
            want["Description"] = params.description
        return {path: dict(want) for path in self._paths(params, ctx)}

    def write(self, params: FsrmQuotaParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        calls: list[Call] = []
        for path, want in desired.items():
            seen = None if observed is None else observed.get(path)
            data: dict[str, Any] = {"path": path, "create": seen is None}
            for prop, value in (want or {}).items():
                if seen is not None and self.comparers[prop].equal(value, seen.get(prop)):
                    continue
                data[_FSRM_KEYS[prop]] = size_key(value) if prop == "Size" else value
            if len(data) > 2:
                calls.append(ScriptCall(self.name, "write", data))
        return tuple(calls)

    def plan_notes(self, params: FsrmQuotaParams) -> tuple[str, ...]:
        return ("a missing quota is created with New-FsrmQuota; an existing one gets only the properties that "
                "differ (Set-FsrmQuota)",)


_FSRM_KEYS = {"Size": "size", "SoftLimit": "soft_limit", "Disabled": "disabled", "Description": "description"}


# --- mailbox_database_quota --------------------------------------------------------------------------

QUOTA_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("issue_warning_quota", "IssueWarningQuota"),
    ("prohibit_send_quota", "ProhibitSendQuota"),
    ("prohibit_send_receive_quota", "ProhibitSendReceiveQuota"),
    ("recoverable_items_warning_quota", "RecoverableItemsWarningQuota"),
    ("recoverable_items_quota", "RecoverableItemsQuota"),
)
# The order the kind insists on (lower ≤ higher). Exchange itself documents only
# IssueWarning ≤ ProhibitSendReceive, ProhibitSend ≤ ProhibitSendReceive and
# RecoverableItemsWarning ≤ RecoverableItems [V]; a warning after sending is blocked warns too late.
QUOTA_ORDER: tuple[tuple[str, str], ...] = (
    ("IssueWarningQuota", "ProhibitSendQuota"),
    ("ProhibitSendQuota", "ProhibitSendReceiveQuota"),
    ("IssueWarningQuota", "ProhibitSendReceiveQuota"),
    ("RecoverableItemsWarningQuota", "RecoverableItemsQuota"),
)
_GLOB = re.compile(r"[*?\[]")
# The limits that stop something when a mailbox reaches them: [V] OPS Set-MailboxDatabase, "If the
# mailbox reaches or exceeds this size, the mailbox can't send or receive new messages"; the
# Recoverable Items quota stops deletions being kept [I]. Lowering one (or turning Unlimited into a
# size) acts at once on every mailbox of the database that uses the database's defaults, so it needs
# allow_lower. The warning levels only warn: lowering them is made, with a note of who is warned.
STOPPING: tuple[str, ...] = ("ProhibitSendQuota", "ProhibitSendReceiveQuota", "RecoverableItemsQuota")
# Which size of a mailbox each quota is measured against (TotalItemSize; for the Recoverable Items
# quotas TotalDeletedItemSize, the folder's size [I]) and what a mailbox at or above it suffers.
EFFECTS: Mapping[str, tuple[str, str]] = {
    "IssueWarningQuota": ("item", "where a mailbox gets quota warnings"),
    "ProhibitSendQuota": ("item", "where a mailbox cannot send"),
    "ProhibitSendReceiveQuota": ("item", "where a mailbox refuses new mail and its senders get an NDR"),
    "RecoverableItemsWarningQuota": ("deleted", "where a Recoverable Items warning is logged"),
    "RecoverableItemsQuota": ("deleted", "where the Recoverable Items folder is full and keeps no more deleted items"),
}
# Bookkeeping key of an observed database: its mailboxes' sizes, when they were read.
MAILBOXES = "_mailboxes"
NAMES_SHOWN = 3


def _one_or_list(schema: dict[str, Any]) -> None:
    items = schema.pop("items")
    schema.pop("type", None)
    schema["anyOf"] = [items, {"type": "array", "items": items}]


class MailboxDatabaseQuotaParams(KindParams):
    """Parameters of ``mailbox_database_quota``."""

    databases: list[str] = Field(
        default_factory=lambda: ["*"], description="Mailbox database names or globs (case-insensitive); default "
        "'*': every database of the server.", json_schema_extra=_one_or_list)
    issue_warning_quota: QuotaSize | None = Field(
        None, description="IssueWarningQuota: the user is warned from this mailbox size (bytes, '1.9GB', unlimited).")
    prohibit_send_quota: QuotaSize | None = Field(
        None, description="ProhibitSendQuota: the user can no longer send from this size.")
    prohibit_send_receive_quota: QuotaSize | None = Field(
        None, description="ProhibitSendReceiveQuota: the mailbox refuses new mail from this size (senders get an NDR).")
    recoverable_items_warning_quota: QuotaSize | None = Field(
        None, description="RecoverableItemsWarningQuota: an event is logged from this Recoverable Items size.")
    recoverable_items_quota: QuotaSize | None = Field(
        None, description="RecoverableItemsQuota: the Recoverable Items folder accepts nothing more from this size.")
    allow_lower: bool = Field(
        False, description="true: the control may lower a database's ProhibitSendQuota, ProhibitSendReceiveQuota or "
        "RecoverableItemsQuota, or turn its Unlimited into a size. Every mailbox already at or above the new limit "
        "is stopped at once: over ProhibitSendReceiveQuota it refuses new mail (senders get an NDR), over "
        "ProhibitSendQuota it cannot send. false (default): such a database is left exactly as it is and the outcome "
        "stays drifted, naming the database, its current and the proposed limits and how many mailboxes are over.")
    count_mailboxes: bool = Field(
        True, description="Read the size of every mailbox of the server (one Get-MailboxStatistics -Server "
        "-IncludePassive -NoADLookup per check, and again in the re-read after a write; one object per mailbox) to "
        "say how many are at or above a lowered limit. On servers with many thousands of mailboxes that read takes "
        "time: false skips it; lowerings are still refused, the outcome then says the mailboxes were not counted.")

    @field_validator("databases", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("databases")
    @classmethod
    def _named(cls, value: list[str]) -> list[str]:
        if not value or any(name == "" for name in value):
            raise ValueError("name at least one database or glob ('*' for all); names cannot be empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MailboxDatabaseQuotaParams:
        given = self.quotas()
        if not given:
            raise ValueError("set at least one of " + ", ".join(field for field, _ in QUOTA_PROPERTIES))
        for prop, size in given.items():
            if size != UNLIMITED and isinstance(size, int) and size > EXCHANGE_QUOTA_MAX:
                raise ValueError(f"{_field_of(prop)} {format_size(size)} is above Exchange's maximum "
                                 f"{format_size(EXCHANGE_QUOTA_MAX)} (or use unlimited)")
        for low, high in QUOTA_ORDER:
            if low in given and high in given and not _within(given[low], given[high]):
                raise ValueError(f"{_field_of(low)} ({format_size(given[low])}) must not be above "
                                 f"{_field_of(high)} ({format_size(given[high])})")
        return self

    def quotas(self) -> dict[str, Size]:
        """The quotas this control sets, by Exchange property name."""
        return {prop: getattr(self, field) for field, prop in QUOTA_PROPERTIES if getattr(self, field) is not None}


def _field_of(prop: str) -> str:
    return next(field for field, name in QUOTA_PROPERTIES if name == prop)


class MailboxDatabaseQuota(Kind[MailboxDatabaseQuotaParams]):
    """Exchange's own mailbox limits, the real "mailbox quota": IssueWarningQuota,
    ProhibitSendQuota, ProhibitSendReceiveQuota (and RecoverableItemsWarningQuota /
    RecoverableItemsQuota) of mailbox databases, selected by name or glob (default: every database
    of the server).

    Reads ``Get-MailboxDatabase -Server`` (for globs) and ``Get-MailboxDatabase -Identity`` (for
    exact names; a database that exists but has no copy on this server is left to the servers that
    hold it, a name that does not exist fails the read). Values arrive deserialised as
    ``"2 GB (2,147,483,648 bytes)"`` or ``"Unlimited"`` and are compared in bytes. Writes one
    ``Set-MailboxDatabase -Identity`` per database with only the quotas that differ, as exact byte
    counts (``2GB``, ``2040109465B``), never rounded decimals.

    Before anything is sent the order is checked: warning ≤ prohibit send ≤ prohibit send/receive,
    and Recoverable Items warning ≤ Recoverable Items quota — among the values given, and for each
    database with its current values of the quotas the control leaves alone (a pair the control does
    not touch at all is not its business). Exchange refuses some of these orders itself; a warning
    above the send limit it accepts, and warns too late.

    Never lowered without consent: a change that lowers a database's ProhibitSendQuota,
    ProhibitSendReceiveQuota or RecoverableItemsQuota, or turns its Unlimited into a size (a
    current value that is not a readable size counts as one), leaves that database exactly as it is
    — its other quota changes wait with it, so its quotas stay in order — unless the control says
    ``allow_lower: true``. Mailboxes at or above a lowered limit are stopped the moment the
    Information Store sees it [V] ("If the mailbox reaches or exceeds this size, the mailbox can't
    send or receive new messages"). The refusal is an outcome, ``drifted`` in check and apply alike
    (never ``compliant``: the database differs from the playbook; never ``failed``: nothing went
    wrong), with one sentence per database naming its current and the proposed limits, how many
    mailboxes are at or above them (the largest by name) and ``allow_lower: true`` as the way to
    allow it. Raising a limit, or setting Unlimited, is always made. The warning levels
    (IssueWarningQuota, RecoverableItemsWarningQuota) only warn: lowering them is made, with a note
    when mailboxes are already over.

    The count: with ``count_mailboxes`` (default true), the read also sends
    ``Get-MailboxStatistics -Server <server> -IncludePassive -NoADLookup`` [V OPS: NoADLookup reads
    the mailbox database only, not AD, and "helps improve cmdlet performance when querying a mailbox
    database that contains a large number of mailboxes"; IncludePassive adds the database copies
    that are passive on this server], whenever the control sets a quota to a size. Its answer is one
    object per mailbox of every database of the server, on each check and again in the re-read
    after a write: on servers with many thousands of mailboxes turn it off with
    ``count_mailboxes: false`` (the guard still refuses, without the count); a failing statistics
    read fails the control's read like any other. Sizes arrive deserialised as
    ``"1.5 GB (1,610,612,736 bytes)"`` and are counted in bytes: ``TotalItemSize`` against the
    mailbox quotas, ``TotalDeletedItemSize`` against the Recoverable Items quotas [I].
    Disconnected mailboxes (``DisconnectDate`` set) and archive mailboxes are not counted [I]. The
    statistics do not say which mailboxes have their own quotas (``UseDatabaseQuotaDefaults``
    false), which a database's quotas do not affect: the count is an upper bound.

    A database is an Active Directory object: in a DAG every server holding a copy sees the same one,
    and the first write makes the others compliant. No restart; the Information Store picks the
    change up from AD after its cache refresh (up to about two hours [I]).
    """

    name = "mailbox_database_quota"
    summary = "Mailbox database quotas: issue warning, prohibit send, prohibit send/receive, recoverable items"
    params_model = MailboxDatabaseQuotaParams
    channel = "exchange"
    variants = (EXCHANGE_MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {prop: SIZE for _, prop in QUOTA_PROPERTIES}

    @staticmethod
    def _exact(params: MailboxDatabaseQuotaParams) -> list[str]:
        seen: dict[str, str] = {}
        for name in params.databases:
            if not _GLOB.search(name):
                seen.setdefault(name.casefold(), name)
        return list(seen.values())

    @staticmethod
    def _globs(params: MailboxDatabaseQuotaParams) -> list[str]:
        return [name for name in params.databases if _GLOB.search(name)]

    def _database_reads(self, params: MailboxDatabaseQuotaParams, ctx: Context) -> list[Call]:
        calls: list[Call] = []
        if self._globs(params):
            calls.append(CmdletCall("Get-MailboxDatabase", (("Server", ctx.server),)))
        calls += [CmdletCall("Get-MailboxDatabase", (("Identity", name),)) for name in self._exact(params)]
        return calls

    @staticmethod
    def _counts(params: MailboxDatabaseQuotaParams) -> bool:
        """Whether the read counts mailboxes: asked for, and some quota is set to a size (only a
        size can lower anything)."""
        return params.count_mailboxes and any(size != UNLIMITED for size in params.quotas().values())

    def read(self, params: MailboxDatabaseQuotaParams, ctx: Context) -> tuple[Call, ...]:
        if is_edge_transport(ctx.facts):
            raise NotApplicable(f"{ctx.host} is an Edge Transport server: it has no mailbox databases")
        calls = self._database_reads(params, ctx)
        if self._counts(params):
            calls.append(CmdletCall("Get-MailboxStatistics", (("Server", ctx.server), ("IncludePassive", Switch()),
                                                              ("NoADLookup", Switch()))))
        return tuple(calls)

    def _selected(self, params: MailboxDatabaseQuotaParams, ctx: Context,
                  values: Sequence[Any]) -> list[Mapping[str, Any]]:
        globs = [g.casefold() for g in self._globs(params)]
        exact = {n.casefold() for n in self._exact(params)}
        found: dict[str, Mapping[str, Any]] = {}
        for value in values:
            for database in host_objects(value):
                name = str(database.get("Name", ""))
                if not _on_server(database, ctx.server):
                    continue
                if name.casefold() in exact or any(fnmatch.fnmatchcase(name.casefold(), g) for g in globs):
                    found.setdefault(name.casefold(), database)
        return [found[k] for k in sorted(found)]

    def observe(self, params: MailboxDatabaseQuotaParams, ctx: Context, values: Sequence[Any]) -> State:
        n = len(self._database_reads(params, ctx))
        databases = self._selected(params, ctx, values[:n])
        if not databases:
            raise NotApplicable(f"no mailbox database of {ctx.server} matches {', '.join(params.databases)}")
        state: dict[str, dict[str, Any]] = {}
        for database in databases:
            name = str(database.get("Name"))
            state[name] = {prop: database.get(prop) for _, prop in QUOTA_PROPERTIES}
            if len(values) > n:
                state[name][MAILBOXES] = mailbox_sizes(values[n], name)
        return state

    def desire(self, params: MailboxDatabaseQuotaParams, ctx: Context, observed: State | None) -> State:
        want = {prop: format_size(size) for prop, size in params.quotas().items()}
        if observed is None:
            planned = self._exact(params) + [f"<{ctx.server} databases matching {g}>" for g in self._globs(params)]
            return {name: dict(want) for name in planned}
        for name, seen in observed.items():
            self._check_order(name, want, seen or {})
        return {name: dict(want) for name in observed}

    def caveats(self, params: MailboxDatabaseQuotaParams, ctx: Context, observed: State,
                desired: State) -> tuple[Caveat, ...]:
        out: list[Caveat] = []
        for name, want in desired.items():
            out += database_caveats(name, (observed or {}).get(name) or {}, want or {}, params.allow_lower)
        return tuple(out)

    @staticmethod
    def _check_order(name: str, want: Mapping[str, Any], seen: Mapping[str, Any]) -> None:
        """Refuse, before anything is sent, a change that leaves the quotas in the wrong order."""
        problems: list[str] = []
        involved: list[str] = []
        for low, high in QUOTA_ORDER:
            if low not in want and high not in want:
                continue
            try:
                a = size_key(want.get(low, seen.get(low)))
                b = size_key(want.get(high, seen.get(high)))
            except ValueError:
                continue  # a current value that cannot be read is not compared
            if not _within(a, b):
                problems.append(f"{low} {format_size(a)} above {high} {format_size(b)}")
                involved += [p for p in (low, high) if p not in involved]
        if problems:
            current = [p for p in involved if p not in want]
            raise ControlFailed(
                f"{name}: this change would leave {', and '.join(problems)}"
                + (f" ({', '.join(current)}: the database's current value{'s' if len(current) > 1 else ''})"
                   if current else "")
                + f"; set {', '.join(_field_of(p) for p in involved)} together so they stay in order")

    def write(self, params: MailboxDatabaseQuotaParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        calls: list[Call] = []
        for name, want in desired.items():
            seen = (observed or {}).get(name) or {}
            args: list[tuple[str, Any]] = [("Identity", name)]
            for prop, value in (want or {}).items():
                if observed is not None and SIZE.equal(value, seen.get(prop)):
                    continue
                args.append((prop, exchange_size_text(size_key(value))))
            if len(args) > 1:
                calls.append(CmdletCall("Set-MailboxDatabase", tuple(args)))
        return tuple(calls)

    def plan_notes(self, params: MailboxDatabaseQuotaParams) -> tuple[str, ...]:
        notes = ["one Set-MailboxDatabase -Identity per matching database, with only the quotas that differ"]
        if not params.allow_lower:
            notes.append("a database whose ProhibitSendQuota, ProhibitSendReceiveQuota or RecoverableItemsQuota this "
                         "would lower (or whose Unlimited it would turn into a size) is left as it is, drifted, unless "
                         "allow_lower: true")
        if self._counts(params):
            notes.append("the read also counts the server's mailboxes by size (Get-MailboxStatistics; count_mailboxes: "
                         "false skips it)")
        return tuple(notes)


def _bytes(value: Any) -> int | None:
    """A mailbox size in bytes, or None when the host gave something that is not one."""
    try:
        size = size_key(value)
    except ValueError:
        return None
    return size if isinstance(size, int) else None


def mailbox_sizes(value: Any, database: str) -> list[dict[str, Any]]:
    """The mailboxes of one database in what ``Get-MailboxStatistics`` returned: display name and
    sizes in bytes (``item``: TotalItemSize, ``deleted``: TotalDeletedItemSize; None where the host
    gave something else). Disconnected mailboxes (``DisconnectDate`` set) and archive mailboxes are
    left out: the database's quotas do not stop them [I]. Each mailbox counts once (a server holds
    at most one copy of a database)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for stat in host_objects(value):
        where = stat.get("DatabaseName") or stat.get("Database")
        if str(where or "").rsplit("\\", 1)[-1].casefold() != database.casefold():
            continue
        if stat.get("DisconnectDate") or _truthy(stat.get("IsArchiveMailbox")):
            continue
        key = str(stat.get("MailboxGuid") or stat.get("DisplayName") or len(out))
        if key in seen:
            continue
        seen.add(key)
        out.append({"name": str(stat.get("DisplayName") or key), "item": _bytes(stat.get("TotalItemSize")),
                    "deleted": _bytes(stat.get("TotalDeletedItemSize"))})
    return out


def short_size(value: int | Literal["unlimited"]) -> str:
    """A size for a sentence: ``Unlimited``, ``14 GB``, ``9.5 GB``, ``700 MB`` (1024-based)."""
    if value == UNLIMITED:
        return "Unlimited"
    assert isinstance(value, int)
    unit, factor = next(((u, f) for u, f in reversed(UNITS.items()) if value >= f), ("b", 1))
    return f"{Decimal(value) / Decimal(factor):.2f}".rstrip("0").rstrip(".") + f" {unit.upper()}"


def mailboxes_over(mailboxes: Sequence[Mapping[str, Any]], prop: str, limit: int) -> list[tuple[str, int]]:
    """The mailboxes at or above ``limit`` for a quota, largest first."""
    which = EFFECTS[prop][0]
    over = [(str(m["name"]), int(m[which])) for m in mailboxes if isinstance(m.get(which), int) and m[which] >= limit]
    return sorted(over, key=lambda item: (-item[1], item[0].casefold()))


def over_phrase(prop: str, limit: int, mailboxes: Sequence[Mapping[str, Any]] | None) -> str:
    """How many mailboxes are at or above a limit and what that does to them, the largest by name."""
    which, where = EFFECTS[prop]
    if mailboxes is None:
        return f"mailboxes at or above {short_size(limit)} not counted (count_mailboxes: false)"
    over = mailboxes_over(mailboxes, prop, limit)
    unread = sum(1 for m in mailboxes if not isinstance(m.get(which), int))
    unknown = f", and the size of {unread} mailbox{'es' if unread > 1 else ''} could not be read" if unread else ""
    if not over:
        return f"no mailbox is at or above {short_size(limit)} now{unknown}"
    shown = ", ".join(f"{name} {short_size(size)}" for name, size in over[:NAMES_SHOWN])
    more = f" and {len(over) - NAMES_SHOWN} more" if len(over) > NAMES_SHOWN else ""
    count = "1 mailbox is" if len(over) == 1 else f"{len(over)} mailboxes are"
    return f"{count} at or above {short_size(limit)}, {where} ({shown}{more}){unknown}"


def quota_lowerings(seen: Mapping[str, Any], want: Mapping[str, Any]) -> list[tuple[str, Any, int]]:
    """(quota, current value as the host gave it, proposed size) for each quota ``want`` lowers: a
    smaller size, a size where the database has Unlimited, or any size where the current value is
    not a readable size (it cannot be shown not to be a lowering). Unlimited lowers nothing."""
    out: list[tuple[str, Any, int]] = []
    for prop, value in want.items():
        wanted = size_key(value)
        if wanted == UNLIMITED:
            continue
        assert isinstance(wanted, int)
        current = seen.get(prop)
        try:
            have = size_key(current)
        except ValueError:
            out.append((prop, current, wanted))
            continue
        if have == UNLIMITED or (isinstance(have, int) and have > wanted):
            out.append((prop, current, wanted))
    return out


def _current_text(value: Any) -> str:
    try:
        return short_size(size_key(value))
    except ValueError:
        return f"{value!r} (not a size this tool can read)"


def database_caveats(name: str, seen: Mapping[str, Any], want: Mapping[str, Any],
                     allow_lower: bool) -> list[Caveat]:
    """What the change of one database's quotas would do. Without ``allow_lower``, a lowered
    stopping limit holds the whole database back (so its quotas stay in order), in one sentence;
    otherwise each lowering gets a note of the mailboxes at or above the new value (a warning
    level's only when some are)."""
    lowered = quota_lowerings(seen, want)
    mailboxes = seen.get(MAILBOXES)
    stopping = [item for item in lowered if item[0] in STOPPING]
    if stopping and not allow_lower:
        parts = [f"{prop} {_current_text(current)} → {short_size(wanted)}: {over_phrase(prop, wanted, mailboxes)}"
                 for prop, current, wanted in stopping]
        others = [prop for prop in want if prop not in {item[0] for item in stopping}
                  and not SIZE.equal(want[prop], seen.get(prop))]
        wait = (f"; its other quota change{'s' if len(others) > 1 else ''} ({', '.join(others)}) wait"
                f"{'s' if len(others) == 1 else ''} with {'them' if len(stopping) > 1 else 'it'}, so its quotas stay "
                "in order") if others else ""
        return [Caveat(name, tuple(want), f"{name} is not lowered without allow_lower: true on the control — "
                       + "; ".join(parts) + wait)]
    notes: list[Caveat] = []
    for prop, current, wanted in lowered:
        if prop not in STOPPING and not (mailboxes and mailboxes_over(mailboxes, prop, wanted)):
            continue
        why = "with allow_lower: true" if prop in STOPPING else "a warning level, which stops nothing"
        notes.append(Caveat(name, (prop,), f"{name} {prop} {_current_text(current)} → {short_size(wanted)} ({why}): "
                            + over_phrase(prop, wanted, mailboxes), held=False))
    return notes


def _on_server(database: Mapping[str, Any], server: str) -> bool:
    """Whether a database has a copy on ``server`` (Servers lists every copy; Server the active one)."""
    names: Iterable[Any] = database.get("Servers") or ()
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    candidates = {str(n).split(".")[0].split("\\")[-1].casefold() for n in names}
    if database.get("Server"):
        candidates.add(str(database["Server"]).split(".")[0].casefold())
    return not candidates or server.casefold() in candidates


FAMILY_KINDS = (VolumeQuota(), FsrmQuota(), MailboxDatabaseQuota())
