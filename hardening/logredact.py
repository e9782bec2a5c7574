"""No secret, authentication message or host payload reaches a log handler.

hardening's library code configures no logging handler; the ``hardening`` command does, and it
attaches one :class:`LogRedaction` filter to every handler. A Python caller that configures
logging itself does the same with :func:`install_log_redaction`::

    import logging, hardening
    logging.basicConfig(level=logging.DEBUG)
    hardening.install_log_redaction()      # every handler now configured (or pass one handler)

The filter sits on handlers, not loggers, because a logger's filter does not see the records its
children propagate to it. It rewrites each record it passes (it never drops one):

- **Third-party loggers** (pypsrp, pyspnego, psrpcore, urllib3, pywinrm, requests, ldap3 …) below
  WARNING are shown only in a form :mod:`hardening.logforms` knows, with their payloads replaced
  by what they were: ``NTLM step output: [redacted: NTLM AUTHENTICATE message, 310 bytes]``,
  ``Sending message on attempt 0: [redacted: WS-Man Send envelope, 2405 characters]``. A message
  of any other form becomes ``[redacted: a DEBUG message of N characters in a form not known to
  be safe]`` (the formatter still names the logger). At WARNING and above the message is shown,
  scrubbed by the patterns below: a failure must stay diagnosable.
- **Every line** (hardening's own, third-party, tracebacks, stack traces) is scrubbed of: the
  secrets the process resolved (see :func:`register_secret`) in their plain, escaped, URL-,
  XML- and JSON-encoded, UTF-8/UTF-16 hex, bytes-literal and base64 forms (base64 at any
  alignment, so a password inside ``user:password`` is found too); ``Authorization`` headers
  (written ``[redacted: Authorization header]``); ``WWW-Authenticate`` token values;
  Negotiate/NTLM/Kerberos/Basic/Bearer/CredSSP tokens; NTLM messages in base64 (any alignment),
  as raw bytes or as hex; base64 data of 48 characters or more; WS-Man envelopes; PSRP objects and
  CLIXML; the JSON literal of a bundle call (``ConvertFrom-Json -InputObject '…'``, where a
  playbook's values are); ``-EncodedCommand`` arguments; user information in URLs; and
  ``password=…`` / ``"token": "…"`` style values.
- The record's ``args`` are merged into its message first and emptied, and its exception is
  formatted and scrubbed into ``exc_text`` (``exc_info`` is dropped), so no formatter or later
  handler can reach the raw values.

Nothing here is global: the filter holds the secrets it was given.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import quote, quote_plus

from .logforms import known_form, summarise_envelope, summarise_token

__all__ = ["LogRedaction", "install_log_redaction", "redact_text", "register_secret"]

_B64_CHARS = "A-Za-z0-9+/"
_B64URL_CHARS = "A-Za-z0-9_-"
# The attribute that marks a record this module already rewrote (a second filter only scrubs).
_MARK = "hardening_redacted"


def base64_cores(data: bytes, minimum: int = 4) -> set[str]:
    """The base64 text that ``data`` becomes wherever it sits in a longer byte string.

    base64 encodes 3 bytes as 4 characters, so the same bytes encode differently at each of the
    three alignments; the characters whose 6 bits all come from ``data`` are the same at a given
    alignment whatever surrounds it. Cores shorter than ``minimum`` are left out (too common).
    """
    cores = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode("ascii").rstrip("=")
        core = encoded[-(-8 * shift // 6):(8 * (shift + len(data))) // 6]
        if len(core) >= minimum:
            cores |= {core, core.replace("+", "-").replace("/", "_")}
    return cores


def secret_forms(value: str) -> tuple[set[str], set[str]]:
    """The literal texts and the base64 cores under which a secret may appear in a log line."""
    literal = {value, json.dumps(value)[1:-1], repr(value)[1:-1], html.escape(value), html.escape(value, quote=False),
               quote(value, safe=""), quote_plus(value), value.replace("'", "''")}
    cores: set[str] = set()
    for encoding in ("utf-8", "utf-16-le"):
        data = value.encode(encoding)
        literal |= {repr(data)[2:-1], data.hex(), data.hex().upper()}
        cores |= base64_cores(data)
    return {t for t in literal if t}, cores


def _secret_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    literal: set[str] = set()
    cores: set[str] = set()
    for value in secrets:
        more_literal, more_cores = secret_forms(value)
        literal |= more_literal
        cores |= more_cores
    parts = [re.escape(t) for t in sorted(literal, key=len, reverse=True)]
    if cores:
        alternatives = "|".join(re.escape(c) for c in sorted(cores, key=len, reverse=True))
        # The whole base64 run is taken: its other characters carry bits of the secret too.
        parts.append(f"[{_B64_CHARS}_-]*(?:{alternatives})[{_B64_CHARS}_-]*=*")
    return re.compile("|".join(parts)) if parts else None


def _token_like(text: str) -> bool:
    """Whether a word after an authentication scheme is a token rather than English."""
    return len(text) >= 8 and (any(c.isdigit() or c in "+/=" for c in text) or len(text) >= 24)


def _scheme_token(match: re.Match[str]) -> str:
    return summarise_token(f"{match.group(1)} {match.group(2)}") if _token_like(match.group(2)) else match.group(0)


def _authenticate_value(match: re.Match[str]) -> str:
    challenges = [summarise_token(c.strip()) if _token_like(c.strip().partition(" ")[2]) else c
                  for c in match.group(3).split(",")]
    return match.group(1) + match.group(2) + ",".join(challenges)


def _long_base64(match: re.Match[str]) -> str:
    text = match.group(0)
    if any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text):
        return f"[redacted: base64 data, {len(text)} characters]"
    return text


_NTLM_CORES = "|".join(sorted(base64_cores(b"NTLMSSP\x00"), key=len, reverse=True))
_QUOTES = "'\u2018\u2019\u201a\u201b"

# (pattern, replacement) in order; the secrets come after the payloads are gone (cheaper, and a
# payload is redacted whole rather than around the secret).
_PATTERNS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"(?:<\?xml[^>]*\?>\s*)?<(?:[\w-]+:)?Envelope\b.*?(?:</(?:[\w-]+:)?Envelope>|\Z)", re.DOTALL),
     lambda m: summarise_envelope(m.group(0))),
    (re.compile(r"<Obj\b.*(?:</Obj>|\Z)", re.DOTALL),
     lambda m: f"[redacted: PSRP object, {len(m.group(0))} characters]"),
    (re.compile(r"#< CLIXML.*", re.DOTALL), lambda m: f"[redacted: CLIXML, {len(m.group(0))} characters]"),
    (re.compile(r"\b(?:proxy-)?authorization([\"']?)\s*[:=]\s*(?:([\"'])(?:(?!\2).)*\2|[^\r\n,;}]*)", re.IGNORECASE),
     "[redacted: Authorization header]"),
    (re.compile(r"\b((?:www|proxy)-authenticate)([\"']?\s*[:=]\s*[\"']?)([^\r\n'\"]*)", re.IGNORECASE),
     _authenticate_value),
    (re.compile(rf"\b(Negotiate|NTLM|Kerberos|Basic|Bearer|CredSSP)\s+([{_B64_CHARS}._~-]+=*)", re.IGNORECASE),
     _scheme_token),
    (re.compile(f"[{_B64_CHARS}_-]*(?:{_NTLM_CORES})[{_B64_CHARS}_-]*=*"), lambda m: summarise_token(m.group(0))),
    (re.compile(r"""b(['"])(?:\\.|(?!\1).)*?NTLMSSP(?:\\.|(?!\1).)*\1"""), "[redacted: NTLM message]"),
    (re.compile(r"NTLMSSP[^\s'\"]*"), "[redacted: NTLM message]"),
    (re.compile(r"4e544c4d53535000[0-9a-f]*", re.IGNORECASE), "[redacted: NTLM message]"),
)
_AFTER_SECRETS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(f"(?<![{_B64_CHARS}])[{_B64_CHARS}]{{48,}}={{0,2}}(?![{_B64_CHARS}=])"), _long_base64),
    (re.compile(r"(?<=://)[^/@\s]+@"), "[redacted: user information]@"),
    (re.compile(rf"(ConvertFrom-Json\s+(?:-InputObject\s+)?)([{_QUOTES}](?:[^{_QUOTES}]|[{_QUOTES}]{{2}})*[{_QUOTES}]?)",
                re.IGNORECASE),
     lambda m: f"{m.group(1)}[redacted: JSON literal, {len(m.group(2))} characters]"),
    (re.compile(r"(-EncodedCommand\s+)(\S+)", re.IGNORECASE),
     lambda m: f"{m.group(1)}[redacted: {len(m.group(2))} characters]"),
    (re.compile(r"\b(password|passwd|pwd|secret|token|api[_-]?key|client[_-]?secret)([\"']?\s*[:=]\s*)"
                r"(?!\[redacted|[\"']\[redacted)(?:([\"'])(?:(?!\3).)*\3|[^\s\"',;&}\]]+)", re.IGNORECASE),
     lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}[redacted]{m.group(3) or ''}"),
)


