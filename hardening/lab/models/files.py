"""Lab model of the ``ntfs_acl`` and ``file_sacl`` templates: directories with owner, protection,
explicit and inherited access entries, and explicit and inherited audit entries (the SACL).
Protection with ``preserve_inherited`` copies inherited entries to explicit ones, as .NET's
SetAccessRuleProtection(true, true) does. SACL reads and writes need SeSecurityPrivilege: a host
with ``se_security_privilege: false`` answers them with the error the template raises; the
File System audit subcategory they also read and write lives in :mod:`.audit`."""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...compare import sid_of
from ...kinds.audit import AUDIT_FLAGS, FILE_SYSTEM_GUID, audit_mask
from ...kinds.files import APPLIES_TO, rights_mask
from .audit import policy_row, set_policy_flags
from .common import LabScriptError, ScriptHandler, State, StateSection
from .core import resolve_account

__all__ = ["SCRIPTS", "SECTIONS"]


class LabAce(BaseModel):
    """An access entry in a lab file."""

    model_config = ConfigDict(extra="forbid")
    principal: str = Field(description="SID or well-known name.")
    rights: list[str] | str = Field(description="FileSystemRights names.")
    type: Literal["allow", "deny", "Allow", "Deny"] = "allow"
    applies_to: str = "this_folder_subfolders_and_files"


class LabAuditAce(BaseModel):
    """An audit entry (SACL) in a lab file."""

    model_config = ConfigDict(extra="forbid")
    principal: str = Field(description="SID or well-known name.")
    rights: list[str] | str = Field(description="FileSystemRights names.")
    type: Literal["success", "failure", "both"] = "both"
    applies_to: str = "this_folder_subfolders_and_files"


class LabDirectory(BaseModel):
    """A directory in a lab file."""

    model_config = ConfigDict(extra="forbid")
    owner: str = "S-1-5-32-544"
    protected: bool = False
    access: list[LabAce] = Field(default_factory=list, description="Explicit entries.")
    inherited: list[LabAce] = Field(default_factory=list, description="Entries inherited from the parent.")
    audit: list[LabAuditAce] = Field(default_factory=list, description="Explicit audit entries (SACL).")
    inherited_audit: list[LabAuditAce] = Field(default_factory=list,
                                               description="Audit entries inherited from the parent.")


def _directory(state: State, path: str) -> dict[str, Any] | None:
    for key, value in state["directories"].items():
        if key.casefold().rstrip("\\") == str(path).casefold().rstrip("\\"):
            return value  # type: ignore[no-any-return]
    return None


def _read(state: State, data: Any) -> dict[str, Any]:
    resolved = {name: resolve_account(state, name) for name in data.get("principals") or []}
    directory = _directory(state, data["path"])
    if directory is None:
        return {"exists": False, "resolved": resolved}
    return {"exists": True, "owner": directory["owner"], "protected": directory["protected"],
            "access": copy.deepcopy(directory["access"] + ([] if directory["protected"] else directory["inherited"])),
            "resolved": resolved}


def _write(state: State, data: Any) -> dict[str, Any]:
    directory = _directory(state, data["path"])
    if directory is None:
        raise LabScriptError(f"Cannot find path '{data['path']}' because it does not exist.")
    if "protected" in data:
        if data["protected"] and not directory["protected"] and data.get("preserve_inherited"):
            directory["access"] += [{**e, "inherited": False} for e in directory["inherited"]]
        directory["protected"] = bool(data["protected"])
    if "access" in data:
        entries = data["access"] if isinstance(data["access"], list) else [data["access"]]
        # AddAccessRule merges a rule into an existing ACE of the same principal, type and flags.
        merged: dict[tuple[str, str, int, int], dict[str, Any]] = {}
        for e in entries:
            key = (str(e["sid"]).upper(), str(e["type"]), int(e["inheritance"]), int(e["propagation"]))
            if key in merged:
                merged[key]["rights"] |= int(e["rights"])
            else:
                merged[key] = {"sid": key[0], "rights": int(e["rights"]), "inheritance": key[2],
                               "propagation": key[3], "type": key[1], "inherited": False}
        directory["access"] = list(merged.values())
    if "owner" in data:
        directory["owner"] = str(data["owner"]).upper()
    return {"written": True}


