"""`hardening watch` as a process: a pass at once (--run-now), then a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from hardening.cli import main
from hardening.history import HistoryStore


def test_watch_runs_a_pass_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    assert main(["lab", "init", str(tmp_path / "lab")]) == 0
    store = tmp_path / "h.sqlite"
    process = subprocess.Popen(
        [sys.executable, "-m", "hardening", "watch", "baseline", "-i", str(tmp_path / "lab" / "inventory.yml"),
         "--cron", "0 3 1 1 *", "--jitter", "0", "--run-now", "--history", str(store)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # wait for the first pass's summary line
            seen.append(line)
            if " requests" in line and " hosts" in line:
                break
        assert any("hardening check" in line for line in seen), "".join(seen)[-2000:]
    finally:
        os.kill(process.pid, signal.SIGTERM)  # stop it by its PID
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    assert "watch stopped" in out
    (record,) = HistoryStore(store).runs()  # one pass, recorded whole
    assert record.mode == "check"