def redact_text(text: str, secrets: re.Pattern[str] | None = None) -> str:
    """``text`` with every pattern of this module scrubbed, and ``secrets`` (a pattern built by
    :class:`LogRedaction`) replaced by ``[redacted: secret]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    if secrets is not None:
        text = secrets.sub("[redacted: secret]", text)
    for pattern, replacement in _AFTER_SECRETS:
        text = pattern.sub(replacement, text)
    return text


class LogRedaction(logging.Filter):
    """The logging filter that keeps secrets, authentication messages and host payloads out of a
    handler's output (see the module docstring for what it does to a record).

    ``secrets`` are strings to scrub wherever they appear, in any encoding this module knows;
    :meth:`add_secrets` (or :func:`register_secret`) adds more while the process runs. Records of
    loggers named ``own_loggers`` (and their children) are hardening's own: they are scrubbed,
    never replaced. Safe to share between handlers and threads.
    """

    def __init__(self, secrets: Iterable[str] = (), *, own_loggers: Sequence[str] = ("hardening",)) -> None:
        super().__init__()
        self.own_loggers = tuple(own_loggers)
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self.add_secrets(*secrets)

    def add_secrets(self, *values: str | None) -> None:
        """Scrub these strings too, from now on (``None`` and empty strings are ignored)."""
        new = {v for v in values if v}
        with self._lock:
            if new <= self._secrets:
                return
            self._secrets = self._secrets | new
            self._pattern = _secret_pattern(self._secrets)

    def redact(self, text: str) -> str:
        """``text`` scrubbed of the patterns and of this filter's secrets."""
        return redact_text(text, self._pattern)

    def _own(self, name: str) -> bool:
        return any(name == own or name.startswith(own + ".") for own in self.own_loggers)

    def _message(self, record: logging.LogRecord) -> str:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string: show the template only, never the arguments
            text = f"{record.msg} [its arguments could not be formatted and are not shown]"
        if self._own(record.name):
            return self.redact(text)
        summarised = known_form(record.name, text)
        if summarised is not None:
            return self.redact(summarised)
        if record.levelno >= logging.WARNING:
            return self.redact(text)
        return f"[redacted: a {record.levelname} message of {len(text)} characters in a form not known to be safe]"

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _MARK, False):  # rewritten by another filter: add this one's secrets
            record.msg = self.redact(str(record.msg))
            record.exc_text = self.redact(record.exc_text) if record.exc_text else record.exc_text
            record.stack_info = self.redact(record.stack_info) if record.stack_info else record.stack_info
            return True
        record.msg = self._message(record)
        record.args = ()
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        setattr(record, _MARK, True)
        return True


