"""POP3 and IMAP4 kinds: how clients may log on (the guide's "Secure Password Authentication")
through ``Get/Set-PopSettings`` and ``Get/Set-ImapSettings``, always with explicit ``-Server``
(without it the cmdlets act on the server hosting the endpoint), and the service restarts the
changes need.
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


LOGIN_TYPES: tuple[str, ...] = ("PlainTextLogin", "PlainTextAuthentication", "SecureLogin")
# ExtendedProtectionTokenCheckingMode (OPS Set-PopSettings / Set-ImapSettings).
EXTENDED_PROTECTION_POLICIES: tuple[str, ...] = ("None", "Allow", "Require")


class PopImapLoginParams(KindParams):
    """Parameters of ``pop_imap_login``."""

    protocol: Protocol = Field(description="pop3 or imap4.")
    login_type: Literal["PlainTextLogin", "PlainTextAuthentication", "SecureLogin"] | None = Field(
        None, description="LoginType. SecureLogin (Exchange's default): no clear-text credentials outside TLS; "
        "Basic is still accepted inside TLS (995/993, or 110/143 after STARTTLS). PlainTextAuthentication: Basic "
        "only on a TLS/SSL connection. PlainTextLogin: user name and password accepted in clear text on a "
        "connection without TLS. No LoginType refuses Basic inside TLS.",
    )
    enable_gssapi_and_ntlm: bool | None = Field(
        None, description="EnableGSSAPIAndNTLMAuth: offer Integrated Windows authentication (NTLM, through GSSAPI) "
        "on connections without TLS. It neither refuses nor allows Basic; false takes NTLM away from clients "
        "that do not use TLS.",
    )
    extended_protection_policy: Literal["None", "Allow", "Require"] | None = Field(
        None, description="ExtendedProtectionPolicy (Extended Protection for Authentication, channel binding of "
        "NTLM): None (Exchange's default), Allow (used where the client supports it), Require (a connection "
        "whose client does not support it is rejected).",
    )
    x509_certificate_name: str | None = Field(None, description="X509CertificateName: the certificate's host name.")
    restart: RestartPolicy = Field(
        "deferred", description="allowed: restart the protocol's services (once per host, after the writes, "
        "only those running); deferred: leave the restart to you and report it as pending.",
    )

    @field_validator("login_type", mode="before")
    @classmethod
    def _login_name(cls, value: Any) -> Any:
        return canonical_names(value, LOGIN_TYPES)

    @field_validator("extended_protection_policy", mode="before")
    @classmethod
    def _policy_name(cls, value: Any) -> Any:
        return canonical_names(value, EXTENDED_PROTECTION_POLICIES)

    @model_validator(mode="after")
    def _something(self) -> PopImapLoginParams:
        if all(v is None for v in (self.login_type, self.enable_gssapi_and_ntlm, self.extended_protection_policy,
                                    self.x509_certificate_name)):
            raise ValueError("set at least one of login_type, enable_gssapi_and_ntlm, extended_protection_policy, "
                             "x509_certificate_name")
        return self


class PopImapLogin(Kind[PopImapLoginParams]):
    """How POP3/IMAP4 clients may log on: ``LoginType``, ``EnableGSSAPIAndNTLMAuth``,
    ``ExtendedProtectionPolicy`` and the certificate, per server, through ``Get/Set-PopSettings``
    or ``Get/Set-ImapSettings`` with explicit ``-Server`` (without it the cmdlets act on the server
    hosting the endpoint [V] OPS).

    **What each setting does** (the guide calls the goal "Secure Password Authentication"; these
    settings do less than the name suggests):

    - ``LoginType`` [V] (Exchange 2010 help "Configure Authentication for POP3 and IMAP4"; the
      current OPS help lists the values only, so that the meanings still hold on 2016+ is [I]):
      ``PlainTextLogin`` — no TLS needed on 110/143, and the user name and password travel in clear
      text unless the connection uses TLS; ``PlainTextAuthentication`` — no TLS needed on 110/143,
      but Basic authentication only on a connection with TLS/SSL; ``SecureLogin`` (the default) —
      a connection on 110/143 must start TLS before it authenticates. So ``SecureLogin`` means **no
      clear-text credentials outside TLS; Basic is still accepted inside TLS** (995/993, or
      110/143 after STARTTLS). How PlainTextAuthentication and SecureLogin differ for NTLM on a
      connection without TLS is not documented [U].
    - ``EnableGSSAPIAndNTLMAuth`` [V] (OPS): offers Integrated Windows authentication (NTLM)
      through GSSAPI on **connections without TLS** (default $true). It does not refuse Basic;
      setting it false only takes NTLM away from clients that do not use TLS. Whether NTLM is still
      offered inside TLS when it is false is [U]. A third-party IMAP capture against Exchange shows
      NTLM and GSSAPI (and LOGINDISABLED) advertised before STARTTLS and PLAIN only after it [I]
      (cweiske.de, "IMAP with Exchange", 2013).
    - ``ExtendedProtectionPolicy`` [V] (OPS): Extended Protection for Authentication, which binds
      NTLM to the TLS channel it runs in: ``None`` (default) not used; ``Allow`` used where the
      client supports it; ``Require`` every connection whose client does not support it is
      rejected. Microsoft recommends it where clients support it (Windows 7 / Server 2008 R2 and
      later do by default). **Risk of Require:** clients without channel binding (many non-Windows
      POP/IMAP clients, older libraries, devices) can no longer connect, and a load balancer that
      terminates TLS before Exchange breaks channel binding for everyone [I] (as for Exchange's
      HTTP Extended Protection, where TLS offloading is not supported). Whether Require also
      rejects Basic inside TLS, or only NTLM without a channel binding token, is [U]. Allow is the
      safe step; Require only after the POP/IMAP clients are known. POP3/IMAP4 have only this
      policy: ``ExtendedProtectionFlags`` and the SPN list exist for the virtual directories and
      Outlook Anywhere, not for Set-PopSettings/Set-ImapSettings [V] (cmdlet catalogue).

    **No setting here refuses Basic inside TLS** (procedures §11.16, [U]): no LoginType and no
    combination with the other two does. Refusing Basic entirely takes something else: an Exchange
    2019/SE authentication policy with ``BlockLegacyAuthPop`` / ``BlockLegacyAuthImap``, which
    blocks Basic, NTLM and Kerberos alike and leaves only modern authentication, so it needs hybrid
    modern authentication working first [V] (OPS New-AuthenticationPolicy; not managed by this
    kind); or no POP3/IMAP4 at all (``playbooks/pop3-disable.yml``).

    A change is live only after MSExchangePOP3 and MSExchangePOP3BE (IMAP: MSExchangeIMAP4 and
    MSExchangeIMAP4BE) restart. With ``restart: allowed`` they are restarted once per host after
    all writes, and only those already running (a stopped service stays stopped); with
    ``deferred`` the outcome says the setting is not live yet.
    """

    name = "pop_imap_login"
    summary = ("POP3/IMAP4 LoginType (no clear-text credentials outside TLS), NTLM without TLS, Extended "
               "Protection and certificate, with the service restart")
    params_model = PopImapLoginParams
    channel = "exchange"
    variants = (MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {
        "LoginType": TEXT, "EnableGSSAPIAndNTLMAuth": BOOL, "ExtendedProtectionPolicy": TEXT,
        "X509CertificateName": TEXT,
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
            "ExtendedProtectionPolicy": settings.get("ExtendedProtectionPolicy"),
            "X509CertificateName": settings.get("X509CertificateName"),
        }}

    def desire(self, params: PopImapLoginParams, ctx: Context, observed: State | None) -> State:
        want: dict[str, Any] = {}
        if params.login_type is not None:
            want["LoginType"] = params.login_type
        if params.enable_gssapi_and_ntlm is not None:
            want["EnableGSSAPIAndNTLMAuth"] = params.enable_gssapi_and_ntlm
        if params.extended_protection_policy is not None:
            want["ExtendedProtectionPolicy"] = params.extended_protection_policy
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

    def plan_notes(self, params: PopImapLoginParams) -> tuple[str, ...]:
        if params.extended_protection_policy == "Require":
            return ("ExtendedProtectionPolicy Require rejects every client without channel binding (and every "
                    "client behind a load balancer that terminates TLS); Allow is the safe step",)
        return ()



FAMILY_KINDS = (PopImapLogin(),)