def _build(value: dict[str, LabDirectory], host: Any) -> dict[str, Any]:
    accounts = host.accounts or {}

    def sid(principal: str) -> str:
        return sid_of(principal) or accounts.get(principal, principal)

    def entry(ace: LabAce, inherited: bool) -> dict[str, Any]:
        allow = ace.type.lower() == "allow"
        rights = [ace.rights] if isinstance(ace.rights, str) else ace.rights
        inheritance, propagation = APPLIES_TO[ace.applies_to]
        return {"sid": sid(ace.principal), "rights": rights_mask(rights, allow), "inheritance": inheritance,
                "propagation": propagation, "type": "Allow" if allow else "Deny", "inherited": inherited}

    def audit_entry(ace: LabAuditAce, inherited: bool) -> dict[str, Any]:
        rights = [ace.rights] if isinstance(ace.rights, str) else ace.rights
        inheritance, propagation = APPLIES_TO[ace.applies_to]
        return {"sid": sid(ace.principal), "rights": audit_mask(rights), "inheritance": inheritance,
                "propagation": propagation, "flags": AUDIT_FLAGS[ace.type], "inherited": inherited}

    return {path: {"owner": sid(d.owner), "protected": d.protected,
                   "access": [entry(a, False) for a in d.access],
                   "inherited": [entry(a, True) for a in d.inherited],
                   "audit": merge_host_audit([audit_entry(a, False) for a in d.audit]),
                   "inherited_audit": [audit_entry(a, True) for a in d.inherited_audit]}
            for path, d in value.items()}


# --- file_sacl -------------------------------------------------------------------------------

PRIVILEGE_MISSING = ("this session does not hold SeSecurityPrivilege (Manage auditing and security log), so the "
                     "SACL cannot be {}: connect as an administrator with an elevated token")


def merge_host_audit(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """AddAuditRule's merging, as the host keeps the SACL: one principal and inheritance with the
    same flags → one entry with the union of rights; the same rights → the union of flags; again
    until nothing merges; an entry another one covers is dropped [I]."""
    current = {(str(e["sid"]).upper(), int(e["inheritance"]), int(e["propagation"]), int(e["flags"]),
                int(e["rights"])) for e in entries}
    while True:
        by_flags: dict[tuple[str, int, int, int], int] = {}
        for sid, inheritance, propagation, flags, mask in current:
            same_flags = (sid, inheritance, propagation, flags)
            by_flags[same_flags] = by_flags.get(same_flags, 0) | mask
        by_mask: dict[tuple[str, int, int, int], int] = {}
        for (sid, inheritance, propagation, flags), mask in by_flags.items():
            same_rights = (sid, inheritance, propagation, mask)
            by_mask[same_rights] = by_mask.get(same_rights, 0) | flags
        merged = {(sid, inheritance, propagation, flags, mask)
                  for (sid, inheritance, propagation, mask), flags in by_mask.items()}
        if merged == current:
            break
        current = merged
    kept = [e for e in current if not any(o != e and o[:3] == e[:3] and o[3] & e[3] == e[3] and o[4] & e[4] == e[4]
                                          for o in current)]
    return [{"sid": sid, "rights": mask, "inheritance": inheritance, "propagation": propagation, "flags": flags,
             "inherited": False} for sid, inheritance, propagation, flags, mask in sorted(kept)]


def _sacl_read(state: State, data: Any) -> dict[str, Any]:
    if not state["se_security_privilege"]:
        raise LabScriptError(PRIVILEGE_MISSING.format("read"))
    resolved = {name: resolve_account(state, name) for name in data.get("principals") or []}
    policy = policy_row(state, FILE_SYSTEM_GUID) if data.get("policy") else None
    directory = _directory(state, data["path"])
    if directory is None:
        return {"exists": False, "resolved": resolved, "policy": policy}
    return {"exists": True, "protected": False,
            "audit": copy.deepcopy(directory["audit"] + directory["inherited_audit"]),
            "resolved": resolved, "policy": policy}


def _sacl_write(state: State, data: Any) -> dict[str, Any]:
    if not state["se_security_privilege"]:
        raise LabScriptError(PRIVILEGE_MISSING.format("written"))
    if "path" in data:
        directory = _directory(state, data["path"])
        if directory is None:
            raise LabScriptError(f"Cannot find path '{data['path']}' because it does not exist.")
        entries = data.get("audit") or []
        entries = entries if isinstance(entries, list) else [entries]
        directory["audit"] = merge_host_audit([
            {"sid": str(e["sid"]).upper(), "rights": int(e["rights"]), "inheritance": int(e["inheritance"]),
             "propagation": int(e["propagation"]), "flags": int(e["flags"])} for e in entries])
    if "policy" in data:
        policy = data["policy"]
        set_policy_flags(state, FILE_SYSTEM_GUID, True if policy.get("success") else None,
                         True if policy.get("failure") else None)
    return {"written": True}


SECTIONS: dict[str, StateSection] = {
    "directories": StateSection(dict[str, LabDirectory], {}, _build,
                                "Directories by path: owner, protected, access, inherited, audit, inherited_audit."),
    "se_security_privilege": StateSection(bool, True, lambda v, host: bool(v),
                                          "Whether the remoting session holds SeSecurityPrivilege (an elevated "
                                          "administrator); false makes SACL reads and writes fail."),
}
SCRIPTS: dict[tuple[str, str], ScriptHandler] = {
    ("ntfs_acl", "read"): _read,
    ("ntfs_acl", "write"): _write,
    ("file_sacl", "read"): _sacl_read,
    ("file_sacl", "write"): _sacl_write,
}
