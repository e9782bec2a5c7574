"""The ldap3 directory target against the real Samba AD DC: TLS, binds, and one clear sentence per
failure (bad credentials, untrusted CA, wrong name, unreachable, no TLS)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hardening.errors import TargetError
from hardening.inventory import directory_host
from hardening.model import LdapCall, Section
from hardening.targets.directory import DirectoryTarget

from .samba import SambaDC

ROOT_DSE = (Section("root", (LdapCall("search", "", attributes=("defaultNamingContext", "dnsHostName")),)),)


def _target(dc: SambaDC, monkeypatch: pytest.MonkeyPatch, *, url: str | None = None, user: str | None = None,
            password: str | None = None, ca: Path | None = None, server_name: str | None = None) -> DirectoryTarget:
    monkeypatch.setenv("HARDENING_TEST_LDAP_PASSWORD", password or dc.admin_password)
    host = directory_host({"ldap_url": url or dc.ldaps_url, "ldap_username": user or dc.admin_user,
                           "ldap_password": "env:HARDENING_TEST_LDAP_PASSWORD",
                           "ldap_ca_bundle": str(ca or dc.ca_file),
                           "ldap_server_name": server_name or dc.server_name}, "test")
    return DirectoryTarget(host)


@pytest.mark.parametrize("scheme", ["ldaps", "starttls"])
def test_binds_over_tls_and_reads_the_root_dse(samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch,
                                               scheme: str) -> None:
    url = samba_dc.ldaps_url if scheme == "ldaps" else samba_dc.ldap_url
    target = _target(samba_dc, monkeypatch, url=url)
    try:
        (result,) = target.run(ROOT_DSE)
    finally:
        target.close()
    assert result.ok, result.error
    (entry,) = result.values[0]
    assert entry["attributes"]["defaultNamingContext"] == [samba_dc.domain_dn]
    # StartTLS and the bind are requests too; then one search.
    assert target.requests == (3 if scheme == "starttls" else 2)


def test_bad_credentials_are_named(samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch) -> None:
    target = _target(samba_dc, monkeypatch, password="not-the-password")
    with pytest.raises(TargetError) as caught:
        target.run(ROOT_DSE)
    assert "bad credentials" in caught.value.problem and samba_dc.admin_user in caught.value.problem
    assert "not-the-password" not in str(caught.value)


def test_a_certificate_from_an_unknown_ca_is_refused(samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch) -> None:
    target = _target(samba_dc, monkeypatch, ca=samba_dc.rogue_ca_file)
    with pytest.raises(TargetError) as caught:
        target.run(ROOT_DSE)
    assert "not trusted" in caught.value.problem and "ldap_ca_bundle" in caught.value.problem
    assert target.requests == 0, "nothing, not even the bind, crossed an untrusted connection"


def test_a_certificate_for_another_name_is_refused(samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch) -> None:
    target = _target(samba_dc, monkeypatch, server_name="dc9.elsewhere.test")
    with pytest.raises(TargetError) as caught:
        target.run(ROOT_DSE)
    assert "dc9.elsewhere.test" in caught.value.problem
    assert target.requests == 0


def test_an_unreachable_directory_is_named(samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind((samba_dc.ip, 0))
        port = probe.getsockname()[1]
    target = _target(samba_dc, monkeypatch, url=f"ldaps://{samba_dc.ip}:{port}")
    with pytest.raises(TargetError) as caught:
        target.run(ROOT_DSE)
    assert "cannot reach the directory" in caught.value.problem


def test_ldaps_to_a_port_without_tls_is_refused(samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch) -> None:
    """ldaps:// to the plain LDAP port: the handshake fails, and no bind is ever sent in clear."""
    target = _target(samba_dc, monkeypatch, url=f"ldaps://{samba_dc.ip}:389")
    with pytest.raises(TargetError) as caught:
        target.run(ROOT_DSE)
    assert "TLS" in caught.value.problem or "cannot reach" in caught.value.problem
    assert target.requests == 0


def test_a_plain_ldap_url_always_starts_tls(samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch) -> None:
    """ldap:// means StartTLS before the bind: with an untrusted CA the StartTLS fails and the
    password never crosses."""
    target = _target(samba_dc, monkeypatch, url=samba_dc.ldap_url, ca=samba_dc.rogue_ca_file)
    with pytest.raises(TargetError) as caught:
        target.run(ROOT_DSE)
    assert "not trusted" in caught.value.problem
    assert target.requests == 1, "StartTLS was tried; the bind was not"


def test_refusals_are_per_request(samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing object fails its call only; the connection goes on."""
    target = _target(samba_dc, monkeypatch)
    bundle = (Section("a", (LdapCall("search", f"CN=Nowhere,{samba_dc.config_dn}"),)), *ROOT_DSE)
    try:
        missing, root = target.run(bundle)
    finally:
        target.close()
    assert missing.error == f"no such object: CN=Nowhere,{samba_dc.config_dn}"
    assert root.ok
