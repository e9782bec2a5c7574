"""The drift pass against the in-process lab, called directly (no scheduler, no waiting)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hardening import Inventory, Lab, Playbook, load_inventory, load_playbook
from hardening.history import HistoryStore
from hardening.lab import LabHost
from hardening.model import Mode, Status
from hardening.notify import Notifier, NotifySettings
from hardening.run import Options
from hardening.watch import PASS_SCHEMA_ID, MaintenanceWindow, PassResult, drift_pass, pass_notification

from .conftest import INVENTORY, LAB_HOSTS, PLAYBOOK, Pki, SmtpFactory, WebhookFactory, write_lab

WINDOW = MaintenanceWindow.parse("Sat 22:00-Sun 04:00 UTC")
INSIDE = dt.datetime(2026, 6, 6, 23, 0, tzinfo=dt.UTC)  # a Saturday night
OUTSIDE = dt.datetime(2026, 6, 3, 14, 0, tzinfo=dt.UTC)  # a Wednesday afternoon


def clock(when: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: when


@pytest.fixture
def playbook() -> Playbook:
    return load_playbook(PLAYBOOK)


@pytest.fixture
def inventory() -> Inventory:
    return load_inventory(INVENTORY)


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    return HistoryStore(tmp_path / "history.sqlite")


def lab_host(lab: Lab, name: str) -> LabHost:
    host = lab.host(name)
    assert host is not None
    return host


def writes(lab: Lab, name: str) -> list[str]:
    """The write requests a lab host received (Set- cmdlets, script kinds' write blocks)."""
    names = [str(entry[0]) for entry in lab_host(lab, name).received]
    return [n for n in names if n.casefold().startswith("set-") or n.endswith(".write")]


def received(lab: Lab, name: str) -> int:
    return len(lab_host(lab, name).received)


def test_inside_a_window_the_pass_applies(playbook: Playbook, inventory: Inventory, store: HistoryStore,
                                          demo_lab: Lab) -> None:
    result = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=demo_lab, now=clock(INSIDE))
    assert result.mode is Mode.APPLY and result.window is WINDOW and result.at == INSIDE
    assert result.run.mode is Mode.APPLY
    assert result.run.summary["fixed"] > 0 and result.run.summary["failed"] == 0
    assert writes(demo_lab, "MAIL01")
    assert result.exit_code == 3


def test_outside_every_window_the_pass_only_checks(playbook: Playbook, inventory: Inventory, store: HistoryStore,
                                                   demo_lab: Lab) -> None:
    result = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=demo_lab, now=clock(OUTSIDE))
    assert result.mode is Mode.CHECK and result.window is None
    assert result.run.summary["fixed"] == 0 and result.run.summary["drifted"] > 0
    assert all(writes(demo_lab, h) == [] for h in LAB_HOSTS)
    assert result.exit_code == 3


def test_no_window_means_check_only(playbook: Playbook, inventory: Inventory, store: HistoryStore,
                                    demo_lab: Lab) -> None:
    result = drift_pass(playbook, inventory, history=store, lab=demo_lab, now=clock(INSIDE))
    assert result.mode is Mode.CHECK
    assert all(writes(demo_lab, h) == [] for h in LAB_HOSTS)


def test_each_pass_is_recorded_once(playbook: Playbook, inventory: Inventory, store: HistoryStore,
                                    demo_lab: Lab) -> None:
    first = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=demo_lab, now=clock(OUTSIDE),
                       canary="MAIL01")
    assert [r.run_id for r in store.runs()] == [first.run.run_id]
    second = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=demo_lab, now=clock(INSIDE),
                        canary="MAIL01")
    runs = store.runs()
    assert [r.run_id for r in runs] == [second.run.run_id, first.run.run_id]
    # The canary and the rest are one recorded run, with every host's outcomes.
    assert runs[0].mode == "apply" and runs[0].summary["hosts"] == len(LAB_HOSTS)
    recorded = {row["host"] for row in store.outcomes(run_id=second.run.run_id)}
    assert recorded == set(LAB_HOSTS)
    assert [h.name for h in second.run.hosts] == list(LAB_HOSTS)  # inventory order
    # What changed since the first pass: the fixes.
    fixed = {(o.host, o.control) for o in second.run.outcomes if o.status is Status.FIXED}
    assert fixed and {(e.host, e.control) for e in second.drift if e.after == "fixed"} == fixed
    assert all(e.before == "drifted" for e in second.drift if e.after == "fixed")


