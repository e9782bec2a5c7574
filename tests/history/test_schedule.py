"""`hardening schedule` and `hardening drift`: the printed schedules are valid, and a drift pass
applies enforce controls, only checks monitor ones, and lists what changed since the last pass."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hardening.cli import main
from hardening.history import HistoryStore
from hardening.schedule import cron_line, systemd_units, windows_task_xml

TASK_NS = "{http://schemas.microsoft.com/windows/2004/02/mit/task}"
CRON_FIELD = r"(\*|\d+)(-\d+)?(/\d+)?(,(\d+)(-\d+)?)*"


def test_cron_line_has_five_valid_fields_and_runs_drift() -> None:
    import re

    line = cron_line("baseline", "inv.yml", "*/15 * * * *")
    fields = line.split()
    assert all(re.fullmatch(CRON_FIELD, f) for f in fields[:5])
    assert fields[6:9] == ["-m", "hardening", "drift"] and line.endswith("| logger -t hardening-drift\n")
    with pytest.raises(ValueError, match="five fields"):
        cron_line("baseline", "inv.yml", "* * *")


def test_systemd_units_verify(tmp_path: Path) -> None:
    units = systemd_units("baseline", "inv.yml")
    service, timer = units["hardening-drift.service"], units["hardening-drift.timer"]
    assert "Type=oneshot" in service and "SuccessExitStatus=3" in service and " drift baseline -i " in service
    assert "OnCalendar=*:0/15" in timer and "WantedBy=timers.target" in timer
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return  # the unit syntax above is still asserted; systemd-analyze verify runs where systemd exists
    for name, text in units.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = subprocess.run([analyze, "verify", str(tmp_path / "hardening-drift.service")], capture_output=True,
                            text=True, check=False)
    assert "hardening-drift.service:" not in result.stderr, result.stderr


def test_windows_task_xml_has_the_schema_required_elements() -> None:
    root = ET.fromstring(windows_task_xml("baseline", "inv.yml", 30).encode("utf-16"))
    assert root.tag == f"{TASK_NS}Task" and root.get("version") == "1.2"
    for required in ("RegistrationInfo", "Triggers", "Principals", "Settings", "Actions"):
        assert root.find(f"{TASK_NS}{required}") is not None, required
    interval = root.find(f"{TASK_NS}Triggers/{TASK_NS}TimeTrigger/{TASK_NS}Repetition/{TASK_NS}Interval")
    assert interval is not None and interval.text == "PT30M"
    exec_ = root.find(f"{TASK_NS}Actions/{TASK_NS}Exec")
    assert exec_ is not None and "drift baseline -i" in (exec_.findtext(f"{TASK_NS}Arguments") or "")


def test_schedule_cli_prints_each_form(capsys: pytest.CaptureFixture[str]) -> None:
    for flag, marker in (("--systemd", "[Timer]"), ("--cron", "*/15 * * * *"), ("--windows-task", "<Task ")):
        assert main(["schedule", flag, "baseline", "-i", "inv.yml"]) == 0
        assert marker in capsys.readouterr().out


def test_a_drift_pass_applies_enforced_checks_monitored_and_lists_changes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "init", str(tmp_path / "lab")]) == 0
    inventory = str(tmp_path / "lab" / "inventory.yml")
    playbook = tmp_path / "p.yml"
    playbook.write_text("""name: drift
controls:
  - id: pop3
    title: POP3 SPA
    pop_imap_login: {protocol: pop3, login_type: SecureLogin}
  - id: imap4
    title: IMAP4 SPA, watched only
    policy: monitor
    pop_imap_login: {protocol: imap4, login_type: SecureLogin}
""", encoding="utf-8")
    store = tmp_path / "h.sqlite"
    assert main(["drift", str(playbook), "-i", inventory, "--history", str(store), "--limit", "MAIL01"]) == 3
    out = capsys.readouterr().out
    assert "since the previous run: 2 changes" in out
    statuses = {r["control"]: r["status"] for r in HistoryStore(store).outcomes()}
    assert statuses == {"pop3": "fixed", "imap4": "drifted"}
    assert main(["drift", str(playbook), "-i", inventory, "--history", str(store), "--limit", "MAIL01"]) == 3
    assert "since the previous run: no changes" in capsys.readouterr().out  # fixed, then compliant: settled
    # Someone turns clear-text logins back on: the next pass fixes it and says so.
    state_file = tmp_path / "lab" / "lab.yml.state.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    state["MAIL01"]["pop3"]["LoginType"] = "PlainTextLogin"
    state_file.write_text(json.dumps(state), encoding="utf-8")
    assert main(["drift", str(playbook), "-i", inventory, "--history", str(store), "--limit", "MAIL01"]) == 3
    out = capsys.readouterr().out
    assert "since the previous run: 1 changes" in out and "MAIL01 pop3: compliant → fixed" in out
