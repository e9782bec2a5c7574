"""Require waits for the peers to negotiate, through the engine on the lab (the staged rollout an
administrator would do by hand: Request first, look at the main mode SAs, then Require).

The demo's DC01 (10.0.20.1) negotiates IPsec with every mail server; DC02 (10.0.20.2) does not.
On MAIL01, which has no rule: the first apply creates the rule at Request and fails naming DC02;
a second apply writes nothing and fails the same way; once DC02 negotiates, the next apply moves
the rule to Require (fixed) and the one after finds it compliant. ``require_without_negotiation``
writes Require at once. Every write passes only through rules no broader than the desired one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hardening import apply as apply_run
from hardening import check, load_lab
from hardening.lab import Lab

from .conftest import lab_host, outcomes, write_inventory, write_playbook, writes

PLAYBOOK = """\
name: LDAP to the domain controllers, required outbound
hosts: all
controls:
  - id: ipsec-dc-require
    title: LDAP to the domain controllers requires IPsec outbound
    ipsec_rule:
      name: hardening-dc-require
      remote_addresses: [dc01.contoso.com, dc02.contoso.com]
      protocol: TCP
      remote_ports: [389, 636]
      inbound_security: Request
      outbound_security: Require{extra}
"""
KEY = ("MAIL01", "ipsec-dc-require")
DC02_PENDING = "Require is held back: no main mode SA with dc02.contoso.com (10.0.20.2); the rule stays at Request"


def _rule(lab: Lab, name: str = "hardening-dc-require") -> dict[str, Any]:
    return next(r for r in lab_host(lab, "MAIL01").state["ipsec"]["rules"] if r["name"] == name)


def test_require_waits_for_every_peer_then_follows(tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path, PLAYBOOK.format(extra=""))
    inventory = write_inventory(tmp_path, ["MAIL01"])
    lab = load_lab()

    seen = outcomes(check(playbook, inventory, lab=lab))[KEY]
    assert seen.status.value == "drifted"
    assert seen.message.startswith("ipsec rule hardening-dc-require.RequirePreflight: the rule does not exist yet: "
                                   "it is created at Request"), seen.message

    first = apply_run(playbook, inventory, lab=lab)
    outcome = outcomes(first)[KEY]
    assert outcome.status.value == "failed" and first.exit_code == 2
    assert DC02_PENDING in outcome.message, outcome.message
    assert "OutboundSecurity is Request, should be Require" in outcome.message
    rule = _rule(lab)
    assert (rule["inbound_security"], rule["outbound_security"], rule["remote_ports"]) == ("Request", "Request",
                                                                                        ["389", "636"])
    (trace,) = lab_host(lab, "MAIL01").state["ipsec"]["writes"]
    assert trace["before"] is None and len(trace["moments"]) == 1, "created in one call, nothing after"

    mark = len(lab_host(lab, "MAIL01").received)
    second = outcomes(apply_run(playbook, inventory, lab=lab))[KEY]
    assert second.status.value == "failed"
    assert second.message.startswith(f"not changed on MAIL01: {DC02_PENDING}"), second.message
    assert writes(lab_host(lab, "MAIL01"), mark) == [], "a held Require writes nothing"

    lab_host(lab, "MAIL01").state["ipsec"]["negotiating_peers"].append("10.0.20.2")  # DC02 gets its policy
    third = apply_run(playbook, inventory, lab=lab)
    assert outcomes(third)[KEY].status.value == "fixed", outcomes(third)[KEY].message
    assert _rule(lab)["outbound_security"] == "Require"
    last = check(playbook, inventory, lab=lab)
    assert outcomes(last)[KEY].status.value == "compliant" and last.exit_code == 0


def test_require_without_negotiation_writes_require_at_once(tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path, PLAYBOOK.format(extra="\n      require_without_negotiation: true"))
    inventory = write_inventory(tmp_path, ["MAIL01"])
    lab = load_lab()
    run = apply_run(playbook, inventory, lab=lab)
    assert outcomes(run)[KEY].status.value == "fixed", outcomes(run)[KEY].message
    assert _rule(lab)["outbound_security"] == "Require"
    sent = [data for name, data in lab_host(lab, "MAIL01").received if name == "ipsec_rule.read"]
    assert sent and all(data["sa"] is False for data in sent), "the SAs are not read when nothing waits for them"


def test_a_hand_made_broad_rule_is_narrowed_before_it_is_widened(tmp_path: Path) -> None:
    """MAIL02's rule asks IPsec of every protocol and port to the DCs: the first call narrows it
    to TCP 389/636 at the security it has, the second raises inbound to Request."""
    playbook = write_playbook(tmp_path, PLAYBOOK.format(extra="").replace("hardening-dc-require", "hardening-dc-ldap")
                              .replace("outbound_security: Require", "outbound_security: Request"))
    inventory = write_inventory(tmp_path, ["MAIL02"])
    lab = load_lab()
    run = apply_run(playbook, inventory, lab=lab)
    assert outcomes(run)[("MAIL02", "ipsec-dc-require")].status.value == "fixed"
    (trace,) = lab_host(lab, "MAIL02").state["ipsec"]["writes"]
    shapes = [(m["protocol"], m["remote_ports"], m["inbound_security"], m["outbound_security"])
              for m in (trace["before"], *trace["moments"])]
    assert shapes == [("Any", ["Any"], "None", "Request"), ("TCP", ["389", "636"], "None", "Request"),
                      ("TCP", ["389", "636"], "Request", "Request")]
