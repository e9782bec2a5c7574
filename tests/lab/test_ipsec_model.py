"""The lab's IPsec model: the moments a write passes through, the main mode SAs, and what the
rules break in the organisation (``ipsec-window``, ``domain-controllers``, ``management``).

The model is the lab's own reading of Windows, not the kind's: these tests feed it writes (the
kind's today, and the create-then-narrow one it sent before issue 10) and states, and read what
it says breaks."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hardening.lab import load_lab
from hardening.lab.models import SCRIPTS, LabScriptError
from hardening.lab.models.ipsec import ipsec_findings

DCS = {"DC01": "10.0.20.1", "DC02": "10.0.20.2"}
ADDRESSES = {"MAIL01": "10.0.10.11", "MAIL02": "10.0.10.12"}
NETWORKS = {"admin": "10.0.50.0/24", "controller": "10.0.50.10"}
WRITE = SCRIPTS[("ipsec_rule", "write")]
READ = SCRIPTS[("ipsec_rule", "read")]
PHASE1 = {"set": "hardening-dc-ldap-phase1", "display_name": "hardening-dc-ldap-phase1 (hardening)", "exists": False,
          "proposals": [{"method": "MachineKerberos"}]}
QUICKMODE = {"set": "hardening-dc-ldap-quickmode", "display_name": "hardening-dc-ldap-quickmode (hardening)",
             "exists": False, "pfs": "DH19", "proposals": [
                 {"encapsulation": "ESP", "encryption": "AESGCM256", "esp_hash": "AESGMAC256", "ah_hash": "None"}]}
# What ipsec_rule sent to a host without the rule before issue 10 (tests/kinds/ipsec_rule/absent-created.json
# at dadc5c7, with the demo's DC addresses): a rule with no protocol or port filter, narrowed after.
OLD_CREATE_THEN_NARROW = {
    "name": "hardening-dc-ldap", "phase1": PHASE1, "quickmode": QUICKMODE,
    "create": {"display_name": "hardening: LDAP and Global Catalog to the domain controllers",
               "inbound_security": "Request", "outbound_security": "Request", "key_module": "Default", "profile": "Any",
               "local_addresses": ["Any"], "remote_addresses": ["10.0.20.1", "10.0.20.2"],
               "phase1_auth_set": "hardening-dc-ldap-phase1", "enabled": "True"},
    "steps": [{"property": "Protocol", "value": "TCP"},
              {"property": "RemotePort", "value": ["389", "636", "3268", "3269"]},
              {"property": "QuickModeCryptoSet", "value": "hardening-dc-ldap-quickmode"}]}
# What it sends now (tests/kinds/ipsec_rule/absent-created.json): everything in the creating call.
CREATE_WHOLE = {
    "name": "hardening-dc-ldap", "phase1": PHASE1, "quickmode": QUICKMODE, "steps": [],
    "create": {"display_name": "hardening: LDAP and Global Catalog to the domain controllers", "enabled": "True",
               "key_module": "Default", "inbound_security": "Request", "outbound_security": "Request",
               "profile": "Any", "protocol": "TCP", "local_ports": ["Any"],
               "remote_ports": ["389", "636", "3268", "3269"], "local_addresses": ["Any"],
               "remote_addresses": ["10.0.20.1", "10.0.20.2"], "phase1_auth_set": "hardening-dc-ldap-phase1",
               "quick_mode_crypto_set": "hardening-dc-ldap-quickmode"}}


def _state(host: str = "MAIL01") -> dict[str, Any]:
    found = load_lab().host(host)
    assert found is not None
    return copy.deepcopy(found.state)


def _findings(state: dict[str, Any], host: str = "MAIL01", ports: tuple[int, ...] = (5985,)) -> list[tuple[str, str]]:
    return ipsec_findings(host, state, DCS, ADDRESSES, NETWORKS, ports)


def _rule(**values: Any) -> dict[str, Any]:
    rule = {"name": "r", "display_name": "r", "enabled": True, "mode": "Transport", "inbound_security": "Request",
            "outbound_security": "Request", "key_module": "Default", "protocol": "TCP", "local_ports": ["Any"],
            "remote_ports": ["389"], "local_addresses": ["Any"], "remote_addresses": ["10.0.20.1", "10.0.20.2"],
            "profile": "Any", "phase1_auth_set": "", "quick_mode_crypto_set": "", "source": "Local"}
    rule.update(values)
    return rule


def test_the_old_create_then_narrow_write_is_an_ipsec_window() -> None:
    state = _state()
    WRITE(state, OLD_CREATE_THEN_NARROW)
    (trace,) = state["ipsec"]["writes"]
    assert [m["protocol"] for m in trace["moments"]] == ["Any", "TCP", "TCP", "TCP"]
    (finding,) = _findings(state)
    assert finding[0] == "ipsec-window"
    assert finding[1] == ("while hardening-dc-ldap was written it requested IPsec for traffic that neither the rule "
                          "before nor the rule after the write asks it of: Kerberos (TCP 88, UDP 88); DNS (TCP 53, "
                          "UDP 53); WinRM (TCP 5985); WinRM over HTTPS (TCP 5986) and 7 more services, with DC01 "
                          "(10.0.20.1), DC02 (10.0.20.2); for a moment that traffic needed IPsec")


def test_the_rule_created_whole_is_no_window() -> None:
    state = _state()
    WRITE(state, CREATE_WHOLE)
    (trace,) = state["ipsec"]["writes"]
    assert trace["before"] is None and len(trace["moments"]) == 1
    assert _findings(state) == []


def test_a_write_that_fails_part_way_is_recorded_with_its_error() -> None:
    state = _state()
    broken = copy.deepcopy(OLD_CREATE_THEN_NARROW)
    broken["steps"][1]["value"] = ["not-a-port"]
    with pytest.raises(LabScriptError, match="The port 'not-a-port' is invalid"):
        WRITE(state, broken)
    (trace,) = state["ipsec"]["writes"]
    assert trace["error"].startswith("The port 'not-a-port' is invalid")
    # The rule stays as the failed write left it (TCP to every port of the DCs); its first moment, every
    # protocol, was broader than that.
    assert trace["moments"][-1]["protocol"] == "TCP" and trace["moments"][-1]["remote_ports"] == ["Any"]
    assert [what for what, _ in _findings(state)] == ["ipsec-window"]


def test_a_set_call_takes_all_its_parameters_or_none() -> None:
    state = _state()
    WRITE(state, CREATE_WHOLE)
    scope = {"call": "scope", "key_module": "Default", "phase1_auth_set": "hardening-dc-ldap-phase1",
             "inbound_security": "Require", "outbound_security": "Request", "profile": "Any", "protocol": "Any",
             "local_ports": ["Any"], "remote_ports": ["389"], "local_addresses": ["Any"], "remote_addresses": ["Any"]}
    with pytest.raises(LabScriptError, match="only valid with the TCP or UDP protocol"):
        WRITE(state, {"name": "hardening-dc-ldap", "phase1": None, "quickmode": None, "create": None,
                      "steps": [scope]})
    (rule,) = state["ipsec"]["rules"]
    assert (rule["inbound_security"], rule["remote_addresses"]) == ("Request", ["10.0.20.1", "10.0.20.2"])


def test_main_mode_sas_form_with_negotiating_peers_a_rule_asks_ipsec_of() -> None:
    state = _state()
    query = {"name": "hardening-dc-ldap", "phase1_set": "x", "quickmode_set": None, "resolve": [], "sa": True}
    assert READ(state, query)["main_mode_peers"] == []
    WRITE(state, CREATE_WHOLE)
    assert READ(state, query)["main_mode_peers"] == ["10.0.20.1"]  # DC01 negotiates, DC02 does not
    assert READ(state, {**query, "sa": False})["main_mode_peers"] is None
    state["ipsec"]["rules"][0]["enabled"] = False
    assert READ(state, query)["main_mode_peers"] == []


def test_require_towards_a_dc_that_does_not_negotiate_drops_its_traffic() -> None:
    state = _state()
    state["ipsec"]["rules"] = [_rule(outbound_security="Require", remote_ports=["389", "636"])]
    assert _findings(state) == [("domain-controllers", "MAIL01 requires IPsec with DC02 (10.0.20.2) for TCP 389, "
                                 "TCP 636, and DC02 does not negotiate IPsec with it: that traffic to the domain "
                                 "controller is dropped")]
    state["ipsec"]["negotiating_peers"].append("10.0.20.2")
    assert _findings(state) == []


def test_request_breaks_nothing() -> None:
    state = _state()
    state["ipsec"]["rules"] = [_rule(protocol="Any", remote_ports=["Any"], remote_addresses=["Any"])]
    assert _findings(state) == []


def test_require_by_kerberos_on_kerberos_itself_cannot_authenticate() -> None:
    state = _state()
    state["ipsec"]["rules"] = [_rule(outbound_security="Require", protocol="Any", remote_ports=["Any"],
                                     remote_addresses=["10.0.20.1"])]
    assert _findings(state) == [("domain-controllers", "MAIL01 requires IPsec, authenticated by Kerberos, for "
                                 "Kerberos itself (UDP 88, TCP 88) with DC01 (10.0.20.1): the Kerberos ticket that "
                                 "authentication needs cannot be fetched")]
    state["ipsec"]["phase1_auth_sets"]["cert"] = {"source": "Local", "proposals": [
        {"method": "MachineCert", "authority": "CN=CA", "authority_type": "Root"}]}
    state["ipsec"]["rules"][0]["phase1_auth_set"] = "cert"
    assert _findings(state) == []


def test_inbound_require_on_the_management_port_loses_management() -> None:
    state = _state()
    state["ipsec"]["rules"] = [_rule(inbound_security="Require", local_ports=["15985"], remote_ports=["Any"],
                                     remote_addresses=["10.0.50.0/24"])]
    assert _findings(state, ports=(5985,)) == []
    assert _findings(state, ports=(15985,)) == [("management", "MAIL01 requires IPsec inbound on TCP 15985, the port "
                                                 "hardening manages it through, from the controller 10.0.50.10, "
                                                 "which does not negotiate IPsec: management is lost")]


def test_the_demo_scenario_breaks_nothing_as_shipped() -> None:
    lab = load_lab()
    for name, host in lab.hosts.items():
        assert ipsec_findings(name, host.state, DCS, ADDRESSES, NETWORKS, (5985,)) == [], name
