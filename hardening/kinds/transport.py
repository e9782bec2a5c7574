"""Exchange transport kinds: receive and send connectors, read and written through Exchange
cmdlets (the ``Microsoft.Exchange`` endpoint accepts cmdlet invocations only, so every request
here is data, not script text).
Every call names its object explicitly (``-Identity`` or ``-Server``): without ``-Server``,
``Get-PopSettings`` would act on the server hosting the endpoint, not the target. Send
connectors have no ``-Server``: they are organisation-wide, so they are listed with
``-Identity '*'`` and written by name.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from ..compare import BOOL, FLAGS, TEXT, Comparer, State, split_list
from ..model import Call, CmdletCall
from . import domain_security as ds
from .base import Context, ControlFailed, Kind, KindParams, NotApplicable, Variant, canonical_names, host_objects
from .platforms import EXCHANGE_MODERN_PRODUCTS, is_modern_exchange

__all__ = [
    "CERTIFICATE_NAME",
    "FAMILY_KINDS",
    "MODERN",
    "ReceiveConnectorTls",
    "SendConnectorTls",
]

MODERN = Variant(
    "exchange-modern",
    "Exchange 2016/2019/SE (cmdlets over the Microsoft.Exchange endpoint)",
    EXCHANGE_MODERN_PRODUCTS,
    is_modern_exchange,
)


# --- certificate names ------------------------------------------------------------------------

_CERT_TAGS = re.compile(r"<([IS])>", re.IGNORECASE)


def _dn_parts(dn: str) -> list[str]:
    """An X.500 name's relative names, split at commas outside quotes and not escaped."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in dn:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == '"':
            current.append(ch)
            quoted = not quoted
        elif ch in ",;" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _dn_key(dn: str) -> str:
    out = []
    for part in _dn_parts(dn):
        attribute, sep, value = part.partition("=")
        out.append(f"{attribute.strip().casefold()}{sep}{value.strip().casefold()}")
    return ",".join(p for p in out if p)


def _certificate_key(value: Any) -> str:
    """``<I>issuer<S>subject`` with both names split into their parts, trimmed and case-folded,
    so ``CN=CA, DC=contoso`` and ``cn=CA,DC=Contoso`` (Exchange may re-spell what it stores [U])
    are the same certificate; anything not in that form compares as case-insensitive text."""
    if value is None:
        return ""
    text = str(value)
    pieces = _CERT_TAGS.split(text)
    if len(pieces) == 1 or pieces[0].strip():
        return text.casefold()
    names = {tag.upper(): _dn_key(dn) for tag, dn in zip(pieces[1::2], pieces[2::2], strict=True)}
    return f"<I>{names.get('I', '')}<S>{names.get('S', '')}"


CERTIFICATE_NAME = Comparer("certificate name '<I>issuer<S>subject', each name's parts trimmed and "
                            "case-insensitive", _certificate_key)


# --- receive connectors -----------------------------------------------------------------------

AuthMechanism = Literal[
    "None", "Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer", "ExternalAuthoritative"
]
AUTH_ORDER: tuple[str, ...] = (
    "None", "Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer", "ExternalAuthoritative"
)
# Bindings ports that say what a receive connector is for (EXD receive-connectors.md).
USAGE_PORTS = {"internet": {25}, "client": {587, 465}, "internal": {2525, 717}}
ROLE_NAMES = {"frontend": "FrontendTransport", "hub": "HubTransport"}


def _canonical_auth(names: set[str]) -> list[str]:
    by_fold = {n.casefold(): n for n in AUTH_ORDER}
    known = [n for n in AUTH_ORDER if n.casefold() in {x.casefold() for x in names}]
    unknown = sorted(n for n in names if n.casefold() not in by_fold)
    return known + unknown


def _check_auth_rules(names: Sequence[str], require_tls: bool | None, domain_secure: bool | None = None) -> str | None:
    """Exchange's own AuthMechanism rules (OPS Set-ReceiveConnector); a sentence if broken."""
    folded = {n.casefold() for n in names}
    if "none" in folded and len(folded) > 1:
        return "AuthMechanism None must be used alone"
    if "basicauthrequiretls" in folded and not {"basicauth", "tls"} <= folded:
        return "AuthMechanism BasicAuthRequireTLS needs BasicAuth and Tls too"
    if "externalauthoritative" in folded and not folded <= {"externalauthoritative", "tls"}:
        return "AuthMechanism ExternalAuthoritative combines only with Tls"
    if require_tls and "tls" not in folded:
        return "RequireTLS $true needs Tls in AuthMechanism"
    if domain_secure and ("tls" not in folded or "externalauthoritative" in folded):
        return "DomainSecureEnabled $true needs Tls in AuthMechanism, and no ExternalAuthoritative"
    return None


class ConnectorSelect(KindParams):
    """Which receive connectors of the server a control acts on; all given criteria must match."""

    name: str | None = Field(None, description="Connector name, glob, case-insensitive (e.g. 'Client Frontend*').")
    role: Literal["frontend", "hub"] | None = Field(
        None, description="Transport role: frontend (Front End Transport) or hub (Transport service)."
    )
    usage: Literal["internet", "client", "internal"] | None = Field(
        None, description="What the connector serves, from its bound port: internet 25, client 587/465, "
        "internal 2525/717.",
    )

    def matches(self, connector: Mapping[str, Any]) -> bool:
        if self.name and not fnmatch.fnmatchcase(str(connector.get("Name", "")).casefold(), self.name.casefold()):
            return False
        if self.role and str(connector.get("TransportRole", "")).casefold() != ROLE_NAMES[self.role].casefold():
            return False
        if self.usage:
            ports = {_port(b) for b in split_list(connector.get("Bindings"))}
            if not ports & USAGE_PORTS[self.usage]:
                return False
        return True

    def describe(self) -> str:
        parts = [f"name {self.name!r}" if self.name else "", f"role {self.role}" if self.role else "",
                 f"usage {self.usage}" if self.usage else ""]
        return ", ".join(p for p in parts if p) or "any"


