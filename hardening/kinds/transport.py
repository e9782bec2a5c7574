"""Exchange transport kinds: receive (and send) connectors, read and written through Exchange
cmdlets (the ``Microsoft.Exchange`` endpoint accepts cmdlet invocations only, so every request
here is data, not script text).
Every call names its object explicitly (``-Identity`` or ``-Server``): without ``-Server``,
``Get-PopSettings`` would act on the server hosting the endpoint, not the target.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..compare import BOOL, FLAGS, TEXT, Comparer, State, split_list
from ..model import Call, CmdletCall
from .base import Context, Kind, KindParams, NotApplicable, Variant, canonical_names
from .platforms import EXCHANGE_MODERN_PRODUCTS, is_modern_exchange

__all__ = ["FAMILY_KINDS", "MODERN", "ReceiveConnectorTls", "exchange_objects"]

MODERN = Variant(
    "exchange-modern",
    "Exchange 2016/2019/SE (cmdlets over the Microsoft.Exchange endpoint)",
    EXCHANGE_MODERN_PRODUCTS,
    is_modern_exchange,
)

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


def _check_auth_rules(names: Sequence[str], require_tls: bool | None) -> str | None:
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

    @field_validator("auth_mechanism", "auth_mechanism_include", mode="before")
    @classmethod
    def _auth_names(cls, value: Any) -> Any:
        return canonical_names(value, AUTH_ORDER)

    @model_validator(mode="after")
    def _consistent(self) -> ReceiveConnectorTlsParams:
        if self.auth_mechanism is not None and self.auth_mechanism_include is not None:
            raise ValueError("give auth_mechanism (exact set) or auth_mechanism_include (at least), not both")
        if self.auth_mechanism is not None:
            problem = _check_auth_rules(self.auth_mechanism, self.require_tls)
            if problem:
                raise ValueError(problem)
        if self.auth_mechanism_include is not None and "None" in self.auth_mechanism_include:
            raise ValueError("auth_mechanism_include cannot include None; use auth_mechanism: [None]")
        if all(v is None for v in (self.require_tls, self.auth_mechanism, self.auth_mechanism_include,
                                    self.basic_auth_require_tls, self.tls_certificate_name)):
            raise ValueError("set at least one of require_tls, auth_mechanism, auth_mechanism_include, "
                             "basic_auth_require_tls, tls_certificate_name")
        return self


class ReceiveConnectorTls(Kind[ReceiveConnectorTlsParams]):
    """Require TLS on inbound SMTP: ``RequireTLS``, ``AuthMechanism`` and the TLS certificate of
    Exchange receive connectors, selected by name, role or usage on each server.

    Reads ``Get-ReceiveConnector -Server``; writes ``Set-ReceiveConnector -Identity`` with only the
    parameters that differ, then re-reads. Exchange refuses RequireTLS without ``Tls`` in
    AuthMechanism, so when ``require_tls`` is true and the include-mode set lacks Tls, Tls is added.
    No restart: transport picks the change up from AD by itself [I].
    Guide: inbound SMTP TLS. Requiring TLS on the internet-facing Default Frontend connector
    refuses every sender that does not STARTTLS; select connectors deliberately.
    """

    name = "receive_connector_tls"
    summary = "RequireTLS, AuthMechanism and TLS certificate on Exchange receive connectors"
    params_model = ReceiveConnectorTlsParams
    channel = "exchange"
    variants = (MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {
        "RequireTLS": BOOL, "AuthMechanism": FLAGS, "TlsCertificateName": TEXT,
    }

    def read(self, params: ReceiveConnectorTlsParams, ctx: Context) -> tuple[Call, ...]:
        return (CmdletCall("Get-ReceiveConnector", (("Server", ctx.server),)),)

    def observe(self, params: ReceiveConnectorTlsParams, ctx: Context, values: Sequence[Any]) -> State:
        connectors = [c for c in exchange_objects(values[0]) if params.select.matches(c)]
        if not connectors:
            raise NotApplicable(f"no receive connector on {ctx.server} matches {params.select.describe()}")
        state: dict[str, dict[str, Any]] = {}
        for connector in connectors:
            state[str(connector.get("Identity"))] = {
                "RequireTLS": connector.get("RequireTLS"),
                "AuthMechanism": _canonical_auth(set(split_list(connector.get("AuthMechanism")))),
                "TlsCertificateName": connector.get("TlsCertificateName"),
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
                want["AuthMechanism"] = auth
            if params.tls_certificate_name is not None:
                want["TlsCertificateName"] = params.tls_certificate_name
            desired[identity] = want
        return desired

    @staticmethod
    def _desired_auth(params: ReceiveConnectorTlsParams, current: list[str]) -> list[str] | None:
        if params.auth_mechanism is not None:
            return _canonical_auth(set(params.auth_mechanism))
        if params.auth_mechanism_include is None and params.basic_auth_require_tls is None and not params.require_tls:
            return None
        names = {n for n in current if n.casefold() != "none"} if params.auth_mechanism_include else set(current)
        names |= set(params.auth_mechanism_include or ())
        if params.require_tls:
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
        if params.require_tls and "Tls" not in added:
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
        calls: list[Call] = []
        for identity, want in desired.items():
            seen = (observed or {}).get(identity) or {}
            args: list[tuple[str, Any]] = [("Identity", identity)]
            for prop, value in (want or {}).items():
                if observed is not None and self.comparers[prop].equal(value, seen.get(prop)):
                    continue
                args.append((prop, tuple(value) if isinstance(value, list) else value))
            if len(args) > 1:
                calls.append(CmdletCall("Set-ReceiveConnector", tuple(args)))
        return tuple(calls)


def exchange_objects(value: Any) -> list[Mapping[str, Any]]:
    """A cmdlet's output as a list of property bags (one object may arrive unwrapped)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, Mapping)]


FAMILY_KINDS = (ReceiveConnectorTls(),)
