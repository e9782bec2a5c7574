"""A canary password, run through every command that connects, never appears in output, logs,
reports or the history store — also when authentication fails."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hardening.lab import load_lab
from hardening.lab.endpoint import USERNAME, LabEndpoint, serve_lab
from hardening.lab.scenario import DEMO_INVENTORY

CANARY = "Canary-Pa55word-9b1e3c"
ENV = "HARDENING_CANARY"


@pytest.fixture
def endpoint() -> Iterator[LabEndpoint]:
    with serve_lab(load_lab(), users={USERNAME: CANARY}, port=5985) as served:  # the port the firewall keeps
        yield served


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hardening", "-vv", *argv], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300, check=False)


def test_the_password_never_leaks(endpoint: LabEndpoint, tmp_path: Path) -> None:
    import os

    site = yaml.safe_load(DEMO_INVENTORY.read_text(encoding="utf-8"))  # the site values the baseline requires
    inventory = endpoint.write_inventory(tmp_path / "inventory.yml", f"env:{ENV}", site)
    env = {**os.environ, ENV: CANARY, "XDG_STATE_HOME": str(tmp_path / "state")}
    history = tmp_path / "history.sqlite"
    common = ["-i", str(inventory)]
    outputs = [
        _run(["check", "baseline", *common, "--history", str(history), "--report-json", "c.json",
              "--report-junit", "c.xml"], env, tmp_path),
        _run(["apply", "baseline", *common, "--history", str(history), "--report-json", "a.json"], env, tmp_path),
        _run(["drift", "baseline", *common, "--history", str(history)], env, tmp_path),
        _run(["plan", "baseline", *common, "--report-json", "p.json"], env, tmp_path),
        _run(["doctor", "MAIL01", *common], env, tmp_path),
        _run(["history", "--history", str(history)], env, tmp_path),
    ]
    # drift stays 3: the quota guard holds MAIL01's DB01 (mailboxes above the proposed limits)
    assert [o.returncode for o in outputs[:3]] == [3, 3, 3], [o.stderr[-2000:] for o in outputs[:3]]
    run_id = _run(["history", "--history", str(history)], env, tmp_path).stdout
    assert "apply" in run_id
    # a wrong password: the error must not echo either password
    wrong = {**env, ENV: "Wrong-" + CANARY}
    outputs.append(_run(["check", "baseline", *common, "--no-history"], wrong, tmp_path))
    assert outputs[-1].returncode == 2 and "authentication" in outputs[-1].stdout + outputs[-1].stderr
    for result in outputs:
        assert CANARY not in result.stdout and CANARY not in result.stderr, result.args
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != inventory:
            assert CANARY.encode() not in path.read_bytes(), f"{path} holds the password"
    assert CANARY not in inventory.read_text(encoding="utf-8")  # the inventory holds a reference only