def test_canary_first_then_the_rest(playbook: Playbook, inventory: Inventory, store: HistoryStore,
                                    demo_lab: Lab) -> None:
    result = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=demo_lab, now=clock(INSIDE),
                        canary="mail02")  # any case
    assert result.canary == "MAIL02" and result.canary_ok is True and result.held_back == ()
    assert all(writes(demo_lab, h) for h in ("MAIL01", "MAIL02", "MAIL03"))


def test_a_failing_canary_stops_the_rest(tmp_path: Path, playbook: Playbook, inventory: Inventory,
                                         store: HistoryStore) -> None:
    lab = write_lab(tmp_path, {"MAIL01": [{"call": "Set-PopSettings", "error": "boom"}]})
    result = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=lab, now=clock(INSIDE),
                        canary="MAIL01")
    assert result.canary == "MAIL01" and result.canary_ok is False
    assert result.held_back == ("MAIL02", "MAIL03", "MAIL04")
    assert [h.name for h in result.run.hosts] == ["MAIL01"]
    failed = [o for o in result.run.outcomes if o.status is Status.FAILED]
    assert [(o.host, o.control) for o in failed] == [("MAIL01", "pop3-secure-login")]
    assert "boom" in failed[0].message
    for other in ("MAIL02", "MAIL03", "MAIL04"):
        assert received(lab, other) == 0, f"{other} was contacted"
    assert result.exit_code == 2
    assert [r.run_id for r in store.runs()] == [result.run.run_id]
    note = pass_notification(result)
    assert note.problem and "canary MAIL01 failed" in note.subject
    assert "not done this pass: MAIL02, MAIL03, MAIL04" in note.text
    assert note.summary["held_back"] == ["MAIL02", "MAIL03", "MAIL04"]
    assert note.summary["failed"] == [{"host": "MAIL01", "control": "pop3-secure-login",
                                       "message": failed[0].message}]


def test_canary_does_not_gate_a_check_pass(tmp_path: Path, playbook: Playbook, inventory: Inventory,
                                           store: HistoryStore) -> None:
    lab = write_lab(tmp_path, {"MAIL01": [{"call": "Get-PopSettings", "error": "boom"}]})
    result = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=lab, now=clock(OUTSIDE),
                        canary="MAIL01")
    assert result.mode is Mode.CHECK and result.canary is None and result.held_back == ()
    assert {h.name for h in result.run.hosts} == set(LAB_HOSTS)


def test_unknown_canary_is_refused_before_anything_is_sent(playbook: Playbook, inventory: Inventory,
                                                           store: HistoryStore, demo_lab: Lab) -> None:
    from hardening.errors import HardeningError

    with pytest.raises(HardeningError, match="--canary MAIL09: not one of the hosts"):
        drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=demo_lab, now=clock(INSIDE),
                   canary="MAIL09")
    assert all(received(demo_lab, h) == 0 for h in LAB_HOSTS) and store.runs() == []


def test_max_changes_is_honoured(playbook: Playbook, inventory: Inventory, store: HistoryStore,
                                 demo_lab: Lab) -> None:
    result = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=demo_lab, now=clock(INSIDE),
                        max_changes=2)
    assert result.run.summary["fixed"] == 2
    spent = [o for o in result.run.outcomes if "change budget" in o.message]
    assert spent and all(o.status is Status.DRIFTED for o in spent)


def test_max_changes_is_shared_by_the_canary_and_the_rest(playbook: Playbook, inventory: Inventory,
                                                          store: HistoryStore, demo_lab: Lab) -> None:
    # Learn how many changes the canary alone makes, then give one more than that.
    probe = drift_pass(playbook, inventory, history=HistoryStore(store.path.with_name("probe.sqlite")),
                       windows=[WINDOW], lab=None, now=clock(OUTSIDE), options=Options(limit=("MAIL01",)))
    # (less the quota the guard holds on MAIL01: an apply leaves it drifted and changes nothing there)
    canary_drift = sum(o.status is Status.DRIFTED and len(o.held) < len(o.changes) for o in probe.run.outcomes)
    assert canary_drift >= 1
    result = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=demo_lab, now=clock(INSIDE),
                        canary="MAIL01", max_changes=canary_drift + 1)
    fixed = [o for o in result.run.outcomes if o.status is Status.FIXED]
    assert len(fixed) == canary_drift + 1
    assert sum(o.host == "MAIL01" for o in fixed) == canary_drift
    assert sum(o.host != "MAIL01" for o in fixed) == 1


