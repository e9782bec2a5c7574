"""Every ``hardening`` command and exit code, in process against the lab, plus a few real
subprocess runs of ``python -m hardening`` and of the ``hardening`` console script.

Exit codes: 0 all compliant and nothing changed; 1 could not run; 2 a control failed or a host
was unreachable; 3 drift found (check) or fixed (apply) and nothing failed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

import hardening
from hardening.kinds import KINDS
from hardening.lab import load_lab
from hardening.lab.scenario import merged_lab_text

from .helpers import HELD, ROOT, LabDir, Result, Traffic, invoke, read_json, statuses

Cli = Callable[..., Result]

HOSTS = ["MAIL01", "MAIL02", "MAIL03", "MAIL04"]
# The shipped baseline's controls and playbooks, in order (it grows as procedures are added).
BASELINE = hardening.load_playbook(ROOT / "playbooks" / "baseline.yml")
CONTROLS = [c.id for c in BASELINE.controls]
PLAYBOOK_NAMES = {p.name for p in BASELINE.sources}
STATUSES = {"compliant", "drifted", "fixed", "failed", "skipped", "not_applicable"}
SUMMARY_KEYS = {"hosts", "unreachable", *STATUSES}
SHIPPED_PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yml"))


# --- check / apply / lab reset: the idempotency loop through the command line ---------------

def test_check_finds_drift_on_the_lab_and_changes_nothing(cli: Cli, lab_dir: LabDir, tmp_path: Path,
                                                          traffic: Traffic) -> None:
    report = tmp_path / "check.json"
    result = cli("check", "baseline", "-i", lab_dir.inventory, "--report-json", report)
    assert result.code == 3, result.err
    assert result.err == ""
    doc = read_json(report)
    got = statuses(doc)
    assert sorted({h for h, _ in got}) == HOSTS
    assert all(got[("MAIL04", c)] == "compliant" for c in CONTROLS)
    assert all(got[("MAIL01", c)] == "drifted" for c in CONTROLS)
    assert doc["summary"]["failed"] == 0 and doc["summary"]["fixed"] == 0
    assert traffic.calls, "check must read the hosts"
    assert traffic.writes() == [], "check must never send a write"
    assert "drifted" in result.out and "MAIL01" in result.out


def test_apply_then_check_then_apply_again(cli: Cli, lab_dir: LabDir, tmp_path: Path, traffic: Traffic) -> None:
    first = cli("check", "baseline", "-i", lab_dir.inventory, "--report-json", tmp_path / "1.json")
    assert first.code == 3
    drifted = read_json(tmp_path / "1.json")["summary"]["drifted"]

    applied = cli("apply", "baseline", "-i", lab_dir.inventory, "--report-json", tmp_path / "2.json")
    assert applied.code == 3, applied.err
    summary = read_json(tmp_path / "2.json")["summary"]
    # Every drifted control is fixed but the quota the guard holds (it stays drifted, and says why).
    assert summary["fixed"] == drifted - 1 and summary["failed"] == 0 and summary["drifted"] == 1
    assert lab_dir.state.is_file(), "the lab keeps its state beside the lab file"
    assert {host for host, _ in traffic.writes()} == {"MAIL01", "MAIL02", "MAIL03"}

    after = cli("check", "baseline", "-i", lab_dir.inventory, "--report-json", tmp_path / "3.json")
    assert after.code == 3, after.out
    got = statuses(read_json(tmp_path / "3.json"))
    assert got.pop(HELD) == "drifted" and set(got.values()) == {"compliant"}

    state = lab_dir.state.read_text(encoding="utf-8")
    traffic.calls.clear()
    again = cli("apply", "baseline", "-i", lab_dir.inventory, "--report-json", tmp_path / "4.json")
    assert again.code == 3, again.out
    doc = read_json(tmp_path / "4.json")
    summary = doc["summary"]
    assert summary["fixed"] == 0 and summary["compliant"] == len(HOSTS) * len(CONTROLS) - 1
    [held] = [o for h in doc["hosts"] for o in h["outcomes"] if (h["name"], o["control"]) == HELD]
    assert held["status"] == "drifted" and len(held["held"]) == len(held["changes"]) > 0
    assert traffic.writes() == [], "nothing differs, so nothing is written"
    assert json.loads(lab_dir.state.read_text(encoding="utf-8")) == json.loads(state)


def test_apply_baseline_without_the_site_values_refuses_and_lists_them_all(cli: Cli, tmp_path: Path,
                                                                           traffic: Traffic) -> None:
    """Issue 10: no example values in what runs. An inventory that sets none of the baseline's site
    values gets exit 1, one message listing every required variable with the controls that need it,
    and nothing is sent to any host."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"connection": {"transport": "lab"}, "hosts": {name: {} for name in HOSTS}}),
                         encoding="utf-8")
    result = cli("apply", "baseline", "-i", inventory)
    assert result.code == 1 and result.out == ""
    required = {name for control in BASELINE.controls for name in control.required_vars}
    assert {"admin_network", "domain_controllers", "owa_redirect_url", "partner_tls_domain",
            "mailbox_prohibit_send_quota"} <= required
    lines = result.err_lines
    assert re.fullmatch(rf"error: {re.escape(str(inventory))}: \d+ variables that the selected controls need "
                        "are not set; nothing was sent:", lines[0]), lines[0]
    listed = {line.strip().split(":")[0] for line in lines[1:] if line.startswith("  ") and not
              line.startswith("    ")}
    assert required <= listed
    assert any(line.startswith("    needed by firewall-inbound-allowlist (") for line in lines)
    assert traffic.calls == [], "nothing is sent before every variable is set"


