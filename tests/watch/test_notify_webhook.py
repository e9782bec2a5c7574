"""The webhook against http.server on 127.0.0.1, and the notification settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hardening.errors import InputError
from hardening.notify import (
    Notification,
    Notifier,
    NotifyError,
    NotifySettings,
    WebhookSettings,
    load_notify_settings,
    post_webhook,
)

from .conftest import Pki, SmtpFactory, WebhookFactory

SUMMARY = {"schema": "hardening.drift-pass/1", "run_id": "r1", "exit_code": 3, "summary": {"fixed": 2},
           "changes": [{"host": "MAIL01", "control": "pop3-secure-login", "before": "drifted", "after": "fixed"}]}
NOTE = Notification(subject="s", text="t\n", summary=SUMMARY)


def hook(url: str, **extra: Any) -> WebhookSettings:
    return WebhookSettings.model_validate({"url": url, "timeout": 5, "backoff": 0, **extra})


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_webhook_receives_the_json_summary(webhook_server: WebhookFactory) -> None:
    server = webhook_server()
    status = post_webhook(hook(server.url, insecure_allow_http=True), NOTE)
    assert status == 204
    [request] = server.requests
    assert request.method == "POST" and request.path == "/hooks/hardening"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("hardening/")
    assert json.loads(request.body) == SUMMARY


def test_https_webhook_with_the_ca_and_a_referenced_token(webhook_server: WebhookFactory, pki: Pki,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    server = webhook_server(tls=True)
    monkeypatch.setenv("HOOK_TOKEN", "tok-123")
    post_webhook(hook(server.url, ca_bundle=str(pki.ca), token="env:HOOK_TOKEN", headers={"X-Team": "mail"}), NOTE)
    [request] = server.requests
    assert request.headers["Authorization"] == "Bearer tok-123"
    assert request.headers["X-Team"] == "mail"
    assert json.loads(request.body)["run_id"] == "r1"


def test_https_webhook_with_an_untrusted_certificate_is_refused(webhook_server: WebhookFactory, pki: Pki) -> None:
    server = webhook_server(tls=True, cert=pki.rogue_cert, key=pki.rogue_key)
    sleeps = Sleeps()
    with pytest.raises(NotifyError, match="certificate is not trusted"):
        post_webhook(hook(server.url, ca_bundle=str(pki.ca)), NOTE, sleep=sleeps)
    assert server.requests == [] and sleeps.calls == []  # not retried


def test_http_needs_the_explicit_insecure_flag() -> None:
    with pytest.raises(ValueError, match=r"plain http .*insecure_allow_http"):
        hook("http://127.0.0.1:9/x")


def test_http_url_from_a_reference_is_refused_without_the_flag(webhook_server: WebhookFactory,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    server = webhook_server()
    monkeypatch.setenv("HOOK_URL", server.url + "?secret=abc")
    settings = hook("env:HOOK_URL")
    with pytest.raises(NotifyError, match="plain http") as caught:
        post_webhook(settings, NOTE)
    assert "secret=abc" not in str(caught.value)
    assert server.requests == []


def test_4xx_is_not_retried(webhook_server: WebhookFactory) -> None:
    server = webhook_server(statuses=[403, 204])
    sleeps = Sleeps()
    with pytest.raises(NotifyError, match=r"refused: HTTP 403 .*not retried"):
        post_webhook(hook(server.url, insecure_allow_http=True, retries=3), NOTE, sleep=sleeps)
    assert len(server.requests) == 1 and sleeps.calls == []


def test_5xx_is_retried_then_succeeds(webhook_server: WebhookFactory) -> None:
    server = webhook_server(statuses=[500, 503, 200])
    sleeps = Sleeps()
    status = post_webhook(hook(server.url, insecure_allow_http=True, retries=2, backoff=1.5), NOTE, sleep=sleeps)
    assert status == 200 and len(server.requests) == 3
    assert sleeps.calls == [1.5, 3.0]


def test_5xx_until_retries_run_out(webhook_server: WebhookFactory) -> None:
    server = webhook_server(statuses=[500, 500, 500])
    with pytest.raises(NotifyError, match="failed after 2 attempts: HTTP 500"):
        post_webhook(hook(server.url, insecure_allow_http=True, retries=1), NOTE, sleep=Sleeps())
    assert len(server.requests) == 2


def test_redirects_are_not_followed(webhook_server: WebhookFactory) -> None:
    server = webhook_server(statuses=[302])
    with pytest.raises(NotifyError, match=r"302 .*not followed"):
        post_webhook(hook(server.url, insecure_allow_http=True), NOTE, sleep=Sleeps())
    assert len(server.requests) == 1


def test_secrets_only_by_reference() -> None:
    with pytest.raises(ValueError, match="must not be written"):
        hook("https://hooks.test/x", token="literal-token")
    with pytest.raises(ValueError, match="must not be written"):
        NotifySettings.model_validate({"smtp": {"host": "h", "from": "a@b.test", "to": ["c@d.test"],
                                                "username": "u", "password": "hunter2"}})
    with pytest.raises(ValueError, match="token"):
        hook("https://hooks.test/x", headers={"Authorization": "Bearer x"})
    with pytest.raises(ValueError, match="credentials in the URL"):
        hook("https://user:pw@hooks.test/x")


def test_settings_need_a_channel_and_load_from_yaml_with_locations(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="smtp, webhook or both"):
        NotifySettings.model_validate({})
    good = tmp_path / "notify.yml"
    good.write_text("when: changes\nsmtp:\n  host: smtp.contoso.test\n  from: hardening@contoso.test\n"
                    "  to: [admins@contoso.test]\nwebhook:\n  url: https://hooks.contoso.test/h\n", encoding="utf-8")
    settings = load_notify_settings(good)
    assert settings.when == "changes" and settings.smtp is not None and settings.smtp.port == 587
    assert settings.webhook is not None and settings.webhook.retries == 2
    bad = tmp_path / "bad.yml"
    bad.write_text("smtp:\n  host: h\n  from: a@b.test\n  to: [c@d.test]\n  pasword: env:X\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.yml:5:3: smtp.pasword: unknown key 'pasword'; did you mean "
                                         r"'password'\?"):
        load_notify_settings(bad)


def test_notifier_on_setting_and_both_channels(webhook_server: WebhookFactory, smtp_server: SmtpFactory,
                                               pki: Pki) -> None:
    hook_server, mail_server = webhook_server(), smtp_server()
    settings = NotifySettings.model_validate({
        "when": "problems",
        "smtp": {"host": mail_server.host, "port": mail_server.port, "from": "a@b.test", "to": ["c@d.test"],
                 "ca_bundle": str(pki.ca), "helo_name": "client.test"},
        "webhook": {"url": hook_server.url, "insecure_allow_http": True}})
    notifier = Notifier(settings)
    assert notifier.send(Notification("s", "t", {}, changed=True, problem=False)) == ()
    assert notifier.send(Notification("s", "t", {}, changed=False, problem=True)) == ("smtp", "webhook")
    assert len(hook_server.requests) == 1 and len(mail_server.record.messages) == 1


def test_notifier_tries_every_channel_and_names_the_failures(webhook_server: WebhookFactory,
                                                             smtp_server: SmtpFactory, pki: Pki) -> None:
    hook_server, mail_server = webhook_server(), smtp_server(starttls=False)
    settings = NotifySettings.model_validate({
        "smtp": {"host": mail_server.host, "port": mail_server.port, "from": "a@b.test", "to": ["c@d.test"],
                 "ca_bundle": str(pki.ca), "helo_name": "client.test"},
        "webhook": {"url": hook_server.url, "insecure_allow_http": True}})
    with pytest.raises(NotifyError, match="STARTTLS") as caught:
        Notifier(settings).send(NOTE)
    assert caught.value.sent == ("webhook",)
    assert len(hook_server.requests) == 1 and mail_server.record.messages == []
