"""The HTML report: what it shows, that it escapes everything, and how headless Chromium renders it."""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hardening.playbook import load_playbook
from hardening.report_html import CSS, EXPIRY_WARNING_DAYS, exceptions_from_playbook, render_html

from .conftest import (
    HOSTILE_HOST,
    HOSTILE_MESSAGE,
    HOSTILE_REASON,
    HOSTILE_RUN_ID,
    HOSTILE_TITLE,
    HOSTILE_VALUE,
    Browsed,
    Node,
    Runs,
    console_lines,
    hostile,
    parse_html,
)

INJECTED_TAGS = {"script", "img", "iframe", "x-evil", "b", "textarea", "object", "embed", "link", "base"}


def pairs(run_json: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(h["name"], o["control"], o["status"]) for h in run_json["hosts"] for o in h["outcomes"]}


def cells(tree: Node) -> set[tuple[str, str, str]]:
    return {(n.attrs["data-host"], n.attrs["data-control"], n.attrs["data-status"])
            for n in tree.find_all("td", "cell")}


def hostile_messages(tree: Node) -> list[str]:
    """The sentences of the hostile host's findings, as the page shows them."""
    return [p.text for a in tree.find_all("article", "finding") if a.attrs["data-host"] == HOSTILE_HOST
            for p in a.find_all("p", "message")]


def assert_no_injection(tree: Node) -> None:
    elements = tree.iter()
    assert not [n.tag for n in elements if n.tag in INJECTED_TAGS]
    assert not [(n.tag, a) for n in elements for a in n.attrs if a.lower().startswith("on")]
    (style,) = tree.find_all("style")
    assert style.text == CSS  # nothing from the run reached the style sheet


# --- the page, in Python ---------------------------------------------------------------------


def test_the_page_is_self_contained(runs: Runs) -> None:
    page = render_html(runs.check, runs.history, [])
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert not re.search(r"\s(src|srcset|action|formaction)\s*=", page, re.IGNORECASE)
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', page))
    assert re.findall(r"url\(", page) == []
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert render_html(runs.check, runs.history, []) == page  # the same run renders the same page


def test_summary_comes_first_and_every_host_and_control_is_in_the_heatmap(runs: Runs) -> None:
    page = render_html(runs.check)
    tree = parse_html(page)
    sections = [n.attrs["id"] for n in tree.find_all("section")]
    assert sections[:3] == ["summary", "heatmap", "timeline"]
    assert cells(tree) == pairs(runs.check)
    drifted = runs.check["summary"]["drifted"]
    (verdict,) = tree.find_all(cls="verdict")
    assert f"{drifted} findings open" in verdict.text
    # every cell says its status in words, not colour alone
    for cell in tree.find_all("td", "cell"):
        assert cell.attrs["data-status"].replace("_", " ") in cell.text or cell.attrs["data-status"] == "none"


def test_findings_show_before_desired_after_with_sets_as_added_and_removed(runs: Runs) -> None:
    tree = parse_html(render_html(runs.apply))
    findings = {(n.attrs["data-host"], n.attrs["data-control"]): n for n in tree.find_all("article", "finding")}
    fixed = {(h, c) for h, c, s in pairs(runs.apply) if s == "fixed"}
    # and the one outcome an apply leaves drifted: the quota its guard holds, with the reason
    assert set(findings) == fixed | {("MAIL01", "mailbox-database-quotas")}
    assert "not lowered without allow_lower" in findings[("MAIL01", "mailbox-database-quotas")].text
    client = findings[("MAIL01", "smtp-in-client-require-tls")]
    added = {n.text for n in client.find_all("li", "add")}
    assert added == {"Tls", "BasicAuthRequireTLS"}
    assert "st-fixed" in client.classes
    queue = findings[("MAIL01", "ntfs-transport-queue")]
    assert any(n.text.startswith("Allow Everyone") for n in queue.find_all("li", "rem"))
    # the heatmap links each fixed cell to its details
    links = {a.attrs["href"][1:] for a in tree.find_all("a") if a.attrs.get("href", "").startswith("#o-")}
    assert links == {n.attrs["id"] for n in findings.values()}


