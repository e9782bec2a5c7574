"""Quotas that cannot stop mail, and audit bypass only where the playbook says so, on the lab.

A change a kind holds back (a held Caveat) is neither written nor verified: the outcome stays
drifted with the kind's sentence, in check and apply alike (exit 3, never 0 and never 2). A change
it does make carries its notes. The built-in lab's MAIL01 has databases without limits and
mailboxes above the site's sizes; MAIL03 has no FSRM role (hardening/lab/scenarios/demo/quota.yml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hardening import apply as apply_run
from hardening import check, load_lab
from hardening.model import Mode, Status
from hardening.run import Options, execute

from .conftest import lab_host, outcomes, statuses, write_inventory, write_lab, write_playbook

SITE_PLAN = """\
    name: site plan
    hosts: all
    controls:
      - id: mdb
        title: the site's mailbox sizes
        mailbox_database_quota:
          issue_warning_quota: 7.5GB
          prohibit_send_quota: 9GB
          prohibit_send_receive_quota: 10GB{extra}
    """


def _set_database_calls(lab: Any, host: str) -> list[tuple[str, Any]]:
    return [e for e in lab_host(lab, host).received if e[0] == "Set-MailboxDatabase"]


def test_lowering_unlimited_is_refused_in_check_and_apply_with_the_mailboxes_over(tmp_path: Path) -> None:
    lab = load_lab()
    inventory = write_inventory(tmp_path)
    playbook = write_playbook(tmp_path, SITE_PLAN.format(extra=""))

    checked = check(playbook, inventory, lab=lab)
    mail01 = outcomes(checked)[("MAIL01", "mdb")]
    assert mail01.status is Status.DRIFTED
    # The sentence names the database, its current and the proposed limits, the mailboxes at or above them
    # (largest first) and how to allow it; the Journal mailbox has its own quota but the statistics cannot
    # say so: counted (the count is an upper bound).
    assert ("DB01 is not lowered without allow_lower: true on the control — ProhibitSendQuota Unlimited → 9 GB: "
            "2 mailboxes are at or above 9 GB, where a mailbox cannot send (Alice Wood 14 GB, Bob Chen 9.5 GB); "
            "ProhibitSendReceiveQuota Unlimited → 10 GB: 1 mailbox is at or above 10 GB, where a mailbox refuses "
            "new mail and its senders get an NDR (Alice Wood 14 GB)") in mail01.message
    assert "DB02 is not lowered without allow_lower: true" in mail01.message
    assert "(Journal 180 GB)" in mail01.message
    assert checked.exit_code == 3

    applied = apply_run(playbook, inventory, lab=lab)
    got = outcomes(applied)
    held = got[("MAIL01", "mdb")]
    assert held.status is Status.DRIFTED
    assert held.message.startswith("not changed: DB01.IssueWarningQuota is Unlimited, should be 7.5 GB")
    assert "DB01 is not lowered without allow_lower: true" in held.message
    assert _set_database_calls(lab, "MAIL01") == [], "a held database must not be written"
    assert [d["ProhibitSendReceiveQuota"] for d in lab_host(lab, "MAIL01").state["mailbox_databases"]] == [
        "Unlimited", "Unlimited"]
    # Raising Exchange's defaults (MAIL03) is made; lowering only a warning level (MAIL02) is made, with a
    # note of the mailbox it now warns.
    assert got[("MAIL03", "mdb")].status is Status.FIXED
    assert got[("MAIL02", "mdb")].status is Status.FIXED
    assert ("DB03 IssueWarningQuota 9.5 GB → 7.5 GB (a warning level, which stops nothing): 1 mailbox is at or "
            "above 7.5 GB, where a mailbox gets quota warnings (Accounts Payable 8.5 GB)") in (
        got[("MAIL02", "mdb")].message)
    assert applied.exit_code == 3, "a scheduler must not read a held lowering as compliant"

    again = apply_run(playbook, inventory, lab=lab)
    assert statuses(again)[("MAIL01", "mdb")] == "drifted"
    assert {k: v for k, v in statuses(again).items() if k[0] != "MAIL01"} == {
        ("MAIL02", "mdb"): "compliant", ("MAIL03", "mdb"): "compliant", ("MAIL04", "mdb"): "compliant"}
    assert again.exit_code == 3


def test_allow_lower_lowers_and_names_the_mailboxes_now_over(tmp_path: Path) -> None:
    lab = load_lab()
    inventory = write_inventory(tmp_path, ["MAIL01"])
    playbook = write_playbook(tmp_path, SITE_PLAN.format(extra="\n          allow_lower: true"))

    applied = apply_run(playbook, inventory, lab=lab)
    outcome = outcomes(applied)[("MAIL01", "mdb")]
    assert outcome.status is Status.FIXED
    assert ("DB01 ProhibitSendReceiveQuota Unlimited → 10 GB (with allow_lower: true): 1 mailbox is at or above "
            "10 GB, where a mailbox refuses new mail and its senders get an NDR (Alice Wood 14 GB)") in outcome.message
    assert len(_set_database_calls(lab, "MAIL01")) == 2
    assert lab_host(lab, "MAIL01").state["mailbox_databases"][0]["ProhibitSendReceiveQuota"] == (
        "10 GB (10,737,418,240 bytes)")


def test_one_database_held_while_another_is_raised(tmp_path: Path) -> None:
    def defaults_on_db02(hosts: dict[str, Any]) -> None:
        db02 = hosts["MAIL01"]["mailbox_databases"][1]
        for prop in ("IssueWarningQuota", "ProhibitSendQuota", "ProhibitSendReceiveQuota"):
            db02.pop(prop)  # Exchange's defaults, below the site's sizes

    lab = write_lab(tmp_path, defaults_on_db02)
    inventory = write_inventory(tmp_path, ["MAIL01"])
    playbook = write_playbook(tmp_path, SITE_PLAN.format(extra=""))

    outcome = outcomes(apply_run(playbook, inventory, lab=lab))[("MAIL01", "mdb")]
    assert outcome.status is Status.DRIFTED
    assert outcome.message.startswith("changed DB02.IssueWarningQuota")
    assert ("(verified by re-read); not changed: DB01.IssueWarningQuota is Unlimited, should be 7.5 GB"
            in outcome.message)
    assert "DB01 is not lowered without allow_lower: true" in outcome.message
    written = _set_database_calls(lab, "MAIL01")
    assert [dict(parameters)["Identity"] for _, parameters in written] == ["DB02"]


def test_a_held_control_spends_none_of_the_change_budget(tmp_path: Path) -> None:
    lab = load_lab()
    inventory = write_inventory(tmp_path, ["MAIL01", "MAIL03"])
    playbook = write_playbook(tmp_path, SITE_PLAN.format(extra=""))
    run = execute(Mode.APPLY, playbook, inventory, Options(max_changes=1, forks=1), lab=lab)
    assert statuses(run) == {("MAIL01", "mdb"): "drifted", ("MAIL03", "mdb"): "fixed"}


def test_monitor_policy_says_what_apply_would_hold(tmp_path: Path) -> None:
    lab = load_lab()
    inventory = write_inventory(tmp_path, ["MAIL01"])
    playbook = write_playbook(tmp_path, SITE_PLAN.format(extra="\n        policy: monitor"))
    outcome = outcomes(apply_run(playbook, inventory, lab=lab))[("MAIL01", "mdb")]
    assert outcome.status is Status.DRIFTED
    assert outcome.message.startswith("policy monitor, not changed: ")
    assert "DB01 is not lowered without allow_lower: true" in outcome.message


def test_mailboxes_are_not_counted_when_asked_not_to(tmp_path: Path) -> None:
    lab = load_lab()
    inventory = write_inventory(tmp_path, ["MAIL01"])
    playbook = write_playbook(tmp_path, SITE_PLAN.format(extra="\n          count_mailboxes: false"))
    outcome = outcomes(check(playbook, inventory, lab=lab))[("MAIL01", "mdb")]
    assert outcome.status is Status.DRIFTED
    assert "mailboxes at or above 10 GB not counted (count_mailboxes: false)" in outcome.message
    assert "Get-MailboxStatistics" not in [e[0] for e in lab_host(lab, "MAIL01").received]


def test_an_edge_server_has_no_databases_and_is_sent_nothing_for_them(tmp_path: Path) -> None:
    lab = load_lab()
    edge = {"facts": {"exchange_roles": ["EdgeTransport"]}}
    inventory = write_inventory(tmp_path, ["MAIL04"], host_specs={"MAIL04": edge})
    playbook = write_playbook(tmp_path, SITE_PLAN.format(extra=""))
    outcome = outcomes(check(playbook, inventory, lab=lab))[("MAIL04", "mdb")]
    assert outcome.status is Status.NOT_APPLICABLE
    assert outcome.message == "MAIL04 is an Edge Transport server: it has no mailbox databases"
    assert not any(e[0].endswith("MailboxDatabase") or e[0] == "Get-MailboxStatistics"
                   for e in lab_host(lab, "MAIL04").received)


FSRM = """\
    name: fsrm
    hosts: all
    controls:
      - id: fsrm
        title: soft quotas on the database folders
        fsrm_quota:
          paths_from: mailbox_databases
          size: 500GB
          limit: soft
    """


def test_a_server_without_the_fsrm_role_is_not_applicable_with_the_reason(tmp_path: Path) -> None:
    lab = load_lab()
    inventory = write_inventory(tmp_path)
    run = apply_run(write_playbook(tmp_path, FSRM), inventory, lab=lab)
    mail03 = outcomes(run)[("MAIL03", "fsrm")]
    assert mail03.status is Status.NOT_APPLICABLE
    assert mail03.message.startswith("File Server Resource Manager is not installed on MAIL03 (no SrmSvc service)")
    assert "FSRM is opt-in (playbooks/fsrm.yml)" in mail03.message
    assert not any(e[0] == "fsrm_quota.write" for e in lab_host(lab, "MAIL03").received)
    assert statuses(run)[("MAIL02", "fsrm")] == "fixed"


def test_fsrm_without_its_powershell_module_fails_saying_what_to_install(tmp_path: Path) -> None:
    def no_module(hosts: dict[str, Any]) -> None:
        hosts["MAIL02"]["fsrm"]["module"] = False

    lab = write_lab(tmp_path, no_module)
    outcome = outcomes(check(write_playbook(tmp_path, FSRM), write_inventory(tmp_path, ["MAIL02"]), lab=lab))[
        ("MAIL02", "fsrm")]
    assert outcome.status is Status.FAILED
    assert "Install-WindowsFeature -Name RSAT-FSRM-Mgmt" in outcome.message


BYPASS = """\
    name: bypass
    hosts: all
    controls:
      - id: bypass
        title: audit bypass only where the site says so
        mailbox_audit_bypass: {params}
    """


def test_bypass_of_accounts_nobody_named_is_reported_not_removed(tmp_path: Path) -> None:
    lab = load_lab()
    inventory = write_inventory(tmp_path, ["MAIL01"])
    run = apply_run(write_playbook(tmp_path, BYPASS.format(params="{}")), inventory, lab=lab)
    outcome = outcomes(run)[("MAIL01", "bypass")]
    assert outcome.status is Status.DRIFTED
    assert outcome.message.startswith("not changed: ")
    assert ("not removed: 4 accounts bypass mailbox audit logging and are named in neither allowed nor remove "
            "(contoso.com/Users/admin.jsmith, contoso.com/Users/svc-archive, contoso.com/Users/svc-backup, "
            "contoso.com/Users/svc-journal)") in outcome.message
    assert not any(e[0] == "Set-MailboxAuditBypassAssociation" for e in lab_host(lab, "MAIL01").received)
    assert run.exit_code == 3


def test_named_accounts_lose_bypass_while_unnamed_ones_keep_it(tmp_path: Path) -> None:
    lab = load_lab()
    inventory = write_inventory(tmp_path, ["MAIL03"])
    run = apply_run(write_playbook(tmp_path, BYPASS.format(params="{remove: admin.jsmith}")), inventory, lab=lab)
    outcome = outcomes(run)[("MAIL03", "bypass")]
    assert outcome.status is Status.DRIFTED
    assert outcome.message.startswith("changed Mailbox audit bypass.NamedForRemoval")
    assert "not changed: Mailbox audit bypass.UnreviewedBypassing" in outcome.message
    bypass = {a["Name"]: a["AuditBypassEnabled"] for a in lab_host(lab, "MAIL03").state["mailbox_audit_bypass"]}
    assert bypass == {"svc-journal": True, "svc-backup": True, "svc-archive": True, "admin.jsmith": False}


def test_unknown_remove_removes_every_bypass_nobody_allowed(tmp_path: Path) -> None:
    lab = load_lab()
    inventory = write_inventory(tmp_path, ["MAIL01"])
    params = "{allowed: svc-journal, unknown: remove}"
    assert statuses(apply_run(write_playbook(tmp_path, BYPASS.format(params=params)), inventory, lab=lab)) == {
        ("MAIL01", "bypass"): "fixed"}
    bypass = {a["Name"]: a["AuditBypassEnabled"] for a in lab_host(lab, "MAIL01").state["mailbox_audit_bypass"]}
    assert bypass["svc-journal"] is True
    assert bypass["svc-backup"] is False and bypass["svc-archive"] is False
