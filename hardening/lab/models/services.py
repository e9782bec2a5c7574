"""Lab model of Windows service start types and the ``windows_service`` blocks.

The services themselves (name → Running/Stopped, with restart counts) are :mod:`.core`'s
``services``; this family adds their start types in its own section, ``service_start_types``
(name → Automatic, Manual or Disabled). A service without a declared start type is Automatic when
Running and Manual when Stopped. The read answers as ``Win32_Service`` would (``StartMode`` Auto,
Manual, Disabled; ``State`` Running, Stopped); the write sets the start type first, refuses to
start a Disabled service as Windows does, and never models dependencies between services.
"""

from __future__ import annotations

from typing import Any, Literal

from .common import LabScriptError, ScriptHandler, State, StateSection

__all__ = ["SCRIPTS", "SECTIONS", "start_type"]

WMI_START_MODES = {"Automatic": "Auto", "Manual": "Manual", "Disabled": "Disabled"}


def _service(state: State, name: Any) -> tuple[str, dict[str, Any]] | None:
    return next(((k, v) for k, v in state["services"].items() if k.casefold() == str(name).casefold()), None)


def start_type(state: State, name: str) -> str:
    """The start type of a service: declared, or Automatic when running and Manual when stopped."""
    declared = next((v for k, v in state.get("service_start_types", {}).items() if k.casefold() == name.casefold()),
                    None)
    if declared is not None:
        return str(declared)
    service = _service(state, name)
    return "Automatic" if service is not None and service[1]["status"] == "Running" else "Manual"


def _read(state: State, data: Any) -> dict[str, Any]:
    services = []
    for name in data.get("names") or []:
        found = _service(state, name)
        if found is None:
            services.append({"name": name, "exists": False})
            continue
        key, service = found
        services.append({"name": key, "exists": True, "status": service["status"],
                         "start_mode": WMI_START_MODES[start_type(state, key)]})
    return {"services": services}


def _write(state: State, data: Any) -> dict[str, Any]:
    entries = data.get("services") or []
    for entry in entries if isinstance(entries, list) else [entries]:
        found = _service(state, entry.get("name"))
        if found is None:
            raise LabScriptError(f"Cannot find any service with service name '{entry.get('name')}'.")
        key, service = found
        if "start_type" in entry:
            if entry["start_type"] not in WMI_START_MODES:
                raise LabScriptError(f"Cannot bind parameter 'StartupType'. Cannot convert value "
                                     f"\"{entry['start_type']}\" to type \"System.ServiceProcess.ServiceStartMode\".")
            state.setdefault("service_start_types", {})[key] = entry["start_type"]
        if entry.get("status") == "Stopped":
            service["status"] = "Stopped"
        elif entry.get("status") == "Running":
            if start_type(state, key) == "Disabled":
                raise LabScriptError(f"Service '{key} ({key})' cannot be started due to the following error: "
                                     f"Cannot start service {key} on computer '.'.")
            service["status"] = "Running"
        elif "status" in entry:
            raise LabScriptError(f"the lab cannot put a service in status {entry['status']!r}")
    return {"written": True}


SECTIONS: dict[str, StateSection] = {
    "service_start_types": StateSection(dict[str, Literal["Automatic", "Manual", "Disabled"]], {},
                                        lambda v, host: dict(v),
                                        "Start types of the services (name → Automatic, Manual or Disabled); "
                                        "undeclared: Automatic when Running, Manual when Stopped."),
}
SCRIPTS: dict[tuple[str, str], ScriptHandler] = {
    ("windows_service", "read"): _read,
    ("windows_service", "write"): _write,
}
