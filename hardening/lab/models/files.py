"""Lab model of the ``ntfs_acl`` template: directories with owner, protection, explicit and
inherited access entries. Protection with ``preserve_inherited`` copies inherited entries to
explicit ones, as .NET's SetAccessRuleProtection(true, true) does."""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...compare import sid_of
from ...kinds.files import APPLIES_TO, rights_mask
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


class LabDirectory(BaseModel):
    """A directory in a lab file."""

    model_config = ConfigDict(extra="forbid")
    owner: str = "S-1-5-32-544"
    protected: bool = False
    access: list[LabAce] = Field(default_factory=list, description="Explicit entries.")
    inherited: list[LabAce] = Field(default_factory=list, description="Entries inherited from the parent.")


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

    return {path: {"owner": sid(d.owner), "protected": d.protected,
                   "access": [entry(a, False) for a in d.access],
                   "inherited": [entry(a, True) for a in d.inherited]}
            for path, d in value.items()}


SECTIONS: dict[str, StateSection] = {
    "directories": StateSection(dict[str, LabDirectory], {}, _build,
                                "Directories by path: owner, protected, access, inherited."),
}
SCRIPTS: dict[tuple[str, str], ScriptHandler] = {
    ("ntfs_acl", "read"): _read,
    ("ntfs_acl", "write"): _write,
}