def test_options_select_hosts_and_tags(playbook: Playbook, inventory: Inventory, store: HistoryStore,
                                       demo_lab: Lab) -> None:
    result = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=demo_lab, now=clock(INSIDE),
                        canary="MAIL01", options=Options(limit=("MAIL01", "MAIL03"), tags=("pop3",)))
    assert [h.name for h in result.run.hosts] == ["MAIL01", "MAIL03"]
    assert received(demo_lab, "MAIL02") == 0 and received(demo_lab, "MAIL04") == 0


def test_notification_by_webhook_after_the_pass(playbook: Playbook, inventory: Inventory, store: HistoryStore,
                                                demo_lab: Lab, webhook_server: WebhookFactory) -> None:
    server = webhook_server()
    notifier = Notifier(NotifySettings.model_validate({"webhook": {"url": server.url, "insecure_allow_http": True}}))
    result = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=demo_lab, now=clock(INSIDE),
                        notify=notifier)
    assert result.notified == ("webhook",) and result.notify_error is None
    [request] = server.requests
    doc: dict[str, Any] = json.loads(request.body)
    assert doc["schema"] == PASS_SCHEMA_ID and doc["run_id"] == result.run.run_id
    assert doc["mode"] == "apply" and doc["window"] == "Sat 22:00-Sun 04:00 UTC"
    assert doc["summary"] == result.run.summary and doc["exit_code"] == 3
    assert {(c["host"], c["control"]) for c in doc["changes"]} == {(e.host, e.control) for e in result.drift}


def test_mail_with_html_report_after_the_pass(playbook: Playbook, inventory: Inventory, store: HistoryStore,
                                              demo_lab: Lab, smtp_server: SmtpFactory, pki: Pki) -> None:
    server = smtp_server()
    notifier = Notifier(NotifySettings.model_validate({"smtp": {
        "host": server.host, "port": server.port, "from": "hardening@contoso.test", "to": ["admins@contoso.test"],
        "ca_bundle": str(pki.ca), "helo_name": "client.test"}}))
    rendered: list[dict[str, Any]] = []

    def html(doc: dict[str, Any]) -> str:
        rendered.append(doc)
        return f"<html><body>run {doc['run_id']}</body></html>"

    result = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=demo_lab, now=clock(INSIDE),
                        notify=notifier, html=html)
    assert result.notified == ("smtp",)
    assert rendered and rendered[0]["schema"] == "hardening.run/1" and rendered[0]["run_id"] == result.run.run_id
    message = email.message_from_bytes(server.record.messages[0], policy=email.policy.default)
    assert "apply on 4 hosts" in str(message["Subject"])
    text = message.get_body(preferencelist=("plain",))
    assert text is not None and f"hardening drift pass {result.run.run_id}: apply" in text.get_content()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == f"hardening-{result.run.run_id}.html"


def test_a_failed_notification_does_not_fail_the_recorded_pass(playbook: Playbook, inventory: Inventory,
                                                              store: HistoryStore, demo_lab: Lab,
                                                              smtp_server: SmtpFactory, pki: Pki) -> None:
    server = smtp_server(starttls=False)
    notifier = Notifier(NotifySettings.model_validate({"smtp": {
        "host": server.host, "port": server.port, "from": "a@b.test", "to": ["c@d.test"], "ca_bundle": str(pki.ca),
        "helo_name": "client.test"}}))
    result = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=demo_lab, now=clock(OUTSIDE),
                        notify=notifier, html=lambda doc: "<html></html>")
    assert result.notify_error is not None and "STARTTLS" in result.notify_error
    assert [r.run_id for r in store.runs()] == [result.run.run_id]
    assert server.record.messages == []


def test_pass_result_exit_code(playbook: Playbook, inventory: Inventory, store: HistoryStore,
                               demo_lab: Lab) -> None:
    first = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=demo_lab, now=clock(INSIDE))
    assert isinstance(first, PassResult) and first.exit_code == 3
    again = drift_pass(playbook, inventory, history=store, windows=[WINDOW], lab=demo_lab, now=clock(INSIDE))
    # 3, not 0: the quota guard still holds MAIL01's DB01; nothing else is left to fix
    assert again.exit_code == 3 and again.run.summary["fixed"] == 0 and again.run.summary["drifted"] == 1
    note = pass_notification(again)
    assert not note.changed and not note.problem
    assert "since the previous run: no changes" in note.text
