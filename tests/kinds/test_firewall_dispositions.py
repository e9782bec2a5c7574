"""What firewall_allowlist's exact mode does with each other rule, and why (the JSON cases show the
writes; these show the reasons the outcome gives, and the order in which the rules apply)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hardening.facts import Facts
from hardening.kinds import KINDS, Context
from hardening.kinds.firewall import FirewallAllowlistParams, disposition, is_cluster_node

from .test_cases import DEFAULT_FACTS

CASES = Path(__file__).resolve().parent / "firewall_allowlist"
PARAMS = FirewallAllowlistParams.model_validate({
    "exchange_servers": ["10.0.10.11"], "domain_controllers": ["10.0.20.1"],
    "disable_groups": ["Remote Desktop", "Failover Clusters"]})


def _rule(name: str, group: str = "", display_group: str | None = None) -> dict[str, Any]:
    return {"name": name, "display_name": name, "group": group,
            "display_group": group if display_group is None else display_group}


@pytest.mark.parametrize(("rule", "node", "disable", "why"), [
    (_rule("FailoverClustering-NetFt-UDP-In", "@clusres.dll,-1", "Failover Clusters"), True, False,
     "Failover Clusters rule on a cluster node (DAG member)"),
    (_rule("FailoverClustering-NetFt-UDP-In", "@clusres.dll,-1", "Failover Clusters"), False, True,
     "group Failover Clusters is named in disable_groups"),
    (_rule("CoreNet-DHCP-In", "Remote Desktop"), False, False, "matches keep 'CoreNet-*'"),  # keep wins over a name
    (_rule("hardening-transport", "hardening"), False, True, "made by hardening and no longer wanted"),
    (_rule("RemoteDesktop-UserMode-In-TCP", "@FirewallAPI.dll,-28752", "Remote Desktop"), False, True,
     "group Remote Desktop is named in disable_groups"),
    (_rule("Allow all TCP"), False, True, "in no rule group (made by hand or by a script)"),
    (_rule("Contoso Backup Agent (TCP-In)", "Contoso Backup Agent"), False, False,
     "group Contoso Backup Agent is not named in disable_groups"),
    (_rule("FPS-SMB-In-TCP", "@FirewallAPI.dll,-28502", "File and Printer Sharing"), False, False,
     "group File and Printer Sharing is not named in disable_groups"),
])
def test_each_rule_s_fate_and_reason(rule: dict[str, Any], node: bool, disable: bool, why: str) -> None:
    verdict = disposition(rule, PARAMS, node)
    assert (verdict.disable, verdict.why) == (disable, why)


def test_rules_in_no_group_stay_when_told() -> None:
    params = PARAMS.model_copy(update={"disable_ungrouped": False})
    assert disposition(_rule("Allow all TCP"), params, False).disable is False


@pytest.mark.parametrize(("cluster", "rules", "node"), [
    ({"installed": True, "status": "Running"}, [], True),
    ({"installed": True, "status": "Stopped"}, [_rule("x", "Failover Clusters")], True),
    ({"installed": True, "status": "Stopped"}, [], False),
    ({"installed": False, "status": ""}, [], False),
    (None, [], False),
    ({"installed": "False", "status": ""}, [_rule("x", "@clusres.dll,-1", "Failover Clusters")], True),
])
def test_a_cluster_node_is_what_the_host_reports(cluster: dict[str, Any] | None, rules: list[dict[str, Any]],
                                                 node: bool) -> None:
    assert is_cluster_node(cluster, rules, ["Failover Clusters"]) is node


def _observe(case: str) -> dict[str, Any]:
    data = json.loads((CASES / f"{case}.json").read_text(encoding="utf-8"))
    kind = KINDS["firewall_allowlist"]
    params = kind.params_model.model_validate(data["params"])
    facts = Facts.from_mapping({**DEFAULT_FACTS, **data.get("facts", {})})
    variant = kind.variant_for(facts)
    assert not isinstance(variant, str)
    state: dict[str, Any] = kind.observe(params, Context(data.get("host", "MAIL01"), facts, variant), data["values"])
    return state["inbound allow rules"]


def test_the_outcome_names_every_rule_left_alone_with_its_reason() -> None:
    rules = _observe("groups-not-owned-untouched")
    kept = {e["name"]: e["why"] for e in rules["Kept"]}
    assert kept["Contoso Backup Agent (TCP-In)"] == "group Contoso Backup Agent is not named in disable_groups"
    assert kept["Contoso Monitoring Agent (SNMP-In)"] == "group Contoso Monitoring Agent is not named in disable_groups"
    assert kept["FPS-SMB-In-TCP"] == "group File and Printer Sharing is not named in disable_groups"
    assert kept["RemoteDesktop-UserMode-In-TCP"] == "group Remote Desktop is not named in disable_groups"
    assert kept["CoreNet-DHCP-In"] == "matches keep 'CoreNet-*'"
    assert [e["name"] for e in rules["Others"]] == ["Allow all TCP"]


def test_the_outcome_says_whether_the_host_is_a_cluster_node() -> None:
    assert _observe("dag-member-keeps-cluster-rules")["Cluster"] == \
        "cluster node (DAG member): ClusSvc Running, 4 clustering rules"
    assert _observe("not-a-cluster-node")["Cluster"] == "not a cluster node: no ClusSvc service, 0 clustering rules"
