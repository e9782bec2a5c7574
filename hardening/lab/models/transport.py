"""Lab model of Exchange transport: receive connectors (``Get/Set-ReceiveConnector``), send
connectors (``Get/Set-SendConnector``) and the transport configuration's Domain Security lists
(``Get/Set-TransportConfig``).

Objects come back in their deserialised form: AuthMechanism as "Tls, BasicAuth", Bindings,
AddressSpaces ("SMTP:*;1") and SourceTransportServers as lists, TlsAuthLevel as its name or
null. The Set cmdlets check their parameters as the cmdlets do (unknown parameter, types, enum
values) and Exchange's rules on the resulting connector:

- receive: RequireTLS needs Tls; BasicAuthRequireTLS needs BasicAuth and Tls; None alone;
  ExternalAuthoritative only with Tls; DomainSecureEnabled needs Tls and no ExternalAuthoritative
  (OPS Set-ReceiveConnector);
- send: IgnoreSTARTTLS must be $false when RequireTLS is $true; TlsAuthLevel only with RequireTLS
  $true and IgnoreSTARTTLS $false; DomainValidation needs TlsDomain; TlsDomain must be a domain,
  optionally ``*.``-prefixed (OPS Set-SendConnector). The lab checks the TlsAuthLevel rule on the
  resulting object, which is at least as strict as a check of the parameters alone [U];
- transport configuration: TLSSendDomainSecureList and TLSReceiveDomainSecureList take domains,
  never wildcards (OPS Set-TransportConfig), as a list (which replaces the property) or as
  ``@{Add=...; Remove=...}`` (which keeps the other entries). The lab refuses adding an entry that
  is there or removing one that is not; whether Exchange refuses or ignores those is [U], so the
  lab is the stricter of the two. The refusals' wording is the lab's, not Exchange's.

Parameters a real cmdlet has but the lab does not simulate are refused with a sentence saying so
(not as unknown). Not simulated: certificates (TlsCertificateName is stored as given, not parsed
or looked up), Edge subscriptions and EdgeSync (a send connector on a simulated Edge is written
like any other), AD replication, and -DomainController.

**Send connectors are organisation-wide.** Each lab host is its own simulated organisation: the
``send_connectors`` of a host are what ``Get-SendConnector`` returns at that host's endpoint.
The demo repeats connector names on every host for readability; they are four separate
organisations, not one. In a real organisation MAIL01–MAIL04 would return one shared set, and
``send_connector_tls`` would write each connector from one host only (the first of its
SourceTransportServers, or ``managed_from``). The same holds for ``transport_config``: one
object per simulated organisation, that is per lab host.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from ...model import AddRemove, CmdletCall
from .common import CmdletHandler, LabCmdletError, State, StateSection, bind, bool_param, enum_param, require_server

__all__ = ["CMDLETS", "SECTIONS"]

AUTH_NAMES = ["None", "Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer",
              "ExternalAuthoritative"]
TLS_AUTH_LEVELS = ["EncryptionOnly", "CertificateValidation", "DomainValidation"]
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SMTP_DOMAIN_WITH_SUBDOMAINS = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*$")
_SMTP_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
DOMAIN_SECURE_LISTS = ("TLSSendDomainSecureList", "TLSReceiveDomainSecureList")

# Parameters of the real cmdlets (OPS) that the lab accepts as names but does not simulate.
RECEIVE_UNSIMULATED = {
    "AdvertiseClientSettings", "AuthTarpitInterval", "Banner", "BareLinefeedRejectionEnabled", "BinaryMimeEnabled",
    "Bindings", "ChunkingEnabled", "Comment", "Confirm", "ConnectionInactivityTimeout", "ConnectionTimeout",
    "DefaultDomain", "DeliveryStatusNotificationEnabled", "DomainController",
    "EightBitMimeEnabled", "EnableAuthGSSAPI", "Enabled", "EnhancedStatusCodesEnabled", "ExtendedProtectionPolicy",
    "Fqdn", "LongAddressesEnabled", "MaxAcknowledgementDelay", "MaxHeaderSize", "MaxHopCount",
    "MaxInboundConnection", "MaxInboundConnectionPerSource", "MaxInboundConnectionPercentagePerSource",
    "MaxLocalHopCount", "MaxLogonFailures", "MaxMessageSize", "MaxProtocolErrors", "MaxRecipientsPerMessage",
    "MessageRateLimit", "MessageRateSource", "Name", "OrarEnabled", "PermissionGroups", "PipeliningEnabled",
    "ProtocolLoggingLevel", "RejectReservedSecondLevelRecipientDomains", "RejectReservedTopLevelRecipientDomains",
    "RejectSingleLabelRecipientDomains", "RemoteIPRanges", "RequireEHLODomain", "ServiceDiscoveryFqdn",
    "SizeEnabled", "SmtpUtf8Enabled", "SuppressXAnonymousTls", "TarpitInterval", "TlsDomainCapabilities",
    "TransportRole", "WhatIf",
}
SEND_UNSIMULATED = {
    "AddressSpaces", "AuthenticationCredential", "CloudServicesMailEnabled", "Comment", "Confirm",
    "ConnectionInactivityTimeOut", "ConnectorType", "DNSRoutingEnabled", "DomainController", "Enabled",
    "ErrorPolicies", "Force", "ForceHELO", "Fqdn", "FrontendProxyEnabled", "IsCoexistenceConnector",
    "IsScopedConnector", "LinkedReceiveConnector", "MaxMessageSize", "Name", "Port", "ProtocolLoggingLevel",
    "RequireOorg", "SmartHostAuthMechanism", "SmartHosts", "SmtpMaxMessagesPerConnection", "SourceIPAddress",
    "SourceTransportServers", "UseExternalDNSServersEnabled", "WhatIf",
}
# Set-TransportConfig's other parameters on Exchange 2016/2019/SE (the cmdlet catalogue).
TRANSPORT_CONFIG_UNSIMULATED = {
    "AddressBookPolicyRoutingEnabled", "AgentGeneratedMessageLoopDetectionInSmtpEnabled",
    "AgentGeneratedMessageLoopDetectionInSubmissionEnabled", "ClearCategories", "Confirm",
    "ConvertDisclaimerWrapperToEml", "DSNConversionMode", "DiagnosticsAggregationServicePort", "DomainController",
    "ExternalDelayDsnEnabled", "ExternalDsnDefaultLanguage", "ExternalDsnLanguageDetectionEnabled",
    "ExternalDsnMaxMessageAttachSize", "ExternalDsnReportingAuthority", "ExternalDsnSendHtml",
    "ExternalPostmasterAddress", "Force", "GenerateCopyOfDSNFor", "HeaderPromotionModeSetting", "Identity",
    "InternalDelayDsnEnabled", "InternalDsnDefaultLanguage", "InternalDsnLanguageDetectionEnabled",
    "InternalDsnMaxMessageAttachSize", "InternalDsnReportingAuthority", "InternalDsnSendHtml", "InternalSMTPServers",
    "JournalingReportNdrTo", "MaxAllowedAgentGeneratedMessageDepth", "MaxAllowedAgentGeneratedMessageDepthPerAgent",
    "MaxDumpsterSizePerDatabase", "MaxDumpsterTime", "MaxReceiveSize", "MaxRecipientEnvelopeLimit",
    "MaxRetriesForLocalSiteShadow", "MaxRetriesForRemoteSiteShadow", "MaxSendSize",
    "QueueDiagnosticsAggregationInterval", "RejectMessageOnShadowFailure", "Rfc2231EncodingEnabled",
    "SafetyNetHoldTime", "ShadowHeartbeatFrequency", "ShadowHeartbeatRetryCount", "ShadowHeartbeatTimeoutInterval",
    "ShadowMessageAutoDiscardInterval", "ShadowMessagePreferenceSetting", "ShadowRedundancyEnabled",
    "ShadowResubmitTimeSpan", "SupervisionTags", "TransportRuleAttachmentTextScanLimit", "VerifySecureSubmitEnabled",
    "VoicemailJournalingEnabled", "WhatIf", "Xexch50Enabled",
}


def _bind(call: CmdletCall, simulated: set[str], unsimulated: set[str], identity: bool = True) -> dict[str, Any]:
    args = bind(call, simulated | unsimulated)
    for name in args:
        if name in unsimulated:
            raise LabCmdletError(f"The lab does not simulate {call.cmdlet} -{name} (only "
                                 f"{', '.join(sorted(simulated))}).")
    if identity and "Identity" not in args:
        raise LabCmdletError("Cannot process command because of one or more missing mandatory parameters: Identity.")
    return args


# --- receive connectors -----------------------------------------------------------------------


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
    args = _bind(call, {"Identity", "RequireTLS", "AuthMechanism", "TlsCertificateName", "DomainSecureEnabled"},
                 RECEIVE_UNSIMULATED)
    current = _connector(state, args["Identity"])
    updated = dict(current)
    for name in ("RequireTLS", "DomainSecureEnabled"):
        if name in args:
            updated[name] = bool_param(name, args[name])
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
    if "ExternalAuthoritative" in auth and not set(auth) <= {"ExternalAuthoritative", "Tls"}:
        raise LabCmdletError("The AuthMechanism value ExternalAuthoritative can only be combined with Tls.")
    if updated["DomainSecureEnabled"] and ("Tls" not in auth or "ExternalAuthoritative" in auth):
        raise LabCmdletError("DomainSecureEnabled can be $true only when AuthMechanism includes Tls and not "
                             "ExternalAuthoritative (the lab's wording of Exchange's rule).")
    for i, connector in enumerate(state["receive_connectors"]):
        if connector["Identity"] == current["Identity"]:
            state["receive_connectors"][i] = updated
    return []


def _build_connectors(value: list[dict[str, Any]], host: Any) -> list[dict[str, Any]]:
    server = host.computer_name
    connectors = []
    for raw in value:
        connector = {"Enabled": True, "TransportRole": "FrontendTransport", "RequireTLS": False,
                     "AuthMechanism": "Tls", "TlsCertificateName": None, "DomainSecureEnabled": False, "Bindings": [],
                     **raw}
        connector.setdefault("Server", server)
        connector.setdefault("Identity", f"{server}\\{connector['Name']}")
        connectors.append(connector)
    return connectors


# --- send connectors --------------------------------------------------------------------------


def _send_connectors(state: State, identity: Any) -> list[dict[str, Any]]:
    """Connectors by name or GUID; ``*`` in an identity is a wildcard, as in Exchange's Get- cmdlets [I]."""
    text = str(identity)
    wildcard = re.compile("^" + ".*".join(re.escape(p) for p in text.split("*")) + "$", re.IGNORECASE | re.DOTALL)

    def matches(connector: dict[str, Any]) -> bool:
        if "*" in text:
            return bool(wildcard.match(str(connector["Name"])))
        return text.casefold() in {str(connector["Name"]).casefold(), str(connector.get("Guid", "")).casefold()}

    found = [c for c in state["send_connectors"] if matches(c)]
    if not found and "*" not in text:
        raise LabCmdletError(f"The operation couldn't be performed because object '{identity}' couldn't be found "
                             "on the domain controller.")
    return found


