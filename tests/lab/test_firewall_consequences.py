"""The firewall family's rehearsal model (``hardening.lab.models.firewall``): Windows Firewall's
inbound decision as the lab models it, and what the organisation loses when a host's firewall
refuses traffic it needs. Each consequence has a state that breaks it and one that does not; the
evaluation's precedence rules (block over allow, allow over the default, a profile switched off,
Group Policy's profile, programs, address keywords) each have a case of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from hardening.lab.models.common import Dag, Organization
from hardening.lab.models.firewall import SECTIONS, consequences, inbound_verdict, required_flows

BACKUP_EXE = "C:\\Program Files\\Contoso\\Backup\\cbagent.exe"
ORG = Organization(
    addresses={"MAIL01": "10.0.10.11", "MAIL02": "10.0.10.12", "MAIL03": "10.0.10.13", "EDGE01": "192.0.2.25"},
    networks={"admin": "10.0.50.0/24", "controller": "10.0.50.10", "backup": "10.0.60.5",
              "clients": "10.0.30.0/24", "internet": "203.0.113.50"},
    domain_controllers={"DC01": "10.0.20.1"},
    dags=(Dag("DAG1", ("MAIL01", "MAIL02"), "MAIL03"),),
    management_ports={"MAIL01": (5986, 80), "MAIL02": (15985, 80), "MAIL03": (5986, 80), "EDGE01": (5986,)},
)
MAILBOX_LISTENERS = [{"port": 443, "process": "System"}, {"port": 587, "process": "MSExchangeFrontendTransport"},
                     {"port": 445, "process": "System"}, {"port": 3389, "process": "svchost"},
                     {"port": 10000, "process": "cbagent"}, {"port": 80, "process": "System"}]
PEERS = ["10.0.10.11", "10.0.10.12", "10.0.10.13", "10.0.20.1"]


def _rule(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, **kw}


def _good_rules(winrm: int = 5986) -> list[dict[str, Any]]:
    """What the shipped allow-list leaves on a Mailbox server: every needed flow gets in."""
    return [
        _rule("hardening-https", protocol="TCP", local_ports=[443]),
        _rule("hardening-submission", protocol="TCP", local_ports=[587]),
        _rule("hardening-http", protocol="TCP", local_ports=[80]),
        _rule("hardening-exchange-peers", protocol="Any", remote_addresses=PEERS),
        _rule("hardening-management", protocol="TCP", local_ports=[80, winrm], remote_addresses=["10.0.50.0/24"]),
        _rule("hardening-rdp-admin", protocol="TCP", local_ports=[3389], remote_addresses=["10.0.50.0/24"]),
        _rule("Contoso Backup Agent (TCP-In)", group="Contoso Backup Agent", protocol="TCP", local_ports=[10000],
              remote_addresses=["10.0.60.5"], program=BACKUP_EXE),
    ]


def _state(name: str, rules: list[dict[str, Any]], listeners: list[dict[str, Any]] | None = None,
           roles: tuple[str, ...] = ("Mailbox",), **firewall: Any) -> dict[str, Any]:
    spec = SECTIONS["firewall"].annotation.model_validate(
        {"rules": rules, "listeners": MAILBOX_LISTENERS if listeners is None else listeners, **firewall})
    return {"address": ORG.addresses[name], "exchange": {"roles": list(roles)},
            "firewall": SECTIONS["firewall"].build(spec, SimpleNamespace(computer_name=name))}


def _hosts() -> dict[str, dict[str, Any]]:
    return {
        "MAIL01": _state("MAIL01", _good_rules()),
        "MAIL02": _state("MAIL02", _good_rules(15985), [*MAILBOX_LISTENERS, {"port": 15985, "process": "System"}]),
        "MAIL03": _state("MAIL03", _good_rules()),
        "EDGE01": _state("EDGE01", [
            _rule("hardening-smtp", protocol="TCP", local_ports=[25]),
            _rule("hardening-edgesync", protocol="TCP", local_ports=[50636],
                  remote_addresses=["10.0.10.11", "10.0.10.12", "10.0.10.13"]),
            _rule("hardening-management", protocol="TCP", local_ports=[5986], remote_addresses=["10.0.50.10"]),
            _rule("hardening-rdp-admin", protocol="TCP", local_ports=[3389], remote_addresses=["10.0.50.0/24"])],
            [{"port": 25, "process": "EdgeTransport"}, {"port": 50636, "process": "dsamain"},
             {"port": 3389, "process": "svchost"}, {"port": 5986, "process": "System"}],
            roles=("EdgeTransport",), network_profile="Public"),
    }


def _broken(hosts: dict[str, dict[str, Any]]) -> dict[tuple[str, str], str]:
    """Each (host, what) with its sentences, one per source, in one text."""
    out: dict[tuple[str, str], str] = {}
    for b in consequences(ORG, hosts):
        out[(b.host, b.what)] = f"{out[(b.host, b.what)]}\n{b.sentence}" if (b.host, b.what) in out else b.sentence
    return out


def test_the_shipped_allow_list_state_breaks_nothing() -> None:
    hosts = _hosts()
    assert required_flows(ORG, hosts), "the organisation needs traffic: otherwise this proves nothing"
    assert _broken(hosts) == {}


def _without(host: str, rule: str) -> Callable[[dict[str, dict[str, Any]]], None]:
    def edit(hosts: dict[str, dict[str, Any]]) -> None:
        hosts[host]["firewall"]["rules"] = [r for r in hosts[host]["firewall"]["rules"] if r["name"] != rule]
    return edit


def _narrow_peers_to_tcp(hosts: dict[str, dict[str, Any]]) -> None:
    for rule in hosts["MAIL01"]["firewall"]["rules"]:
        if rule["name"] == "hardening-exchange-peers":
            rule.update(protocol="TCP", local_ports=["135", "49152-65535"])


@pytest.mark.parametrize(("edit", "host", "what", "fragment"), [
    (_without("MAIL02", "hardening-exchange-peers"), "MAIL02", "cluster-heartbeat",
     "MAIL02 refuses MAIL01 (10.0.10.11) on UDP 3343: DAG1's cluster heartbeat blocked"),
    (_without("MAIL03", "hardening-exchange-peers"), "MAIL03", "witness",
     "MAIL03 refuses MAIL01 (10.0.10.11) on TCP 445: DAG1's file share witness blocked"),
    (_without("MAIL02", "hardening-management"), "MAIL02", "management",
     "MAIL02 refuses hardening (10.0.50.10) on TCP 15985: management"),
    (_without("MAIL01", "hardening-rdp-admin"), "MAIL01", "rdp",
     "MAIL01 refuses the admin network (10.0.50.1) on TCP 3389"),
    (_without("MAIL01", "Contoso Backup Agent (TCP-In)"), "MAIL01", "backup",
     "MAIL01 refuses the backup server (10.0.60.5) on TCP 10000: backups (the backup agent) blocked"),
    (_narrow_peers_to_tcp, "MAIL01", "exchange-peers",
     "MAIL01 refuses MAIL02 (10.0.10.12) on TCP 444, TCP 2525, UDP 50000, ICMPv4: traffic between Exchange servers"),
    (_narrow_peers_to_tcp, "MAIL01", "domain-controllers", "MAIL01 refuses DC01 (10.0.20.1) on TCP 444"),
    (_without("EDGE01", "hardening-edgesync"), "EDGE01", "edge-sync",
     "EDGE01 refuses MAIL01 (10.0.10.11) on TCP 50636"),
    (_without("EDGE01", "hardening-smtp"), "EDGE01", "edge-smtp",
     "EDGE01 refuses the internet (203.0.113.50) on TCP 25"),
    (_without("MAIL03", "hardening-https"), "MAIL03", "clients",
     "MAIL03 refuses the clients' network (10.0.30.1) on TCP 443"),
])
def test_each_consequence_has_a_state_that_breaks_it(edit: Callable[[dict[str, dict[str, Any]]], None], host: str,
                                                     what: str, fragment: str) -> None:
    hosts = _hosts()
    edit(hosts)
    broken = _broken(hosts)
    assert (host, what) in broken, broken
    assert fragment in broken[(host, what)]


def test_dag_members_heartbeat_through_windows_own_clustering_rules() -> None:
    hosts = _hosts()
    rules = [r for r in _good_rules(15985) if r["name"] != "hardening-exchange-peers"]
    rules.append(_rule("FailoverClustering-NetFt-UDP-In", display_name="Failover Clusters (UDP-In)",
                       group="Failover Clusters", protocol="UDP", local_ports=[3343], program="System"))
    hosts["MAIL02"] = _state("MAIL02", rules, [*MAILBOX_LISTENERS, {"port": 15985, "process": "System"}])
    broken = _broken(hosts)
    assert ("MAIL02", "cluster-heartbeat") not in broken
    assert ("MAIL02", "exchange-peers") in broken  # the other traffic from MAIL01 is still refused


# --- the inbound decision itself


def _one(rules: list[dict[str, Any]], listeners: list[dict[str, Any]] | None = None, **firewall: Any) -> dict[str, Any]:
    return _state("MAIL01", rules, listeners or [], **firewall)


def test_a_block_rule_wins_over_an_allow_rule() -> None:
    state = _one([_rule("allow 25", protocol="TCP", local_ports=[25]),
                  _rule("block 25", action="Block", protocol="TCP", local_ports=[25], remote_addresses=["Internet"])])
    assert not inbound_verdict(state, "TCP", 25, "203.0.113.50", None).allowed
    assert inbound_verdict(state, "TCP", 25, "10.0.30.1", None).allowed  # the block rule's scope is the internet


def test_allow_rules_win_over_the_default_and_the_default_decides_the_rest() -> None:
    state = _one([_rule("allow 25", protocol="TCP", local_ports=[25])])
    assert inbound_verdict(state, "TCP", 25, "10.0.30.1", None).allowed
    assert not inbound_verdict(state, "TCP", 26, "10.0.30.1", None).allowed
    allowing = _one([], profiles={"Domain": {"default_inbound_action": "Allow"}})
    assert inbound_verdict(allowing, "TCP", 26, "10.0.30.1", None).allowed
    unset = _one([], profiles={"Domain": {"default_inbound_action": "NotConfigured"}})
    assert not inbound_verdict(unset, "TCP", 26, "10.0.30.1", None).allowed  # [I] NotConfigured is Block


def test_a_profile_switched_off_filters_nothing_and_only_the_network_s_profile_counts() -> None:
    off = _one([_rule("block all", action="Block")], profiles={"Domain": {"enabled": False}})
    assert inbound_verdict(off, "UDP", 3343, "10.0.10.12", None).allowed
    public_only = _one([_rule("allow 25 public", protocol="TCP", local_ports=[25], profile="Public")])
    assert not inbound_verdict(public_only, "TCP", 25, "10.0.30.1", None).allowed
    on_public = _one([_rule("allow 25 public", protocol="TCP", local_ports=[25], profile="Public")],
                     network_profile="Public")
    assert inbound_verdict(on_public, "TCP", 25, "10.0.30.1", None).allowed


def test_group_policy_s_profile_setting_is_the_effective_one() -> None:
    state = _one([], profiles={"Domain": {"default_inbound_action": "Allow", "source": "GroupPolicy"}})
    state["firewall"]["profiles"]["Domain"]["default_inbound_action"] = "Block"  # a local write: GPO wins
    assert inbound_verdict(state, "TCP", 26, "10.0.30.1", None).allowed


def test_a_program_rule_admits_only_its_program_s_listener() -> None:
    state = _one([_rule("agent", protocol="TCP", local_ports=[10000], program=BACKUP_EXE)])
    assert inbound_verdict(state, "TCP", 10000, "10.0.60.5", "cbagent").allowed
    assert not inbound_verdict(state, "TCP", 10000, "10.0.60.5", "svchost").allowed
    assert not inbound_verdict(state, "TCP", 10000, "10.0.60.5", None).allowed


@pytest.mark.parametrize(("address", "remote", "allowed"), [
    ("LocalSubnet", "10.0.10.200", True), ("LocalSubnet", "10.0.11.1", False),
    ("Intranet", "10.9.9.9", True), ("Intranet", "203.0.113.50", False),
    ("Internet", "203.0.113.50", True), ("Internet", "192.168.1.1", False),
    ("LocalSubnet4", "10.0.10.7", True), ("LocalSubnet6", "10.0.10.7", False),
    ("10.0.60.0/24", "10.0.60.5", True), ("10.0.60.1-10.0.60.4", "10.0.60.5", False),
    ("DNS", "10.0.20.1", False),  # [I] not modelled: matches nothing
])
def test_address_keywords_as_far_as_the_lab_knows_them(address: str, remote: str, allowed: bool) -> None:
    state = _one([_rule("scoped", protocol="TCP", local_ports=[25], remote_addresses=[address])])
    assert inbound_verdict(state, "TCP", 25, remote, None).allowed is allowed


def test_port_keywords_and_ranges() -> None:
    state = _one([_rule("rpc", protocol="TCP", local_ports=["RPC", "RPCEPMap"]),
                  _rule("range", protocol="UDP", local_ports=["10100-10110"])])
    assert inbound_verdict(state, "TCP", 135, "10.0.10.12", None).allowed
    assert inbound_verdict(state, "TCP", 50000, "10.0.10.12", None).allowed
    assert not inbound_verdict(state, "TCP", 2525, "10.0.10.12", None).allowed
    assert inbound_verdict(state, "UDP", 10105, "10.0.60.5", None).allowed
    assert not inbound_verdict(state, "TCP", 10105, "10.0.60.5", None).allowed  # UDP rule, TCP packet
