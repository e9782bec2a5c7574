"""Simulated Exchange cmdlets: what the ``Microsoft.Exchange`` endpoint would answer.

Objects come back the way remote PowerShell deserialises them: enums and flag sets as strings
("Tls, BasicAuth"), multi-valued properties as lists. Parameters are checked the way the
cmdlets check them (unknown parameter, bad enum value, Exchange's AuthMechanism rules), so a
wrong request fails here as it would on a server. Only the cmdlets below exist.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..model import CmdletCall, Switch

__all__ = ["LabCmdletError", "answer"]

AUTH_NAMES = ["None", "Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer",
              "ExternalAuthoritative"]
LOGIN_TYPES = ["PlainTextLogin", "PlainTextAuthentication", "SecureLogin"]


class LabCmdletError(Exception):
    """What the simulated cmdlet writes to the error stream."""


def _params(call: CmdletCall, allowed: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in call.parameters:
        match = next((a for a in allowed if a.casefold() == name.casefold()), None)
        if match is None:
            raise LabCmdletError(f"A parameter cannot be found that matches parameter name '{name}'.")
        out[match] = value
    return out


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise LabCmdletError(f"Cannot process argument transformation on parameter '{name}'. "
                             f"Cannot convert value \"{value}\" to type \"System.Boolean\".")
    return value


def _flag_names(value: Any) -> list[str]:
    parts = [p.strip() for p in (value.split(",") if isinstance(value, str) else value or []) if str(p).strip()]
    out = []
    for part in parts:
        match = next((n for n in AUTH_NAMES if n.casefold() == str(part).casefold()), None)
        if match is None:
            raise LabCmdletError(f"Cannot convert value \"{part}\" to type AuthMechanisms. Valid values: "
                                 + ", ".join(AUTH_NAMES))
        out.append(match)
    return [n for n in AUTH_NAMES if n in out]


def _connector(state: dict[str, Any], identity: Any) -> dict[str, Any]:
    for connector in state["receive_connectors"]:
        if str(connector["Identity"]).casefold() == str(identity).casefold():
            return dict(connector)
    raise LabCmdletError(f"The operation couldn't be performed because object '{identity}' couldn't be found "
                         "on the domain controller.")


def _server(state: dict[str, Any], server: Any) -> None:
    if server is not None and str(server).casefold() != str(state["computer_name"]).casefold():
        raise LabCmdletError(f"The specified server '{server}' could not be found (this simulated endpoint "
                             f"serves {state['computer_name']} only).")


def _get_receive_connector(state: dict[str, Any], call: CmdletCall) -> list[dict[str, Any]]:
    args = _params(call, {"Identity", "Server"})
    if "Identity" in args:
        return [copy.deepcopy(_connector(state, args["Identity"]))]
    _server(state, args.get("Server"))
    return copy.deepcopy(state["receive_connectors"])


def _set_receive_connector(state: dict[str, Any], call: CmdletCall) -> list[dict[str, Any]]:
    args = _params(call, {"Identity", "RequireTLS", "AuthMechanism", "TlsCertificateName"})
    if "Identity" not in args:
        raise LabCmdletError("Cannot process command because of one or more missing mandatory parameters: Identity.")
    current = _connector(state, args["Identity"])
    updated = dict(current)
    if "RequireTLS" in args:
        updated["RequireTLS"] = _bool("RequireTLS", args["RequireTLS"])
    if "AuthMechanism" in args:
        updated["AuthMechanism"] = ", ".join(_flag_names(args["AuthMechanism"]))
    if "TlsCertificateName" in args:
        updated["TlsCertificateName"] = args["TlsCertificateName"]
    auth = _flag_names(updated["AuthMechanism"])
    if updated["RequireTLS"] and "Tls" not in auth:
        raise LabCmdletError("The value of the RequireTLS parameter can't be $true when the AuthMechanism "
                             "parameter doesn't include Tls.")
    if "BasicAuthRequireTLS" in auth and not {"BasicAuth", "Tls"} <= set(auth):
        raise LabCmdletError("BasicAuthRequireTLS requires BasicAuth and Tls to be set as well.")
    if "None" in auth and len(auth) > 1:
        raise LabCmdletError("The AuthMechanism value None can't be combined with other values.")
    for i, connector in enumerate(state["receive_connectors"]):
        if connector["Identity"] == current["Identity"]:
            state["receive_connectors"][i] = updated
    return []


def _protocol(key: str) -> tuple[Callable[[dict[str, Any], CmdletCall], list[dict[str, Any]]],
                                 Callable[[dict[str, Any], CmdletCall], list[dict[str, Any]]]]:
    def get(state: dict[str, Any], call: CmdletCall) -> list[dict[str, Any]]:
        args = _params(call, {"Server"})
        _server(state, args.get("Server"))
        settings = state.get(key)
        if settings is None:
            raise LabCmdletError(f"The {key.upper()} service is not installed on {state['computer_name']}.")
        return [{"Server": state["computer_name"], **copy.deepcopy(settings)}]

    def set_(state: dict[str, Any], call: CmdletCall) -> list[dict[str, Any]]:
        args = _params(call, {"Server", "LoginType", "EnableGSSAPIAndNTLMAuth", "X509CertificateName"})
        _server(state, args.get("Server"))
        settings = state.get(key)
        if settings is None:
            raise LabCmdletError(f"The {key.upper()} service is not installed on {state['computer_name']}.")
        if "LoginType" in args:
            match = next((n for n in LOGIN_TYPES if n.casefold() == str(args["LoginType"]).casefold()), None)
            if match is None:
                raise LabCmdletError(f"Cannot convert value \"{args['LoginType']}\" to type LoginOptions. "
                                     "Valid values: " + ", ".join(LOGIN_TYPES))
            settings["LoginType"] = match
        if "EnableGSSAPIAndNTLMAuth" in args:
            settings["EnableGSSAPIAndNTLMAuth"] = _bool("EnableGSSAPIAndNTLMAuth", args["EnableGSSAPIAndNTLMAuth"])
        if "X509CertificateName" in args:
            settings["X509CertificateName"] = args["X509CertificateName"]
        return []

    return get, set_


_get_pop, _set_pop = _protocol("pop3")
_get_imap, _set_imap = _protocol("imap4")

CMDLETS: dict[str, Callable[[dict[str, Any], CmdletCall], list[dict[str, Any]]]] = {
    "get-receiveconnector": _get_receive_connector,
    "set-receiveconnector": _set_receive_connector,
    "get-popsettings": _get_pop,
    "set-popsettings": _set_pop,
    "get-imapsettings": _get_imap,
    "set-imapsettings": _set_imap,
}


def answer(state: dict[str, Any], call: CmdletCall) -> list[dict[str, Any]]:
    """The output of one cmdlet invocation against a simulated host's state."""
    if state.get("exchange") is None:
        raise LabCmdletError(f"The term '{call.cmdlet}' is not recognized: Exchange is not installed on "
                             f"{state['computer_name']}.")
    handler = CMDLETS.get(call.cmdlet.casefold())
    if handler is None:
        raise LabCmdletError(f"The term '{call.cmdlet}' is not recognized as the name of a cmdlet "
                             "(the lab simulates only the cmdlets hardening sends).")
    if any(isinstance(v, Switch) for _, v in call.parameters):
        raise LabCmdletError("The lab's cmdlets take no switch parameters.")
    return handler(state, call)