def test_drifted_outcomes_are_not_written(runs: Runs) -> None:
    tree = parse_html(render_html(runs.check))
    article = next(n for n in tree.find_all("article", "finding")
                   if n.attrs["data-host"] == "MAIL01" and n.attrs["data-control"] == "pop3-secure-login")
    assert "not written" in article.text
    assert "PlainTextLogin → SecureLogin" in article.text


def test_the_timeline_has_a_bar_per_recorded_run(runs: Runs) -> None:
    tree = parse_html(render_html(runs.recheck, runs.history))
    (svg,) = tree.find_all("svg")[:1]
    assert "timeline" in svg.classes
    bars = svg.find_all("g", "run")
    assert [b.attrs["data-run"] for b in bars] == [r["run_id"] for r in reversed(runs.history)]
    first = {r.attrs["data-status"]: int(r.attrs["data-count"]) for r in bars[0].find_all("rect") if
             "data-status" in r.attrs}
    assert first["drifted"] == runs.check["summary"]["drifted"]
    second = {r.attrs["data-status"]: int(r.attrs["data-count"]) for r in bars[1].find_all("rect") if
              "data-status" in r.attrs}
    assert second["fixed"] == runs.apply["summary"]["fixed"]


def test_the_timeline_counts_outcome_rows_and_adds_the_current_run(runs: Runs) -> None:
    rows = []
    for doc in (runs.check, runs.apply):
        for h in doc["hosts"]:
            for o in h["outcomes"]:
                rows.append({"run_id": doc["run_id"], "started_at": doc["started_at"], "mode": doc["mode"],
                             "host": h["name"], "control": o["control"], "status": o["status"], "detail": o})
    tree = parse_html(render_html(runs.recheck, rows))
    bars = tree.find_all("g", "run")
    assert [b.attrs["data-run"] for b in bars] == [runs.check["run_id"], runs.apply["run_id"], runs.recheck["run_id"]]
    counts = {r.attrs["data-status"]: int(r.attrs["data-count"]) for r in bars[0].find_all("rect")
              if "data-status" in r.attrs}
    assert counts == {k: v for k, v in runs.check["summary"].items() if k not in {"hosts", "unreachable"} and v}
    assert "No run history" not in render_html(runs.recheck, rows)
    assert "No run history" in render_html(runs.recheck)


def test_exceptions_expiring_within_14_days_are_highlighted(runs: Runs) -> None:
    today = dt.date(2026, 11, 30)
    exceptions: list[dict[str, Any]] = [
        {"control": "pop3-secure-login", "hosts": ["MAIL03"], "reason": "scanner", "until": "2026-12-03"},
        {"control": "imap4-secure-login", "hosts": "MAIL02", "reason": "edge case",
         "until": (today + dt.timedelta(days=EXPIRY_WARNING_DAYS)).isoformat()},
        {"control": "ntfs-transport-queue", "hosts": "MAIL01", "reason": "migration",
         "until": (today + dt.timedelta(days=EXPIRY_WARNING_DAYS + 1)).isoformat()},
        {"control": "smtp-in-internet-offers-tls", "hosts": "all", "reason": "was due", "until": "2026-11-01"},
        {"control": "smtp-out-opportunistic-tls", "hosts": "MAIL04", "reason": "forever", "until": None},
    ]
    tree = parse_html(render_html(runs.check, exceptions=exceptions, today=today))
    (table,) = tree.find_all("table", "exceptions")
    rows = {r.find_all("code")[0].text: r for r in table.find_all("tr")[1:]}
    assert "expiring" in rows["pop3-secure-login"].classes and "expires in 3 days" in rows["pop3-secure-login"].text
    assert "expiring" in rows["imap4-secure-login"].classes
    assert not rows["ntfs-transport-queue"].classes
    assert "expired" in rows["smtp-in-internet-offers-tls"].classes
    assert "open-ended" in rows["smtp-out-opportunistic-tls"].text
    # expiry is judged as of the run's date unless told otherwise: the page does not change with the clock
    assert render_html(runs.check, exceptions=exceptions) == render_html(
        runs.check, exceptions=exceptions, today=dt.date.fromisoformat(runs.check["started_at"][:10]))


