"""Notifications after a drift pass: a mail over SMTP and/or a JSON POST to a webhook.

Mail is sent only over a TLS-protected session: the client asks for STARTTLS, with certificate
and host name validation always on (``ssl.create_default_context``, against ``ca_bundle`` or
the system store). A server that does not offer STARTTLS, or whose certificate does not
validate, is refused before any credential, sender, recipient or content is sent (the only
command sent in clear is ``EHLO``). Implicit TLS (port 465) is not supported.

A webhook is ``https`` by default; ``http`` is refused unless ``insecure_allow_http: true``.
Redirects are not followed (a redirect could downgrade to http or leave the host); 4xx answers
are not retried; 5xx answers and connection errors are retried ``retries`` times with a doubling
pause, so a webhook may rarely receive a notification twice.

Credentials (the SMTP password, the webhook token, and a webhook URL that embeds a secret) are
references (``env:NAME``, ``keyring:SERVICE/USER``, ``file:PATH`` of mode 0600, ``prompt``),
resolved only when a notification is sent and never written to errors or logs.

A notifications file (``hardening watch --notify FILE``)::

    when: always                # always (default) | changes | problems
    attach_html: true           # attach the HTML report when one is rendered (default true)
    smtp:
      host: smtp.contoso.com
      port: 587                 # default 587 (submission, STARTTLS)
      from: hardening@contoso.com
      to: [mail-admins@contoso.com]
      username: svc-hardening   # optional; then password is required
      password: env:HARDENING_SMTP_PASSWORD
      ca_bundle: /etc/ssl/contoso-ca.pem   # default: the system's CA store
      timeout: 30
    webhook:
      url: https://hooks.contoso.com/hardening     # or a reference: env:HARDENING_WEBHOOK_URL
      token: env:HARDENING_WEBHOOK_TOKEN           # optional: sent as Authorization: Bearer
      timeout: 10
      retries: 2
      # insecure_allow_http: true                  # INSECURE: plain http
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import HardeningError, InputError, SourceLocation
from .inventory import SECRET_HELP, SECRET_REF, SecretRef
from .sourcefile import load_yaml, validate
from .version import __version__

__all__ = [
    "Notification",
    "Notifier",
    "NotifyError",
    "NotifySettings",
    "SmtpSettings",
    "WebhookSettings",
    "build_message",
    "load_notify_settings",
    "post_webhook",
    "send_mail",
]

log = logging.getLogger(__name__)

# Webhook answers are read (and dropped) up to this size, so a connection is reused cleanly.
MAX_ANSWER = 64 * 1024


class NotifyError(HardeningError):
    """A notification could not be sent. Never carries a secret (password, token, secret URL)."""

    def __init__(self, channel: str, problem: str, sent: tuple[str, ...] = ()) -> None:
        self.channel = channel
        self.problem = problem
        self.sent = sent  # the channels that did work, when several were tried
        super().__init__(f"notification by {channel}: {problem}")


# --- settings ---------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _reference(value: Any) -> Any:
    """A secret may only be given as a reference; the value itself is never echoed back."""
    if value is not None and not (isinstance(value, str) and SECRET_REF.match(value)):
        raise ValueError(SECRET_HELP)
    return value


def _address(value: str) -> str:
    if any(ch in value for ch in "\r\n\0,"):
        raise ValueError(f"not one mail address: {value!r}")
    _, addr = email.utils.parseaddr(value)
    if "@" not in addr:
        raise ValueError(f"not a mail address: {value!r}")
    return value.strip()


class SmtpSettings(_Strict):
    """Where and how to send the mail. STARTTLS with certificate validation is always required."""

    host: str = Field(min_length=1, description="SMTP server (submission).")
    port: int = Field(587, ge=1, le=65535, description="Default 587 (submission with STARTTLS).")
    sender: str = Field(alias="from", description="The From address.")
    to: list[str] = Field(min_length=1, description="Recipients.")
    username: str | None = Field(None, description="SMTP AUTH user, sent only inside TLS.")
    password: str | None = Field(None, description="A reference: env:NAME, keyring:SERVICE/USER, file:PATH, "
                                 "prompt.")
    ca_bundle: str | None = Field(None, description="CA certificates (PEM) to validate the server with "
                                  "(default: the system's store).")
    timeout: float = Field(30.0, gt=0, description="Seconds per network operation.")
    helo_name: str | None = Field(None, description="Name sent in EHLO (default: this host's FQDN).")
    subject_prefix: str = Field("[hardening]", description="Put before every subject.")

    @field_validator("password", mode="before")
    @classmethod
    def _check_password(cls, value: Any) -> Any:
        return _reference(value)

    @field_validator("sender")
    @classmethod
    def _check_sender(cls, value: str) -> str:
        return _address(value)

    @field_validator("to")
    @classmethod
    def _check_to(cls, value: list[str]) -> list[str]:
        return [_address(v) for v in value]

    @field_validator("host", "helo_name", "subject_prefix")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any(ch in value for ch in "\r\n\0"):
            raise ValueError("must be one line")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> SmtpSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together (the password as a reference)")
        return self

    @property
    def password_ref(self) -> SecretRef | None:
        return SecretRef(self.password) if self.password is not None else None


class WebhookSettings(_Strict):
    """Where to POST the JSON summary (``hardening.drift-pass/1``)."""

    url: str = Field(description="https URL, or a reference to one (env:NAME, file:PATH …) when it embeds a "
                     "secret.")
    token: str | None = Field(None, description="A reference to a bearer token (Authorization: Bearer).")
    headers: dict[str, str] = Field(default_factory=dict, description="More request headers (not secrets).")
    ca_bundle: str | None = Field(None, description="CA certificates (PEM) to validate the server with.")
    timeout: float = Field(10.0, gt=0, description="Seconds per attempt.")
    retries: int = Field(2, ge=0, le=10, description="Retries after a 5xx answer or a connection error "
                         "(never after 4xx).")
    backoff: float = Field(2.0, ge=0, description="Seconds before the first retry, doubled for each next one.")
    insecure_allow_http: bool = Field(False, description="INSECURE: allow a plain http URL (the summary, and "
                                      "the token if any, travel in clear text).")

    @field_validator("token", mode="before")
    @classmethod
    def _check_token(cls, value: Any) -> Any:
        return _reference(value)

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not name or any(ch in name + text for ch in "\r\n\0") or ":" in name:
                raise ValueError(f"invalid header {name!r}")
            if name.casefold() == "authorization":
                raise ValueError("put the credential in token (a reference), not in headers")
        return value

    @model_validator(mode="after")
    def _check_url(self) -> WebhookSettings:
        if not self.is_reference:
            _check_webhook_url(self.url, self.insecure_allow_http, where="url")
        return self

    @property
    def is_reference(self) -> bool:
        """The URL is a secret reference (resolved when sending) rather than the URL itself."""
        return not self.url.lower().startswith(("http://", "https://")) and bool(SECRET_REF.match(self.url))


class NotifySettings(_Strict):
    """What to send after each drift pass, and when."""

    # Not "on": YAML 1.1 loaders read an unquoted on: key as the boolean true.
    when: Literal["always", "changes", "problems"] = Field(
        "always", description="always: after every pass; changes: when something changed since the previous "
        "run or a problem occurred; problems: when a control failed, a host was unreachable or the canary "
        "stopped the pass.")
    attach_html: bool = Field(True, description="Attach the HTML report to the mail when one is rendered.")
    smtp: SmtpSettings | None = None
    webhook: WebhookSettings | None = None

    @model_validator(mode="after")
    def _some_channel(self) -> NotifySettings:
        if self.smtp is None and self.webhook is None:
            raise ValueError("give smtp, webhook or both")
        return self


def load_notify_settings(path: str | Path) -> NotifySettings:
    """Load a notifications file; every problem is an :class:`InputError` naming file, line and key."""
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise InputError(SourceLocation(str(path), 1, 1), "a notifications file is a mapping with smtp: and/or "
                         "webhook:")
    return validate(doc, NotifySettings)


def _check_webhook_url(url: str, insecure_allow_http: bool, *, where: str) -> urllib.parse.SplitResult:
    """The parsed URL, or ValueError naming only scheme and host (the path may hold a secret)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise ValueError(f"{where}: an https URL is required")
    if parts.username or parts.password:
        raise ValueError(f"{where}: credentials in the URL are not accepted; use token (a reference)")
    if parts.scheme == "http" and not insecure_allow_http:
        raise ValueError(f"{where}: plain http sends the summary in clear text; use https, or set "
                         "insecure_allow_http: true")
    return parts


