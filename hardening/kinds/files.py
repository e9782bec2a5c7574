"""File-system kinds: NTFS permissions on directories (a script kind, ``templates/ntfs_acl.ps1.j2``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..compare import BOOL, SID, SID_NAMES, Comparer, State, sid_of
from ..model import Call, ScriptCall
from .base import Context, ControlFailed, Kind, KindParams, NotApplicable, Variant, host_objects
from .platforms import WINDOWS_MODERN_PRODUCTS, is_modern_windows

__all__ = [
    "FAMILY_KINDS",
    "AccessEntry",
    "NtfsAcl",
    "PathParams",
    "rights_mask",
    "rights_names",
    "target_paths",
]

MODERN = Variant(
    "windows-modern",
    "Windows Server 2016-2025 (Windows PowerShell 5.1)",
    WINDOWS_MODERN_PRODUCTS,
    is_modern_windows,
)

# System.Security.AccessControl.FileSystemRights, composites first so names come out short.
RIGHTS: dict[str, int] = {
    "FullControl": 0x1F01FF,
    "Modify": 0x0301BF,
    "ReadAndExecute": 0x0200A9,
    "Read": 0x020089,
    "Write": 0x000116,
    "ListDirectory": 0x000001,
    "CreateFiles": 0x000002,
    "CreateDirectories": 0x000004,
    "ReadExtendedAttributes": 0x000008,
    "WriteExtendedAttributes": 0x000010,
    "Traverse": 0x000020,
    "DeleteSubdirectoriesAndFiles": 0x000040,
    "ReadAttributes": 0x000080,
    "WriteAttributes": 0x000100,
    "Delete": 0x010000,
    "ReadPermissions": 0x020000,
    "ChangePermissions": 0x040000,
    "TakeOwnership": 0x080000,
    "Synchronize": 0x100000,
}
SYNCHRONIZE = RIGHTS["Synchronize"]
RightName = Literal[
    "FullControl", "Modify", "ReadAndExecute", "Read", "Write", "ListDirectory", "CreateFiles",
    "CreateDirectories", "ReadExtendedAttributes", "WriteExtendedAttributes", "Traverse",
    "DeleteSubdirectoriesAndFiles", "ReadAttributes", "WriteAttributes", "Delete", "ReadPermissions",
    "ChangePermissions", "TakeOwnership", "Synchronize",
]
# The folder dialog's "Applies to" → (InheritanceFlags, PropagationFlags).
# InheritanceFlags: ContainerInherit 1, ObjectInherit 2. PropagationFlags: NoPropagateInherit 1, InheritOnly 2.
APPLIES_TO: dict[str, tuple[int, int]] = {
    "this_folder_only": (0, 0),
    "this_folder_subfolders_and_files": (3, 0),
    "this_folder_and_subfolders": (1, 0),
    "this_folder_and_files": (2, 0),
    "subfolders_and_files_only": (3, 2),
    "subfolders_only": (1, 2),
    "files_only": (2, 2),
}
AppliesTo = Literal[
    "this_folder_only", "this_folder_subfolders_and_files", "this_folder_and_subfolders",
    "this_folder_and_files", "subfolders_and_files_only", "subfolders_only", "files_only",
]


def rights_mask(names: Sequence[str], allow: bool = True) -> int:
    """The access mask of rights names, normalised the way .NET stores it.

    .NET adds Synchronize to every Allow rule and strips it from Deny rules other than
    FullControl, so compare masks only after the same normalisation.
    """
    mask = 0
    for name in names:
        mask |= RIGHTS[name]
    if allow:
        return mask | SYNCHRONIZE
    return mask if mask == RIGHTS["FullControl"] else mask & ~SYNCHRONIZE


# Generic rights as the file system maps them (FILE_GENERIC_*); seen on inherit-only entries such
# as CREATOR OWNER, and read back negative through [int] when GENERIC_READ (bit 31) is set.
GENERIC_MAP = {0x10000000: 0x1F01FF, 0x20000000: 0x1200A0, 0x40000000: 0x120116, 0x80000000: 0x120089}


def normalise_mask(mask: int) -> int:
    """A mask as read from a host: 32-bit unsigned, generic rights mapped to file rights."""
    mask &= 0xFFFFFFFF
    for generic, specific in GENERIC_MAP.items():
        if mask & generic:
            mask = (mask & ~generic) | specific
    return mask


def rights_names(mask: int) -> list[str]:
    """Shortest list of right names whose union is ``mask`` (Synchronize left implicit)."""
    rest = mask & ~SYNCHRONIZE
    names: list[str] = []
    for name, bits in RIGHTS.items():
        if name == "Synchronize" or bits & ~rest & ~SYNCHRONIZE:
            continue
        if bits & rest:
            names.append(name)
            rest &= ~bits
    return names or (["Synchronize"] if mask else [])


def _one_or_list(schema: dict[str, Any]) -> None:
    """The JSON Schema of a list that also takes one bare item (as the validator does)."""
    items = schema.pop("items")
    schema.pop("type", None)
    schema["anyOf"] = [items, {"type": "array", "items": items}]


class AccessEntry(KindParams):
    """One access rule: who, which rights, allow or deny, and what it applies to."""

    principal: str = Field(description="SID (S-1-5-18), well-known name (SYSTEM, Administrators, NETWORK "
                           "SERVICE …) or DOMAIN\\name, resolved to a SID on the host.")
    rights: list[RightName] = Field(description="FileSystemRights name or names, e.g. FullControl or [Read, Write].",
                                    json_schema_extra=_one_or_list)
    type: Literal["allow", "deny"] = "allow"
    applies_to: AppliesTo = "this_folder_subfolders_and_files"

    @field_validator("rights", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def ace(sid: str, mask: int, inheritance: int, propagation: int, kind: str) -> dict[str, Any]:
    """An access entry as the state holds it: readable (names) and exact (numbers)."""
    applies = next((k for k, v in APPLIES_TO.items() if v == (inheritance, propagation)),
                   f"inheritance {inheritance}, propagation {propagation}")
    return {"type": kind.capitalize(), "principal": sid.upper(), "name": SID_NAMES.get(sid.upper()),
            "rights": ", ".join(rights_names(mask)), "mask": mask, "applies_to": applies,
            "inheritance": inheritance, "propagation": propagation}


def _rule_key(entry: Mapping[str, Any]) -> tuple[str, str, int, int]:
    """What makes two entries one ACE for Windows: type, principal and flags (not the rights)."""
    return (str(entry["type"]).casefold(), str(entry["principal"]).upper(), int(entry["inheritance"]),
            int(entry["propagation"]))


def _ace_key(entry: Mapping[str, Any]) -> tuple[str, str, int, int, int]:
    return (*_rule_key(entry), int(entry["mask"]))


def merge_rules(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Entries as Windows keeps them: AddAccessRule merges rules of the same type, principal and
    flags into one ACE with the union of their rights, so the desired state must too."""
    merged: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    for entry in entries:
        key = _rule_key(entry)
        if key in merged:
            first = merged[key]
            merged[key] = ace(first["principal"], int(first["mask"]) | int(entry["mask"]), key[2], key[3],
                              first["type"])
        else:
            merged[key] = dict(entry)
    return sorted(merged.values(), key=_ace_key)


