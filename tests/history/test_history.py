"""The history store: runs recorded whole, migrations, concurrent writers, drift between runs."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from hardening import apply, check, load_lab
from hardening.cli import main
from hardening.errors import HardeningError
from hardening.history import MIGRATIONS, HistoryStore, default_history_path, parse_since
from hardening.inventory import Inventory
from hardening.playbook import Playbook


def test_a_run_is_recorded_with_its_outcomes(tmp_path: Path, baseline: Playbook, demo_inventory: Inventory) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    run = check(baseline, demo_inventory, lab=load_lab())
    store.record(run)
    (record,) = store.runs()
    assert record.run_id == run.run_id and record.mode == "check" and record.exit_code == 3
    assert record.summary == run.summary
    rows = store.outcomes(run_id=run.run_id)
    assert len(rows) == sum(1 for _ in run.outcomes)
    mail01 = {r["control"]: r for r in store.outcomes(host="MAIL01")}
    assert mail01["pop3-secure-login"]["status"] == "drifted"
    assert mail01["pop3-secure-login"]["detail"]["changes"][0]["to"] == "SecureLogin"


def test_drift_since_the_previous_run(tmp_path: Path, baseline: Playbook, demo_inventory: Inventory) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    lab = load_lab()
    for action in (check, apply, check):
        store.record(action(baseline, demo_inventory, lab=lab))
    # Someone turns clear-text POP3 logins back on on MAIL02; the next check tells.
    lab.hosts["MAIL02"].state["pop3"]["LoginType"] = "PlainTextLogin"
    later = check(baseline, demo_inventory, lab=lab)
    store.record(later)
    drift = store.drift(later)
    assert [(d.host, d.control, d.before, d.after) for d in drift] == [
        ("MAIL02", "pop3-secure-login", "compliant", "drifted")]
    assert len(store.runs()) == 4


def test_concurrent_writers_record_every_run_whole(tmp_path: Path, baseline: Playbook,
                                                   demo_inventory: Inventory) -> None:
    path = tmp_path / "h.sqlite"
    runs = [check(baseline, demo_inventory, lab=load_lab()) for _ in range(8)]
    errors: list[BaseException] = []

    def write(run: object) -> None:
        try:
            HistoryStore(path).record(run)  # type: ignore[arg-type]
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = HistoryStore(path)
    assert {r.run_id for r in store.runs()} == {r.run_id for r in runs}
    assert len(store.outcomes()) == sum(sum(1 for _ in r.outcomes) for r in runs)


def test_a_failed_record_leaves_nothing_half_written(tmp_path: Path, baseline: Playbook,
                                                     demo_inventory: Inventory) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    run = check(baseline, demo_inventory, lab=load_lab())
    store.record(run)
    with pytest.raises(sqlite3.IntegrityError):
        store.record(run)  # same run id: refused, and the first copy is untouched
    assert len(store.runs()) == 1
    assert len(store.outcomes()) == sum(1 for _ in run.outcomes)


def test_migrations_bring_an_old_store_up_to_date_and_refuse_a_newer_one(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    assert HistoryStore(path).schema_version == len(MIGRATIONS)
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(HardeningError, match="newer hardening"):
        HistoryStore(path)


def test_default_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_history_path() == tmp_path / "hardening" / "history.sqlite"


def test_since_accepts_dates_and_relative_ages() -> None:
    assert parse_since("2026-11-30").isoformat().startswith("2026-11-30T00:00:00")
    assert parse_since("7d") < parse_since("12h")
    with pytest.raises(HardeningError, match="use a date"):
        parse_since("last tuesday")


def test_the_cli_records_runs_and_lists_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "init", str(tmp_path / "lab")]) == 0
    inventory = str(tmp_path / "lab" / "inventory.yml")
    store = str(tmp_path / "h.sqlite")
    assert main(["check", "baseline", "-i", inventory, "--history", store]) == 3
    assert main(["apply", "baseline", "-i", inventory, "--history", store]) == 3
    # 3: the quota guard still holds MAIL01's DB01 (mailboxes above the proposed limits)
    assert main(["check", "baseline", "-i", inventory, "--no-history", "--history", store]) == 3
    assert len(HistoryStore(store).runs()) == 2
    capsys.readouterr()
    assert main(["history", "--history", store]) == 0
    listing = capsys.readouterr().out
    assert "apply" in listing and "check" in listing
    assert main(["history", "--history", store, "--host", "MAIL01", "--control", "pop3-secure-login"]) == 0
    assert "fixed" in capsys.readouterr().out


def test_the_demo_records_its_three_runs(tmp_path: Path) -> None:
    store = tmp_path / "h.sqlite"
    assert main(["demo", "--report-dir", str(tmp_path / "r"), "--history", str(store)]) == 0
    assert [r.mode for r in HistoryStore(store).runs()] == ["check", "apply", "check"][::-1]


def test_report_from_history_in_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json as jsonlib
    import xml.etree.ElementTree as ET

    from hardening.report import run_to_json

    store_path = tmp_path / "h.sqlite"
    store = HistoryStore(store_path)
    lab = load_lab()
    run = check(load_playbook_baseline(), load_demo_inventory(), lab=lab)
    store.record(run)
    assert store.run_json(run.run_id) == jsonlib.loads(jsonlib.dumps(run_to_json(run)))
    common = ["report", "--run", run.run_id, "--history", str(store_path)]
    assert main([*common, "--format", "json"]) == 0
    assert jsonlib.loads(capsys.readouterr().out)["run_id"] == run.run_id
    assert main([*common, "--format", "html", "-o", str(tmp_path / "r.html")]) == 0
    assert "<svg" in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert main([*common, "--format", "junit", "-o", str(tmp_path / "r.xml")]) == 0
    assert ET.parse(tmp_path / "r.xml").getroot().tag == "testsuites"
    assert main([*common, "--format", "ckl", "-o", str(tmp_path / "ckl")]) == 0
    assert sorted(p.name for p in (tmp_path / "ckl").glob("*.ckl")) == [f"MAIL0{i}.ckl" for i in range(1, 5)]
    assert main(["report", "--run", "nope", "--history", str(store_path), "--format", "json"]) == 1


def load_playbook_baseline() -> Playbook:
    from hardening import load_playbook

    return load_playbook(Path(__file__).resolve().parents[2] / "playbooks" / "baseline.yml")


def load_demo_inventory() -> Inventory:
    from hardening import load_inventory
    from hardening.cli import DEMO_INVENTORY

    return load_inventory(DEMO_INVENTORY)


def test_check_writes_the_html_report_and_names_expiring_exceptions(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import datetime as dt

    assert main(["lab", "init", str(tmp_path / "lab")]) == 0
    soon = (dt.date.today() + dt.timedelta(days=5)).isoformat()
    playbook = tmp_path / "p.yml"
    playbook.write_text(f"""name: with an exception
controls:
  - id: pop3
    title: POP3 SPA
    exceptions: [{{hosts: MAIL01, reason: legacy scanner until the migration, until: {soon}}}]
    pop_imap_login: {{protocol: pop3, login_type: SecureLogin}}
""", encoding="utf-8")
    html = tmp_path / "r.html"
    code = main(["check", str(playbook), "-i", str(tmp_path / "lab" / "inventory.yml"), "--report-html", str(html),
                 "--history", str(tmp_path / "h.sqlite")])
    assert code == 3
    out = capsys.readouterr().out
    assert f"exception of pop3 for MAIL01 ends on {soon}: legacy scanner until the migration" in out
    page = html.read_text(encoding="utf-8")
    assert "legacy scanner until the migration" in page and "<svg" in page
