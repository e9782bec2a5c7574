"""Mail notifications against aiosmtpd on 127.0.0.1: STARTTLS required, the certificate validated,
and nothing but EHLO sent to a server that cannot protect the session."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from hardening.errors import HardeningError, SecretError
from hardening.notify import Notification, Notifier, NotifyError, NotifySettings, SmtpSettings, send_mail

from .conftest import Pki, SmtpFactory, SmtpServer

HTML = "<!doctype html><html><body><h1>hardening report</h1><p>MAIL01 fixed</p></body></html>"
NOTE = Notification(subject="apply on 4 hosts: 3 fixed", text="MAIL01 pop3-secure-login: drifted -> fixed\n",
                    summary={"schema": "hardening.drift-pass/1", "exit_code": 3}, html=HTML,
                    html_name="hardening-run.html")


def settings(server: SmtpServer, pki: Pki, **extra: object) -> SmtpSettings:
    data: dict[str, object] = {"host": server.host, "port": server.port, "from": "hardening@contoso.test",
                               "to": ["admins@contoso.test", "oncall@contoso.test"], "ca_bundle": str(pki.ca),
                               "helo_name": "client.test", "timeout": 10, **extra}
    return SmtpSettings.model_validate(data)


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_mail_arrives_over_starttls_with_summary_and_html_attachment(smtp_server: SmtpFactory, pki: Pki) -> None:
    server = smtp_server()
    send_mail(settings(server, pki), NOTE)
    record = server.record
    assert record.mail_from == ["hardening@contoso.test"]
    assert record.rcpt_to == ["admins@contoso.test", "oncall@contoso.test"]
    assert record.tls_at_mail == [True]
    # In clear text only EHLO and STARTTLS; everything else inside TLS.
    assert record.commands[:2] == ["EHLO", "STARTTLS"]
    message = parsed(record.messages[0])
    assert message["Subject"] == "[hardening] apply on 4 hosts: 3 fixed"
    assert message["From"] == "hardening@contoso.test"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and "MAIL01 pop3-secure-login: drifted -> fixed" in body.get_content()
    attachments = list(message.iter_attachments())
    assert len(attachments) == 1
    attachment = attachments[0]
    assert attachment.get_content_type() == "text/html"
    assert attachment.get_filename() == "hardening-run.html"
    assert attachment.get_content().replace("\r\n", "\n").rstrip("\n") == HTML


def test_no_attachment_without_html_or_when_disabled(smtp_server: SmtpFactory, pki: Pki) -> None:
    server = smtp_server()
    send_mail(settings(server, pki), Notification("s", "text\n", {}, html=None))
    send_mail(settings(server, pki), NOTE, attach_html=False)
    for raw in server.record.messages:
        message = parsed(raw)
        assert not list(message.iter_attachments())
        assert message.get_content_type() == "text/plain"


def test_server_without_starttls_is_refused_before_anything_is_sent(smtp_server: SmtpFactory, pki: Pki,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    server = smtp_server(starttls=False)
    monkeypatch.setenv("SMTP_TEST_PASSWORD", "canary-Pa55word")
    with pytest.raises(NotifyError, match="does not offer STARTTLS; refusing") as caught:
        send_mail(settings(server, pki, username="svc", password="env:SMTP_TEST_PASSWORD"), NOTE)
    assert isinstance(caught.value, HardeningError)
    record = server.record
    assert record.commands == ["EHLO"]  # no MAIL FROM, RCPT, DATA, AUTH
    assert record.mail_from == [] and record.messages == [] and record.logins == []
    raw = bytes(record.raw)
    assert b"canary-Pa55word" not in raw and b"pop3-secure-login" not in raw and b"MAIL FROM" not in raw
    assert "canary-Pa55word" not in str(caught.value)


def test_untrusted_certificate_is_refused(smtp_server: SmtpFactory, pki: Pki) -> None:
    server = smtp_server(cert=pki.rogue_cert, key=pki.rogue_key)
    with pytest.raises(NotifyError, match=r"certificate is not trusted .*nothing was sent"):
        send_mail(settings(server, pki), NOTE)
    assert server.record.mail_from == [] and server.record.messages == []
    assert server.record.commands == ["EHLO", "STARTTLS"]


def test_certificate_for_another_name_is_refused(smtp_server: SmtpFactory, pki: Pki) -> None:
    server = smtp_server(cert=pki.wrong_name_cert, key=pki.wrong_name_key)
    with pytest.raises(NotifyError, match=r"not trusted .*mismatch"):
        send_mail(settings(server, pki), NOTE)
    assert server.record.messages == []


def test_without_the_ca_the_system_store_does_not_trust_the_test_ca(smtp_server: SmtpFactory, pki: Pki) -> None:
    server = smtp_server()
    with pytest.raises(NotifyError, match="not trusted"):
        send_mail(settings(server, pki, ca_bundle=None), NOTE)
    assert server.record.messages == []


def test_auth_happens_inside_tls_with_the_referenced_password(smtp_server: SmtpFactory, pki: Pki,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    server = smtp_server(password="s3cret-from-env")
    monkeypatch.setenv("SMTP_TEST_PASSWORD", "s3cret-from-env")
    send_mail(settings(server, pki, username="svc-hardening", password="env:SMTP_TEST_PASSWORD"), NOTE)
    assert server.record.logins == [("svc-hardening", "s3cret-from-env", True)]
    assert len(server.record.messages) == 1


def test_wrong_password_is_a_clear_error_without_the_password(smtp_server: SmtpFactory, pki: Pki,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    server = smtp_server(password="right")
    monkeypatch.setenv("SMTP_TEST_PASSWORD", "wrong-canary")
    with pytest.raises(NotifyError, match="authentication as svc refused: 535") as caught:
        send_mail(settings(server, pki, username="svc", password="env:SMTP_TEST_PASSWORD"), NOTE)
    assert "wrong-canary" not in str(caught.value)
    assert server.record.messages == []


def test_unresolvable_password_fails_before_connecting(smtp_server: SmtpFactory, pki: Pki,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    server = smtp_server()
    monkeypatch.delenv("SMTP_TEST_PASSWORD", raising=False)
    with pytest.raises(SecretError, match="SMTP_TEST_PASSWORD is not set"):
        send_mail(settings(server, pki, username="svc", password="env:SMTP_TEST_PASSWORD"), NOTE)
    assert server.record.raw == b""


def test_connection_refused_is_a_notify_error(pki: Pki) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = SmtpSettings.model_validate({"host": "127.0.0.1", "port": port, "from": "a@b.test", "to": ["c@d.test"],
                                        "ca_bundle": str(pki.ca), "helo_name": "client.test", "timeout": 5})
    with pytest.raises(NotifyError, match="network error"):
        send_mail(smtp, NOTE)


def test_missing_ca_bundle_is_a_notify_error(smtp_server: SmtpFactory, pki: Pki, tmp_path: Path) -> None:
    server = smtp_server()
    with pytest.raises(NotifyError, match="cannot load the CA bundle"):
        send_mail(settings(server, pki, ca_bundle=str(tmp_path / "missing.pem")), NOTE)
    assert server.record.raw == b""


def test_notifier_reports_a_failed_channel(smtp_server: SmtpFactory, pki: Pki) -> None:
    server = smtp_server(starttls=False)
    notifier = Notifier(NotifySettings(smtp=settings(server, pki)))
    with pytest.raises(NotifyError, match="STARTTLS") as caught:
        notifier.send(NOTE)
    assert caught.value.sent == ()