# --- what is sent -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """One notification: the mail's subject and text, the webhook's JSON, and an optional HTML report.

    ``changed`` and ``problem`` drive the ``when`` setting: a pass with changes since the previous
    run, and one where a control failed, a host was unreachable or the canary stopped the rest.
    """

    subject: str
    text: str
    summary: Mapping[str, Any]
    html: str | None = None
    html_name: str = "hardening-report.html"
    changed: bool = True
    problem: bool = False


def _safe_url(url: str) -> str:
    """Scheme, host and port only: what an error may show of a URL."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _tls_context(ca_bundle: str | None, channel: str) -> ssl.SSLContext:
    try:
        # Certificate and host name validation on (CERT_REQUIRED, check_hostname), TLS 1.2 at least.
        context = ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise NotifyError(channel, f"cannot load the CA bundle {ca_bundle}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _one_line(text: str) -> str:
    return " ".join(text.split())


def build_message(settings: SmtpSettings, notification: Notification, *, attach_html: bool = True) -> EmailMessage:
    """The mail: plain text, with the HTML report attached when there is one and ``attach_html``."""
    message = EmailMessage()
    message["Subject"] = _one_line(f"{settings.subject_prefix} {notification.subject}".strip())
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = email.utils.make_msgid(domain=settings.sender.rpartition("@")[2].strip("> ") or None)
    message["X-Mailer"] = f"hardening {__version__}"
    message.set_content(notification.text)
    if attach_html and notification.html is not None:
        message.add_attachment(notification.html, subtype="html", filename=notification.html_name)
    return message


def send_mail(settings: SmtpSettings, notification: Notification, *, attach_html: bool = True) -> None:
    """Send the notification by mail, over STARTTLS with a validated certificate, or raise NotifyError.

    Order on the wire: EHLO; STARTTLS (refused if not offered, before anything else is sent);
    TLS handshake with certificate validation; EHLO; AUTH if a username is set; MAIL, RCPT, DATA.
    """
    channel = f"mail to {settings.host}:{settings.port}"
    context = _tls_context(settings.ca_bundle, channel)
    # Resolved before connecting, so a missing secret never leaves a half conversation behind.
    password = settings.password_ref.resolve() if settings.password_ref is not None else None
    message = build_message(settings, notification, attach_html=attach_html)
    smtp: smtplib.SMTP | None = None
    try:
        try:
            # Given the host here (not to connect()), smtplib validates the certificate for that name.
            smtp = smtplib.SMTP(settings.host, settings.port, local_hostname=settings.helo_name,
                                timeout=settings.timeout)
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise NotifyError(channel, "the server does not offer STARTTLS; refusing to send credentials or "
                                  "mail over an unencrypted connection")
            smtp.starttls(context=context)
            if not isinstance(smtp.sock, ssl.SSLSocket):  # pragma: no cover - smtplib raises instead
                raise NotifyError(channel, "STARTTLS did not establish TLS")
            smtp.ehlo()
            if settings.username is not None and password is not None:
                smtp.login(settings.username, password)
            refused = smtp.send_message(message, from_addr=settings.sender, to_addrs=settings.to)
        except ssl.SSLCertVerificationError as exc:
            raise NotifyError(channel, f"the server's certificate is not trusted ({exc.verify_message}); "
                              "nothing was sent") from None
        except ssl.SSLError as exc:
            raise NotifyError(channel, f"TLS failed ({exc.reason or exc}); nothing was sent") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise NotifyError(channel, f"authentication as {settings.username} refused: "
                              f"{exc.smtp_code} {_decode(exc.smtp_error)}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise NotifyError(channel, f"not supported by the server: {exc}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise NotifyError(channel, f"every recipient refused: {', '.join(exc.recipients)}") from None
        except smtplib.SMTPResponseException as exc:
            raise NotifyError(channel, f"the server answered {exc.smtp_code} {_decode(exc.smtp_error)}") from None
        except smtplib.SMTPException as exc:
            raise NotifyError(channel, str(exc) or type(exc).__name__) from None
        except OSError as exc:  # refused, unreachable, timed out (connecting or later)
            raise NotifyError(channel, f"network error: {exc.strerror or exc or type(exc).__name__}") from None
        if refused:
            raise NotifyError(channel, f"sent, but refused for {', '.join(sorted(refused))}")
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()  # the mail was accepted; a lost QUIT changes nothing
    finally:
        if smtp is not None:
            smtp.close()


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are errors: a redirect could send the summary elsewhere, or over plain http."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        return None


def post_webhook(settings: WebhookSettings, notification: Notification, *,
                 sleep: Callable[[float], None] = time.sleep) -> int:
    """POST the JSON summary; returns the HTTP status, or raises NotifyError.

    4xx answers and certificate problems are not retried; 5xx answers and connection errors are,
    ``settings.retries`` times.
    """
    url = SecretRef(settings.url).resolve().strip() if settings.is_reference else settings.url
    try:
        _check_webhook_url(url, settings.insecure_allow_http, where="webhook")
    except ValueError as exc:
        raise NotifyError("webhook", str(exc)) from None
    channel = f"webhook {_safe_url(url)}"
    headers = {"Content-Type": "application/json", "User-Agent": f"hardening/{__version__}", **settings.headers}
    if settings.token is not None:
        headers["Authorization"] = f"Bearer {SecretRef(settings.token).resolve()}"
    body = json.dumps(notification.summary, ensure_ascii=False, default=str).encode("utf-8")
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if url.lower().startswith("https://"):
        handlers.append(urllib.request.HTTPSHandler(context=_tls_context(settings.ca_bundle, channel)))
    opener = urllib.request.build_opener(*handlers)
    problem = "not attempted"
    for attempt in range(settings.retries + 1):
        if attempt:
            sleep(settings.backoff * 2 ** (attempt - 1))
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with opener.open(request, timeout=settings.timeout) as answer:
                answer.read(MAX_ANSWER)
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            if 300 <= exc.code < 400:
                raise NotifyError(channel, f"answered {exc.code} (a redirect); redirects are not followed") from None
            if 400 <= exc.code < 500:
                raise NotifyError(channel, f"refused: HTTP {exc.code} {exc.reason}; not retried") from None
            problem = f"HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLCertVerificationError):
                raise NotifyError(channel, f"the server's certificate is not trusted "
                                  f"({exc.reason.verify_message}); nothing was sent") from None
            if isinstance(exc.reason, ssl.SSLError):
                raise NotifyError(channel, f"TLS failed ({exc.reason.reason or exc.reason}); nothing was sent") \
                    from None
            problem = str(exc.reason)
        except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, garbled answers
            problem = str(exc) or type(exc).__name__
        log.warning("%s: attempt %d of %d failed: %s", channel, attempt + 1, settings.retries + 1, problem)
    raise NotifyError(channel, f"failed after {settings.retries + 1} attempts: {problem}")


@dataclass
class Notifier:
    """Sends notifications by the channels of its :class:`NotifySettings`.

    ``sleep`` is the pause between webhook retries (injectable for tests).
    """

    settings: NotifySettings
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    @property
    def wants_html(self) -> bool:
        """Whether an HTML report would be used (a mail channel with ``attach_html``)."""
        return self.settings.smtp is not None and self.settings.attach_html

    def wanted(self, notification: Notification) -> bool:
        """Whether the ``when`` setting asks for this notification."""
        if self.settings.when == "problems":
            return notification.problem
        if self.settings.when == "changes":
            return notification.changed or notification.problem
        return True

    def send(self, notification: Notification) -> tuple[str, ...]:
        """Send by every channel (each is tried even when another fails); the channels used.

        Returns ``()`` when the ``when`` setting does not ask for this notification. Raises
        :class:`NotifyError` naming every channel that failed.
        """
        if not self.wanted(notification):
            return ()
        sent: list[str] = []
        failures: list[tuple[str, HardeningError]] = []
        if self.settings.smtp is not None:
            try:
                send_mail(self.settings.smtp, notification, attach_html=self.settings.attach_html)
                sent.append("smtp")
            except HardeningError as exc:
                failures.append(("mail", exc))
        if self.settings.webhook is not None:
            try:
                post_webhook(self.settings.webhook, notification, sleep=self.sleep)
                sent.append("webhook")
            except HardeningError as exc:
                failures.append(("webhook", exc))
        if not failures:
            return tuple(sent)
        only = failures[0][1]
        if len(failures) == 1 and isinstance(only, NotifyError):
            only.sent = tuple(sent)
            raise only
        raise NotifyError(" and ".join(name for name, _ in failures), "; ".join(str(e) for _, e in failures),
                          tuple(sent))