def _get_send(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = bind(call, {"Identity", "DomainController"})
    if "DomainController" in args:
        raise LabCmdletError("The lab does not simulate Get-SendConnector -DomainController.")
    if "Identity" not in args:
        return copy.deepcopy(state["send_connectors"])
    return copy.deepcopy(_send_connectors(state, args["Identity"]))


def _set_send(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = _bind(call, {"Identity", "RequireTLS", "IgnoreSTARTTLS", "TlsAuthLevel", "TlsDomain",
                        "DomainSecureEnabled", "TlsCertificateName"}, SEND_UNSIMULATED)
    if "*" in str(args["Identity"]):
        raise LabCmdletError(f"The operation couldn't be performed because object '{args['Identity']}' couldn't be "
                             "found on the domain controller.")
    (current,) = _send_connectors(state, args["Identity"])
    updated = dict(current)
    for name in ("RequireTLS", "IgnoreSTARTTLS", "DomainSecureEnabled"):
        if name in args:
            updated[name] = bool_param(name, args[name])
    if "TlsAuthLevel" in args:
        level = args["TlsAuthLevel"]
        updated["TlsAuthLevel"] = None if level is None else enum_param("TlsAuthLevel", "TlsAuthLevel", level,
                                                                         TLS_AUTH_LEVELS)
    if "TlsDomain" in args:
        domain = args["TlsDomain"]
        if domain in (None, ""):
            updated["TlsDomain"] = None
        elif not isinstance(domain, str) or len(domain) > 255 or not _SMTP_DOMAIN_WITH_SUBDOMAINS.match(domain):
            raise LabCmdletError(f"Cannot process argument transformation on parameter 'TlsDomain'. \"{domain}\" "
                                 "isn't a valid SMTP domain.")
        else:
            updated["TlsDomain"] = domain
    if "TlsCertificateName" in args:
        updated["TlsCertificateName"] = args["TlsCertificateName"]
    if updated["RequireTLS"] and updated["IgnoreSTARTTLS"]:
        raise LabCmdletError("The IgnoreSTARTTLS parameter must be set to $false when the RequireTLS parameter is "
                             "set to $true.")
    if updated["TlsAuthLevel"] is not None and (not updated["RequireTLS"] or updated["IgnoreSTARTTLS"]):
        raise LabCmdletError(f"TlsAuthLevel ({updated['TlsAuthLevel']}) can't be set when IgnoreSTARTTLS is $true "
                             "or RequireTLS is $false (clear it with -TlsAuthLevel $null).")
    if updated["TlsAuthLevel"] == "DomainValidation" and not updated["TlsDomain"]:
        raise LabCmdletError("A value for the TlsDomain parameter is required when the TlsAuthLevel parameter is "
                             "set to DomainValidation.")
    for i, connector in enumerate(state["send_connectors"]):
        if connector["Name"] == current["Name"]:
            state["send_connectors"][i] = updated
    return []


def _address_space(value: Any) -> str:
    """``SMTP:contoso.com;1`` from ``contoso.com``, ``contoso.com;2`` or the full form (OPS AddressSpaces)."""
    text = str(value).strip()
    kind, sep, rest = text.partition(":")
    if not sep:
        kind, rest = "SMTP", text
    address, _, cost = rest.partition(";")
    return f"{kind.upper() if kind.casefold() == 'smtp' else kind}:{address};{cost or 1}"


def _build_send_connectors(value: list[dict[str, Any]], host: Any) -> list[dict[str, Any]]:
    server = host.computer_name
    connectors = []
    for raw in value:
        connector = {"Enabled": True, "AddressSpaces": [], "SourceTransportServers": [server],
                     "DNSRoutingEnabled": True, "SmartHosts": [], "Port": 25, "Fqdn": None, "RequireTLS": False,
                     "IgnoreSTARTTLS": False, "TlsAuthLevel": None, "TlsDomain": None, "DomainSecureEnabled": False,
                     "TlsCertificateName": None, **raw}
        connector["AddressSpaces"] = [_address_space(a) for a in connector["AddressSpaces"]]
        connector.setdefault("Identity", connector["Name"])
        connectors.append(connector)
    return connectors


# --- transport configuration ------------------------------------------------------------------


def _get_transport_config(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = bind(call, {"Identity", "DomainController"})
    if args:
        raise LabCmdletError(f"The lab does not simulate Get-TransportConfig -{next(iter(args))} (the organisation "
                             "has one transport configuration; call it without parameters).")
    return [copy.deepcopy(state["transport_config"])]


def _domain_entry(name: str, value: Any) -> str:
    text = str(value).strip()
    if "*" in text:
        raise LabCmdletError(f"The lab refuses '{text}' in {name}: Exchange does not support the wildcard character "
                             "(*) in the domain-secure lists (OPS Set-TransportConfig).")
    if len(text) > 255 or not _SMTP_DOMAIN.match(text):
        raise LabCmdletError(f"Cannot process argument transformation on parameter '{name}'. \"{text}\" isn't a "
                             "valid SMTP domain.")
    return text


def _domain_list(name: str, current: list[str], value: Any) -> list[str]:
    """The list after ``-Name value``: a list replaces it, ``@{Add=...; Remove=...}`` changes it."""
    if value is None:
        return []
    if isinstance(value, AddRemove):
        out = list(current)
        for entry in (_domain_entry(name, v) for v in value.add):
            if entry.casefold() in {e.casefold() for e in out}:
                raise LabCmdletError(f"The lab refuses adding '{entry}' to {name}, which already holds it (whether "
                                     "Exchange refuses or ignores this is unverified).")
            out.append(entry)
        for entry in (_domain_entry(name, v) for v in value.remove):
            kept = [e for e in out if e.casefold() != entry.casefold()]
            if len(kept) == len(out):
                raise LabCmdletError(f"The lab refuses removing '{entry}' from {name}, which does not hold it "
                                     "(whether Exchange refuses or ignores this is unverified).")
            out = kept
        return out
    items = [value] if isinstance(value, str) else list(value)
    return [_domain_entry(name, v) for v in items]


def _set_transport_config(state: State, call: CmdletCall) -> list[dict[str, Any]]:
    args = _bind(call, set(DOMAIN_SECURE_LISTS), TRANSPORT_CONFIG_UNSIMULATED, identity=False)
    config = state["transport_config"]
    updated = {name: _domain_list(name, list(config[name]), args[name]) for name in DOMAIN_SECURE_LISTS if name in args}
    config.update(updated)
    return []


def _build_transport_config(value: dict[str, Any], host: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"Identity": "Transport Settings", **{name: [] for name in DOMAIN_SECURE_LISTS},
                              **copy.deepcopy(value)}
    for name in DOMAIN_SECURE_LISTS:
        config[name] = [str(v) for v in config[name] or []]
    return config


SECTIONS: dict[str, StateSection] = {
    "receive_connectors": StateSection(list[dict[str, Any]], [], _build_connectors,
                                       "Receive connectors with Exchange's property names (Name required)."),
    "send_connectors": StateSection(list[dict[str, Any]], [], _build_send_connectors,
                                    "Send connectors of this host's simulated organisation, with Exchange's "
                                    "property names (Name required; AddressSpaces as 'contoso.com' or "
                                    "'SMTP:*;1'; SourceTransportServers defaults to this host)."),
    "transport_config": StateSection(dict[str, Any], {}, _build_transport_config,
                                     "The transport configuration of this host's simulated organisation: "
                                     "TLSSendDomainSecureList and TLSReceiveDomainSecureList (domains; empty by "
                                     "default, as in Exchange)."),
}
CMDLETS: dict[str, CmdletHandler] = {
    "get-receiveconnector": _get,
    "set-receiveconnector": _set,
    "get-sendconnector": _get_send,
    "set-sendconnector": _set_send,
    "get-transportconfig": _get_transport_config,
    "set-transportconfig": _set_transport_config,
}


# --- consequences: whether Domain Security (mutual TLS) can work -------------------------------------


def _smtp_domains(connector: Mapping[str, Any]) -> list[str]:
    """The exact domains of a send connector's SMTP address spaces (``SMTP:fabrikam.com;1``);
    ``*``, ``--`` and ``*.x`` name no single partner and are left out."""
    out = []
    for space in connector.get("AddressSpaces") or []:
        kind, _, rest = str(space).partition(":")
        domain = rest.rsplit(";", 1)[0].strip()
        if kind.casefold() == "smtp" and domain and "*" not in domain and domain != "--":
            out.append(domain)
    return out


def _accepts_mutual_tls(connector: Mapping[str, Any]) -> bool:
    auth = {a.strip().casefold() for a in str(connector.get("AuthMechanism") or "").split(",")}
    return connector.get("DomainSecureEnabled") is True and "tls" in auth and "externalauthoritative" not in auth


def _receivers(host: str, state: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]]) -> list[str] | None:
    """The receive connectors that can take the partner's mail over mutual TLS: the organisation's
    own, and those of each Edge subscription that is a lab host (an Edge subscription gives its
    connectors EdgeSync names and the Edge as source server [V] EXD network-ports.md). None when an
    Edge that is not a lab host receives for the organisation: the model cannot tell."""
    found = [str(c.get("Identity")) for c in state.get("receive_connectors") or [] if _accepts_mutual_tls(c)]
    edges = {str(s) for c in state.get("send_connectors") or [] if str(c.get("Name", "")).casefold().startswith(
        "edgesync - ") for s in c.get("SourceTransportServers") or []}
    for edge in sorted(edges):
        edge_state = next((v for k, v in hosts.items() if k.casefold() == edge.casefold()), None)
        if edge_state is None:
            return None
        found += [f"{edge}\\{c.get('Name')}" for c in edge_state.get("receive_connectors") or []
                  if _accepts_mutual_tls(c)]
    return found


def mutual_tls_problems(host: str, state: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Sentences for each send connector with DomainSecureEnabled whose partner domain cannot get
    mutual TLS, with everything that is missing.

    Modelled from Microsoft's list of what mutual TLS needs [V] (OPS Set-TransportConfig
    -TLSReceiveDomainSecureList, Set-SendConnector -DomainSecureEnabled, Set-ReceiveConnector
    -DomainSecureEnabled), not from any kind: DNS routing on the send connector; the domain, by its
    exact name, in both TLSSendDomainSecureList and TLSReceiveDomainSecureList; and a receive
    connector with DomainSecureEnabled and Tls (no ExternalAuthoritative). Each lab host is its own
    organisation (its transport configuration and connectors), as this family's model says above.
    Only connectors whose address spaces name a domain are judged: which domains reach a ``*``
    connector depends on routing the lab does not simulate [I]. Certificates, DNS and the partner's
    own side are not modelled.
    """
    config = state.get("transport_config") or {}
    lists = {name: {str(d).casefold() for d in config.get(name) or []} for name in DOMAIN_SECURE_LISTS}
    receivers = _receivers(host, state, hosts)
    out = []
    for connector in state.get("send_connectors") or []:
        if connector.get("DomainSecureEnabled") is not True:
            continue
        for domain in _smtp_domains(connector):
            missing = []
            if connector.get("DNSRoutingEnabled") is False:
                missing.append("the connector routes through smart hosts, not DNS")
            missing += [f"{domain} is not in {name}" for name in DOMAIN_SECURE_LISTS
                        if domain.casefold() not in lists[name]]
            if receivers is not None and not receivers:
                missing.append("no receive connector has DomainSecureEnabled with Tls")
            if missing:
                out.append(f"{host}: mutual TLS with {domain} through '{connector.get('Name')}' cannot work: "
                           + "; ".join(missing))
    return out
