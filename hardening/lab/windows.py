"""Lab models of the script kinds: what each template block would do on Windows, in Python.

Each handler receives exactly the ``$Desired`` data the block would receive and returns the
state the block would print. The semantics follow the template (e.g. protection with
``preserve_inherited`` copies inherited entries to explicit ones, as .NET does).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

__all__ = ["LabScriptError", "answer"]


class LabScriptError(Exception):
    """The exception message the block's catch would report."""


def _facts(state: dict[str, Any], data: Any) -> dict[str, Any]:
    exchange = state.get("exchange") or {}
    return {
        "computer_name": state["computer_name"],
        "os_caption": state["os"]["caption"],
        "os_version": state["os"]["version"],
        "powershell_version": state["powershell_version"],
        "exchange_version": exchange.get("version"),
        "exchange_roles": list(exchange.get("roles", [])),
        "exchange_install_path": exchange.get("install_path"),
    }


def _resolve(state: dict[str, Any], names: list[str]) -> dict[str, str]:
    out = {}
    for name in names or []:
        sid = next((v for k, v in state.get("accounts", {}).items() if k.casefold() == str(name).casefold()), None)
        if sid is None:
            raise LabScriptError(f'Exception calling "Translate" with "1" argument(s): "Some or all identity '
                                 f'references could not be translated." ({name})')
        out[name] = sid
    return out


def _directory(state: dict[str, Any], path: str) -> dict[str, Any] | None:
    for key, value in state.get("directories", {}).items():
        if key.casefold().rstrip("\\") == str(path).casefold().rstrip("\\"):
            return value  # type: ignore[no-any-return]
    return None


def _ntfs_read(state: dict[str, Any], data: Any) -> dict[str, Any]:
    resolved = _resolve(state, data.get("principals", []))
    directory = _directory(state, data["path"])
    if directory is None:
        return {"exists": False, "resolved": resolved}
    return {"exists": True, "owner": directory["owner"], "protected": directory["protected"],
            "access": copy.deepcopy(directory["access"] + ([] if directory["protected"] else directory["inherited"])),
            "resolved": resolved}


def _ntfs_write(state: dict[str, Any], data: Any) -> dict[str, Any]:
    directory = _directory(state, data["path"])
    if directory is None:
        raise LabScriptError(f"Cannot find path '{data['path']}' because it does not exist.")
    if "protected" in data:
        if data["protected"] and not directory["protected"] and data.get("preserve_inherited"):
            directory["access"] += [{**e, "inherited": False} for e in directory["inherited"]]
        directory["protected"] = bool(data["protected"])
    if "access" in data:
        entries = data["access"] if isinstance(data["access"], list) else [data["access"]]
        directory["access"] = [{"sid": str(e["sid"]).upper(), "rights": int(e["rights"]),
                                "inheritance": int(e["inheritance"]), "propagation": int(e["propagation"]),
                                "type": str(e["type"]), "inherited": False} for e in entries]
    if "owner" in data:
        directory["owner"] = str(data["owner"]).upper()
    return {"written": True}


def _restart(state: dict[str, Any], data: Any) -> dict[str, Any]:
    results = []
    for name in data.get("services", []):
        service = next((v for k, v in state.get("services", {}).items() if k.casefold() == str(name).casefold()),
                       None)
        if service is None:
            results.append({"name": name, "action": "missing"})
        elif service["status"] == "Running":
            service["restarts"] += 1
            results.append({"name": name, "action": "restarted"})
        else:
            results.append({"name": name, "action": "not running"})
    return {"services": results}


HANDLERS: dict[tuple[str, str], Callable[[dict[str, Any], Any], Any]] = {
    ("facts", "read"): _facts,
    ("ntfs_acl", "read"): _ntfs_read,
    ("ntfs_acl", "write"): _ntfs_write,
    ("service_restart", "write"): _restart,
}


def answer(state: dict[str, Any], kind: str, op: str, data: Any) -> Any:
    """The state one template block would return."""
    handler = HANDLERS.get((kind, op))
    if handler is None:
        raise LabScriptError(f"the lab does not simulate the {op} block of {kind}")
    return handler(state, data)