def test_exceptions_come_from_the_playbook(tmp_path: Path) -> None:
    playbook = tmp_path / "pb.yml"
    playbook.write_text(
        "name: With an exception\n"
        "controls:\n"
        "  - id: pop3-secure-login\n"
        "    title: POP3 SPA\n"
        "    exceptions:\n"
        "      - {hosts: MAIL03, reason: 'Legacy scanner (CHG-1234)', until: 2027-03-31}\n"
        "      - {hosts: [MAIL01, MAIL02], reason: 'Open-ended'}\n"
        "    pop_imap_login: {protocol: pop3, login_type: SecureLogin}\n", encoding="utf-8")
    assert exceptions_from_playbook(load_playbook(playbook)) == [
        {"control": "pop3-secure-login", "title": "POP3 SPA", "hosts": ["MAIL03"],
         "reason": "Legacy scanner (CHG-1234)", "until": "2027-03-31"},
        {"control": "pop3-secure-login", "title": "POP3 SPA", "hosts": ["MAIL01", "MAIL02"],
         "reason": "Open-ended", "until": None},
    ]


def test_pending_restarts_are_listed(runs: Runs) -> None:
    doc = copy.deepcopy(runs.apply)
    outcome = next(o for o in doc["hosts"][1]["outcomes"] if o["control"] == "pop3-secure-login")
    outcome["pending_restarts"] = ["MSExchangePOP3", "MSExchangePOP3BE"]
    outcome["restarted"] = []
    tree = parse_html(render_html(doc))
    (table,) = tree.find_all("table", "pending")
    (row,) = table.find_all("tr")[1:]
    assert doc["hosts"][1]["name"] in row.text and "MSExchangePOP3, MSExchangePOP3BE" in row.text
    assert "No restarts pending" in render_html(runs.check)


def test_unreachable_hosts_are_said_first() -> None:
    doc = {"schema": "hardening.run/1", "run_id": "r1", "mode": "check", "started_at": "2026-11-30T10:00:00+00:00",
           "finished_at": "2026-11-30T10:00:05+00:00", "tool_version": "0.1.0", "playbooks": [], "exit_code": 2,
           "summary": {}, "hosts": [{"name": "MAIL09", "reachable": False, "error": "connection refused",
                                     "facts": {}, "requests": 0, "outcomes": [
                                         {"control": "c1", "title": "t", "kind": "k", "status": "failed",
                                          "message": "host unreachable: connection refused", "desired": {},
                                          "before": {}, "after": {}, "changes": [], "references": {}}]}]}
    tree = parse_html(render_html(doc))
    (verdict,) = tree.find_all(cls="verdict")
    assert verdict.text.startswith("Action needed: 1 control failed and 1 host unreachable")
    assert cells(tree) == {("MAIL09", "c1", "failed")}


