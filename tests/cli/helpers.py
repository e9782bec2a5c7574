"""Helpers for the CLI tests: run ``hardening`` in process, a folder written by ``lab init``, and a
recorder of every request the simulated hosts receive. The fixtures are in conftest.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hardening.cli import main

ROOT = Path(__file__).resolve().parents[2]
# The one outcome the demo's baseline leaves drifted after an apply: the quota guard holds DB01's
# quotas, because mailboxes there are above the proposed limits (issue 10: quotas never stop mail).
HELD = ("MAIL01", "mailbox-database-quotas")


@dataclass(frozen=True)
class Result:
    """What one invocation of the command gave: exit code, stdout and stderr."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def invoke(capsys: pytest.CaptureFixture[str], argv: Sequence[Any]) -> Result:
    """``hardening ARGV`` in process; argparse's own exits are turned into an exit code too."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


@dataclass(frozen=True)
class LabDir:
    """A folder written by ``hardening lab init``."""

    root: Path

    @property
    def lab(self) -> Path:
        return self.root / "lab.yml"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yml"

    @property
    def state(self) -> Path:
        return self.root / "lab.yml.state.json"

    def edit_lab(self, change: Callable[[dict[str, Any]], None]) -> None:
        _edit(self.lab, change)

    def edit_inventory(self, change: Callable[[dict[str, Any]], None]) -> None:
        _edit(self.inventory, change)


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


@dataclass
class Traffic:
    """Every request a simulated host answered, as (host, cmdlet or kind.op)."""

    calls: list[tuple[str, str]]

    def names(self, host: str | None = None) -> list[str]:
        return [what for who, what in self.calls if host is None or who == host]

    def writes(self) -> list[tuple[str, str]]:
        return [(who, what) for who, what in self.calls if what.startswith("Set-") or what.endswith(".write")]


def read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def statuses(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(host, control) → status, from a JSON report."""
    return {(h["name"], o["control"]): o["status"] for h in report["hosts"] for o in h["outcomes"]}