def _all_handlers() -> list[logging.Handler]:
    """Every handler in the logging tree now, and the last-resort handler logging falls back on."""
    loggers = [logging.getLogger(), *(logger for logger in list(logging.Logger.manager.loggerDict.values())
                                      if isinstance(logger, logging.Logger))]
    handlers = [handler for logger in loggers for handler in logger.handlers]
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    return list(dict.fromkeys(handlers))


def install_log_redaction(handler: logging.Handler | None = None, secrets: Iterable[str] = ()) -> LogRedaction:
    """Attach a :class:`LogRedaction` to ``handler``, or to every handler configured now (and
    logging's last-resort handler) when ``handler`` is None; returns the filter.

    A handler that already has one keeps it (it learns ``secrets`` too). Call it after your
    logging configuration: a handler added later needs its own call.
    """
    handlers = [handler] if handler is not None else _all_handlers()
    existing = [f for h in handlers for f in h.filters if isinstance(f, LogRedaction)]
    redaction = existing[0] if existing else LogRedaction()
    for found in {id(f): f for f in [redaction, *existing]}.values():
        found.add_secrets(*secrets)
    for each in handlers:
        if not any(isinstance(f, LogRedaction) for f in each.filters):
            each.addFilter(redaction)
    return redaction


def register_secret(value: str | None) -> None:
    """Tell every :class:`LogRedaction` on a handler of the logging tree about a secret this
    process has just resolved (a target calls this when it reads a password reference).

    With no filter installed this does nothing: the library never keeps secrets anywhere else.
    """
    if not value:
        return
    for handler in _all_handlers():
        for found in handler.filters:
            if isinstance(found, LogRedaction):
                found.add_secrets(value)