def test_hostile_values_stay_text(runs: Runs) -> None:
    doc = hostile(runs.check)
    page = render_html(doc, [{"run_id": HOSTILE_RUN_ID, "started_at": HOSTILE_VALUE, "mode": HOSTILE_VALUE,
                              "summary": {"drifted": 1}}],
                       [{"control": HOSTILE_VALUE, "hosts": [HOSTILE_HOST], "reason": HOSTILE_REASON,
                         "until": "2026-12-01", "title": HOSTILE_TITLE}])
    assert "<script" not in page.lower() and "<img" not in page.lower() and "<iframe" not in page.lower()
    assert page.count("</style>") == 1 and page.count("<svg") == 2  # the timeline and its legend's marker
    assert "\x00" not in page and "\x07" not in page
    tree = parse_html(page)
    assert_no_injection(tree)
    shown = HOSTILE_MESSAGE.replace("\x00", "\ufffd").replace("\x07", "\ufffd")
    assert hostile_messages(tree) and set(hostile_messages(tree)) == {shown}
    assert any(c[0] == HOSTILE_HOST for c in cells(tree))
    assert HOSTILE_REASON in tree.find_all("table", "exceptions")[0].text


# --- the page, in Chromium -------------------------------------------------------------------


def write(tmp_path: Path, name: str, page: str) -> Path:
    path = tmp_path / name
    path.write_text(page, encoding="utf-8")
    return path


def test_chromium_renders_a_real_run(runs: Runs, tmp_path: Path, chromium: Callable[..., Browsed]) -> None:
    page = write(tmp_path, "report.html", render_html(runs.recheck, runs.history, []))
    browsed = chromium(page, "--dump-dom")
    assert browsed.console == [], browsed.console
    tree = browsed.tree
    assert cells(tree) == pairs(runs.recheck)
    svgs = [n for n in tree.find_all("svg") if "timeline" in n.classes]
    assert len(svgs) == 1 and len(svgs[0].find_all("g", "run")) == len(runs.history)
    assert tree.find_all("section")[0].attrs["id"] == "summary"


def test_chromium_renders_hostile_values_as_text(runs: Runs, tmp_path: Path,
                                                 chromium: Callable[..., Browsed]) -> None:
    doc = hostile(runs.check)
    page = write(tmp_path, "hostile.html", render_html(
        doc, runs.history, [{"control": "pop3-secure-login", "hosts": [HOSTILE_HOST], "reason": HOSTILE_REASON,
                             "until": "2026-12-01", "title": HOSTILE_TITLE}]))
    browsed = chromium(page, "--dump-dom")
    assert browsed.console == [], browsed.console
    tree = browsed.tree
    assert_no_injection(tree)
    assert cells(tree) == pairs(doc)
    shown = HOSTILE_MESSAGE.replace("\x00", "\ufffd").replace("\x07", "\ufffd")
    assert hostile_messages(tree) and set(hostile_messages(tree)) == {shown}
    assert HOSTILE_REASON in tree.find_all("table", "exceptions")[0].text


def test_chromium_prints_the_page(runs: Runs, tmp_path: Path, chromium: Callable[..., Browsed]) -> None:
    page = write(tmp_path, "print.html", render_html(runs.apply, runs.history))
    pdf = tmp_path / "report.pdf"
    browsed = chromium(page, "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    assert browsed.console == [], browsed.console
    assert pdf.read_bytes().startswith(b"%PDF-")


def test_the_console_check_sees_errors(tmp_path: Path, chromium: Callable[..., Browsed]) -> None:
    """The harness would see a page's errors: a script error, and a fetch the page's policy blocks."""
    bad = write(tmp_path, "bad.html", "<!DOCTYPE html><html><body><p>x</p>"
                "<script>throw new Error('kaput')</script></body></html>")
    assert any("Uncaught Error: kaput" in line for line in chromium(bad, "--dump-dom").console)
    blocked = write(tmp_path, "blocked.html", render_html({"run_id": "r", "mode": "check", "hosts": []}).replace(
        "<main>", '<main><img alt="" src="http://127.0.0.1:9/pixel.png">'))
    lines = chromium(blocked, "--dump-dom").console
    assert any("Content Security Policy" in line for line in lines), lines
    assert console_lines(f'[1:1:INFO:CONSOLE:3] "boom", source: {bad.resolve().as_uri()} (3)', bad)
