"""Domain Security (mutual TLS) through the engine on the lab: a partner control ends fixed only
when mutual TLS can work as far as the host can tell, and otherwise says what is missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hardening import Playbook, apply, check, load_lab
from hardening.errors import PlaybookError
from hardening.history import HistoryStore
from hardening.rollback import rollback

from .conftest import lab_host, outcomes, write_inventory, write_playbook, writes

RECEIVE_SIDE = """\
  - id: receive-side
    title: The internet receive connector accepts mutual TLS
    receive_connector_tls:
      select: {usage: internet, role: frontend}
      domain_secure_enabled: true
"""
PARTNER = """\
  - id: partner-domain-security
    title: The partner connector uses Domain Security
    send_connector_tls:
      select: {name: Partner Fabrikam}
      domain_secure_enabled: true
      domain_secure_domains: [fabrikam.com]
"""


def _playbook(tmp_path: Path, *controls: str) -> Playbook:
    return write_playbook(tmp_path, "name: t\nhosts: all\ncontrols:\n" + "".join(controls))


def test_without_a_receive_side_apply_writes_the_rest_and_fails_saying_what_is_missing(tmp_path: Path) -> None:
    lab = load_lab()
    inventory = write_inventory(tmp_path, ["MAIL02"])
    playbook = _playbook(tmp_path, PARTNER)

    drift = outcomes(check(playbook, inventory, lab=lab))[("MAIL02", "partner-domain-security")]
    assert drift.status.value == "drifted"
    assert drift.message.startswith("ReceiveConnectors.DomainSecure: none when read; needs at least one receive "
                                    "connector with DomainSecureEnabled True and Tls in AuthMechanism")

    run = apply(playbook, inventory, lab=lab)
    outcome = outcomes(run)[("MAIL02", "partner-domain-security")]
    assert outcome.status.value == "failed"
    assert outcome.message.startswith("written, but the re-read does not match: ReceiveConnectors.DomainSecure: "
                                      "none when read; needs at least one receive connector")
    assert run.exit_code == 2
    host = lab_host(lab, "MAIL02")
    assert writes(host) == ["Set-SendConnector", "Set-TransportConfig"]  # recorded as written, with before/after
    assert outcome.after["TransportConfig"]["TLSSendDomainSecureList"] == ["fabrikam.com"]

    again = outcomes(apply(playbook, inventory, lab=lab))[("MAIL02", "partner-domain-security")]
    assert again.status.value == "failed"
    assert "no receive connector of the organisation has DomainSecureEnabled True" in again.message


def test_the_receive_side_set_earlier_in_the_same_run_lets_the_partner_control_end_fixed(tmp_path: Path) -> None:
    lab = load_lab()
    inventory = write_inventory(tmp_path, ["MAIL01", "MAIL02"])
    run = apply(_playbook(tmp_path, RECEIVE_SIDE, PARTNER), inventory, lab=lab)
    assert {k: o.status.value for k, o in outcomes(run).items()} == {
        (h, c): "fixed" for h in ("MAIL01", "MAIL02") for c in ("receive-side", "partner-domain-security")}
    # MAIL01's organisation already had another partner in both lists: kept.
    config = lab_host(lab, "MAIL01").state["transport_config"]
    assert config["TLSSendDomainSecureList"] == ["tailspintoys.com", "fabrikam.com"]
    assert config["TLSReceiveDomainSecureList"] == ["tailspintoys.com", "fabrikam.com"]


def test_an_edge_subscription_stands_for_the_receive_side(tmp_path: Path) -> None:
    lab = load_lab()
    inventory = write_inventory(tmp_path, ["MAIL03"])
    outcome = outcomes(apply(_playbook(tmp_path, PARTNER), inventory, lab=lab))[("MAIL03", "partner-domain-security")]
    assert outcome.status.value == "fixed", outcome.message
    assert outcome.after["ReceiveConnectors"]["DomainSecure"] == [
        "EDGE01 (Edge subscription: its receive connectors are not read from here)"]


def test_a_wildcard_partner_domain_is_refused_with_file_and_line_before_anything_is_sent(tmp_path: Path) -> None:
    literal = PARTNER.replace("[fabrikam.com]", "['*.fabrikam.com']")
    with pytest.raises(PlaybookError) as info:
        _playbook(tmp_path, literal)
    assert re.search(r"playbook\.yml:9:\d+: controls\[0\]\.send_connector_tls\.domain_secure_domains\[0\]: "
                     r"'\*\.fabrikam\.com': Domain Security \(mutual TLS\) needs each partner domain by its exact name",
                     str(info.value)), str(info.value)

    # From a variable, it is refused when the control is rendered for the host: still before anything is sent.
    lab = load_lab()
    inventory = write_inventory(tmp_path, ["MAIL01"], extra="vars: {partner: '*'}")
    playbook = _playbook(tmp_path, PARTNER.replace("[fabrikam.com]", "['{{ partner }}']"))
    with pytest.raises(PlaybookError) as info:
        check(playbook, inventory, lab=lab)
    assert "playbook.yml:9:" in str(info.value) and "'*': Domain Security (mutual TLS)" in str(info.value)
    assert lab_host(lab, "MAIL01").received == []


def test_a_rollback_restores_the_connector_keeps_the_lists_and_does_not_fail_on_the_receive_side(
        tmp_path: Path) -> None:
    lab = load_lab()
    inventory = write_inventory(tmp_path, ["MAIL01"])
    store = HistoryStore(tmp_path / "history.sqlite")
    applied = apply(_playbook(tmp_path, RECEIVE_SIDE, PARTNER), inventory, lab=lab)
    store.record(applied)
    run, refusals = rollback(store, applied.run_id, inventory, control="partner-domain-security", lab=lab)
    assert refusals == [] and run is not None
    [outcome] = run.outcomes
    assert outcome.status.value == "fixed", outcome.message
    host = lab_host(lab, "MAIL01")
    partner = next(c for c in host.state["send_connectors"] if c["Name"] == "Partner Fabrikam")
    assert partner["DomainSecureEnabled"] is False
    # The lists compare as "holds at least": a rollback does not remove what the control added.
    assert host.state["transport_config"]["TLSSendDomainSecureList"] == ["tailspintoys.com", "fabrikam.com"]
