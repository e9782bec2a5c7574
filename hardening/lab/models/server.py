"""Lab model of what Exchange knows about its servers: ``Get-ExchangeServer``,
``Get-MailboxDatabase`` and ``Get-TransportService`` (the paths the facts ask for).

Mailbox databases carry their quotas (``IssueWarningQuota`` … ``RecoverableItemsQuota``) in the
deserialised form Exchange returns (``"2 GB (2,147,483,648 bytes)"``, ``"Unlimited"``); a lab file
may write them as ``10GB`` or ``unlimited``, and those it leaves out get Exchange 2016/2019's
defaults. ``Set-MailboxDatabase`` is simulated in :mod:`.quota`."""

from __future__ import annotations

import copy
from typing import Any

from ...errors import InputError, SourceLocation
from ...model import CmdletCall
from .common import CmdletHandler, LabCmdletError, State, StateSection, bind, require_server
from .quota import lab_quota

__all__ = ["CMDLETS", "SECTIONS"]

LOGS = "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\TransportRoles\\Logs\\"
# [V] OPS Set-MailboxDatabase (Exchange 2016/2019 defaults).
DEFAULT_QUOTAS = {"IssueWarningQuota": 2039480320, "ProhibitSendQuota": 2147483648,
                  "ProhibitSendReceiveQuota": 2469396480, "RecoverableItemsWarningQuota": 21474836480,
                  "RecoverableItemsQuota": 32212254720}


def _identity(state: State, identity: Any) -> None:
    if identity is not None and str(identity).split(".")[0].casefold() != str(state["computer_name"]).casefold():
        raise LabCmdletError(f"The operation couldn't be performed because object '{identity}' couldn't be found.")


def _server(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = bind(call, {"Identity"})
    _identity(state, args.get("Identity"))
    exchange = state["exchange"]
    major, minor, build, revision = (exchange["version"].split(".") + ["0"] * 4)[:4]
    return [{"Name": state["computer_name"], "Fqdn": f"{state['computer_name'].lower()}.contoso.com",
             "Site": exchange.get("site"), "ServerRole": ", ".join(exchange.get("roles", [])),
             "AdminDisplayVersion": f"Version {major}.{minor} (Build {build}.{revision})"}]


def _databases(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = bind(call, {"Server", "Identity", "Status"})
    if "Mailbox" not in state["exchange"].get("roles", []):
        raise LabCmdletError(f"The server {state['computer_name']} has no Mailbox role (no mailbox databases).")
    databases = state["mailbox_databases"]
    if "Identity" in args:
        databases = [d for d in databases if str(d["Name"]).casefold() == str(args["Identity"]).casefold()]
        if not databases:
            raise LabCmdletError(f"The operation couldn't be performed because object '{args['Identity']}' "
                                 "couldn't be found.")
    else:
        require_server(state, args.get("Server"))
    return [{"Servers": [state["computer_name"]], **copy.deepcopy(d), "Server": state["computer_name"]}
            for d in databases]


def _transport(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = bind(call, {"Identity"})
    _identity(state, args.get("Identity"))
    return [{"Identity": state["computer_name"], **copy.deepcopy(state["transport_service"])}]


def _build_databases(value: list[dict[str, Any]], host: Any) -> list[dict[str, Any]]:
    out = []
    for raw in value:
        name = raw["Name"]
        database = {"EdbFilePath": f"D:\\ExchangeDatabases\\{name}\\{name}.edb",
                    "LogFolderPath": f"E:\\ExchangeLogs\\{name}", **DEFAULT_QUOTAS, **raw}
        for prop in DEFAULT_QUOTAS:
            try:
                database[prop] = lab_quota(prop, database[prop])
            except LabCmdletError as exc:
                raise InputError(SourceLocation(f"lab host {host.computer_name}"),
                                 f"mailbox database {name}: {exc}", key="mailbox_databases") from None
        out.append(database)
    return out


def _build_transport(value: dict[str, Any], host: Any) -> dict[str, Any]:
    return {"MessageTrackingLogPath": LOGS + "MessageTracking",
            "ReceiveProtocolLogPath": LOGS + "Hub\\ProtocolLog\\SmtpReceive",
            "SendProtocolLogPath": LOGS + "Hub\\ProtocolLog\\SmtpSend",
            "ConnectivityLogPath": LOGS + "Hub\\Connectivity", **value}


SECTIONS: dict[str, StateSection] = {
    "mailbox_databases": StateSection(list[dict[str, Any]], [], _build_databases,
                                      "Mailbox databases with Exchange's property names (Name required; "
                                      "EdbFilePath, LogFolderPath and quotas optional)."),
    "transport_service": StateSection(dict[str, Any], {}, _build_transport,
                                      "Get-TransportService properties (log paths have defaults)."),
}
CMDLETS: dict[str, CmdletHandler] = {
    "get-exchangeserver": _server,
    "get-mailboxdatabase": _databases,
    "get-transportservice": _transport,
}
