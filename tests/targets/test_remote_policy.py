"""The remote target's security policy and request classification, without a network."""

from __future__ import annotations

import pytest

from hardening.errors import TargetError
from hardening.inventory import Connection, Host, SecretRef
from hardening.model import CmdletCall, ScriptCall, Section
from hardening.targets import RemoteTarget, open_target
from hardening.targets.windows import _clixml_text, is_read_only, transport_problems


def _host(**settings: object) -> Host:
    base: dict[str, object] = {"transport": "psrp", "username": "CONTOSO\\svc", "password": SecretRef("env:PW")}
    base.update(settings)
    return Host("MAIL01", "mail01.contoso.com", Connection(**base))  # type: ignore[arg-type]


@pytest.mark.parametrize(("scheme", "auth", "refused"), [
    ("http", "basic", True),
    ("http", "certificate", True),
    ("http", "ntlm", False),
    ("http", "negotiate", False),
    ("http", "kerberos", False),
    ("http", "credssp", False),
    ("https", "basic", False),
    ("https", "certificate", False),
])
def test_only_encrypting_auths_over_plain_http(scheme: str, auth: str, refused: bool) -> None:
    conn = Connection(scheme=scheme, auth=auth, username="u", client_certificate="c.pem",  # type: ignore[arg-type]
                      client_key="k.pem")
    problems = transport_problems(conn, scheme, auth)
    assert bool(problems) is refused, problems
    if refused:
        assert "clear text" in problems[0] and "insecure_allow_unencrypted" in problems[0]


def test_the_insecure_flag_is_the_only_way_to_plaintext() -> None:
    conn = Connection(scheme="http", auth="basic", username="u", insecure_allow_unencrypted=True)
    assert transport_problems(conn, "http", "basic") == []


def test_a_refused_host_fails_before_connecting_and_names_the_fix() -> None:
    with pytest.raises(TargetError) as info:
        open_target(_host(scheme="http", auth="basic"), None)
    assert info.value.host == "MAIL01"
    assert "refused to connect" in str(info.value) and "scheme https" in str(info.value)


def test_the_exchange_endpoint_is_checked_too() -> None:
    with pytest.raises(TargetError, match="exchange endpoint: auth basic over plain HTTP"):
        RemoteTarget(_host(scheme="https", auth="negotiate", exchange_scheme="http", exchange_auth="basic"))


def test_a_missing_secret_is_a_host_error_without_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PW", raising=False)
    target = RemoteTarget(_host(scheme="https", auth="basic"))
    with pytest.raises(TargetError, match="credential env:PW: environment variable PW is not set"):
        target._secret()


def test_reads_may_be_retried_writes_never() -> None:
    reads = (Section("a", (ScriptCall("ntfs_acl", "read", {}),)), Section("b", (CmdletCall("Get-PopSettings"),)))
    assert is_read_only(reads)
    assert not is_read_only((Section("a", (ScriptCall("ntfs_acl", "write", {}),)),))
    assert not is_read_only((Section("b", (CmdletCall("Set-PopSettings"), CmdletCall("Get-PopSettings"))),))


def test_clixml_errors_become_text() -> None:
    stderr = ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
              '<S S="Error">Access is denied._x000D__x000A_</S><S S="Error">+ Set-Acl_x000D__x000A_</S></Objs>')
    assert _clixml_text(stderr) == "Access is denied.\n+ Set-Acl"
