"""ad_audit_rule and ad_attribute through the whole engine against the real Samba AD DC:
check → apply → apply → check, with Samba itself (uSNChanged, samba-tool dsacl, the raw
security descriptor) as the oracle of what was and was not written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ldap3 import BASE, MODIFY_REPLACE
from ldap3.protocol.microsoft import security_descriptor_control

from hardening import apply, check, load_inventory, load_playbook
from hardening.model import Run
from hardening.security_descriptor import AuditAce, parse_sacl, sacl_descriptor

from .samba import SambaDC, scratch_tree

PASSWORD_ENV = "HARDENING_TEST_DC_PASSWORD"
EVERYONE_WRITES = {"principal": "Everyone", "rights": ["WriteProperty", "Delete"], "audit": "both",
                   "inheritance": "All"}


def _inventory(tmp_path: Path, dc: SambaDC, monkeypatch: pytest.MonkeyPatch, *, user: str | None = None,
               password: str | None = None) -> Path:
    monkeypatch.setenv(PASSWORD_ENV, password or dc.admin_password)
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({
        "hosts": {"dc1": {"connection": {
            "transport": "ldap", "ldap_url": dc.ldaps_url, "ldap_username": user or dc.admin_user,
            "ldap_password": f"env:{PASSWORD_ENV}", "ldap_ca_bundle": str(dc.ca_file),
            "ldap_server_name": dc.server_name}}},
        "groups": {"domain_controllers": {"hosts": ["dc1"]}},
    }), encoding="utf-8")
    return path


def _playbook(tmp_path: Path, **controls: dict[str, Any]) -> Path:
    path = tmp_path / "playbook.yml"
    path.write_text(yaml.safe_dump({
        "name": "directory test", "hosts": "domain_controllers",
        "controls": [{"id": cid, "title": f"control {cid}", **spec} for cid, spec in controls.items()],
    }), encoding="utf-8")
    return path


def _statuses(run: Run) -> dict[str, str]:
    return {o.control: o.status.value for o in run.outcomes}


def _raw_sd(dc: SambaDC, dn: str, flags: int) -> bytes:
    conn = dc.admin_connection()
    try:
        conn.search(dn, "(objectClass=*)", BASE, attributes=["nTSecurityDescriptor"],
                    controls=security_descriptor_control(sdflags=flags))
        return bytes(conn.response[0]["raw_attributes"]["nTSecurityDescriptor"][0])
    finally:
        conn.unbind()


def _write_sacl(dc: SambaDC, dn: str, aces: list[AuditAce]) -> None:
    conn = dc.admin_connection()
    try:
        assert conn.modify(dn, {"nTSecurityDescriptor": [(MODIFY_REPLACE, [sacl_descriptor(aces)])]},
                           controls=security_descriptor_control(sdflags=0x8)), conn.result
    finally:
        conn.unbind()


def test_audit_rule_is_added_once_and_only_the_sacl_is_written(
        samba_dc: SambaDC, ad_scratch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = load_inventory(_inventory(tmp_path, samba_dc, monkeypatch))
    playbook = load_playbook(_playbook(tmp_path, sacl={"ad_audit_rule": {"dn": ad_scratch,
                                                                         "entries": [EVERYONE_WRITES]}}))
    owner_group_dacl = _raw_sd(samba_dc, ad_scratch, 0x7)

    first = check(playbook, inventory)
    assert _statuses(first) == {"sacl": "drifted"}, [o.message for o in first.outcomes]
    usn_before = samba_dc.usn_changed(ad_scratch)

    fixed = apply(playbook, inventory)
    (outcome,) = fixed.outcomes
    assert outcome.status.value == "fixed", outcome.message
    assert outcome.after[ad_scratch]["audit_entries"] == ["(AU;CISAFA;WPSD;;;WD)"]
    assert samba_dc.usn_changed(ad_scratch) > usn_before
    # Samba's own SDDL of the object (an oracle independent of our parser) shows the entry.
    assert "(AU;CISAFA;WPSD;;;WD)" in samba_dc.samba_tool("dsacl", "get", f"--objectdn={ad_scratch}")
    # Owner, group and DACL were never sent, so they are byte for byte what they were.
    assert _raw_sd(samba_dc, ad_scratch, 0x7) == owner_group_dacl

    usn_fixed = samba_dc.usn_changed(ad_scratch)
    again = apply(playbook, inventory)
    assert _statuses(again) == {"sacl": "compliant"}
    assert samba_dc.usn_changed(ad_scratch) == usn_fixed, "a second run must write nothing"
    assert _statuses(check(playbook, inventory)) == {"sacl": "compliant"}
    # The run tells that no audit policy was checked alongside (the SACL alone produces no events).
    assert "audit policy" in again.hosts[0].outcomes[0].message


def test_inheritable_entry_reaches_children_and_grandchildren(
        samba_dc: SambaDC, ad_scratch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = load_inventory(_inventory(tmp_path, samba_dc, monkeypatch))
    parent, child, grandchild = scratch_tree(ad_scratch)
    playbook = load_playbook(_playbook(
        tmp_path,
        parent={"ad_audit_rule": {"dn": parent, "entries": [EVERYONE_WRITES]}},
        child={"ad_audit_rule": {"dn": child, "entries": [], "mode": "exact"}}))
    run = apply(playbook, inventory)
    by_control = {o.control: o for o in run.outcomes}
    assert by_control["parent"].status.value == "fixed"
    for dn in (child, grandchild):
        sacl = parse_sacl(_raw_sd(samba_dc, dn, 0x8))
        assert [a.to_sddl() for a in sacl.inherited] == ["(AU;CIIDSAFA;WPSD;;;WD)"], dn
        assert sacl.explicit == ()
    # exact with no entries on the child: it has no explicit entry, and the inherited one is not
    # its business, so nothing is written there.
    assert by_control["child"].status.value == "compliant", by_control["child"].message
    second = check(playbook, inventory)
    child_state = {o.control: o for o in second.outcomes}["child"].before[child]
    assert child_state["inherited_entries"] == ["(AU;CIIDSAFA;WPSD;;;WD)"]


def test_exact_removes_other_explicit_entries_and_at_least_keeps_them(
        samba_dc: SambaDC, ad_scratch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stray = AuditAce("S-1-5-11", 0x10000, 0x80)  # (AU;FA;SD;;;AU) written by someone else
    _write_sacl(samba_dc, ad_scratch, [stray])
    inventory = load_inventory(_inventory(tmp_path, samba_dc, monkeypatch))

    at_least = load_playbook(_playbook(tmp_path, sacl={"ad_audit_rule": {"dn": ad_scratch,
                                                                         "entries": [EVERYONE_WRITES]}}))
    (kept,) = apply(at_least, inventory).outcomes
    assert kept.after[ad_scratch]["audit_entries"] == ["(AU;FA;SD;;;AU)", "(AU;CISAFA;WPSD;;;WD)"]

    exact = load_playbook(_playbook(tmp_path, sacl={"ad_audit_rule": {"dn": ad_scratch, "mode": "exact",
                                                                      "entries": [EVERYONE_WRITES]}}))
    (removed,) = apply(exact, inventory).outcomes
    assert removed.status.value == "fixed", removed.message
    assert "remove (AU;FA;SD;;;AU)" in removed.message
    assert [a.to_sddl() for a in parse_sacl(_raw_sd(samba_dc, ad_scratch, 0x8)).explicit] == \
        ["(AU;CISAFA;WPSD;;;WD)"]


def test_a_principal_named_by_account_is_looked_up(
        samba_dc: SambaDC, ad_scratch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = load_inventory(_inventory(tmp_path, samba_dc, monkeypatch))
    entry = {"principal": "LAB\\svc-reader", "rights": ["WriteDacl"], "audit": "success", "inheritance": "None"}
    playbook = load_playbook(_playbook(tmp_path, sacl={"ad_audit_rule": {"dn": ad_scratch, "entries": [entry]}}))
    (outcome,) = apply(playbook, inventory).outcomes
    assert outcome.status.value == "fixed", outcome.message
    conn = samba_dc.admin_connection()
    try:
        conn.search(samba_dc.reader_dn, "(objectClass=*)", BASE, attributes=["objectSid"])
        reader_sid = str(conn.entries[0].objectSid.value)
    finally:
        conn.unbind()
    assert outcome.after[ad_scratch]["audit_entries"] == [f"(AU;SA;WD;;;{reader_sid})"]

    missing = load_playbook(_playbook(tmp_path, sacl={"ad_audit_rule": {
        "dn": ad_scratch, "entries": [{**entry, "principal": "LAB\\nobody-here"}]}}))
    (failed,) = check(missing, inventory).outcomes
    assert failed.status.value == "failed" and "not found in the directory" in failed.message


def test_an_account_that_may_not_read_sacls_is_told_so(
        samba_dc: SambaDC, ad_scratch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SeSecurityPrivilege the directory returns the object without the attribute: that
    is reported as exactly that, never taken for an empty SACL (which would be 'drifted')."""
    _write_sacl(samba_dc, ad_scratch, [AuditAce("S-1-1-0", 0x20, 0xC2)])
    inventory = load_inventory(_inventory(tmp_path, samba_dc, monkeypatch, user=samba_dc.reader_user,
                                          password=samba_dc.reader_password))
    playbook = load_playbook(_playbook(tmp_path, sacl={"ad_audit_rule": {"dn": ad_scratch,
                                                                         "entries": [EVERYONE_WRITES]}}))
    usn = samba_dc.usn_changed(ad_scratch)
    for run in (check(playbook, inventory), apply(playbook, inventory)):
        (outcome,) = run.outcomes
        assert outcome.status.value == "failed"
        assert "SeSecurityPrivilege" in outcome.message and "not an empty SACL" in outcome.message
    assert samba_dc.usn_changed(ad_scratch) == usn


