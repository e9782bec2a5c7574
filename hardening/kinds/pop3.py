"""POP3 and IMAP4 kinds: Secure Password Authentication through ``Get/Set-PopSettings`` and
``Get/Set-ImapSettings``, always with explicit ``-Server`` (without it the cmdlets act on the
server hosting the endpoint), and the service restarts the changes need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..compare import BOOL, TEXT, Comparer, State
from ..model import Call, Change, CmdletCall
from .base import Context, ControlFailed, Kind, KindParams, RestartPolicy, canonical_names, host_objects
from .transport import MODERN

__all__ = ["FAMILY_KINDS", "PROTOCOL_SERVICES", "PopImapLogin"]

Protocol = Literal["pop3", "imap4"]
PROTOCOL_CMDLETS = {"pop3": ("Get-PopSettings", "Set-PopSettings"), "imap4": ("Get-ImapSettings", "Set-ImapSettings")}
# [V] EXD configure-pop3.md / configure-imap4.md: both the front-end and back-end service.
PROTOCOL_SERVICES = {"pop3": ("MSExchangePOP3", "MSExchangePOP3BE"), "imap4": ("MSExchangeIMAP4", "MSExchangeIMAP4BE")}


class PopImapLoginParams(KindParams):
    """Parameters of ``pop_imap_login``."""

    protocol: Protocol = Field(description="pop3 or imap4.")
    login_type: Literal["PlainTextLogin", "PlainTextAuthentication", "SecureLogin"] | None = Field(
        None, description="LoginType; SecureLogin means no clear-text credentials (the guide's SPA)."
    )
    enable_gssapi_and_ntlm: bool | None = Field(
        None, description="EnableGSSAPIAndNTLMAuth: offer NTLM/Kerberos (Secure Password Authentication)."
    )
    x509_certificate_name: str | None = Field(None, description="X509CertificateName: the certificate's host name.")
    restart: RestartPolicy = Field(
        "deferred", description="allowed: restart the protocol's services (once per host, after the writes, "
        "only those running); deferred: leave the restart to you and report it as pending.",
    )

    @field_validator("login_type", mode="before")
    @classmethod
    def _login_name(cls, value: Any) -> Any:
        return canonical_names(value, ("PlainTextLogin", "PlainTextAuthentication", "SecureLogin"))

    @model_validator(mode="after")
    def _something(self) -> PopImapLoginParams:
        if self.login_type is None and self.enable_gssapi_and_ntlm is None and self.x509_certificate_name is None:
            raise ValueError("set at least one of login_type, enable_gssapi_and_ntlm, x509_certificate_name")
        return self


class PopImapLogin(Kind[PopImapLoginParams]):
    """Secure Password Authentication on POP3/IMAP4: ``LoginType``, ``EnableGSSAPIAndNTLMAuth``
    and the certificate, per server, through ``Get/Set-PopSettings`` or ``Get/Set-ImapSettings``
    with explicit ``-Server``.

    A change is live only after MSExchangePOP3 and MSExchangePOP3BE (IMAP: MSExchangeIMAP4 and
    MSExchangeIMAP4BE) restart. With ``restart: allowed`` they are restarted once per host after
    all writes, and only those already running (a stopped service stays stopped); with
    ``deferred`` the outcome says the setting is not live yet.
    """

    name = "pop_imap_login"
    summary = "POP3/IMAP4 login type (SPA), GSSAPI/NTLM and certificate, with the service restart"
    params_model = PopImapLoginParams
    channel = "exchange"
    variants = (MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {
        "LoginType": TEXT, "EnableGSSAPIAndNTLMAuth": BOOL, "X509CertificateName": TEXT,
    }

    def read(self, params: PopImapLoginParams, ctx: Context) -> tuple[Call, ...]:
        return (CmdletCall(PROTOCOL_CMDLETS[params.protocol][0], (("Server", ctx.server),)),)

    def _object(self, params: PopImapLoginParams, ctx: Context) -> str:
        return f"{ctx.server}\\{params.protocol.upper()}"

    def observe(self, params: PopImapLoginParams, ctx: Context, values: Sequence[Any]) -> State:
        objects = host_objects(values[0])
        if len(objects) != 1:
            raise ControlFailed(f"{PROTOCOL_CMDLETS[params.protocol][0]} -Server {ctx.server} returned "
                                f"{len(objects)} objects, expected 1")
        settings = objects[0]
        return {self._object(params, ctx): {
            "LoginType": settings.get("LoginType"),
            "EnableGSSAPIAndNTLMAuth": settings.get("EnableGSSAPIAndNTLMAuth"),
            "X509CertificateName": settings.get("X509CertificateName"),
        }}

    def desire(self, params: PopImapLoginParams, ctx: Context, observed: State | None) -> State:
        want: dict[str, Any] = {}
        if params.login_type is not None:
            want["LoginType"] = params.login_type
        if params.enable_gssapi_and_ntlm is not None:
            want["EnableGSSAPIAndNTLMAuth"] = params.enable_gssapi_and_ntlm
        if params.x509_certificate_name is not None:
            want["X509CertificateName"] = params.x509_certificate_name
        return {self._object(params, ctx): want}

    def write(self, params: PopImapLoginParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        obj = self._object(params, ctx)
        seen = (observed or {}).get(obj) or {}
        args: list[tuple[str, Any]] = [("Server", ctx.server)]
        for prop, value in (desired[obj] or {}).items():
            if observed is None or not self.comparers[prop].equal(value, seen.get(prop)):
                args.append((prop, value))
        return (CmdletCall(PROTOCOL_CMDLETS[params.protocol][1], tuple(args)),) if len(args) > 1 else ()

    def restarts(self, params: PopImapLoginParams, ctx: Context, changes: Sequence[Change]) -> tuple[str, ...]:
        return PROTOCOL_SERVICES[params.protocol] if changes else ()

    def restart_policy(self, params: PopImapLoginParams) -> RestartPolicy:
        return params.restart



FAMILY_KINDS = (PopImapLogin(),)
