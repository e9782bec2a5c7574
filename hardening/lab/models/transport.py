"""Lab model of Exchange transport: receive connectors (``Get/Set-ReceiveConnector``).

Objects come back in their deserialised form: AuthMechanism as "Tls, BasicAuth", Bindings as
a list. ``Set-ReceiveConnector`` enforces Exchange's AuthMechanism rules as the cmdlet does.
"""

from __future__ import annotations

import copy
from typing import Any

from ...model import CmdletCall
from .common import CmdletHandler, LabCmdletError, State, StateSection, bind, bool_param, require_server

__all__ = ["CMDLETS", "SECTIONS"]

AUTH_NAMES = ["None", "Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer",
              "ExternalAuthoritative"]


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


def _connector(state: State, identity: Any) -> dict[str, Any]:
    for connector in state["receive_connectors"]:
        if str(connector["Identity"]).casefold() == str(identity).casefold():
            return dict(connector)
    raise LabCmdletError(f"The operation couldn't be performed because object '{identity}' couldn't be found "
                         "on the domain controller.")


def _get(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = bind(call, {"Identity", "Server"})
    if "Identity" in args:
        return [copy.deepcopy(_connector(state, args["Identity"]))]
    require_server(state, args.get("Server"))
    return copy.deepcopy(state["receive_connectors"])


def _set(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = bind(call, {"Identity", "RequireTLS", "AuthMechanism", "TlsCertificateName"})
    if "Identity" not in args:
        raise LabCmdletError("Cannot process command because of one or more missing mandatory parameters: Identity.")
    current = _connector(state, args["Identity"])
    updated = dict(current)
    if "RequireTLS" in args:
        updated["RequireTLS"] = bool_param("RequireTLS", args["RequireTLS"])
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


def _build_connectors(value: list[dict[str, Any]], host: Any) -> list[dict[str, Any]]:
    server = host.computer_name
    connectors = []
    for raw in value:
        connector = {"Enabled": True, "TransportRole": "FrontendTransport", "RequireTLS": False,
                     "AuthMechanism": "Tls", "TlsCertificateName": None, "Bindings": [], **raw}
        connector.setdefault("Server", server)
        connector.setdefault("Identity", f"{server}\\{connector['Name']}")
        connectors.append(connector)
    return connectors


SECTIONS: dict[str, StateSection] = {
    "receive_connectors": StateSection(list[dict[str, Any]], [], _build_connectors,
                                       "Receive connectors with Exchange's property names (Name required)."),
}
CMDLETS: dict[str, CmdletHandler] = {
    "get-receiveconnector": _get,
    "set-receiveconnector": _set,
}
