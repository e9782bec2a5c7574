"""The quota and audit families' consequences: mail refused over a quota, full hard FSRM quotas on
Exchange data, service accounts that lost the audit bypass they need — from the lab state, with
the lab's own reading of Exchange and FSRM (not the kinds' code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hardening import apply, load_inventory, load_lab, load_playbook
from hardening.inventory import Inventory
from hardening.lab.models.audit import bypass_lost
from hardening.lab.models.quota import full_hard_quotas, over_quota
from hardening.lab.rehearsal import breakage

ROOT = Path(__file__).resolve().parents[2]
DEMO_INVENTORY = ROOT / "hardening" / "lab" / "scenarios" / "demo-inventory.yml"
# The example site values of the demo (the lead's demo inventory sets the same).
SITE_VARS = {
    "mailbox_issue_warning_quota": "7.5GB", "mailbox_prohibit_send_quota": "9GB",
    "mailbox_prohibit_send_receive_quota": "10GB", "mail_store_warning_level": "200GB",
    "database_folder_soft_quota": "500GB",
    "audit_bypass_allowed": "svc-journal, svc-backup, svc-archive", "audit_bypass_remove": "admin.jsmith",
}


def _hosts() -> dict[str, dict[str, Any]]:
    return {name: host.state for name, host in load_lab().hosts.items()}


def _texts(found: list[Any]) -> list[str]:
    return sorted(str(b) for b in found)


def _inventory(tmp_path: Path, **extra: str) -> Inventory:
    data = yaml.safe_load(DEMO_INVENTORY.read_text(encoding="utf-8"))
    data.pop("lab", None)
    data["vars"] = {**data.get("vars", {}), **SITE_VARS, **extra}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_inventory(path)


def test_the_demo_as_shipped_refuses_no_mail_and_keeps_every_needed_bypass() -> None:
    hosts = _hosts()
    assert [b for name, state in hosts.items()
            for b in (*over_quota(name, state), *full_hard_quotas(name, state), *bypass_lost(name, state))] == []


def test_a_lowered_database_quota_refuses_mail_to_the_mailboxes_at_or_above_it() -> None:
    state = _hosts()["MAIL01"]
    db01, db02 = state["mailbox_databases"]
    db01["ProhibitSendQuota"], db01["ProhibitSendReceiveQuota"] = "9 GB (9,663,676,416 bytes)", "10GB"
    db02["ProhibitSendQuota"] = db02["ProhibitSendReceiveQuota"] = "3 GB (3,221,225,472 bytes)"
    assert _texts(over_quota("MAIL01", state)) == [
        "MAIL01: mail-over-quota: Alice Wood (14 GB) is at or above DB01's ProhibitSendReceiveQuota 10 GB: mail to it "
        "is refused and its senders get an NDR; it cannot send either",
        "MAIL01: mail-over-quota: Bob Chen (9.5 GB) is at or above DB01's ProhibitSendQuota 9 GB: it cannot send mail",
        # Exactly at the limit counts ("reaches or exceeds"); the 180 GB Journal mailbox has its own
        # Unlimited quotas, so DB02's do not touch it.
        "MAIL01: mail-over-quota: Reception (3 GB) is at or above DB02's ProhibitSendReceiveQuota 3 GB: mail to it "
        "is refused and its senders get an NDR; it cannot send either"]


def test_a_mailbox_with_its_own_quota_is_judged_by_it() -> None:
    state = _hosts()["MAIL01"]
    journal = next(m for m in state["mailboxes"] if m["Name"] == "Journal")
    journal["ProhibitSendReceiveQuota"] = "100GB"
    assert _texts(over_quota("MAIL01", state)) == [
        "MAIL01: mail-over-quota: Journal (180 GB) is at or above its own ProhibitSendReceiveQuota 100 GB: mail to "
        "it is refused and its senders get an NDR; it cannot send either"]


def test_only_a_full_hard_fsrm_quota_over_exchange_data_breaks_something() -> None:
    state = _hosts()["MAIL01"]
    quotas = state["fsrm"]["quotas"]
    assert full_hard_quotas("MAIL01", state) == []  # 31 of 50 GB: a risk, not yet a breakage
    quotas["D:\\ExchangeDatabases\\DB01"]["usage"] = quotas["D:\\ExchangeDatabases\\DB01"]["size"]
    quotas["D:\\Shares\\Scans"] = {"size": 1 << 30, "usage": 1 << 30, "soft_limit": False, "disabled": False,
                                   "description": "", "template": ""}
    quotas["D:\\ExchangeDatabases\\DB02\\Reports"] = {"size": 1 << 30, "usage": 1 << 30, "soft_limit": False,
                                                     "disabled": False, "description": "", "template": ""}
    assert _texts(full_hard_quotas("MAIL01", state)) == [
        "MAIL01: fsrm-hard-quota: the hard FSRM quota on D:\\ExchangeDatabases\\DB01 is full (50 GB of 50 GB) and "
        "covers mailbox database DB01: writes there are refused (a database dismounts, transport stops accepting "
        "mail)"]
    quotas["D:\\ExchangeDatabases\\DB01"]["soft_limit"] = True
    assert full_hard_quotas("MAIL01", state) == []
    quotas["D:\\"] = {"size": 1 << 30, "usage": 2 << 30, "soft_limit": False, "disabled": False, "description": "",
                      "template": ""}
    assert _texts(full_hard_quotas("MAIL01", state)) == [
        "MAIL01: fsrm-hard-quota: the hard FSRM quota on D:\\ is full (2 GB of 1 GB) and covers mailbox database "
        "DB01, mailbox database DB02: writes there are refused (a database dismounts, transport stops accepting "
        "mail)"]


def test_a_service_account_that_lost_its_bypass_is_reported() -> None:
    state = _hosts()["MAIL01"]
    for account in state["mailbox_audit_bypass"]:
        if account["Name"] == "svc-backup":
            account["AuditBypassEnabled"] = False
    state["mailbox_audit_bypass"] = [a for a in state["mailbox_audit_bypass"] if a["Name"] != "svc-archive"]
    assert _texts(bypass_lost("MAIL01", state)) == [
        "MAIL01: bypass-removed: svc-archive no longer bypasses mailbox audit logging, yet the archiving service "
        "reads every mailbox to move old items to the archive: each mailbox it opens now logs its access in that "
        "mailbox's Recoverable Items\\Audits folder, which counts toward the mailbox's Recoverable Items quota",
        "MAIL01: bypass-removed: svc-backup no longer bypasses mailbox audit logging, yet the backup agent opens "
        "every mailbox at each backup: each mailbox it opens now logs its access in that mailbox's Recoverable "
        "Items\\Audits folder, which counts toward the mailbox's Recoverable Items quota"]


def test_the_shipped_quota_fsrm_and_audit_playbooks_break_nothing(tmp_path: Path) -> None:
    lab = load_lab()
    inventory = _inventory(tmp_path)
    for name in ("quotas.yml", "fsrm.yml", "auditing.yml"):
        apply(load_playbook(ROOT / "playbooks" / name), inventory, lab=lab)
    assert [b for b in breakage(lab) if b.what in {"mail-over-quota", "fsrm-hard-quota", "bypass-removed"}] == []
    # The reviewed bypass list was applied: MAIL03's copy had the administrator bypassing; no longer.
    mail03 = {a["Name"]: a["AuditBypassEnabled"] for a in lab.hosts["MAIL03"].state["mailbox_audit_bypass"]}
    assert mail03["admin.jsmith"] is False and mail03["svc-backup"] is True


def test_what_the_old_controls_did_is_what_the_rehearsal_catches(tmp_path: Path) -> None:
    """Before issue 10 the quota control lowered Unlimited without asking and the bypass control
    removed every bypass but svc-journal's: allow_lower and unknown: remove do the same today."""
    lab = load_lab()
    playbook = tmp_path / "old.yml"
    playbook.write_text(
        "name: as before\nhosts: all\ncontrols:\n"
        "  - id: mdb\n    title: t\n    mailbox_database_quota: {issue_warning_quota: 7.5GB, prohibit_send_quota: 9GB,"
        " prohibit_send_receive_quota: 10GB, allow_lower: true}\n"
        "  - id: bypass\n    title: t\n    mailbox_audit_bypass: {allowed: [svc-journal], unknown: remove}\n",
        encoding="utf-8")
    apply(load_playbook(playbook), _inventory(tmp_path), lab=lab)
    found = {(b.host, b.what, b.sentence.split(" ")[0]) for b in breakage(lab)
             if b.what in {"mail-over-quota", "bypass-removed"}}
    assert ("MAIL01", "mail-over-quota", "Alice") in found
    assert ("MAIL01", "mail-over-quota", "Bob") in found
    assert ("MAIL01", "bypass-removed", "svc-backup") in found
    assert ("MAIL01", "bypass-removed", "svc-archive") in found
