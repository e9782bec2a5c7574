"""Ready-to-install schedules that run ``hardening drift``: systemd units, a crontab line, and
Windows Task Scheduler XML. Text only: nothing is installed."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from xml.sax.saxutils import escape

__all__ = ["cron_line", "systemd_units", "windows_task_xml"]


def _command(playbook: str, inventory: str, extra: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "hardening", "drift", str(Path(playbook).resolve()) if Path(playbook).exists()
            else playbook, "-i", str(Path(inventory).resolve()), *extra]


def systemd_units(playbook: str, inventory: str, on_calendar: str = "*:0/15", extra: tuple[str, ...] = ()
                  ) -> dict[str, str]:
    """``hardening-drift.service`` and ``hardening-drift.timer``. Exit 3 (drift fixed) counts as success."""
    command = " ".join(shlex.quote(part) for part in _command(playbook, inventory, extra))
    service = f"""[Unit]
Description=hardening drift pass ({playbook})
Documentation=https://hardening.invalid/README
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart={command}
# 0 all compliant, 3 drift found or fixed: both are a successful pass; 1 and 2 are failures.
SuccessExitStatus=3
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
StateDirectory=hardening
Environment=XDG_STATE_HOME=%S
"""
    timer = f"""[Unit]
Description=hardening drift pass on a schedule

[Timer]
OnCalendar={on_calendar}
RandomizedDelaySec=120
Persistent=true

[Install]
WantedBy=timers.target
"""
    return {"hardening-drift.service": service, "hardening-drift.timer": timer}


def cron_line(playbook: str, inventory: str, schedule: str = "*/15 * * * *", extra: tuple[str, ...] = ()) -> str:
    """One crontab line (its output goes to syslog through logger)."""
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"a cron schedule has five fields, got {schedule!r}")
    command = " ".join(shlex.quote(part) for part in _command(playbook, inventory, extra))
    return f"{schedule} {command} 2>&1 | logger -t hardening-drift\n"


def windows_task_xml(playbook: str, inventory: str, interval_minutes: int = 15, extra: tuple[str, ...] = ()) -> str:
    """A Task Scheduler 1.2 task (import with ``schtasks /Create /XML FILE /TN hardening-drift``)."""
    command, *arguments = _command(playbook, inventory, extra)
    args = " ".join(f'"{a}"' if " " in a else a for a in arguments)
    return f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>{escape(f"hardening drift pass ({playbook})")}</Description>
    <URI>\\hardening-drift</URI>
  </RegistrationInfo>
  <Triggers>
    <TimeTrigger>
      <Repetition>
        <Interval>PT{interval_minutes}M</Interval>
        <StopAtDurationEnd>false</StopAtDurationEnd>
      </Repetition>
      <StartBoundary>2026-01-01T00:00:00</StartBoundary>
      <Enabled>true</Enabled>
      <RandomDelay>PT2M</RandomDelay>
    </TimeTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <UserId>S-1-5-18</UserId>
      <RunLevel>HighestAvailable</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <ExecutionTimeLimit>PT1H</ExecutionTimeLimit>
    <Enabled>true</Enabled>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{escape(command)}</Command>
      <Arguments>{escape(args)}</Arguments>
    </Exec>
  </Actions>
</Task>
"""
