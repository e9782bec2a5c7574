"""The STIG Viewer checklist: well-formed, in the element structure STIG Viewer reads, statuses mapped."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from hardening.report_ckl import (
    ASSET_FIELDS,
    BENCHMARKS,
    SI_FIELDS,
    VULN_ATTRIBUTES,
    render_ckl,
    render_ckls,
    stig_ids,
)

from .conftest import HOSTILE_HOST, HOSTILE_MESSAGE, HOSTILE_TITLE, Runs, hostile

TAIL = ["STATUS", "FINDING_DETAILS", "COMMENTS", "SEVERITY_OVERRIDE", "SEVERITY_JUSTIFICATION"]


def parse(text: str) -> ET.Element:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    return ET.fromstring(text.encode("utf-8"))


def vulns(root: ET.Element) -> dict[str, dict[str, Any]]:
    """Rule_Ver → {attribute: data, STATUS, FINDING_DETAILS, COMMENTS, benchmark}."""
    out: dict[str, dict[str, Any]] = {}
    for istig in root.iter("iSTIG"):
        info = {si.findtext("SID_NAME") or "": si.findtext("SID_DATA") or "" for si in istig.iter("SI_DATA")}
        for vuln in istig.findall("VULN"):
            data: dict[str, Any] = {sd.findtext("VULN_ATTRIBUTE") or "": sd.findtext("ATTRIBUTE_DATA") or ""
                                    for sd in vuln.findall("STIG_DATA")}
            data.update({tag: vuln.findtext(tag) or "" for tag in TAIL})
            data["benchmark"] = info["stigid"]
            out[data["Rule_Ver"]] = data
    return out


def assert_structure(root: ET.Element) -> None:
    """The element layout of a STIG Viewer checklist."""
    assert root.tag == "CHECKLIST"
    assert [c.tag for c in root] == ["ASSET", "STIGS"]
    asset = root.find("ASSET")
    assert asset is not None and [c.tag for c in asset] == list(ASSET_FIELDS)
    assert asset.findtext("ASSET_TYPE") == "Computing" and asset.findtext("WEB_OR_DATABASE") == "false"
    stigs = root.find("STIGS")
    assert stigs is not None and len(stigs) >= 1 and {c.tag for c in stigs} == {"iSTIG"}
    for istig in stigs:
        assert istig[0].tag == "STIG_INFO" and {c.tag for c in istig[1:]} == {"VULN"}
        info = istig.find("STIG_INFO")
        assert info is not None
        assert [si.findtext("SID_NAME") for si in info] == list(SI_FIELDS)
        assert all([c.tag for c in si][:1] == ["SID_NAME"] and len(si) <= 2 for si in info)
        assert len(istig.findall("VULN")) >= 1
        for vuln in istig.findall("VULN"):
            tags = [c.tag for c in vuln]
            n = tags.index("STATUS")
            assert set(tags[:n]) == {"STIG_DATA"} and tags[n:] == TAIL
            names = [sd.findtext("VULN_ATTRIBUTE") for sd in vuln.findall("STIG_DATA")]
            assert names[:len(VULN_ATTRIBUTES)] == list(VULN_ATTRIBUTES)
            assert all([c.tag for c in sd] == ["VULN_ATTRIBUTE", "ATTRIBUTE_DATA"] for sd in vuln.findall("STIG_DATA"))
            assert vuln.findtext("STATUS") in {"NotAFinding", "Open", "Not_Applicable", "Not_Reviewed"}


def expected_ids(run_json: dict[str, Any], host: str, benchmark: str) -> set[str]:
    prefix = BENCHMARKS[benchmark].prefix
    return {sid for h in run_json["hosts"] if h["name"] == host for o in h["outcomes"]
            for sid in o["references"].get("stig", []) if sid.startswith(prefix)}


def outcome(control: str, status: str, stig: list[str], message: str = "", **extra: Any) -> dict[str, Any]:
    return {"control": control, "title": f"Title of {control}", "kind": "k", "status": status,
            "message": message or f"{control} is {status}", "desired": {}, "before": {}, "after": {},
            "changes": [], "references": {"guide": "A guide section", "stig": stig}, "variant": None,
            "pending_restarts": [], "restarted": [], "params": {}, **extra}


def run_of(*hosts: tuple[str, list[dict[str, Any]]], release: str = "2019") -> dict[str, Any]:
    return {"schema": "hardening.run/1", "run_id": "20261130T100000Z-abc", "mode": "check",
            "started_at": "2026-11-30T10:00:00+00:00", "finished_at": "2026-11-30T10:00:01+00:00",
            "tool_version": "0.1.0", "playbooks": [], "summary": {}, "exit_code": 3,
            "hosts": [{"name": name, "reachable": True, "error": None, "facts": {"exchange_release": release},
                       "requests": 3, "outcomes": outs} for name, outs in hosts]}


# --- from a real run of the demo lab ---------------------------------------------------------


def test_one_checklist_per_host_from_a_real_check(runs: Runs) -> None:
    checklists = render_ckls(runs.check)
    assert set(checklists) == {h["name"] for h in runs.check["hosts"]}
    for host, text in checklists.items():
        root = parse(text)
        assert_structure(root)
        assert root.findtext("ASSET/HOST_NAME") == host
        assert root.findtext("ASSET/TECH_AREA") == "Exchange Server"
        found = vulns(root)
        # the demo hosts run Exchange 2019: only the 2019 benchmark(s) the playbook's ids belong to
        assert {v["benchmark"] for v in found.values()} == {"MS_Exchange_2019_Edge_Server_STIG"}
        assert set(found) == expected_ids(runs.check, host, "MS_Exchange_2019_Edge_Server_STIG")
        statuses = {o["control"]: o["status"] for h in runs.check["hosts"] if h["name"] == host
                    for o in h["outcomes"]}
        for sid, vuln in found.items():
            controls = [c for h in runs.check["hosts"] if h["name"] == host for o in h["outcomes"]
                        if sid in o["references"].get("stig", []) for c in [o["control"]]]
            want = "Open" if any(statuses[c] in {"drifted", "failed"} for c in controls) else "NotAFinding"
            assert vuln["STATUS"] == want, (host, sid)
            assert vuln["Vuln_Num"] == sid and vuln["Rule_Title"]
            for c in controls:
                assert c in vuln["FINDING_DETAILS"] and c in vuln["COMMENTS"]


def test_controls_without_stig_ids_are_left_out(runs: Runs) -> None:
    without = {o["control"] for h in runs.check["hosts"] for o in h["outcomes"] if not o["references"].get("stig")}
    assert without, "the baseline has controls without STIG ids (outbound TLS, POP3/IMAP4)"
    text = render_ckl(runs.check, host="MAIL01")
    for control in without:
        assert control not in text


def test_a_fixed_run_is_not_a_finding(runs: Runs) -> None:
    for text in render_ckls(runs.apply).values():
        assert {v["STATUS"] for v in vulns(parse(text)).values()} == {"NotAFinding"}
    mail04 = vulns(parse(render_ckl(runs.check, host="MAIL04")))
    assert {v["STATUS"] for v in mail04.values()} == {"NotAFinding"}


def test_a_chosen_benchmark_and_the_aggregate(runs: Runs) -> None:
    edge16 = vulns(parse(render_ckl(runs.check, "MS_Exchange_2016_Edge_Transport_Server_STIG", host="MAIL01")))
    assert set(edge16) == expected_ids(runs.check, "MAIL01", "MS_Exchange_2016_Edge_Transport_Server_STIG")
    with pytest.raises(ValueError, match=r"MS_Exchange_2019_Mailbox_Server_STIG \(EX19-MB-"):
        render_ckl(runs.check, "MS_Exchange_2019_Mailbox_Server_STIG", host="MAIL01")
    with pytest.raises(ValueError, match="not in run"):
        render_ckl(runs.check, host="MAIL99")
    root = parse(render_ckl(runs.check))
    assert_structure(root)
    assert root.findtext("ASSET/HOST_NAME") == ""  # an aggregate names no single asset
    assert "aggregates hosts MAIL01, MAIL02, MAIL03, MAIL04" in (root.findtext("ASSET/TARGET_COMMENT") or "")
    vuln = vulns(root)["EX19-ED-000235"]
    assert vuln["STATUS"] == "Open"  # drifted on MAIL01, compliant elsewhere
    assert all(f"{h}: smtp-in-internet-offers-tls" in vuln["FINDING_DETAILS"] for h in ("MAIL01", "MAIL04"))


def test_the_same_run_gives_the_same_checklist(runs: Runs) -> None:
    assert render_ckl(runs.check, host="MAIL02") == render_ckl(runs.check, host="MAIL02")


# --- statuses --------------------------------------------------------------------------------


def test_statuses_are_mapped() -> None:
    run = run_of(("MAIL01", [
        outcome("c-compliant", "compliant", ["EX19-ED-000001"]),
        outcome("c-fixed", "fixed", ["EX19-ED-000002"]),
        outcome("c-drifted", "drifted", ["EX19-ED-000003"]),
        outcome("c-failed", "failed", ["EX19-ED-000004"]),
        outcome("c-na", "not_applicable", ["EX19-ED-000005"]),
        outcome("c-skipped", "skipped", ["EX19-ED-000006"], "exception until 2027-01-31: scanner (CHG-1)"),
        outcome("c-none", "drifted", []),
    ]))
    found = vulns(parse(render_ckl(run, host="MAIL01")))
    assert {sid: v["STATUS"] for sid, v in found.items()} == {
        "EX19-ED-000001": "NotAFinding", "EX19-ED-000002": "NotAFinding", "EX19-ED-000003": "Open",
        "EX19-ED-000004": "Open", "EX19-ED-000005": "Not_Applicable", "EX19-ED-000006": "Not_Reviewed"}
    assert "exception until 2027-01-31: scanner (CHG-1)" in found["EX19-ED-000006"]["FINDING_DETAILS"]


@pytest.mark.parametrize(("statuses", "want"), [
    (["compliant", "drifted"], "Open"),
    (["skipped", "compliant"], "Not_Reviewed"),
    (["failed", "skipped"], "Open"),
    (["not_applicable", "compliant"], "NotAFinding"),
    (["not_applicable", "not_applicable"], "Not_Applicable"),
    (["fixed", "compliant"], "NotAFinding"),
])
def test_one_vuln_per_stig_id_takes_the_worst_status(statuses: list[str], want: str) -> None:
    run = run_of(("MAIL01", [outcome(f"c{i}", s, ["EX19-ED-000099"]) for i, s in enumerate(statuses)]))
    (vuln,) = vulns(parse(render_ckl(run, host="MAIL01"))).values()
    assert vuln["STATUS"] == want
    assert vuln["Rule_Title"] == "; ".join(f"Title of c{i}" for i in range(len(statuses)))
    # across hosts too
    split = run_of(*((f"MAIL0{i}", [outcome("c", s, ["EX19-ED-000099"])]) for i, s in enumerate(statuses)))
    (vuln,) = vulns(parse(render_ckl(split))).values()
    assert vuln["STATUS"] == want


# --- benchmarks, rule data, hostile values -----------------------------------------------------


def test_benchmarks_follow_the_ids_and_the_hosts_release() -> None:
    outs = [outcome("a", "compliant", ["EX16-MB-000220", "EX19-ED-000235"]), outcome("b", "drifted", ["V-1234"])]
    assert stig_ids(run_of(("M", outs))) == {"MS_Exchange_2016_Mailbox_Server_STIG": ["EX16-MB-000220"],
                                             "MS_Exchange_2019_Edge_Server_STIG": ["EX19-ED-000235"], "": ["V-1234"]}
    on_2016 = parse(render_ckl(run_of(("M", outs), release="2016"), host="M"))
    assert [i.findtext("STIG_INFO/SI_DATA[4]/SID_DATA") for i in on_2016.iter("iSTIG")] == [
        "MS_Exchange_2016_Mailbox_Server_STIG"]
    unknown_release = parse(render_ckl(run_of(("M", outs), release="SE"), host="M"))
    assert len(list(unknown_release.iter("iSTIG"))) == 2
    # an id of unknown prefix goes only into a benchmark named explicitly, outside the table
    custom = vulns(parse(render_ckl(run_of(("M", outs)), "Site_Mail_Policy", host="M")))
    assert set(custom) == {"V-1234"} and custom["V-1234"]["STATUS"] == "Open"


def test_rule_data_and_stig_info_can_be_supplied() -> None:
    run = run_of(("MAIL01", [outcome("a", "drifted", ["EX19-ED-000235"])]))
    text = render_ckl(run, host="MAIL01",
                      rules={"EX19-ED-000235": {"Vuln_Num": "V-259614", "Rule_ID": "SV-259614r1_rule",
                                                "Severity": "high", "CCI_REF": "CCI-000366, CCI-001453"}},
                      stig_info={"MS_Exchange_2019_Edge_Server_STIG": {"version": "2", "releaseinfo": "Release: 2"}})
    root = parse(text)
    assert_structure(root)
    (vuln,) = vulns(root).values()
    assert (vuln["Vuln_Num"], vuln["Rule_ID"], vuln["Severity"]) == ("V-259614", "SV-259614r1_rule", "high")
    assert [sd.findtext("ATTRIBUTE_DATA") for sd in root.iter("STIG_DATA")
            if sd.findtext("VULN_ATTRIBUTE") == "CCI_REF"] == ["CCI-000366", "CCI-001453"]
    assert vuln["STIGRef"].endswith(":: Version 2, Release: 2")
    info = {si.findtext("SID_NAME"): si.findtext("SID_DATA") for si in root.iter("SI_DATA")}
    assert info["version"] == "2" and info["stigid"] == "MS_Exchange_2019_Edge_Server_STIG"


def test_hostile_values_stay_text_in_the_xml(runs: Runs) -> None:
    doc = hostile(runs.check)
    text = render_ckl(doc, host=HOSTILE_HOST)
    root = parse(text)
    assert_structure(root)
    assert root.findtext("ASSET/HOST_NAME") == HOSTILE_HOST
    shown = HOSTILE_MESSAGE.replace("\x00", "\ufffd").replace("\x07", "\ufffd")
    for vuln in vulns(root).values():
        assert shown in vuln["FINDING_DETAILS"]
        assert vuln["Rule_Title"] == HOSTILE_TITLE
    assert "\x00" not in text and "<script>" not in text and "<x-evil>" not in text


def test_a_run_without_stig_ids_has_no_checklist() -> None:
    run = run_of(("MAIL01", [outcome("a", "drifted", [])]))
    with pytest.raises(ValueError, match="no control of this run carries a STIG id"):
        render_ckl(run, host="MAIL01")
    with pytest.raises(ValueError):
        render_ckls(run)
    partial = copy.deepcopy(run)
    partial["hosts"].append(run_of(("MAIL02", [outcome("b", "compliant", ["EX19-ED-000001"])]))["hosts"][0])
    assert list(render_ckls(partial)) == ["MAIL02"]
