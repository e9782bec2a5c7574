"""Lab model of what every Windows host has: facts, services (and their restarts), accounts."""

from __future__ import annotations

from typing import Any, Literal

from .common import LabScriptError, ScriptHandler, State, StateSection

__all__ = ["SCRIPTS", "SECTIONS", "resolve_account"]


def _facts(state: State, data: Any) -> dict[str, Any]:
    exchange = state.get("exchange") or {}
    return {
        "computer_name": state["computer_name"],
        "os_caption": state["os"]["caption"],
        "os_version": state["os"]["version"],
        "powershell_version": state["powershell_version"],
        "exchange_version": exchange.get("version"),
        "exchange_roles": list(exchange.get("roles", [])),
        "exchange_install_path": exchange.get("install_path"),
        "transport_queue_path": exchange.get("queue_path") or (
            exchange["install_path"] + "TransportRoles\\data\\Queue" if exchange.get("install_path") else None),
    }


def _restart(state: State, data: Any) -> dict[str, Any]:
    results = []
    for name in data.get("services", []):
        service = next((v for k, v in state["services"].items() if k.casefold() == str(name).casefold()), None)
        if service is None:
            results.append({"name": name, "action": "missing"})
        elif service["status"] == "Running":
            service["restarts"] += 1
            results.append({"name": name, "action": "restarted"})
        else:
            results.append({"name": name, "action": "not running"})
    return {"services": results}


def resolve_account(state: State, name: str) -> str:
    """NTAccount.Translate: DOMAIN\\name → SID from the lab's ``accounts``, else the .NET error."""
    sid = next((v for k, v in state["accounts"].items() if k.casefold() == str(name).casefold()), None)
    if sid is None:
        raise LabScriptError(f'Exception calling "Translate" with "1" argument(s): "Some or all identity '
                             f'references could not be translated." ({name})')
    return str(sid)


SECTIONS: dict[str, StateSection] = {
    "address": StateSection(str | None, None, lambda v, host: v,
                            "The host's address in the simulated organisation (e.g. 10.0.10.11): what other "
                            "hosts' firewall rules see as its remote address. Never contacted."),
    "accounts": StateSection(dict[str, str], {}, lambda v, host: dict(v),
                             "DOMAIN\\name → SID, for name resolution on the host."),
    "services": StateSection(dict[str, Literal["Running", "Stopped"]], {},
                             lambda v, host: {k: {"status": s, "restarts": 0} for k, s in v.items()},
                             "Windows services by name: Running or Stopped (restarts are counted)."),
}
SCRIPTS: dict[tuple[str, str], ScriptHandler] = {
    ("facts", "read"): _facts,
    ("service_restart", "write"): _restart,
}