def _port(binding: str) -> int | None:
    tail = binding.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


class ReceiveConnectorTlsParams(KindParams):
    """Parameters of ``receive_connector_tls``."""

    select: ConnectorSelect = Field(default_factory=lambda: ConnectorSelect(), description="Which connectors.")
    require_tls: bool | None = Field(None, description="RequireTLS: refuse mail sessions that do not STARTTLS.")
    auth_mechanism: list[AuthMechanism] | None = Field(
        None, description="AuthMechanism, exactly this set (Tls is required when require_tls is true)."
    )
    auth_mechanism_include: list[AuthMechanism] | None = Field(
        None, description="AuthMechanism flags that must be present; the connector's others are kept."
    )
    basic_auth_require_tls: bool | None = Field(
        None, description="Where BasicAuth is on, also require BasicAuthRequireTLS (no Basic in clear text).",
    )
    tls_certificate_name: str | None = Field(
        None, description="TlsCertificateName, '<I>issuer<S>subject' of the certificate to offer."
    )
    domain_secure_enabled: bool | None = Field(
        None, description="DomainSecureEnabled: accept Domain Security (mutual TLS) from the domains in the "
        "transport configuration's TLSReceiveDomainSecureList; needs Tls in AuthMechanism (added in include mode) "
        "and no ExternalAuthoritative.",
    )

    @field_validator("auth_mechanism", "auth_mechanism_include", mode="before")
    @classmethod
    def _auth_names(cls, value: Any) -> Any:
        return canonical_names(value, AUTH_ORDER)

    @model_validator(mode="after")
    def _consistent(self) -> ReceiveConnectorTlsParams:
        if self.auth_mechanism is not None and self.auth_mechanism_include is not None:
            raise ValueError("give auth_mechanism (exact set) or auth_mechanism_include (at least), not both")
        if self.auth_mechanism is not None:
            problem = _check_auth_rules(self.auth_mechanism, self.require_tls, self.domain_secure_enabled)
            if problem:
                raise ValueError(problem)
            exact = set(self.auth_mechanism)
            if self.basic_auth_require_tls and "BasicAuth" in exact and "BasicAuthRequireTLS" not in exact:
                raise ValueError("basic_auth_require_tls: true contradicts auth_mechanism, which has BasicAuth "
                                 "without BasicAuthRequireTLS; add BasicAuthRequireTLS (and Tls) to the set")
            if self.basic_auth_require_tls is False and "BasicAuthRequireTLS" in exact:
                raise ValueError("basic_auth_require_tls: false contradicts auth_mechanism, which has "
                                 "BasicAuthRequireTLS")
        if self.auth_mechanism_include is not None:
            include = set(self.auth_mechanism_include)
            if "None" in include:
                raise ValueError("auth_mechanism_include cannot include None; use auth_mechanism: [None]")
            if "BasicAuthRequireTLS" in include and not {"BasicAuth", "Tls"} <= include:
                raise ValueError("auth_mechanism_include with BasicAuthRequireTLS needs BasicAuth and Tls in the "
                                 "list too (Exchange's rule); to add it only where Basic is already on, use "
                                 "basic_auth_require_tls: true")
            if "ExternalAuthoritative" in include:
                raise ValueError("ExternalAuthoritative combines only with Tls, so it cannot be added to a "
                                 "connector's other flags; use auth_mechanism: [Tls, ExternalAuthoritative]")
        if all(v is None for v in (self.require_tls, self.auth_mechanism, self.auth_mechanism_include,
                                    self.basic_auth_require_tls, self.tls_certificate_name,
                                    self.domain_secure_enabled)):
            raise ValueError("set at least one of require_tls, auth_mechanism, auth_mechanism_include, "
                             "basic_auth_require_tls, tls_certificate_name, domain_secure_enabled")
        return self