def test_lab_reset_forgets_the_saved_state(cli: Cli, lab_dir: LabDir) -> None:
    assert cli("apply", "baseline", "-i", lab_dir.inventory).code == 3
    assert cli("check", "pop3-spa", "-i", lab_dir.inventory).code == 0

    reset = cli("lab", "reset", lab_dir.lab)
    assert reset.code == 0
    assert not lab_dir.state.exists()
    assert "forgot" in reset.out and str(lab_dir.state) in reset.out
    assert cli("check", "pop3-spa", "-i", lab_dir.inventory).code == 3

    lab_dir.state.unlink()  # the check above saved its (unchanged) state again
    nothing = cli("lab", "reset", lab_dir.lab)
    assert nothing.code == 0
    assert "no saved state" in nothing.out


def test_the_builtin_lab_is_never_written(cli: Cli, tmp_path: Path) -> None:
    """An inventory without ``lab:`` uses the shipped scenario, fresh every run."""
    inventory = tmp_path / "inv.yml"
    site = yaml.safe_load(hardening.lab.DEMO_INVENTORY.read_text(encoding="utf-8"))
    inventory.write_text(yaml.safe_dump({"connection": {"transport": "lab"}, "vars": site["vars"],
                                         "hosts": {"MAIL01": site["hosts"]["MAIL01"]},
                                         "groups": {"exchange": {"hosts": ["MAIL01"]}}}), encoding="utf-8")
    builtin = hardening.lab.BUILTIN_SCENARIO
    before = {p.name: p.read_bytes() for p in builtin.iterdir()}
    assert cli("apply", "baseline", "-i", inventory).code == 3
    assert cli("apply", "baseline", "-i", inventory).code == 3, "the built-in scenario starts fresh each run"
    assert {p.name: p.read_bytes() for p in builtin.iterdir()} == before
    assert not builtin.with_name(builtin.name + ".state.json").exists()


