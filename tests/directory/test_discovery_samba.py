"""Exchange servers found in the real Samba AD DC's configuration partition: the CLI's
``inventory from-ad`` (YAML and JSON, filters) and the ``from_ad`` dynamic inventory source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hardening import load_inventory
from hardening.cli import main
from hardening.errors import InventoryError

from .samba import SambaDC

PASSWORD_ENV = "HARDENING_TEST_DISCOVERY_PASSWORD"


def _args(dc: SambaDC, *extra: str) -> list[str]:
    return ["inventory", "from-ad", "--ldap-url", dc.ldaps_url, "--user", dc.admin_user,
            "--password", f"env:{PASSWORD_ENV}", "--ca-bundle", str(dc.ca_file), "--server-name", dc.server_name,
            *extra]


def test_from_ad_writes_every_exchange_server_with_facts_and_groups(
        samba_dc: SambaDC, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(PASSWORD_ENV, samba_dc.admin_password)
    out = tmp_path / "found.yml"
    assert main(_args(samba_dc, "-o", str(out))) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith(f"# Exchange servers found in {samba_dc.ldaps_url}")
    document = yaml.safe_load(text)
    hosts = document["hosts"]
    assert set(hosts) == {"mail01.lab.example.test", "mail02.lab.example.test", "edge01.lab.example.test",
                          "ex2003.lab.example.test"}, hosts
    mail01 = next(spec["facts"] for spec in hosts.values() if spec["facts"]["computer_name"] == "MAIL01")
    assert mail01["exchange_version"] == "15.2.1544.4"
    assert "Mailbox" in mail01["exchange_roles"]
    assert mail01["exchange_site"] == "Default-First-Site-Name"
    groups = {name: set(spec["hosts"]) for name, spec in document["groups"].items()}
    assert len(groups["exchange"]) == 4
    assert {"exchange_2019", "exchange_2016", "exchange_2003", "role_edge", "site_branch"} <= set(groups)
    # The file is an inventory this tool loads (facts declared, groups usable in playbooks).
    inventory = load_inventory(out)
    assert {h.facts["computer_name"] for h in inventory.select(["role_edge"])} == {"EDGE01"}
    assert "4 Exchange server(s) written" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "expected"), [
    (("--version", "2016"), {"MAIL02"}),
    (("--site", "Branch"), {"MAIL02"}),
    (("--role", "Edge"), {"EDGE01"}),
    (("--version", "2019", "--role", "Mailbox"), {"MAIL01"}),
    (("--version", "2003",), {"EX2003"}),
])
def test_from_ad_filters(samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                         extra: tuple[str, ...], expected: set[str]) -> None:
    monkeypatch.setenv(PASSWORD_ENV, samba_dc.admin_password)
    assert main(_args(samba_dc, "--format", "json", *extra)) == 0
    document = json.loads(capsys.readouterr().out)
    assert {spec["facts"]["computer_name"] for spec in document["hosts"].values()} == expected


def test_from_ad_refuses_an_untrusted_directory(samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(PASSWORD_ENV, samba_dc.admin_password)
    args = _args(samba_dc)
    args[args.index("--ca-bundle") + 1] = str(samba_dc.rogue_ca_file)
    assert main(args) == 1
    assert "not trusted" in capsys.readouterr().err


def test_from_ad_refuses_a_literal_password(samba_dc: SambaDC, capsys: pytest.CaptureFixture[str]) -> None:
    args = _args(samba_dc)
    args[args.index("--password") + 1] = samba_dc.admin_password
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "reference" in err and samba_dc.admin_password not in err


def test_dynamic_inventory_source(samba_dc: SambaDC, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An inventory with ``from_ad`` gets the servers at load time; declared hosts win."""
    monkeypatch.setenv(PASSWORD_ENV, samba_dc.admin_password)
    path = tmp_path / "dynamic.yml"
    path.write_text(yaml.safe_dump({
        "connection": {"transport": "psrp", "auth": "kerberos"},
        "from_ad": {"connection": {"ldap_url": samba_dc.ldaps_url, "ldap_username": samba_dc.admin_user,
                                   "ldap_password": f"env:{PASSWORD_ENV}", "ldap_ca_bundle": str(samba_dc.ca_file),
                                   "ldap_server_name": samba_dc.server_name},
                    "releases": ["2019", "SE"]},
        "hosts": {"mail01.lab.example.test": {"facts": {"os_version": "10.0.17763"}}},
    }), encoding="utf-8")
    inventory = load_inventory(path)
    assert set(inventory.hosts) == {"mail01.lab.example.test", "edge01.lab.example.test"}
    declared = inventory.hosts["mail01.lab.example.test"]
    assert declared.facts == {"os_version": "10.0.17763"}, "a declared host wins over the discovered one"
    assert "exchange" in declared.groups
    edge = inventory.hosts["edge01.lab.example.test"]
    assert edge.connection.auth == "kerberos" and edge.facts["exchange_roles"] == ["Edge"]

    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert "from_ad" in str(caught.value) and "bad credentials" in str(caught.value)
    assert f"{path}:" in str(caught.value)
