"""The transport family's consequences: whether Domain Security (mutual TLS) can work, from the lab
state, with the lab's own model of what mutual TLS needs (not the kinds' code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hardening import apply, load_lab, load_playbook
from hardening.inventory import Inventory
from hardening.lab.models.transport import mutual_tls_problems

ROOT = Path(__file__).resolve().parents[2]


def _hosts() -> dict[str, dict[str, Any]]:
    return {name: host.state for name, host in load_lab().hosts.items()}


def _problems(hosts: dict[str, dict[str, Any]]) -> list[str]:
    return [p for name, state in hosts.items() for p in mutual_tls_problems(name, state, hosts)]


def _connector(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in state["send_connectors"] if c["Name"] == name)


def test_the_demo_as_shipped_has_no_broken_mutual_tls() -> None:
    # MAIL04 uses Domain Security with fabrikam.com, with both lists and a receive side; the
    # EdgeSync internet connector of MAIL03's organisation names no single domain.
    assert _problems(_hosts()) == []


def test_domain_secure_on_the_connector_alone_is_what_todays_control_left_behind() -> None:
    hosts = _hosts()
    _connector(hosts["MAIL01"], "Partner Fabrikam")["DomainSecureEnabled"] = True
    assert _problems(hosts) == [
        "MAIL01: mutual TLS with fabrikam.com through 'Partner Fabrikam' cannot work: fabrikam.com is not in "
        "TLSSendDomainSecureList; fabrikam.com is not in TLSReceiveDomainSecureList; no receive connector has "
        "DomainSecureEnabled with Tls"]


def test_lists_without_a_receive_side_and_a_smart_host_route_are_named() -> None:
    hosts = _hosts()
    relay = _connector(hosts["MAIL02"], "Archive Relay")
    relay["DomainSecureEnabled"] = True
    hosts["MAIL02"]["transport_config"].update(TLSSendDomainSecureList=["ARCHIVE.contoso-vault.net"],
                                               TLSReceiveDomainSecureList=["archive.contoso-vault.net"])
    assert _problems(hosts) == [
        "MAIL02: mutual TLS with archive.contoso-vault.net through 'Archive Relay' cannot work: the connector "
        "routes through smart hosts, not DNS; no receive connector has DomainSecureEnabled with Tls"]


def test_a_receive_connector_counts_only_with_tls_and_without_externalauthoritative() -> None:
    hosts = _hosts()
    mail04 = hosts["MAIL04"]
    frontend = next(c for c in mail04["receive_connectors"] if c["Name"] == "Default Frontend MAIL04")
    frontend["AuthMechanism"] = "Tls, ExternalAuthoritative"
    assert len(_problems(hosts)) == 1 and "no receive connector" in _problems(hosts)[0]
    frontend["AuthMechanism"] = "Tls, Integrated"
    assert _problems(hosts) == []


def test_an_edge_receives_for_its_organisation_when_it_is_a_lab_host() -> None:
    hosts = _hosts()
    mail03 = hosts["MAIL03"]
    _connector(mail03, "Partner Fabrikam")["DomainSecureEnabled"] = True
    mail03["transport_config"].update(TLSSendDomainSecureList=["fabrikam.com"],
                                      TLSReceiveDomainSecureList=["fabrikam.com"])
    # EDGE01 is not a lab host here: its receive side is unknown, so not reported as missing.
    assert _problems(hosts) == []
    hosts["EDGE01"] = {"receive_connectors": [{"Identity": "EDGE01\\Default internal receive connector EDGE01",
                                               "Name": "Default internal receive connector EDGE01",
                                               "AuthMechanism": "Tls, ExchangeServer", "DomainSecureEnabled": False}]}
    assert _problems(hosts) == ["MAIL03: mutual TLS with fabrikam.com through 'Partner Fabrikam' cannot work: "
                                "no receive connector has DomainSecureEnabled with Tls"]
    hosts["EDGE01"]["receive_connectors"][0]["DomainSecureEnabled"] = True
    assert _problems(hosts) == []


def test_the_shipped_smtp_tls_playbook_leaves_mutual_tls_working(demo_inventory: Inventory) -> None:
    lab = load_lab()
    run = apply(load_playbook(ROOT / "playbooks" / "smtp-tls.yml"), demo_inventory, lab=lab)
    assert {o.status.value for o in run.outcomes if "partner" in o.control} <= {"fixed", "compliant"}
    hosts = {name: host.state for name, host in lab.hosts.items()}
    assert _problems(hosts) == []
    assert all(_connector(hosts[h], "Partner Fabrikam")["DomainSecureEnabled"] for h in hosts)
