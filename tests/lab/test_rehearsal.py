"""The production rehearsal of issue 10: the shipped baseline, applied to the demo organisation
with the demo inventory's site values, breaks nothing the lab's models know about (DAG heartbeat
and witness, mail flow under quota, backups, monitoring, management access, traffic to the domain
controllers, POP/IMAP clients, partner TLS); and each unsafe behaviour a playbook can still ask
for explicitly is caught by the rehearsal, so the empty list above is a check that can fail.

The models are the lab's own reading of Windows and Exchange behaviour (hardening.lab.models),
written apart from the kinds' decision code; see hardening/lab/rehearsal.py for what that proves.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hardening import apply, check, load_inventory, load_lab, load_playbook
from hardening.inventory import Inventory
from hardening.lab import Lab
from hardening.lab.rehearsal import breakage, organization
from hardening.model import Status

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
DEMO_INVENTORY = ROOT / "hardening" / "lab" / "scenarios" / "demo-inventory.yml"


@pytest.fixture
def inventory() -> Inventory:
    return load_inventory(DEMO_INVENTORY)


def _broken(lab: Lab, inventory: Inventory) -> list[str]:
    return [str(b) for b in breakage(lab, organization(lab, inventory))]


def test_the_demo_starts_with_what_its_drifted_firewalls_refuse(inventory: Inventory) -> None:
    """Before any apply the drifted hosts' firewalls refuse some of the domain controllers' traffic
    (only Windows' default rules admit it): the rehearsal reports it, and the baseline's peers rule
    is what lets it in again (next test)."""
    before = _broken(load_lab(), inventory)
    assert any(b.startswith("MAIL01: domain-controllers: MAIL01 refuses DC01 (10.0.20.1)") for b in before), before


def test_the_shipped_baseline_breaks_nothing_and_ends_compliant_but_for_what_a_guard_holds(
        inventory: Inventory) -> None:
    lab = load_lab()
    baseline = load_playbook(PLAYBOOKS / "baseline.yml")
    run = apply(baseline, inventory, lab=lab)
    assert run.exit_code == 3 and run.summary["fixed"] > 0 and run.summary["failed"] == 0
    assert _broken(lab, inventory) == []
    after = check(baseline, inventory, lab=lab)
    rest = [(o.host, o.control, o.status) for o in after.outcomes if o.status is not Status.COMPLIANT]
    # MAIL01's DB01 is Unlimited with mailboxes of 14 GB and 9.5 GB: the quota is held, not lowered.
    assert rest == [("MAIL01", "mailbox-database-quotas", Status.DRIFTED)]
    [held] = [o for o in after.outcomes if o.status is Status.DRIFTED]
    assert held.held and len(held.held) == len(held.changes)
    assert "not lowered without allow_lower" in held.message and "Alice Wood 14 GB" in held.message


def test_the_opt_in_ipsec_and_fsrm_playbooks_break_nothing_either(inventory: Inventory) -> None:
    lab = load_lab()
    apply(load_playbook(PLAYBOOKS / "baseline.yml"), inventory, lab=lab)
    for name in ("ipsec.yml", "fsrm.yml"):
        run = apply(load_playbook(PLAYBOOKS / name), inventory, lab=lab)
        assert run.summary["failed"] == 0, (name, [o.message for o in run.outcomes if o.status is Status.FAILED])
    assert _broken(lab, inventory) == []


def _playbook(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "unsafe.yml"
    path.write_text("name: asks for the unsafe behaviour\nhosts: all\ncontrols:\n" + body, encoding="utf-8")
    return path


# Each case: a playbook that explicitly asks for what the baseline no longer does, the hosts it
# runs on, and a (host, what) pair the rehearsal must then report.
UNSAFE = {
    "quota lowered under the mailboxes (allow_lower)": (
        "  - id: mdb\n    title: t\n    mailbox_database_quota: {issue_warning_quota: 7.5GB,"
        " prohibit_send_quota: 9GB, prohibit_send_receive_quota: 10GB, allow_lower: true}\n",
        "MAIL01", ("MAIL01", "mail-over-quota")),
    # (the Failover Clusters rules are kept whatever disable_groups says, so the heartbeat survives)
    "firewall leaves the DAG partner out of the Exchange peers": (
        "  - id: fw\n    title: t\n    firewall_allowlist:\n      mode: exact\n      pop3: all\n      imap4: all\n"
        "      exchange_servers: 10.0.10.13, 10.0.10.14\n"
        "      domain_controllers: 10.0.20.1, 10.0.20.2\n      management_ports: 5985,5986\n"
        "      disable_groups: [Failover Clusters]\n"
        "      extra: [{name: rdp-admin, ports: [3389], remote_addresses: 10.0.50.0/24}]\n",
        "MAIL01", ("MAIL01", "exchange-peers")),
    "Remote Desktop disabled with no rule for the administrators": (
        "  - id: fw\n    title: t\n    firewall_allowlist:\n      mode: exact\n      pop3: all\n      imap4: all\n"
        "      exchange_servers: 10.0.10.11, 10.0.10.12, 10.0.10.13, 10.0.10.14\n"
        "      domain_controllers: 10.0.20.1, 10.0.20.2\n      management_ports: 5985,5986\n"
        "      disable_groups: [Remote Desktop]\n      close_listeners: [3389]\n",
        "MAIL03", ("MAIL03", "rdp")),
    "IPsec Required towards a DC that does not negotiate": (
        "  - id: ipsec\n    title: t\n    ipsec_rule:\n      name: hardening-dc-ldap\n"
        "      display_name: dc\n      remote_addresses: 10.0.20.1, 10.0.20.2\n      protocol: TCP\n"
        "      remote_ports: [389, 636, 3268, 3269]\n      inbound_security: Require\n"
        "      outbound_security: Require\n      authentication: kerberos\n"
        "      require_without_negotiation: true\n",
        "MAIL01", ("MAIL01", "domain-controllers")),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_the_rehearsal_catches_each_unsafe_behaviour_a_playbook_asks_for(case: str, tmp_path: Path,
                                                                         inventory: Inventory) -> None:
    body, host, expected = UNSAFE[case]
    lab = load_lab()
    apply(load_playbook(PLAYBOOKS / "baseline.yml"), inventory, lab=lab)
    assert _broken(lab, inventory) == []
    apply(load_playbook(_playbook(tmp_path, body)), inventory, lab=lab, limit=[host])
    found = {(b.host, b.what) for b in breakage(lab, organization(lab, inventory))}
    assert expected in found, found


# Each case: a playbook one step short of the unsafe one above; the kind's guard refuses it with a
# sentence that says what to do, and nothing is written.
GUARDED = {
    "allow-list on an internal Exchange server without its peers": (
        "  - id: fw\n    title: t\n    firewall_allowlist:\n      mode: exact\n      pop3: all\n      imap4: all\n"
        "      domain_controllers: 10.0.20.1, 10.0.20.2\n      management_ports: 5985,5986\n",
        "MAIL01", Status.FAILED, "MAIL01 is an internal Exchange server and exchange_servers is not set"),
    "allow-list that would cut Remote Desktop's listener": (
        "  - id: fw\n    title: t\n    firewall_allowlist:\n      mode: exact\n      pop3: all\n      imap4: all\n"
        "      exchange_servers: 10.0.10.11, 10.0.10.12, 10.0.10.13, 10.0.10.14\n"
        "      domain_controllers: 10.0.20.1, 10.0.20.2\n      management_ports: 5985,5986\n"
        "      disable_groups: [Remote Desktop]\n",
        "MAIL03", Status.FAILED, "the allow-list would cut what listens on TCP 3389 (svchost: TermService) on MAIL03; "
        "nothing was written"),
    "quota under the mailboxes without allow_lower": (
        "  - id: mdb\n    title: t\n    mailbox_database_quota: {issue_warning_quota: 7.5GB,"
        " prohibit_send_quota: 9GB, prohibit_send_receive_quota: 10GB}\n",
        "MAIL01", Status.DRIFTED, "DB01 is not lowered without allow_lower: true on the control"),
    "IPsec Require towards a DC that does not negotiate": (
        "  - id: ipsec\n    title: t\n    ipsec_rule:\n      name: hardening-dc-ldap\n"
        "      display_name: dc\n      remote_addresses: 10.0.20.1, 10.0.20.2\n      protocol: TCP\n"
        "      remote_ports: [389, 636, 3268, 3269]\n      inbound_security: Require\n"
        "      outbound_security: Require\n      authentication: kerberos\n",
        "MAIL01", Status.FAILED, "10.0.20.2"),
}


@pytest.mark.parametrize("case", sorted(GUARDED))
def test_each_guard_refuses_with_its_sentence_and_breaks_nothing(case: str, tmp_path: Path,
                                                                 inventory: Inventory) -> None:
    body, host, status, sentence = GUARDED[case]
    lab = load_lab()
    apply(load_playbook(PLAYBOOKS / "baseline.yml"), inventory, lab=lab)
    run = apply(load_playbook(_playbook(tmp_path, body)), inventory, lab=lab, limit=[host])
    [outcome] = run.outcomes
    assert outcome.status is status and sentence in outcome.message, outcome.message
    assert _broken(lab, inventory) == []


def test_a_windows_server_2003_host_is_not_silently_green(tmp_path: Path) -> None:
    """The guide's own platform has no variant yet (issue 12): the baseline on it ends unsupported
    outcomes and exit code 2, never all not_applicable with exit 0 (what a scheduler reads as
    compliant)."""
    data = yaml.safe_load(DEMO_INVENTORY.read_text(encoding="utf-8"))
    data.pop("lab")
    data["hosts"]["MAIL02"]["facts"] = {"computer_name": "MAIL02", "os_version": "5.2.3790",
                                        "exchange_version": "6.5.7638.1"}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    run = check(load_playbook(PLAYBOOKS / "baseline.yml"), load_inventory(path), lab=load_lab(), limit=["MAIL02"])
    statuses = {o.status for o in run.outcomes}
    assert Status.UNSUPPORTED in statuses and Status.COMPLIANT not in statuses
    assert run.summary["unsupported"] >= 10 and run.exit_code == 2
    assert all(o.message.startswith("not checked: ") for o in run.outcomes if o.status is Status.UNSUPPORTED)
