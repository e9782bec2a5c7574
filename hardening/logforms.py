"""The messages that third-party loggers are known to write, and which parts of them are payloads.

:class:`~hardening.logredact.LogRedaction` shows a record of a third-party logger below WARNING
only when its formatted message has one of these forms; anything else is replaced by a line that
names the logger, the level and the length (libraries change their messages between versions: a
new message is then hidden, never shown by chance). In a known form every named group is a
payload and is replaced by a summary (``[redacted: NTLM AUTHENTICATE message, 310 bytes]``,
``[redacted: WS-Man Send envelope, 2405 characters]``); the rest is shown, then scrubbed by the
patterns like every other line.

The forms are read from the sources of the versions this project installs: pypsrp 0.8
(``pypsrp/{wsman,messages,powershell,encryption,negotiate,serializer,host,shell}.py``), pyspnego
0.11 (``spnego/_{ntlm,negotiate,gss,sspi,credssp}.py``), psrpcore 0.3 (``psrpcore/_base.py``),
urllib3 2 (``connectionpool.py``, ``connection.py``, ``util/retry.py``, ``poolmanager.py``) and
pywinrm 0.5's vendored requests_kerberos. pypsrp formats most messages itself (``"…%s" % x``),
so forms match the formatted text, not the template.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["FORMS", "Form", "known_form", "summarise_token", "summarise_url"]


@dataclass(frozen=True)
class Form:
    """One message form of one logger (or of every logger below it): ``pattern`` must match the
    whole formatted message; each named group is a payload, summarised by the function of that
    name in :data:`SUMMARIES` (a trailing digit is ignored, so a form can hold two URLs)."""

    logger: str
    pattern: re.Pattern[str]


def _forms(logger: str, *patterns: str) -> list[Form]:
    return [Form(logger, re.compile(p, re.DOTALL)) for p in patterns]


_NTLM_TYPES = {1: "NEGOTIATE", 2: "CHALLENGE", 3: "AUTHENTICATE"}
_SCHEME = re.compile(r"^\s*(Negotiate|NTLM|Kerberos|Basic|Bearer|CredSSP|Digest)\b\s*", re.IGNORECASE)


def summarise_token(text: str) -> str:
    """What an authentication token is, without any of it: ``Negotiate [redacted: NTLM
    AUTHENTICATE message, 310 bytes]``. An empty token stays empty (it carries nothing)."""
    if not text.strip():
        return text
    scheme = _SCHEME.match(text)
    prefix = f"{scheme.group(1)} " if scheme else ""
    body = text[scheme.end():] if scheme else text
    if not body.strip():  # a scheme alone ("WWW-Authenticate: Negotiate") carries nothing
        return text
    try:
        raw = base64.b64decode(body.strip().encode("ascii"), validate=False)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return f"{prefix}[redacted: token, {len(body)} characters]"
    at = raw.find(b"NTLMSSP\x00")
    if at >= 0 and len(raw) >= at + 12:
        kind = _NTLM_TYPES.get(int.from_bytes(raw[at + 8:at + 12], "little"), "unknown")
        wrapped = " in SPNEGO" if at else ""
        return f"{prefix}[redacted: NTLM {kind} message{wrapped}, {len(raw)} bytes]"
    if prefix.strip().casefold() == "basic":
        return f"{prefix}[redacted: user name and password]"
    # GSS-API initial tokens are ASN.1 [APPLICATION 0] (0x60); SPNEGO answers are [0]/[1] (0xa0, 0xa1).
    what = "Kerberos/SPNEGO token" if raw[:1] in (b"\x60", b"\xa0", b"\xa1") else "token"
    return f"{prefix}[redacted: {what}, {len(raw)} bytes]"


_ACTION = re.compile(r"<(?:\w+:)?Action\b[^>]*>\s*([^<\s]+)\s*</(?:\w+:)?Action>")


def summarise_envelope(text: str) -> str:
    """A WS-Man envelope: only its action (a fixed URI: Create, Send, Receive …) and its length."""
    if not text.strip():
        return text
    action = _ACTION.search(text)
    name = f" {action.group(1).rstrip('/').rsplit('/', 1)[-1]}" if action else ""
    return f"[redacted: WS-Man{name} envelope, {len(text)} characters]"


def summarise_psrp(text: str) -> str:
    return f"[redacted: PSRP message, {len(text)} characters]"


_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def summarise_url(text: str) -> str:
    """A URL or request path with no query string and no user information (a webhook's query may
    hold its token)."""
    text = _USERINFO.sub("[redacted: user information]@", text)
    path, sep, query = text.partition("?")
    return f"{path}?[redacted: query, {len(query)} characters]" if sep else path


def summarise_credential(text: str) -> str:
    return "[redacted: credential]"


def summarise_data(text: str) -> str:
    return f"[redacted: {len(text)} characters]"


SUMMARIES: Mapping[str, Callable[[str], str]] = {
    "token": summarise_token, "envelope": summarise_envelope, "psrp": summarise_psrp, "url": summarise_url,
    "credential": summarise_credential, "data": summarise_data,
}

# Named groups are payloads; everything else is shown. Keep each form as narrow as the message.
FORMS: tuple[Form, ...] = (
    *_forms(
        "pypsrp.wsman",
        r"Initialising WSMan class with maximum envelope size of \d+ and operation timeout of [\d.]+",
        r"Initialising HTTP transport for endpoint: (?P<url>\S+), user: [^\n]*, auth: [\w-]+",
        # The option and selector sets are protocol options and shell ids, never values.
        r"Creating WSMan header \(Action: \S+, Resource URI: \S+, Option Set: [^\n]*, Selector Set: [^\n]*",
        r"Building requests session with auth [\w-]+",
        r"Getting server config with URI \S+",
        r"Sending message on attempt \d+: (?P<envelope>.*)",
        r"Received message: (?P<envelope>.*)",
        r"Failed to parse WSManFault message on WinRM error response, raising original WinRMTransportError",
        r"\w+ during (?:initial authentication request|WSMan request) - attempt \d+",
        r"Using an older requests version that without support for status retries, ignoring\.",
    ),
    *_forms(
        "pypsrp.messages",
        r"Packing PSRP message: (?P<psrp>.*)",
        r"Unpacking PSRP message of type \d+: (?P<psrp>.*)",
    ),
    *_forms(
        "pypsrp.encryption",
        r"Initialising WinRMEncryption helper for protocol [\w/.+-]+",
        r"Wrapping message",
        r"Unwrapped message",
        r"Created wrapped message of content type [\w/.+-]+",
        r"Actual unwrapped length: \d+, expected unwrapped length: \d+",
    ),
    *_forms(
        "pypsrp.powershell",
        r"Initialising RunspacePool object for configuration [\w.]+",
        r"Setting (?:minimum|maximum) runspaces for pool to \d+",
        r"(?:Closing|Connecting to|Disconnecting from) Runspace Pool",
        r"Remote Runspace Pool was created with (?:a different|the same) client, connecting as (?:a )?(?:new|an "
        r"existing) client",
        r"Getting list of disconnected PowerShells for the current Runspace Pool",
        r"Getting list of Runspace Pools on remote host",
        r"Opening a new Runspace Pool on remote host",
        r"Starting key exchange with remote host",
        r"Resetting remote Runspace Pool state",
        r"Unsupported message type '\w*' received",
        r"Cannot run host call as no host was defined for the runspace, method: (?P<data>.*), args: (?P<data2>.*)",
        r"Received SessionCapability with protocol version: [\w.]*, ps version: [\w.]*, serialization version: "
        r"[\w.]*",
        r"Received RunspacePoolInitData with min runspaces: \d+ and max runspaces: \d+",
        r"Received (?:RunspacePoolState|PipelineState) with state: \d+",
        r"Received EncryptedSessionKey response",
        r"Initialising PowerShell in remote Runspace Pool",
        r"Beginning remote Pipeline invocation",
        r"Sending input to remote Pipeline",
        r"Stopping remote Pipeline",
    ),
    *_forms(
        "pypsrp.negotiate",
        r"Sending http request with new auth token",
        r"Did not receive a http response with an auth response, stopping authentication process",
    ),
    *_forms(
        "pypsrp.serializer",
        r"Failed to parse data '(?P<data>.*)' as XML, return raw xml: (?P<data2>.*)",
        r"Unknown metadata tag type '[\w:]*', failed to deserialize object",
    ),
    *_forms("pypsrp.host", r"Received unexpected/unsupported host method identifier: -?\d+"),
    *_forms("pypsrp.shell", r"Creating WinRS process for '(?P<data>.*)' with arguments '(?P<data2>.*)'"),
    *_forms(
        "spnego",
        r"(?:NTLM|SPNEGO|GSSAPI|SSPI|CredSSP) step (?:input|output): (?P<token>.*)",
        r"CredSSP TSRequest (?:input|output): (?P<token>.*)",
        r"Python gssapi not available, cannot use any GSSAPIProxy protocols: [^\n]*",
        r"Python gssapi IOV extension not available: [^\n]*",
        r"Skipping (?P<credential>.*) as it can only be used for an initiate Kerberos context",
        r"Skipping credential (?P<credential>.*) as it does not support required mech type",
        r"gss_inquire_saslname_for_mech\([\d.]+\) failed: (?P<data>.*)",
        r"Attempting to create \w+ context when building SPNEGO mech list",
        r"Failed to create (?:context|first token) for SPNEGO protocol \w+: (?P<data>.*)",
        r"Creating TLS context",
        r"Starting CredSSP authentication phase",
        r"Negotiated CredSSP version: \d+",
        r"TLS handshake complete, negotiation details: \S+ \S+",
    ),
    *_forms(
        "psrpcore",
        r"Creating (?:Runspace Pool - RPID: [\w-]+|pipeline - RPID: [\w-]+, PID: [\w-]+), Type: \w+",
        r"(?:Packing|Unpacked) fragment - OID: \d+, FID: \d+, Start: \w+, End: \w+, Length: \d+",
        r"(?:Queuing|Processing) PSRP Message - MessageType: \w+,  RPID: [\w-]+,  PID: [\w'-]+,  OID: \d+, "
        r"Type: \w+ - '(?P<psrp>.*)'",
        r"(?:Runspace Pool|Pipeline) State change \w+ -> \w+",
    ),
    *_forms(
        "urllib3",
        r"Starting new HTTPS? connection \(\d+\): [\w.:\[\]-]+:\d+",
        r'https?://[\w.:\[\]-]+:\d+ "[A-Z]+ (?P<url>\S+) HTTP/[\d.]+" \d+ [\w-]+',
        r"Resetting dropped connection: [\w.:\[\]-]+",
        r"Converted retries value: [^\n]* -> [^\n]*",
        r"Incremented Retry for \(url='(?P<url>[^']*)'\): [^\n]*",
        r"Redirecting (?P<url>\S+) -> (?P<url2>\S+)",
        r"Retry: (?P<url>\S+)",
    ),
    *_forms(
        "winrm.vendor.requests_kerberos",
        r"authenticate_user\(\): Authorization header: (?P<token>.*)",
        r"authenticate_server\(\): Authenticate header: (?P<token>.*)",
        r"HTTPKerberosAuth: Preemptive Authorization header: (?P<token>.*)",
        r"(?:handle_401|handle_other|handle_response|authenticate_user|authenticate_server)\(\): "
        r"(?:returning <Response \[\d+\]>|returning \d+ <Response \[\d+\]>|Handling: \d+|Kerberos is not supported"
        r"|Authenticating the server|Mutual authentication failed)",
        r"handle_response\(\) has seen \d+ 401 responses",
    ),
    # APScheduler (hardening watch) never sees a credential or a host's data: its messages are
    # about the jobs hardening scheduled (a function name, a trigger, times).
    *_forms("apscheduler", r".*"),
)

_BY_LOGGER: dict[str, tuple[Form, ...]] = {}
for _form in FORMS:
    _BY_LOGGER[_form.logger] = (*_BY_LOGGER.get(_form.logger, ()), _form)


def _summary(name: str) -> Callable[[str], str]:
    return SUMMARIES[name.rstrip("0123456789")]


def known_form(logger: str, message: str) -> str | None:
    """``message`` with its payloads summarised, if ``logger`` (or a logger above it) is known to
    write messages of its form; ``None`` otherwise."""
    name = logger
    while name:
        for form in _BY_LOGGER.get(name, ()):
            match = form.pattern.fullmatch(message)
            if match is None:
                continue
            out, end = [], 0
            for group, value in sorted(((g, v) for g, v in match.groupdict().items() if v is not None),
                                       key=lambda item: match.start(item[0])):
                out += [message[end:match.start(group)], _summary(group)(value)]
                end = match.end(group)
            return "".join([*out, message[end:]])
        name = name.rpartition(".")[0]
    return None