def test_a_playbook_can_be_named_by_path_or_by_shipped_name(cli: Cli, lab_dir: LabDir,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    by_name = cli("check", "pop3-spa", "-i", lab_dir.inventory)
    by_file = cli("check", "pop3-spa.yml", "-i", lab_dir.inventory)
    by_path = cli("check", ROOT / "playbooks" / "pop3-spa.yml", "-i", lab_dir.inventory)
    assert by_name.code == by_file.code == by_path.code == 3
    assert "pop3-secure-login" in by_name.out and "smtp-in" not in by_name.out


# --- plan ---------------------------------------------------------------------------------

def test_plan_sends_nothing_and_prints_the_requests(cli: Cli, lab_dir: LabDir, tmp_path: Path,
                                                    traffic: Traffic) -> None:
    report = tmp_path / "plan.json"
    result = cli("plan", "baseline", "-i", lab_dir.inventory, "--report-json", report)
    assert result.code == 0, result.err
    assert traffic.calls == [], "plan must not talk to any host"
    assert not lab_dir.state.exists(), "plan must not load or save the lab"

    for host in HOSTS:
        assert f"# host {host}" in result.out
        assert f"Get-PopSettings -Server '{host}'" in result.out
        assert f"Set-ImapSettings -Server '{host}' -LoginType 'SecureLogin'" in result.out
        assert f"Get-ReceiveConnector -Server '{host}'" in result.out
    assert "Set-ReceiveConnector -Identity" in result.out
    assert "Get-Acl -LiteralPath $path" in result.out  # the rendered PowerShell of the script kind
    assert "ConvertTo-Json" in result.out
    assert "None" + "TransportRoles" not in result.out, "an unknown fact must not render as the text None"

    doc = read_json(report)
    assert doc["mode"] == "plan"
    assert [h["requests"] for h in doc["hosts"]] == [0, 0, 0, 0]
    assert sorted(doc["plan"]) == HOSTS
    assert "Set-PopSettings -Server 'MAIL02'" in doc["plan"]["MAIL02"]

    # and the lab is as it was: a check afterwards still finds all the drift
    assert cli("check", "baseline", "-i", lab_dir.inventory).code == 3


def test_plan_with_limit_and_tags(cli: Cli, lab_dir: LabDir, traffic: Traffic) -> None:
    result = cli("plan", "baseline", "-i", lab_dir.inventory, "--limit", "MAIL02", "--tags", "pop3")
    assert result.code == 0
    assert "# host MAIL02" in result.out and "# host MAIL01" not in result.out
    assert "Get-PopSettings -Server 'MAIL02'" in result.out
    assert "Get-ImapSettings" not in result.out and "Get-ReceiveConnector" not in result.out
    assert traffic.calls == []


# --- demo and the report contract ---------------------------------------------------------

def _check_outcome(outcome: dict[str, Any]) -> None:
    assert {"control", "title", "kind", "status", "message", "desired", "before", "after", "changes",
            "references"} <= set(outcome)
    assert outcome["control"] in CONTROLS
    assert outcome["kind"] in KINDS
    assert outcome["status"] in STATUSES
    assert isinstance(outcome["title"], str) and outcome["title"]
    assert isinstance(outcome["message"], str) and outcome["message"], "every outcome has a sentence"
    for key in ("desired", "before", "after", "references"):
        assert isinstance(outcome[key], dict), key
    assert isinstance(outcome["changes"], list)
    for change in outcome["changes"]:
        assert set(change) >= {"path", "from", "to"}
        assert isinstance(change["path"], str) and change["path"]
    if outcome["status"] in {"drifted", "fixed"}:
        assert outcome["changes"], "drift names what differs"
    if outcome["status"] == "compliant":
        assert outcome["changes"] == []


def _check_report(doc: dict[str, Any], mode: str) -> None:
    assert doc["schema"] == "hardening.run/1"
    assert doc["mode"] == mode
    assert re.fullmatch(r"\S+", doc["run_id"])
    started = dt.datetime.fromisoformat(doc["started_at"])
    finished = dt.datetime.fromisoformat(doc["finished_at"])
    assert started.tzinfo is not None and started <= finished
    assert doc["tool_version"] == hardening.__version__
    names = {p["name"] for p in doc["playbooks"]}
    assert names == PLAYBOOK_NAMES and "Mail server baseline" in names
    for ref in doc["playbooks"]:
        assert set(ref) >= {"path", "name", "digest"}
        assert ref["digest"] == "sha256:" + hashlib.sha256(Path(ref["path"]).read_bytes()).hexdigest()
    assert set(doc["summary"]) >= SUMMARY_KEYS
    assert [h["name"] for h in doc["hosts"]] == HOSTS
    counted = {s: 0 for s in STATUSES}
    for host in doc["hosts"]:
        assert set(host) >= {"name", "reachable", "error", "facts", "requests", "outcomes"}
        assert host["reachable"] is True and host["error"] is None
        assert isinstance(host["facts"], dict) and host["facts"]["os_version"]
        assert isinstance(host["requests"], int) and host["requests"] >= 1
        assert [o["control"] for o in host["outcomes"]] == CONTROLS
        for outcome in host["outcomes"]:
            _check_outcome(outcome)
            counted[outcome["status"]] += 1
    assert doc["summary"]["hosts"] == len(HOSTS)
    assert doc["summary"]["unreachable"] == 0
    assert {s: doc["summary"][s] for s in STATUSES} == counted


def _junit_cases(path: Path) -> list[ET.Element]:
    root = ET.parse(path).getroot()  # well-formed, or this raises
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    assert root.get("tests") == str(len(cases))
    for suite in root.findall("./testsuite"):
        assert suite.get("tests") == str(len(suite.findall("testcase")))
        assert suite.get("failures") == str(len(suite.findall("testcase/failure")))
    return cases


def test_demo_writes_three_json_and_three_junit_reports(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    result = cli("demo", "--report-dir", out)
    assert result.code == 0, result.out + result.err
    assert sorted(p.name for p in out.iterdir()) == [
        "1-check.json", "1-check.junit.xml", "2-apply.json", "2-apply.junit.xml", "3-check.json",
        "3-check.junit.xml"]
    assert f"reports written to {out}" in result.out

    check1, apply2, check3 = (read_json(out / f"{s}.json") for s in ("1-check", "2-apply", "3-check"))
    for doc, mode in ((check1, "check"), (apply2, "apply"), (check3, "check")):
        _check_report(doc, mode)
    assert len({check1["run_id"], apply2["run_id"], check3["run_id"]}) == 3
    assert check1["summary"]["drifted"] > 0 and check1["summary"]["fixed"] == 0
    # all but the quota the guard holds on MAIL01 (see HELD), which the demo names as held
    assert apply2["summary"]["fixed"] == check1["summary"]["drifted"] - 1
    assert apply2["summary"]["failed"] == 0 and apply2["summary"]["drifted"] == 1
    assert check3["summary"]["compliant"] == len(HOSTS) * len(CONTROLS) - 1
    assert statuses(check3)[HELD] == "drifted"
    assert "held by a guard, as on a production server: MAIL01 mailbox-database-quotas" in result.out
    fixed = [o for h in apply2["hosts"] for o in h["outcomes"] if o["status"] == "fixed"]
    assert all(o["after"] and o["before"] != o["after"] for o in fixed)

    for step, doc in (("1-check", check1), ("2-apply", apply2), ("3-check", check3)):
        cases = _junit_cases(out / f"{step}.junit.xml")
        assert len(cases) == len(HOSTS) * len(CONTROLS)
        failing = sum(doc["summary"][s] for s in ("drifted", "failed"))
        assert sum(case.find("failure") is not None for case in cases) == failing


def test_demo_without_report_dir_uses_a_new_temp_folder(cli: Cli, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = cli("demo")
    assert result.code == 0
    (folder,) = tmp_path.glob("hardening-demo-*")
    assert len(list(folder.glob("*.json"))) == 3
    assert f"reports written to {folder}" in result.out


# --- exit 2: unreachable hosts and failing controls -----------------------------------------

def test_a_host_missing_from_the_lab_is_unreachable(cli: Cli, lab_dir: LabDir, tmp_path: Path) -> None:
    lab_dir.edit_inventory(lambda inv: inv["hosts"].update({"MAIL99": {}}))
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    result = cli("check", "baseline", "-i", lab_dir.inventory, "--limit", "MAIL99,MAIL04",
                 "--report-json", report, "--report-junit", junit)
    assert result.code == 2, result.out
    doc = read_json(report)
    assert doc["summary"]["unreachable"] == 1 and doc["summary"]["hosts"] == 2
    host = next(h for h in doc["hosts"] if h["name"] == "MAIL99")
    assert host["reachable"] is False
    assert "MAIL99" in host["error"] and "lab" in host["error"]
    assert {o["status"] for o in host["outcomes"]} == {"failed"}
    assert [o["control"] for o in host["outcomes"]] == CONTROLS
    assert all("unreachable" in o["message"] for o in host["outcomes"])
    assert {statuses(doc)[("MAIL04", c)] for c in CONTROLS} == {"compliant"}

    root = ET.parse(junit).getroot()
    suite = next(s for s in root.findall("testsuite") if s.get("name") == "MAIL99")
    assert suite.find("properties/property[@name='error']") is not None
    assert len(suite.findall("testcase/failure")) == len(CONTROLS)


def test_a_lab_fault_fails_the_control_and_hides_nothing_else(cli: Cli, lab_dir: LabDir, tmp_path: Path,
                                                              traffic: Traffic) -> None:
    message = "Active Directory operation failed on DC01.contoso.com."
    lab_dir.edit_lab(lambda lab: lab["hosts"]["MAIL01"].update(
        {"faults": [{"call": "Set-PopSettings", "error": message}]}))

    checked = cli("check", "baseline", "-i", lab_dir.inventory)
    assert checked.code == 3, "check sends no write, so the write fault cannot fire"

    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    applied = cli("apply", "baseline", "-i", lab_dir.inventory, "--report-json", report, "--report-junit", junit)
    assert applied.code == 2, applied.out
    assert ("MAIL01", "Set-PopSettings") in traffic.writes()
    doc = read_json(report)
    got = statuses(doc)
    assert got[("MAIL01", "pop3-secure-login")] == "failed"
    assert all(got[("MAIL01", c)] == "fixed" for c in CONTROLS if c not in {"pop3-secure-login", HELD[1]})
    assert got[HELD] == "drifted"
    assert doc["summary"]["failed"] == 1
    outcome = next(o for h in doc["hosts"] for o in h["outcomes"]
                   if h["name"] == "MAIL01" and o["control"] == "pop3-secure-login")
    assert message in outcome["message"]
    assert outcome["before"] == outcome["after"], "the failed write changed nothing"
    assert [c["path"] for c in outcome["changes"]] == ["MAIL01\\POP3.LoginType",
                                                       "MAIL01\\POP3.ExtendedProtectionPolicy"]

    failures = ET.parse(junit).getroot().findall(".//testcase/failure[@type='failed']")
    assert len(failures) == 1 and message in (failures[0].get("message") or "")

    # the fault is permanent: the next check still sees the drift, the next apply fails again
    assert cli("check", "baseline", "-i", lab_dir.inventory).code == 3
    assert cli("apply", "baseline", "-i", lab_dir.inventory).code == 2


def test_a_fault_that_clears_after_one_try(cli: Cli, lab_dir: LabDir) -> None:
    lab_dir.edit_lab(lambda lab: lab["hosts"]["MAIL02"].update(
        {"faults": [{"call": "Set-PopSettings", "error": "busy", "times": 1}]}))
    assert cli("apply", "baseline", "-i", lab_dir.inventory).code == 2
    assert cli("apply", "baseline", "-i", lab_dir.inventory).code == 3
    assert cli("check", "pop3-spa", "-i", lab_dir.inventory).code == 0


def test_a_read_fault_fails_check(cli: Cli, lab_dir: LabDir, tmp_path: Path) -> None:
    lab_dir.edit_lab(lambda lab: lab["hosts"]["MAIL04"].update(
        {"faults": [{"call": "ntfs_acl.read", "error": "Access to the path is denied."}]}))
    report = tmp_path / "r.json"
    result = cli("check", "baseline", "-i", lab_dir.inventory, "--limit", "MAIL04", "--report-json", report)
    assert result.code == 2
    got = statuses(read_json(report))
    assert got[("MAIL04", "ntfs-transport-queue")] == "failed"
    assert got[("MAIL04", "pop3-secure-login")] == "compliant"


# --- selection: --limit, --tags, --skip-tags ------------------------------------------------

@pytest.mark.parametrize(("limit", "hosts"), [
    (["MAIL04"], ["MAIL04"]),
    (["MAIL01,MAIL03"], ["MAIL01", "MAIL03"]),
    (["MAIL01", "MAIL03"], ["MAIL01", "MAIL03"]),
    (["MAIL0[12]"], ["MAIL01", "MAIL02"]),
    (["mail02"], ["MAIL02"]),
    (["exchange"], HOSTS),
    (["!MAIL04"], ["MAIL01", "MAIL02", "MAIL03"]),
], ids=["one-host", "comma", "repeated", "glob", "case-insensitive", "group", "exclude"])
def test_limit(cli: Cli, lab_dir: LabDir, tmp_path: Path, traffic: Traffic, limit: list[str],
               hosts: list[str]) -> None:
    report = tmp_path / "r.json"
    args = [a for pattern in limit for a in ("--limit", pattern)]
    result = cli("check", "baseline", "-i", lab_dir.inventory, *args, "--report-json", report)
    assert result.code == (0 if hosts == ["MAIL04"] else 3)
    assert [h["name"] for h in read_json(report)["hosts"]] == hosts
    assert {who for who, _ in traffic.calls} == set(hosts), "hosts left out are not contacted"


def test_limit_naming_an_unknown_host_is_an_error(cli: Cli, lab_dir: LabDir, traffic: Traffic) -> None:
    result = cli("check", "baseline", "-i", lab_dir.inventory, "--limit", "MAIL01,MAIL77")
    assert result.code == 1
    assert result.out == ""
    assert result.err_lines == [f"error: --limit: unknown host or group 'MAIL77' in inventory {lab_dir.inventory}"]
    assert traffic.calls == []


def _selected(tags: set[str], skip: set[str]) -> list[str]:
    """What --tags/--skip-tags select from the baseline: a control's tags, its id or its kind."""
    out = []
    for control in BASELINE.controls:
        names = {*control.tags, control.id, control.kind}
        if (not tags or names & tags) and not names & skip:
            out.append(control.id)
    return out


@pytest.mark.parametrize(("args", "tags", "skip", "at_least"), [
    (["--tags", "pop3"], {"pop3"}, set(), ["pop3-secure-login"]),
    (["--tags", "spa"], {"spa"}, set(), ["pop3-secure-login", "imap4-secure-login"]),
    (["--tags", "ntfs,imap4"], {"ntfs", "imap4"}, set(), ["imap4-secure-login", "ntfs-transport-queue"]),
    (["--tags", "ntfs", "--tags", "imap4"], {"ntfs", "imap4"}, set(), ["imap4-secure-login", "ntfs-transport-queue"]),
    (["--tags", "smtp-in-internet-offers-tls"], {"smtp-in-internet-offers-tls"}, set(),
     ["smtp-in-internet-offers-tls"]),
    (["--tags", "receive_connector_tls"], {"receive_connector_tls"}, set(),
     ["smtp-in-client-require-tls", "smtp-in-internet-offers-tls"]),
    (["--skip-tags", "spa"], set(), {"spa"}, ["smtp-in-client-require-tls", "ntfs-transport-queue"]),
    (["--skip-tags", "smtp,ntfs_acl"], set(), {"smtp", "ntfs_acl"}, ["pop3-secure-login", "imap4-secure-login"]),
    (["--tags", "spa", "--skip-tags", "imap4"], {"spa"}, {"imap4"}, ["pop3-secure-login"]),
], ids=["tag", "shared-tag", "comma", "repeated", "by-id", "by-kind", "skip", "skip-comma", "tags-and-skip"])
def test_tags_and_skip_tags(cli: Cli, lab_dir: LabDir, tmp_path: Path, traffic: Traffic, args: list[str],
                            tags: set[str], skip: set[str], at_least: list[str]) -> None:
    report = tmp_path / "r.json"
    result = cli("check", "baseline", "-i", lab_dir.inventory, "--limit", "MAIL01", *args, "--report-json", report)
    assert result.code == 3
    doc = read_json(report)
    controls = [o["control"] for o in doc["hosts"][0]["outcomes"]]
    assert controls == _selected(tags, skip)
    assert set(at_least) <= set(controls)
    assert not skip & {n for c in BASELINE.controls if c.id in controls for n in (*c.tags, c.id, c.kind)}
    cmdlets = {"pop3-secure-login": "Get-PopSettings", "imap4-secure-login": "Get-ImapSettings",
               "ntfs-transport-queue": "ntfs_acl.read", "smtp-in-client-require-tls": "Get-ReceiveConnector",
               "smtp-in-internet-offers-tls": "Get-ReceiveConnector"}
    reads = set(traffic.names("MAIL01")) - {"facts.read"}
    if set(controls) <= set(cmdlets):  # the other procedures' reads are checked by their own tests
        assert reads == {cmdlets[c] for c in controls}, "controls left out are not read"
    else:
        left_out = {cmdlets[c] for c in cmdlets if c not in controls} - {cmdlets[c] for c in controls if c in cmdlets}
        assert not left_out & reads, "controls left out are not read"


def test_apply_with_tags_fixes_only_those_controls(cli: Cli, lab_dir: LabDir, tmp_path: Path) -> None:
    assert cli("apply", "baseline", "-i", lab_dir.inventory, "--tags", "spa").code == 3
    report = tmp_path / "r.json"
    assert cli("check", "baseline", "-i", lab_dir.inventory, "--report-json", report).code == 3
    got = statuses(read_json(report))
    assert {got[(h, c)] for h in HOSTS for c in ("pop3-secure-login", "imap4-secure-login")} == {"compliant"}
    assert got[("MAIL01", "ntfs-transport-queue")] == "drifted"
    assert cli("check", "baseline", "-i", lab_dir.inventory, "--tags", "spa").code == 0


# --- --diff and the text table --------------------------------------------------------------

def test_diff_shows_before_and_after_per_property(cli: Cli, lab_dir: LabDir) -> None:
    args = ("baseline", "-i", lab_dir.inventory, "--limit", "MAIL01", "--tags", "pop3")
    line = "MAIL01\\POP3.LoginType: PlainTextLogin → SecureLogin"
    plain = cli("check", *args)
    assert plain.code == 3 and line not in plain.out
    checked = cli("check", *args, "--diff")
    assert checked.code == 3 and line in checked.out
    applied = cli("apply", *args, "--diff")
    assert applied.code == 3 and line in applied.out and "fixed" in applied.out
    again = cli("apply", *args, "--diff")
    assert again.code == 0 and "→" not in again.out


def test_no_color_prints_no_escape_sequences(cli: Cli, lab_dir: LabDir) -> None:
    result = cli("--no-color", "check", "baseline", "-i", lab_dir.inventory)
    assert result.code == 3
    assert "\x1b[" not in result.out


# --- --report-json / --report-junit -----------------------------------------------------------

def test_reports_of_a_check(cli: Cli, lab_dir: LabDir, tmp_path: Path) -> None:
    report, junit = tmp_path / "check.json", tmp_path / "check.xml"
    result = cli("check", "baseline", "-i", lab_dir.inventory, "--report-json", report, "--report-junit", junit)
    assert result.code == 3
    assert f"JSON report: {report}" in result.out and f"JUnit report: {junit}" in result.out
    doc = read_json(report)
    _check_report(doc, "check")
    assert doc["exit_code"] == 3

    cases = _junit_cases(junit)
    assert len(cases) == len(HOSTS) * len(CONTROLS)
    by_key = {(c.get("classname", "").split(".")[0], c.get("name", "").split(":")[0]): c for c in cases}
    assert set(by_key) == set(statuses(doc))
    for key, status in statuses(doc).items():
        failure = by_key[key].find("failure")
        if status in {"drifted", "failed"}:
            assert failure is not None and failure.get("type") == status, key
            assert failure.get("message")
        else:
            assert failure is None, key
    drift = by_key[("MAIL01", "pop3-secure-login")].find("failure")
    assert drift is not None and "MAIL01\\POP3.LoginType: PlainTextLogin -> SecureLogin" in (drift.text or "")


def test_junit_escapes_what_it_quotes(cli: Cli, lab_dir: LabDir, tmp_path: Path) -> None:
    """A message with XML metacharacters still makes a well-formed report."""
    nasty = "denied <&> \"quoted\" 'single' ]]> \u00e9"
    lab_dir.edit_lab(lambda lab: lab["hosts"]["MAIL01"].update({"faults": [{"call": "Get-PopSettings",
                                                                            "error": nasty}]}))
    junit = tmp_path / "r.xml"
    assert cli("check", "baseline", "-i", lab_dir.inventory, "--limit", "MAIL01", "--report-junit", junit).code == 2
    failures = [c.find("failure") for c in _junit_cases(junit) if c.find("failure[@type='failed']") is not None]
    assert len(failures) == 1 and nasty in (failures[0].get("message") or "")


# --- schema ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    from hardening.playbook import playbook_schema

    return playbook_schema()


def test_schema_command_prints_a_valid_json_schema(cli: Cli, tmp_path: Path) -> None:
    result = cli("schema")
    assert result.code == 0
    printed = json.loads(result.out)
    Draft202012Validator.check_schema(printed)
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(KINDS) <= set(printed["$defs"]["Control"]["properties"])

    target = tmp_path / "playbook.schema.json"
    written = cli("schema", "-o", target)
    assert written.code == 0 and f"JSON Schema written to {target}" in written.out
    assert json.loads(target.read_text(encoding="utf-8")) == printed




@pytest.mark.parametrize("playbook", [
    pytest.param(p, id=p.name) for p in SHIPPED_PLAYBOOKS
])
def test_every_shipped_playbook_validates_against_the_schema(schema: dict[str, Any], playbook: Path) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in Draft202012Validator(schema).iter_errors(yaml.safe_load(playbook.read_text("utf-8")))]
    assert errors == []


def test_shipped_playbooks_were_found() -> None:
    assert {p.name for p in SHIPPED_PLAYBOOKS} >= {"baseline.yml", "smtp-tls.yml", "pop3-spa.yml", "ntfs.yml"}


GOOD_CONTROL = {"id": "a", "title": "t", "pop_imap_login": {"protocol": "pop3", "login_type": "SecureLogin"}}


@pytest.mark.parametrize("document", [
    {"name": "x", "colour": "blue"},
    {"name": "x", "controls": [{**GOOD_CONTROL, "colour": "blue"}]},
    {"name": "x", "controls": [{**GOOD_CONTROL, "pop_imap_login": {"protocol": "pop3", "colour": "blue"}}]},
    {"name": "x", "controls": [{"id": "a", "title": "t"}]},
    {"name": "x", "controls": [{**GOOD_CONTROL, "ntfs_acl": {"path": "C:\\x"}}]},
    {"name": "x", "controls": [{**GOOD_CONTROL, "policy": "enforced"}]},
    {"name": "x", "controls": [{**GOOD_CONTROL, "id": "bad id!"}]},
    {"controls": []},
], ids=["unknown-top-level-key", "unknown-control-key", "unknown-parameter", "no-kind", "two-kinds",
        "bad-policy", "bad-id", "no-name"])
def test_schema_refuses_what_the_loader_refuses(schema: dict[str, Any], document: dict[str, Any]) -> None:
    assert list(Draft202012Validator(schema).iter_errors(document)), "the schema accepted it"


def test_schema_accepts_a_minimal_playbook(schema: dict[str, Any]) -> None:
    Draft202012Validator(schema).validate({"name": "x", "controls": [GOOD_CONTROL]})


def test_schema_title_is_the_readable_one(schema: dict[str, Any]) -> None:
    assert schema["title"] == "hardening playbook"


# --- kinds, lab init, --version ---------------------------------------------------------------

def test_kinds_lists_every_kind_with_its_summary(cli: Cli) -> None:
    result = cli("kinds")
    assert result.code == 0
    lines = result.out.splitlines()
    assert len(lines) == len(KINDS)
    for line, (name, kind) in zip(lines, sorted(KINDS.items()), strict=True):
        assert line.split()[0] == name
        assert line.endswith(kind.summary)


def test_kinds_at_a_narrow_terminal_keeps_one_line_per_kind(capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`hardening kinds | grep` needs one line per kind, whatever the terminal width."""


    monkeypatch.setenv("COLUMNS", "60")
    result = invoke(capsys, ["kinds"])
    assert result.code == 0
    assert len(result.out.splitlines()) == len(KINDS), result.out


def test_lab_init_writes_a_lab_and_an_inventory(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "new" / "lab"
    result = cli("lab", "init", target)
    assert result.code == 0
    assert (target / "lab.yml").read_text(encoding="utf-8") == merged_lab_text(hardening.lab.BUILTIN_SCENARIO)
    assert load_lab(target / "lab.yml").hosts.keys() == load_lab().hosts.keys()
    inventory = yaml.safe_load((target / "inventory.yml").read_text(encoding="utf-8"))
    assert inventory["lab"] == "lab.yml"
    assert sorted(inventory["hosts"]) == HOSTS
    assert f"hardening check baseline -i {target / 'inventory.yml'}" in result.out


def test_lab_init_refuses_to_overwrite_without_force(cli: Cli, lab_dir: LabDir) -> None:
    lab_dir.lab.write_text("# mine\n" + lab_dir.lab.read_text(encoding="utf-8"), encoding="utf-8")
    refused = cli("lab", "init", lab_dir.root)
    assert refused.code == 1
    assert refused.err_lines == [f"error: {lab_dir.lab} exists; use --force to overwrite it"]
    assert lab_dir.lab.read_text(encoding="utf-8").startswith("# mine\n"), "nothing was overwritten"

    lab_dir.lab.unlink()
    refused = cli("lab", "init", lab_dir.root)
    assert refused.code == 1, "the inventory alone is worth keeping too"
    assert refused.err_lines == [f"error: {lab_dir.inventory} exists; use --force to overwrite it"]
    assert not lab_dir.lab.exists(), "nothing was written when it refused"

    forced = cli("lab", "init", lab_dir.root, "--force")
    assert forced.code == 0
    assert lab_dir.lab.read_text(encoding="utf-8") == merged_lab_text(hardening.lab.BUILTIN_SCENARIO)


def test_lab_init_force_starts_the_lab_afresh(cli: Cli, lab_dir: LabDir) -> None:
    assert cli("apply", "baseline", "-i", lab_dir.inventory).code == 3
    assert cli("lab", "init", lab_dir.root, "--force").code == 0
    assert cli("check", "baseline", "-i", lab_dir.inventory).code == 3


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.code == 0
    assert result.out.strip() == f"hardening {hardening.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", hardening.__version__)


# --- errors that are not about a playbook's content ------------------------------------------

def test_a_missing_file_is_one_error_line(cli: Cli, lab_dir: LabDir, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    playbook = cli("check", missing, "-i", lab_dir.inventory)
    assert (playbook.code, playbook.err_lines) == (1, [f"error: {missing}: file not found"])
    inventory = cli("check", "baseline", "-i", missing)
    assert (inventory.code, inventory.err_lines) == (1, [f"error: {missing}: file not found"])


def test_a_broken_lab_state_says_how_to_recover(cli: Cli, lab_dir: LabDir) -> None:
    lab_dir.state.write_text("{not json", encoding="utf-8")
    result = cli("check", "baseline", "-i", lab_dir.inventory)
    assert result.code == 1
    (line,) = result.err_lines
    assert str(lab_dir.lab) in line and "lab.yml.state.json" in line and "hardening lab reset" in line
    assert cli("lab", "reset", lab_dir.lab).code == 0
    assert cli("check", "baseline", "-i", lab_dir.inventory).code == 3


def test_a_long_error_stays_on_one_line_at_the_default_width(capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    """Schedulers and `grep` read stderr line by line: the error must not be wrapped at 80 columns."""


    monkeypatch.delenv("COLUMNS", raising=False)
    inventory = tmp_path / "a-rather-long-inventory-file-name-to-pass-eighty-columns.yml"
    inventory.write_text("hosts:\n  MAIL01:\n    connection:\n      password: hunter2\n", encoding="utf-8")
    result = invoke(capsys, ["check", "baseline", "-i", inventory])
    assert result.code == 1
    assert len(result.err_lines) == 1, result.err
    assert len(result.err_lines[0]) > 80


@pytest.mark.parametrize("argv", [
    ["check", "baseline"],
    ["chek", "baseline"],
    ["check", "baseline", "-i", "inv.yml", "--forks", "many"],
    [],
], ids=["missing-inventory", "unknown-command", "bad-int", "no-command"])
def test_a_usage_error_exits_1(cli: Cli, argv: list[str]) -> None:
    result = cli(*argv)
    assert "usage: hardening" in result.err
    assert result.code == 1


@pytest.mark.parametrize("where", ["report-json", "report-junit", "schema-output", "demo-report-dir",
                                   "lab-init-dir"])
def test_an_unwritable_output_is_one_error_line(cli: Cli, lab_dir: LabDir, tmp_path: Path, where: str) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x", encoding="utf-8")
    missing = tmp_path / "no" / "such" / "folder" / "out"
    argv = {
        "report-json": ["check", "baseline", "-i", lab_dir.inventory, "--report-json", missing],
        "report-junit": ["check", "baseline", "-i", lab_dir.inventory, "--report-junit", missing],
        "schema-output": ["schema", "-o", missing],
        "demo-report-dir": ["demo", "--report-dir", afile],
        "lab-init-dir": ["lab", "init", afile],
    }[where]
    result = cli(*argv)  # today: raises FileNotFoundError / FileExistsError out of main()
    assert result.code == 1
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("error: ")


def test_tags_matching_no_control_is_an_error(cli: Cli, lab_dir: LabDir) -> None:
    result = cli("check", "baseline", "-i", lab_dir.inventory, "--tags", "smpt")
    assert result.code == 1
    assert "smpt" in result.err


# --- real processes ---------------------------------------------------------------------------

def _console_script() -> str:
    beside = Path(sys.executable).with_name("hardening")
    found = str(beside) if beside.is_file() else shutil.which("hardening")
    assert found, "the hardening console script is not installed beside this Python"
    return found


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_python_m_hardening_version(tmp_path: Path) -> None:
    done = _run([sys.executable, "-m", "hardening", "--version"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"hardening {hardening.__version__}"


def test_console_script_version_and_help(tmp_path: Path) -> None:
    done = _run([_console_script(), "--version"], tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, f"hardening {hardening.__version__}")
    helped = _run([_console_script(), "--help"], tmp_path)
    assert helped.returncode == 0
    for command in ("check", "apply", "plan", "demo", "schema", "kinds", "lab"):
        assert re.search(rf"^\s+{command}\s", helped.stdout, re.M), command


def test_console_script_check_apply_check(tmp_path: Path) -> None:
    script = _console_script()
    assert _run([script, "lab", "init", "lab"], tmp_path).returncode == 0
    inventory = tmp_path / "lab" / "inventory.yml"
    codes = [_run([script, mode, "baseline", "-i", str(inventory), "--report-json", f"{step}.json"],
                  tmp_path).returncode for step, mode in enumerate(("check", "apply", "check", "apply"))]
    # 3 throughout: the quota guard holds MAIL01's DB01 (HELD), and the last apply changes nothing else
    assert codes == [3, 3, 3, 3]
    last = read_json(tmp_path / "3.json")
    assert last["summary"]["fixed"] == 0 and last["summary"]["drifted"] == 1
    assert {k for k, v in statuses(last).items() if v != "compliant"} == {HELD}


def test_python_m_hardening_demo_and_a_bad_playbook(tmp_path: Path) -> None:
    done = _run([sys.executable, "-m", "hardening", "demo", "--report-dir", "out"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list((tmp_path / "out").glob("*.junit.xml"))) == 3

    (tmp_path / "bad.yml").write_text("name: x\ncontrols:\n  - id: a\n    title: t\n    pop_imap_lgin: {}\n",
                                      encoding="utf-8")
    bad = _run([sys.executable, "-m", "hardening", "check", "bad.yml", "-i",
                str(ROOT / "hardening" / "lab" / "scenarios" / "demo-inventory.yml")], tmp_path)
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == ["error: bad.yml:5:5: controls[0].pop_imap_lgin: unknown key "
                                       "'pop_imap_lgin'; did you mean 'pop_imap_login'?"]