def ace_text(entry: Mapping[str, Any]) -> str:
    """``Allow Everyone Modify`` (with where it applies, when not the usual subtree)."""
    who = entry.get("name") or entry["principal"]
    where = "" if entry["applies_to"] == "this_folder_subfolders_and_files" else f" ({entry['applies_to']})"
    return f"{entry['type']} {who} {entry['rights']}{where}"


ACCESS = Comparer("set of access entries", lambda v: frozenset(_ace_key(e) for e in v or ()), item=ace_text)


PathRole = Literal["exchange_install", "transport_queue", "mailbox_databases", "mailbox_database_logs",
                   "transport_logs"]


class PathParams(KindParams):
    """Where a file-system kind acts: one ``path``, or every folder of a role known from facts."""

    path: str | None = Field(None, description="A directory, e.g. 'D:\\ExchangeDatabases\\DB01'.")
    paths_from: PathRole | None = Field(
        None, description="Every folder of this role, from the host's facts: exchange_install, transport_queue, "
        "mailbox_databases (the folder of each EdbFilePath), mailbox_database_logs (each LogFolderPath), "
        "transport_logs (message tracking and protocol logs).",
    )

    @model_validator(mode="after")
    def _one_place(self) -> PathParams:
        if (self.path is None) == (self.paths_from is None):
            raise ValueError("give exactly one of path and paths_from")
        return self


def target_paths(params: PathParams, ctx: Context) -> tuple[str, ...]:
    """The folders a control acts on for this host; not applicable where a role has none."""
    if params.path is not None:
        return (params.path,)
    assert params.paths_from is not None
    paths = ctx.facts.paths(params.paths_from)
    if not paths:
        raise NotApplicable(f"{ctx.host} has no {params.paths_from.replace('_', ' ')} folders in its facts")
    return paths


class NtfsAclParams(PathParams):
    """Parameters of ``ntfs_acl``."""

    mode: Literal["exact", "at_least"] = Field(
        "at_least", description="exact: the explicit entries are exactly `access`; at_least: these are present "
        "and others are kept.",
    )
    access: list[AccessEntry] = Field(default_factory=list, description="Explicit access entries.")
    protected: bool | None = Field(
        None, description="true: block inheritance from the parent (inherited entries are copied in at_least "
        "mode, dropped in exact mode); false: inherit.",
    )
    owner: str | None = Field(None, description="Owner, as a SID or name.")