class ReceiveConnectorTls(Kind[ReceiveConnectorTlsParams]):
    """Require TLS on inbound SMTP: ``RequireTLS``, ``AuthMechanism``, the TLS certificate and
    ``DomainSecureEnabled`` of Exchange receive connectors, selected by name, role or usage on
    each server.

    Reads ``Get-ReceiveConnector -Server``; writes ``Set-ReceiveConnector -Identity`` with only the
    parameters that differ, then re-reads. Exchange refuses RequireTLS without ``Tls`` in
    AuthMechanism, so when ``require_tls`` is true and the include-mode set lacks Tls, Tls is added.
    No restart: transport picks the change up from AD by itself [I].

    Exchange's AuthMechanism rules (OPS Set-ReceiveConnector) are checked before anything is
    sent: ``None`` alone; ``BasicAuthRequireTLS`` only with ``BasicAuth`` and ``Tls``;
    ``ExternalAuthoritative`` only with ``Tls``; ``DomainSecureEnabled $true`` only with ``Tls`` and
    without ``ExternalAuthoritative``. ``basic_auth_require_tls: true`` adds
    BasicAuthRequireTLS (and Tls) only where BasicAuth is already on; it never turns Basic on.
    A contradiction between it and an exact ``auth_mechanism`` set is refused.

    ``TlsCertificateName`` is ``<I>issuer<S>subject`` (OPS). It compares with each X.500 name
    split into its parts, trimmed and case-insensitive, so Exchange spelling the same names with
    other spaces or case [U] is not drift; the issuer and subject order is kept. The certificate
    itself must be installed and enabled for SMTP (``Enable-ExchangeCertificate -Services SMTP``);
    this kind does not check the certificate store.

    ``DomainSecureEnabled`` is the receive side of Domain Security (mutual TLS) [V] (OPS
    Set-ReceiveConnector, Set-TransportConfig): it takes effect for the domains in the transport
    configuration's ``TLSReceiveDomainSecureList``, which ``send_connector_tls`` sets with the
    partner's send connector; for other senders it changes nothing [I]. An Edge server's default
    receive connector has it $true by default [V] (OPS, Exchange 2016 text).

    Guide: inbound SMTP TLS. Requiring TLS on the internet-facing Default Frontend connector
    refuses every sender that does not STARTTLS; select connectors deliberately.
    """

    name = "receive_connector_tls"
    summary = "RequireTLS, AuthMechanism and TLS certificate on Exchange receive connectors"
    params_model = ReceiveConnectorTlsParams
    channel = "exchange"
    variants = (MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {
        "RequireTLS": BOOL, "AuthMechanism": FLAGS, "TlsCertificateName": CERTIFICATE_NAME,
        "DomainSecureEnabled": BOOL,
    }

    def read(self, params: ReceiveConnectorTlsParams, ctx: Context) -> tuple[Call, ...]:
        return (CmdletCall("Get-ReceiveConnector", (("Server", ctx.server),)),)

    def observe(self, params: ReceiveConnectorTlsParams, ctx: Context, values: Sequence[Any]) -> State:
        connectors = [c for c in host_objects(values[0]) if params.select.matches(c)]
        if not connectors:
            raise NotApplicable(f"no receive connector on {ctx.server} matches {params.select.describe()}")
        state: dict[str, dict[str, Any]] = {}
        for connector in connectors:
            state[str(connector.get("Identity"))] = {
                "RequireTLS": connector.get("RequireTLS"),
                "AuthMechanism": _canonical_auth(set(split_list(connector.get("AuthMechanism")))),
                "TlsCertificateName": connector.get("TlsCertificateName"),
                "DomainSecureEnabled": connector.get("DomainSecureEnabled"),
            }
        return state

    def desire(self, params: ReceiveConnectorTlsParams, ctx: Context, observed: State | None) -> State:
        targets = observed if observed is not None else {f"<{ctx.server} connectors matching "
                                                          f"{params.select.describe()}>": {}}
        desired: dict[str, dict[str, Any]] = {}
        for identity, seen in targets.items():
            want: dict[str, Any] = {}
            if params.require_tls is not None:
                want["RequireTLS"] = params.require_tls
            # A relative AuthMechanism (include, basic_auth_require_tls) depends on the connector's
            # current set: in plan mode nothing was read, so it is described in a note instead.
            relative = params.auth_mechanism is None
            auth = None if observed is None and relative else self._desired_auth(
                params, split_list((seen or {}).get("AuthMechanism")))
            if auth is not None:
                requires = want["RequireTLS"] if "RequireTLS" in want else _truthy((seen or {}).get("RequireTLS"))
                secure = (params.domain_secure_enabled if params.domain_secure_enabled is not None
                          else _truthy((seen or {}).get("DomainSecureEnabled")))
                problem = _check_auth_rules(auth, requires, secure)
                if problem:
                    raise ControlFailed(f"{identity}: the AuthMechanism this control would write "
                                        f"({', '.join(auth)}) breaks Exchange's rule: {problem}; nothing was sent")
                want["AuthMechanism"] = auth
            if params.tls_certificate_name is not None:
                want["TlsCertificateName"] = params.tls_certificate_name
            if params.domain_secure_enabled is not None:
                want["DomainSecureEnabled"] = params.domain_secure_enabled
            desired[identity] = want
        return desired

    @staticmethod
    def _desired_auth(params: ReceiveConnectorTlsParams, current: list[str]) -> list[str] | None:
        if params.auth_mechanism is not None:
            return _canonical_auth(set(params.auth_mechanism))
        needs_tls = bool(params.require_tls or params.domain_secure_enabled)
        if params.auth_mechanism_include is None and params.basic_auth_require_tls is None and not needs_tls:
            return None
        names = {n for n in current if n.casefold() != "none"} if params.auth_mechanism_include else set(current)
        names |= set(params.auth_mechanism_include or ())
        if needs_tls:
            names.add("Tls")
        if params.basic_auth_require_tls and "basicauth" in {n.casefold() for n in names}:
            names |= {"BasicAuthRequireTLS", "Tls"}
        if params.basic_auth_require_tls is False:
            names = {n for n in names if n.casefold() != "basicauthrequiretls"}
        if len(names) > 1:  # Exchange refuses None beside anything else
            names = {n for n in names if n.casefold() != "none"}
        return _canonical_auth(names)

    def plan_notes(self, params: ReceiveConnectorTlsParams) -> tuple[str, ...]:
        if params.auth_mechanism is not None:
            return ()
        added = list(params.auth_mechanism_include or ())
        if (params.require_tls or params.domain_secure_enabled) and "Tls" not in added:
            added.append("Tls")
        notes = []
        if added:
            notes.append(f"AuthMechanism: each connector's current set plus {', '.join(added)}")
        if params.basic_auth_require_tls:
            notes.append("AuthMechanism: BasicAuthRequireTLS and Tls added where BasicAuth is on")
        if params.basic_auth_require_tls is False:
            notes.append("AuthMechanism: BasicAuthRequireTLS removed where present")
        return tuple(notes)

    def write(self, params: ReceiveConnectorTlsParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        return _set_calls("Set-ReceiveConnector", self.comparers, observed, desired)


def _set_calls(cmdlet: str, comparers: Mapping[str, Comparer], observed: State | None,
               desired: State) -> tuple[Call, ...]:
    """One ``Set-… -Identity`` per object with the properties that differ (all of them in plan mode)."""
    calls: list[Call] = []
    for identity, want in desired.items():
        seen = (observed or {}).get(identity) or {}
        args: list[tuple[str, Any]] = [("Identity", identity)]
        for prop, value in (want or {}).items():
            if observed is not None and comparers[prop].equal(value, seen.get(prop)):
                continue
            args.append((prop, tuple(value) if isinstance(value, list) else value))
        if len(args) > 1:
            calls.append(CmdletCall(cmdlet, tuple(args)))
    return tuple(calls)


# --- send connectors --------------------------------------------------------------------------

TlsAuthLevel = Literal["EncryptionOnly", "CertificateValidation", "DomainValidation"]
TLS_AUTH_LEVELS: tuple[str, ...] = ("EncryptionOnly", "CertificateValidation", "DomainValidation")
# The names an Edge Subscription gives the send connectors it creates: "EdgeSync - <site> to
# Internet" and "EdgeSync - Inbound to <site>" (EXD network-ports.md; TechNet bb266920).
EDGESYNC_PREFIXES = ("edgesync - ", "edgesync \u2013 ")
EDGE_ROLE = "edgetransport"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*$")
_SERVER = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


def _short(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:60] + "…")


def _domain(value: str) -> str:
    if len(value) > 255 or not _DOMAIN.match(value):
        raise ValueError(f"{_short(value)} is not a domain name: letters, digits and hyphens in dot-separated "
                         "labels, optionally starting with '*.' for the domain and its subdomains")
    return value


def _address_space(value: str) -> str:
    if value in {"*", "--"}:
        return value
    if len(value) > 255 or not _DOMAIN.match(value):
        raise ValueError(f"{_short(value)} is not an SMTP address space: '*' (every domain: the internet), "
                         "'--' (the accepted domains, EdgeSync's inbound connector), a domain, or '*.' and a domain")
    return value


def _server_name(value: str) -> str:
    if len(value) > 255 or not _SERVER.match(value):
        raise ValueError(f"{_short(value)} is not a server name (a host name such as MAIL01, or its FQDN)")
    return value


DomainName = Annotated[str, AfterValidator(_domain)]
ExactDomain = Annotated[str, AfterValidator(ds.exact_domain)]
AddressSpace = Annotated[str, AfterValidator(_address_space)]
ServerName = Annotated[str, AfterValidator(_server_name)]


def _same_server(a: str, b: str) -> bool:
    return a.split(".")[0].casefold() == b.split(".")[0].casefold()


def _smtp_address_spaces(connector: Mapping[str, Any]) -> list[str]:
    """The SMTP address spaces of a send connector, as addresses (``*``, ``contoso.com``).

    Deserialised, each address space is its text form ``SMTP:contoso.com;1`` [I]; an object with
    Type and Address is read too. Non-SMTP address spaces (X400 …) are left out.
    """
    raw = connector.get("AddressSpaces")
    items = raw if isinstance(raw, list) else [raw] if raw is not None else []
    out = []
    for item in items:
        if isinstance(item, Mapping):
            kind, address = str(item.get("Type") or "SMTP"), str(item.get("Address") or "")
        else:
            text = str(item).strip()
            kind, sep, rest = text.partition(":")
            if not sep:
                kind, rest = "SMTP", text
            address = rest.rsplit(";", 1)[0] if ";" in rest else rest
        if kind.strip().casefold() == "smtp" and address.strip():
            out.append(address.strip())
    return out


def _is_edgesync(connector: Mapping[str, Any]) -> bool:
    return str(connector.get("Name", "")).casefold().startswith(EDGESYNC_PREFIXES)


class SendConnectorSelect(KindParams):
    """Which send connectors a control acts on; all given criteria must match (none: every one)."""

    name: str | None = Field(None, description="Connector name, glob, case-insensitive (e.g. 'Partner *'). "
                             "A name without * ? [ names one connector (its identity).")
    address_space: AddressSpace | None = Field(
        None, description="An SMTP address space the connector serves, compared without case: '*' is "
        "every domain (the internet connector), or a domain such as 'fabrikam.com' or '*.fabrikam.com'.",
    )

    @property
    def exact_name(self) -> str | None:
        """The name, when it names one connector rather than a pattern."""
        return self.name if self.name and not any(c in self.name for c in "*?[") else None

    def matches(self, connector: Mapping[str, Any]) -> bool:
        if self.name and not fnmatch.fnmatchcase(str(connector.get("Name", "")).casefold(), self.name.casefold()):
            return False
        if self.address_space is not None:
            wanted = self.address_space.casefold()
            if wanted not in {a.casefold() for a in _smtp_address_spaces(connector)}:
                return False
        return True

    def describe(self) -> str:
        parts = [f"name {self.name!r}" if self.name else "",
                 f"address space {self.address_space}" if self.address_space else ""]
        return ", ".join(p for p in parts if p) or "any"


class SendConnectorTlsParams(KindParams):
    """Parameters of ``send_connector_tls``."""

    select: SendConnectorSelect = Field(default_factory=lambda: SendConnectorSelect(),
                                        description="Which send connectors (default: all).")
    require_tls: bool | None = Field(
        None, description="RequireTLS: send through this connector only over TLS (mail to a host without "
        "STARTTLS queues, then bounces).",
    )
    tls_auth_level: TlsAuthLevel | None = Field(
        None, description="TlsAuthLevel: EncryptionOnly, CertificateValidation (chain and revocation) or "
        "DomainValidation (also the certificate's name against tls_domain). Needs require_tls: true.",
    )
    tls_domain: DomainName | None = Field(
        None, description="TlsDomain: the domain the remote certificate must match under DomainValidation "
        "(required with it), e.g. 'fabrikam.com' or '*.fabrikam.com'.",
    )
    domain_secure_enabled: bool | None = Field(
        None, description="DomainSecureEnabled: mutual TLS (Domain Security) towards the domains in "
        "domain_secure_domains (required with true). Works only with DNS routing; false leaves the transport "
        "configuration's lists as they are.",
    )
    domain_secure_domains: list[ExactDomain] | None = Field(
        None, description="The partner domains of Domain Security, by exact name (no wildcards: Exchange does not "
        "support them there): each is added to the transport configuration's TLSSendDomainSecureList and "
        "TLSReceiveDomainSecureList, their other entries kept. The connector's address spaces must route them.",
    )
    tls_certificate_name: str | None = Field(
        None, description="TlsCertificateName, '<I>issuer<S>subject' of the certificate to present.",
    )
    ignore_starttls: bool | None = Field(
        None, description="IgnoreSTARTTLS: true turns even opportunistic TLS off. Set to false wherever TLS is "
        "wanted (require_tls, tls_auth_level, domain_secure_enabled) unless given.",
    )
    allow_require_tls_to_internet: bool = Field(
        False, description="Allow RequireTLS on a connector with address space '*' (every domain), which stops "
        "mail to every domain without STARTTLS. Without it such a connector fails the control, before anything "
        "is sent.",
    )
    managed_from: ServerName | None = Field(
        None, description="The one Exchange server that writes the selected connectors for the organisation; "
        "every other Mailbox host reports not_applicable. Default: each connector is written only from the "
        "first, by name, of its SourceTransportServers.",
    )
    edge_subscribed: bool | None = Field(
        None, description="Edge servers only: whether the Edge is subscribed (EdgeSync copies its send "
        "connectors from the organisation, so they are changed on a Mailbox server). Default: subscribed when "
        "one of its send connectors has an EdgeSync name ('EdgeSync - …').",
    )

    @field_validator("tls_auth_level", mode="before")
    @classmethod
    def _level_name(cls, value: Any) -> Any:
        return canonical_names(value, TLS_AUTH_LEVELS)

    @model_validator(mode="after")
    def _consistent(self) -> SendConnectorTlsParams:
        # Set-SendConnector's rules (OPS), checked before anything is sent.
        if self.tls_auth_level is not None and self.require_tls is not True:
            raise ValueError("tls_auth_level needs require_tls: true (Set-SendConnector refuses TlsAuthLevel "
                             "while RequireTLS is $false)")
        if self.tls_auth_level == "DomainValidation" and self.tls_domain is None:
            raise ValueError("tls_auth_level DomainValidation needs tls_domain: the domain the remote "
                             "certificate must match")
        if self.ignore_starttls:
            wanted = [n for n, v in (("require_tls", self.require_tls), ("domain_secure_enabled",
                                     self.domain_secure_enabled)) if v] + (
                ["tls_auth_level"] if self.tls_auth_level else [])
            if wanted:
                raise ValueError(f"ignore_starttls: true turns TLS off; it cannot go with {', '.join(wanted)} "
                                 "(Exchange: IgnoreSTARTTLS must be $false when RequireTLS is $true)")
            if self.require_tls is not False:
                raise ValueError("ignore_starttls: true needs require_tls: false (Exchange refuses IgnoreSTARTTLS "
                                 "on a connector that requires TLS)")
        if self.domain_secure_enabled and not self.domain_secure_domains:
            raise ValueError("domain_secure_enabled: true needs domain_secure_domains: the partner domains to add to "
                             "the transport configuration's TLSSendDomainSecureList and TLSReceiveDomainSecureList; "
                             "without them mutual TLS cannot work (Set-TransportConfig)")
        if self.domain_secure_domains is not None and not self.domain_secure_enabled:
            raise ValueError("domain_secure_domains needs domain_secure_enabled: true (it names the partner domains "
                             "of Domain Security)")
        if all(v is None for v in (self.require_tls, self.tls_auth_level, self.tls_domain,
                                    self.domain_secure_enabled, self.tls_certificate_name, self.ignore_starttls)):
            raise ValueError("set at least one of require_tls, tls_auth_level, tls_domain, domain_secure_enabled, "
                             "tls_certificate_name, ignore_starttls")
        return self

    @property
    def tls_wanted(self) -> bool:
        return bool(self.require_tls or self.tls_auth_level or self.domain_secure_enabled)

    @property
    def partner_domains(self) -> tuple[str, ...]:
        """The Domain Security partner domains this control makes mutual TLS work for (none unless
        domain_secure_enabled is true)."""
        return tuple(self.domain_secure_domains or ()) if self.domain_secure_enabled else ()


SEND_PROPERTIES = ("RequireTLS", "IgnoreSTARTTLS", "TlsAuthLevel", "TlsDomain", "DomainSecureEnabled",
                   "TlsCertificateName")


class SendConnectorTls(Kind[SendConnectorTlsParams]):
    """Enable outbound TLS: ``RequireTLS``, ``TlsAuthLevel``, ``TlsDomain``,
    ``DomainSecureEnabled``, ``TlsCertificateName`` and ``IgnoreSTARTTLS`` of Exchange send
    connectors, selected by name (glob), by SMTP address space (``*`` is the internet
    connector) or all of them.

    Reads ``Get-SendConnector -Identity '*'`` (every connector of the organisation; Exchange
    resolves ``*`` in an identity as a wildcard [I], and the cmdlet has no ``-Server``); writes
    ``Set-SendConnector -Identity <name>`` with only the parameters that differ, then re-reads.
    No restart: transport reads connector changes from AD by itself [I] (ExchangeDsc's send
    connector resource restarts nothing either).

    **Opportunistic TLS** is on by default: Exchange tries STARTTLS on every connection unless a
    connector says ``IgnoreSTARTTLS $true`` [V] (EXD TLS functionality). So ``ignore_starttls:
    false`` over all connectors is the baseline; ``require_tls`` makes TLS mandatory (scope it to
    partner connectors). Whenever TLS is wanted (``require_tls``, ``tls_auth_level``,
    ``domain_secure_enabled``) and ``ignore_starttls`` is not given, IgnoreSTARTTLS is set to
    False as well.

    **Set-SendConnector's rules**, refused in the parameters before anything is sent (OPS):
    TlsAuthLevel only with RequireTLS $true and IgnoreSTARTTLS $false; IgnoreSTARTTLS must be
    $false when RequireTLS is $true; ``DomainValidation`` needs ``TlsDomain`` (the help calls it
    required, though its DomainValidation paragraph also describes a fallback to the
    recipient's domain). When ``require_tls: false`` is wanted, TlsAuthLevel is cleared in the
    same call (it cannot stay set without RequireTLS). The help also calls TlsDomain required for
    smart-host connectors; whether the cmdlet enforces that is [U] and it is not checked.

    **Refused on the connector, before anything is sent** (the control fails with a sentence):
    RequireTLS on a connector whose address space is ``*`` (every domain without STARTTLS would
    stop receiving mail) unless ``allow_require_tls_to_internet: true``; DomainSecureEnabled on
    a connector that routes through smart hosts (mutual TLS works only with DNS routing, OPS), or
    whose address spaces do not route a partner domain.

    **Domain Security (mutual TLS)** needs more than the connector's ``DomainSecureEnabled``
    (:mod:`hardening.kinds.domain_security`): with ``domain_secure_enabled: true`` the control also
    adds each of ``domain_secure_domains`` to the transport configuration's
    ``TLSSendDomainSecureList`` and ``TLSReceiveDomainSecureList`` (``Set-TransportConfig
    -TLSSendDomainSecureList @{Add='fabrikam.com'}``: the other entries are kept, and two partner
    controls in one run do not undo each other), and it reads the receive side it does not write:
    a receive connector of the organisation with DomainSecureEnabled and Tls (``Get-ReceiveConnector``
    without ``-Server``, which lists every server's connectors [I]; in an organisation with an Edge
    subscription the Edge's connectors are not visible, so the subscription is named instead).
    Without one the control is ``drifted`` in check and ``failed`` after apply, with the sentence
    saying what is missing (``receive_connector_tls`` with ``domain_secure_enabled: true`` sets
    it); it is ``fixed`` only when all of it holds. Wildcard domains (``*``, ``*.fabrikam.com``)
    are refused when the playbook is validated: Exchange does not support them in the lists [V]
    (OPS Set-TransportConfig). ``domain_secure_enabled: false`` leaves the lists alone (another
    connector may need them). The transport configuration is organisation-wide: it is written by
    the host that writes the selected connector (the one-writer rule below), so once per run. A
    rollback cannot remove a domain this control added (the lists compare as "holds at least").

    **Organisation-wide objects, one writer.** Send connectors are not per server: every Mailbox
    server's endpoint returns the same set, so a control on several hosts would write the same
    object from each. A connector is therefore written from one host only: the one named in
    ``managed_from``, or by default the first, in case-insensitive name order, of the connector's
    ``SourceTransportServers`` (the servers that send through it, so the writer is one of them). Every other host
    leaves that connector out; a host that handles none of the selected connectors is
    ``not_applicable`` with a sentence naming the host that does. If that host is not in the run,
    nothing changes the connector: name one with ``managed_from``.

    **Edge Transport.** On an Edge server (facts: roles contain EdgeTransport) the send
    connectors are the Edge's own, in its AD LDS, and SourceTransportServers does not apply there
    (OPS): a standalone Edge handles all its selected connectors itself, whatever
    ``managed_from`` says. A subscribed Edge holds copies that EdgeSync replicates one way from
    AD and overwrites [I] (its own connectors are deleted at subscription, TechNet bb266920);
    they are changed on the Mailbox side, so on a subscribed Edge this control is
    ``not_applicable``. Whether the Edge is subscribed is ``edge_subscribed``, by default guessed
    from an EdgeSync-named connector [I]; a subscription made without its default connectors
    needs ``edge_subscribed: true``. On the Mailbox side the EdgeSync-created connectors ("EdgeSync
    - <site> to Internet", "EdgeSync - Inbound to <site>") have the Edge subscription as their
    source server, so no Mailbox host is first among them: they are written only by the host
    named in ``managed_from``.

    **Later Exchange 2003 variant.** The same parameters map to ``msExchSmtpOutboundSecurityFlag``
    on ``msExchRoutingSMTPConnector`` objects (bit 0x4 RequireTLS, 0x800000 IgnoreSTARTTLS,
    procedures §2.1), selected by name and address space as here; TlsAuthLevel, TlsDomain,
    DomainSecureEnabled and TlsCertificateName have no 2003 counterpart and would be refused
    there.

    Guide: enable outbound TLS.
    """

    name = "send_connector_tls"
    summary = ("RequireTLS, TlsAuthLevel, TlsDomain, DomainSecureEnabled, certificate and IgnoreSTARTTLS on "
               "Exchange send connectors")
    params_model = SendConnectorTlsParams
    channel = "exchange"
    variants = (MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {
        "RequireTLS": BOOL, "IgnoreSTARTTLS": BOOL, "TlsAuthLevel": TEXT, "TlsDomain": TEXT,
        "DomainSecureEnabled": BOOL, "TlsCertificateName": CERTIFICATE_NAME,
        **{name: ds.INCLUDES for name in ds.LISTS}, ds.RECEIVE_PROPERTY: ds.AT_LEAST_ONE,
    }
    # The transport configuration is one object per organisation; Get-ReceiveConnector without
    # -Server lists the receive connectors of every server (the receive side of Domain Security).
    org_wide_cmdlets: ClassVar[frozenset[str]] = frozenset(
        {"Get-TransportConfig", "Set-TransportConfig", "Get-ReceiveConnector"})

    def read(self, params: SendConnectorTlsParams, ctx: Context) -> tuple[Call, ...]:
        connectors = CmdletCall("Get-SendConnector", (("Identity", "*"),))
        if not params.partner_domains:
            return (connectors,)
        return (connectors, CmdletCall("Get-TransportConfig"), CmdletCall("Get-ReceiveConnector"))

    def observe(self, params: SendConnectorTlsParams, ctx: Context, values: Sequence[Any]) -> State:
        every = host_objects(values[0])
        connectors = [c for c in every if params.select.matches(c)]
        if not connectors:
            raise NotApplicable(f"no send connector matches {params.select.describe()}")
        if EDGE_ROLE in {r.casefold() for r in ctx.facts.exchange_roles}:
            subscribed = params.edge_subscribed
            if subscribed is None:
                subscribed = any(_is_edgesync(c) for c in every)
            if subscribed:
                raise NotApplicable(f"{ctx.server} is a subscribed Edge server: its send connectors are copies "
                                    "that EdgeSync overwrites from the organisation; change them on a Mailbox "
                                    "server (edge_subscribed: false if this Edge is standalone)")
            owned = connectors
        else:
            owned = []
            reasons = []
            for connector in connectors:
                owner, why = self._owner(params, connector)
                if owner is not None and _same_server(owner, ctx.server):
                    owned.append(connector)
                else:
                    reasons.append(f"{self._identity(connector)} {why}")
            if not owned:
                more = f"; and {len(reasons) - 3} more" if len(reasons) > 3 else ""
                raise NotApplicable(f"send connectors are organisation-wide and each is written from one host; "
                                    f"none matching {params.select.describe()} is written from {ctx.server}: "
                                    + "; ".join(reasons[:3]) + more)
        state: dict[str, dict[str, Any]] = {}
        for connector in owned:
            identity = self._identity(connector)
            state[identity] = {prop: connector.get(prop) for prop in SEND_PROPERTIES}
            self._refuse(params, identity, connector)
        if params.partner_domains:
            state.update(self._domain_security(values, every))
        return state

    @staticmethod
    def _domain_security(values: Sequence[Any], every: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """The organisation's side of Domain Security: the transport configuration's lists and
        what can receive over mutual TLS."""
        try:
            lists = ds.transport_config_state(host_objects(values[1]))
        except ValueError as exc:
            raise ControlFailed(str(exc)) from None
        edges = sorted({server for c in every if _is_edgesync(c)
                        for server in split_list(c.get("SourceTransportServers"))}, key=str.casefold)
        receivers = ds.receive_side(host_objects(values[2]), edges)
        return {ds.TRANSPORT_CONFIG: dict(lists), ds.RECEIVE_OBJECT: {ds.RECEIVE_PROPERTY: receivers}}

    @staticmethod
    def _identity(connector: Mapping[str, Any]) -> str:
        return str(connector.get("Identity") or connector.get("Name"))

    @staticmethod
    def _owner(params: SendConnectorTlsParams, connector: Mapping[str, Any]) -> tuple[str | None, str]:
        """The host that writes this organisation-wide connector, and why (for the sentence)."""
        if params.managed_from:
            return params.managed_from, f"is written from {params.managed_from} (managed_from)"
        sources = sorted(split_list(connector.get("SourceTransportServers")), key=str.casefold)
        if _is_edgesync(connector):
            edge = ", ".join(sources) or "an Edge subscription"
            return None, (f"was created by the Edge subscription {edge} and is written from the Mailbox "
                          "server named in managed_from")
        if not sources:
            return None, "has no SourceTransportServers; name the server that writes it in managed_from"
        return sources[0], f"is written from {sources[0]} (first of its SourceTransportServers)"

    @staticmethod
    def _refuse(params: SendConnectorTlsParams, identity: str, connector: Mapping[str, Any]) -> None:
        """Connector states this control must not write into, whatever the parameters allow."""
        spaces = _smtp_address_spaces(connector)
        if (params.require_tls and "*" in spaces and not params.allow_require_tls_to_internet
                and not BOOL.equal(True, connector.get("RequireTLS"))):
            raise ControlFailed(f"{identity} serves address space * (every domain): RequireTLS there stops mail "
                                "to every domain without STARTTLS; select partner connectors, or set "
                                "allow_require_tls_to_internet: true; nothing was sent")
        if params.domain_secure_enabled and connector.get("DNSRoutingEnabled") is not None and not _truthy(
                connector.get("DNSRoutingEnabled")):
            hosts = ", ".join(split_list(connector.get("SmartHosts"))) or "smart hosts"
            raise ControlFailed(f"{identity} routes through {hosts} (DNSRoutingEnabled False): mutual TLS "
                                "(DomainSecureEnabled) works only with DNS routing; nothing was sent")
        missing = ds.uncovered(params.partner_domains, spaces)
        if missing:
            raise ControlFailed(f"{identity} does not route {', '.join(missing)} (its address spaces: "
                                f"{', '.join(spaces) or 'none'}): Domain Security with a domain needs the connector "
                                "that serves it; select that connector; nothing was sent")

    def desire(self, params: SendConnectorTlsParams, ctx: Context, observed: State | None) -> State:
        if observed is None:
            name = params.select.exact_name
            described = params.select.describe()
            targets: Sequence[str] = [name] if name else [
                "<every send connector>" if described == "any" else f"<send connectors matching {described}>"]
        else:
            targets = list(observed)
        want: dict[str, Any] = {}
        if params.require_tls is not None:
            want["RequireTLS"] = params.require_tls
        if params.ignore_starttls is not None:
            want["IgnoreSTARTTLS"] = params.ignore_starttls
        elif params.tls_wanted:
            want["IgnoreSTARTTLS"] = False
        if params.tls_auth_level is not None:
            want["TlsAuthLevel"] = params.tls_auth_level
        elif params.require_tls is False:
            want["TlsAuthLevel"] = None
        if params.tls_domain is not None:
            want["TlsDomain"] = params.tls_domain
        if params.domain_secure_enabled is not None:
            want["DomainSecureEnabled"] = params.domain_secure_enabled
        if params.tls_certificate_name is not None:
            want["TlsCertificateName"] = params.tls_certificate_name
        desired: dict[str, dict[str, Any]] = {}
        if params.partner_domains:
            # The receive side first: what this control cannot write is what a reader must see first.
            desired[ds.RECEIVE_OBJECT] = {ds.RECEIVE_PROPERTY: [ds.RECEIVE_REQUIREMENT]}
        desired.update({identity: dict(want) for identity in targets
                        if identity not in (ds.TRANSPORT_CONFIG, ds.RECEIVE_OBJECT)})
        if params.partner_domains:
            desired[ds.TRANSPORT_CONFIG] = {name: list(params.partner_domains) for name in ds.LISTS}
        return desired

    def plan_notes(self, params: SendConnectorTlsParams) -> tuple[str, ...]:
        notes = ["send connectors are organisation-wide: each is written from "
                 + (f"{params.managed_from} only (managed_from)" if params.managed_from
                    else "the first, by name, of its SourceTransportServers only")
                 + "; on an Edge server, only when it is not subscribed"]
        if params.require_tls and not params.allow_require_tls_to_internet:
            notes.append("a connector with address space * that does not require TLS yet fails the control "
                         "instead (allow_require_tls_to_internet)")
        if params.domain_secure_enabled:
            notes.append("a connector routed through smart hosts, or whose address spaces do not route "
                         f"{', '.join(params.partner_domains)}, fails the control instead (mutual TLS needs DNS "
                         "routing and the connector that serves the domain)")
            notes.append(f"{', '.join(params.partner_domains)} added to the transport configuration's "
                         "TLSSendDomainSecureList and TLSReceiveDomainSecureList where missing (other entries kept), "
                         "by the host that writes the connector; the control is fixed only if the organisation "
                         "also has a receive connector with DomainSecureEnabled and Tls (read, not written)")
        return tuple(notes)

    def write(self, params: SendConnectorTlsParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        connectors = {k: v for k, v in desired.items() if k not in (ds.TRANSPORT_CONFIG, ds.RECEIVE_OBJECT)}
        calls = _set_calls("Set-SendConnector", self.comparers, observed, connectors)
        if params.partner_domains:
            seen = None if observed is None else observed.get(ds.TRANSPORT_CONFIG) or {}
            calls += ds.transport_config_calls(params.partner_domains, seen)
            if not calls and observed is not None:
                receivers = (observed.get(ds.RECEIVE_OBJECT) or {}).get(ds.RECEIVE_PROPERTY)
                if not ds.AT_LEAST_ONE.equal([ds.RECEIVE_REQUIREMENT], receivers):
                    raise ControlFailed(
                        f"mutual TLS with {', '.join(params.partner_domains)} cannot work yet: the connector and the "
                        "transport configuration are set, but no receive connector of the organisation has "
                        "DomainSecureEnabled True with Tls in AuthMechanism (receive_connector_tls with "
                        "domain_secure_enabled: true, or Set-ReceiveConnector -DomainSecureEnabled $true); "
                        "nothing to write here")
        return calls


def _truthy(value: Any) -> bool:
    try:
        return BOOL.key(value) is True
    except (TypeError, ValueError):
        return False




FAMILY_KINDS = (ReceiveConnectorTls(), SendConnectorTls())