def test_bad_credentials_fail_every_control_with_the_reason(
        samba_dc: SambaDC, ad_scratch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = load_inventory(_inventory(tmp_path, samba_dc, monkeypatch, password="wrong"))
    playbook = load_playbook(_playbook(tmp_path, sacl={"ad_audit_rule": {"dn": ad_scratch,
                                                                         "entries": [EVERYONE_WRITES]}}))
    run = check(playbook, inventory)
    (host,) = run.hosts
    assert not host.reachable and "bad credentials" in (host.error or "")
    assert run.exit_code == 2


def test_legacy_virtual_server_flag_bits(samba_dc: SambaDC, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Exchange 2003's "require TLS" on every SMTP virtual server: bit 0x8 of msExchAccessSSLFlags
    set, the other bits kept; found by a search; a second run writes nothing."""
    conn = samba_dc.admin_connection()
    try:
        assert conn.modify(samba_dc.smtp_vs_dn, {"msExchAccessSSLFlags": [(MODIFY_REPLACE, ["256"])]}), conn.result
    finally:
        conn.unbind()
    inventory = load_inventory(_inventory(tmp_path, samba_dc, monkeypatch))
    playbook = load_playbook(_playbook(tmp_path, tls={"ad_attribute": {
        "search": {"base": samba_dc.org_dn, "filter": "(objectClass=protocolCfgSMTPServer)"},
        "attribute": "msExchAccessSSLFlags", "set_bits": 8}}))
    assert _statuses(check(playbook, inventory)) == {"tls": "drifted"}
    (fixed,) = apply(playbook, inventory).outcomes
    assert fixed.status.value == "fixed", fixed.message
    assert fixed.after == {samba_dc.smtp_vs_dn: {"msExchAccessSSLFlags": 264}}
    usn = samba_dc.usn_changed(samba_dc.smtp_vs_dn)
    assert _statuses(apply(playbook, inventory)) == {"tls": "compliant"}
    assert samba_dc.usn_changed(samba_dc.smtp_vs_dn) == usn
