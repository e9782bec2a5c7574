"""Lab model of POP3 and IMAP4 settings (``Get/Set-PopSettings``, ``Get/Set-ImapSettings``).

The Set cmdlets check their parameters as the cmdlets bind them: LoginType is a LoginOptions
name, ExtendedProtectionPolicy an ExtendedProtectionTokenCheckingMode name (None, Allow,
Require), EnableGSSAPIAndNTLMAuth a boolean (OPS Set-PopSettings / Set-ImapSettings). The
settings are what the scenario gives (Exchange's defaults are SecureLogin, NTLM offered and
Extended Protection None [V] OPS; a property the scenario leaves out is absent, as from an
Exchange that does not return it). What a setting means for clients is not simulated here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ...model import CmdletCall
from .common import CmdletHandler, LabCmdletError, State, StateSection, bind, bool_param, enum_param, require_server

__all__ = ["CMDLETS", "SECTIONS"]

LOGIN_TYPES = ["PlainTextLogin", "PlainTextAuthentication", "SecureLogin"]
EXTENDED_PROTECTION_POLICIES = ["None", "Allow", "Require"]


def _settings(state: State, key: str, server: Any) -> dict[str, Any]:
    require_server(state, server)
    settings = state.get(key)
    if settings is None:
        raise LabCmdletError(f"The {key.upper()} service is not installed on {state['computer_name']}.")
    return settings  # type: ignore[no-any-return]


def _handlers(key: str) -> tuple[CmdletHandler, CmdletHandler]:
    def get(state: State, call: CmdletCall) -> list[dict[str, Any]]:
        args = bind(call, {"Server"})
        return [{"Server": state["computer_name"], **copy.deepcopy(_settings(state, key, args.get("Server")))}]

    def set_(state: State, call: CmdletCall) -> list[dict[str, Any]]:
        args = bind(call, {"Server", "LoginType", "EnableGSSAPIAndNTLMAuth", "ExtendedProtectionPolicy",
                           "X509CertificateName"})
        settings = _settings(state, key, args.get("Server"))
        if "LoginType" in args:
            settings["LoginType"] = enum_param("LoginType", "LoginOptions", args["LoginType"], LOGIN_TYPES)
        if "EnableGSSAPIAndNTLMAuth" in args:
            settings["EnableGSSAPIAndNTLMAuth"] = bool_param("EnableGSSAPIAndNTLMAuth",
                                                             args["EnableGSSAPIAndNTLMAuth"])
        if "ExtendedProtectionPolicy" in args:
            settings["ExtendedProtectionPolicy"] = enum_param("ExtendedProtectionPolicy",
                                                              "ExtendedProtectionTokenCheckingMode",
                                                              args["ExtendedProtectionPolicy"],
                                                              EXTENDED_PROTECTION_POLICIES)
        if "X509CertificateName" in args:
            settings["X509CertificateName"] = args["X509CertificateName"]
        return []

    return get, set_


_get_pop, _set_pop = _handlers("pop3")
_get_imap, _set_imap = _handlers("imap4")


def _copy(value: Any, host: Any) -> Any:
    return copy.deepcopy(value)


SECTIONS: dict[str, StateSection] = {
    "pop3": StateSection(dict[str, Any] | None, None, _copy, "POP3 settings with Exchange's property names."),
    "imap4": StateSection(dict[str, Any] | None, None, _copy, "IMAP4 settings with Exchange's property names."),
}
CMDLETS: dict[str, CmdletHandler] = {
    "get-popsettings": _get_pop,
    "set-popsettings": _set_pop,
    "get-imapsettings": _get_imap,
    "set-imapsettings": _set_imap,
}


# --- consequences: what a POP3/IMAP4 login setting exposes ---------------------------------------

# The Client Access (front-end) service clients connect to, per protocol [V] (EXD configure-pop3.md,
# configure-imap4.md).
FRONTEND_SERVICES = {"pop3": "MSExchangePOP3", "imap4": "MSExchangeIMAP4"}
PROTOCOL_NAMES = {"pop3": "POP3", "imap4": "IMAP4"}


def clear_text_logins(host: str, state: Mapping[str, Any]) -> list[str]:
    """Sentences for each protocol of a host that accepts user names and passwords in clear text.

    Modelled from Microsoft's description of LoginType [V] (Exchange 2010 help "Configure
    Authentication for POP3 and IMAP4"; that it holds on 2016+ is [I]), not from any kind:
    ``PlainTextLogin`` sends credentials unencrypted unless the connection uses TLS, so a client
    on the unencrypted-or-STARTTLS binding (110/143) may log on in clear text; ``PlainTextAuthentication``
    allows Basic only on TLS/SSL connections and ``SecureLogin`` needs TLS before authenticating,
    so neither exposes credentials. Only a protocol whose front-end service runs and that has an
    unencrypted-or-TLS binding counts (a stopped service accepts nothing). Inferred, not modelled:
    the running service's copy of the setting (the lab keeps only the configured one, so a change
    still waiting for its restart counts as live here), and which clients really send clear text.
    """
    services = {str(k).casefold(): v for k, v in (state.get("services") or {}).items()}
    out = []
    for key in ("pop3", "imap4"):
        settings = state.get(key)
        service = services.get(FRONTEND_SERVICES[key].casefold()) or {}
        if not settings or service.get("status") != "Running":
            continue
        login = str(settings.get("LoginType", "SecureLogin"))
        bindings = settings.get("UnencryptedOrTLSBindings")
        bound = [bindings] if isinstance(bindings, str) else list(bindings or [])
        if login.casefold() == "plaintextlogin" and bound:
            out.append(f"{host}: {PROTOCOL_NAMES[key]} accepts user names and passwords in clear text on "
                       f"{', '.join(str(b) for b in bound)} (LoginType PlainTextLogin, {FRONTEND_SERVICES[key]} "
                       "running): a client that does not start TLS sends its credentials readable on the network")
    return out
