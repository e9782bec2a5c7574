"""`hardening lab serve` as a separate process: serves, writes an inventory, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from hardening.cli import main


def test_lab_serve_runs_until_sigterm(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    process = subprocess.Popen([sys.executable, "-m", "hardening", "lab", "serve", "--inventory-out", str(inventory)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(5)]  # four hosts, then the inventory line
        assert lines[-1].startswith(f"inventory: {inventory}"), lines
        assert all(line.startswith(f"MAIL0{i}: http://127.0.10.{i}:") for i, line in enumerate(lines[:4], 1))
        password = inventory.with_name("inventory.yml.password")
        assert stat.S_IMODE(password.stat().st_mode) == 0o600
        assert main(["check", "baseline", "-i", str(inventory), "--tags", "pop3"]) == 3
    finally:
        os.kill(process.pid, signal.SIGTERM)  # stop it by its PID
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped" in out