class NtfsAcl(Kind[NtfsAclParams]):
    """NTFS permissions on directories: explicit access entries (exact or at least), inheritance
    protection and owner, compared by SID, rights mask, applies-to and allow/deny, never by
    localised names. Inherited entries are not compared (they belong to the parent).

    Acts on one ``path`` or on every folder of a role from the host's facts (``paths_from``:
    mailbox database and log folders, transport queue and logs, install path), never on guesses.
    Reads with ``Get-Acl -LiteralPath``; writes through the directory object's
    ``SetAccessControl`` (``Set-Acl`` can demand SeSecurityPrivilege even for DACL work). A missing
    directory fails the control; it is never created. No restart.
    """

    name = "ntfs_acl"
    summary = "NTFS access entries, inheritance protection and owner of directories"
    params_model = NtfsAclParams
    channel = "script"
    template = "ntfs_acl.ps1.j2"
    variants = (MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {"Owner": SID, "Protected": BOOL, "Access": ACCESS}

    def _principals(self, params: NtfsAclParams) -> list[str]:
        names = [e.principal for e in params.access] + ([params.owner] if params.owner else [])
        return sorted({n for n in names if sid_of(n) is None})

    def read(self, params: NtfsAclParams, ctx: Context) -> tuple[Call, ...]:
        principals = self._principals(params)
        return tuple(ScriptCall(self.name, "read", {"path": path, "principals": principals})
                     for path in target_paths(params, ctx))

    def observe(self, params: NtfsAclParams, ctx: Context, values: Sequence[Any]) -> State:
        state: dict[str, Any] = {}
        for path, value in zip(target_paths(params, ctx), values, strict=True):
            value = value or {}
            if not value.get("exists"):
                raise ControlFailed(f"directory {path} does not exist on {ctx.host}")
            access = [e for e in host_objects(value.get("access")) if not e.get("inherited")]
            inherited = [e for e in host_objects(value.get("access")) if e.get("inherited")]
            state[path] = {
                "Owner": value.get("owner"),
                "Protected": bool(value.get("protected")),
                "Access": sorted((_from_host(e) for e in access), key=_ace_key),
                # Not compared; kept so at_least mode can keep what protection would drop.
                "_inherited": sorted((_from_host(e) for e in inherited), key=_ace_key),
                "_resolved": dict(value.get("resolved") or {}),
            }
        return state

    def _sid(self, principal: str, resolved: Mapping[str, str]) -> str:
        sid = sid_of(principal) or resolved.get(principal)
        if sid is None:
            raise ControlFailed(f"principal {principal!r} could not be resolved to a SID on the host")
        return sid

    def desire(self, params: NtfsAclParams, ctx: Context, observed: State | None) -> State:
        return {path: self._desire_one(params, (observed or {}).get(path) or {}, observed is None)
                for path in target_paths(params, ctx)}

    def _desire_one(self, params: NtfsAclParams, seen: Mapping[str, Any], planning: bool) -> dict[str, Any]:
        # In plan mode nothing was read: principals are shown by name; the host resolves them.
        resolved = {p: p for p in self._principals(params)} if planning else seen.get("_resolved", {})
        wanted = [ace(self._sid(e.principal, resolved), rights_mask(e.rights, e.type == "allow"),
                      *APPLIES_TO[e.applies_to], e.type) for e in params.access]
        want: dict[str, Any] = {}
        if params.owner is not None:
            want["Owner"] = self._sid(params.owner, resolved)
        if params.protected is not None:
            want["Protected"] = params.protected
        if params.access or params.mode == "exact":
            if params.mode == "exact":
                entries = wanted
            else:
                entries = list(seen.get("Access", []))
                if params.protected and not seen.get("Protected", False):
                    entries += seen.get("_inherited", [])
                entries += wanted
            want["Access"] = merge_rules(entries)
        return want

    def write(self, params: NtfsAclParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        calls: list[Call] = []
        for path in target_paths(params, ctx):
            want = desired[path] or {}
            seen = (observed or {}).get(path) or {}
            data: dict[str, Any] = {"path": path}
            for prop, key in (("Owner", "owner"), ("Protected", "protected")):
                if prop in want and (observed is None or not self.comparers[prop].equal(want[prop], seen.get(prop))):
                    data[key] = want[prop]
            if "Access" in want and (observed is None or not ACCESS.equal(want["Access"], seen.get("Access"))):
                data["access"] = [_to_host(e) for e in want["Access"]]
            if data.get("protected"):
                # Keep inherited entries as explicit copies only in at_least mode (nothing silently lost).
                data["preserve_inherited"] = params.mode == "at_least"
            if len(data) > 1:
                calls.append(ScriptCall(self.name, "write", data))
        return tuple(calls)




def _from_host(entry: Mapping[str, Any]) -> dict[str, Any]:
    return ace(str(entry["sid"]), normalise_mask(int(entry["rights"])), int(entry.get("inheritance", 0)),
               int(entry.get("propagation", 0)), str(entry.get("type", "Allow")))


def _to_host(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"sid": entry["principal"], "rights": entry["mask"], "inheritance": entry["inheritance"],
            "propagation": entry["propagation"], "type": entry["type"]}


FAMILY_KINDS = (NtfsAcl(),)
