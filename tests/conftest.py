"""Shared fixtures: the built-in lab, fresh for every test, and the shipped playbooks."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardening import load_inventory, load_lab, load_playbook
from hardening.cli import DEMO_INVENTORY
from hardening.inventory import Inventory
from hardening.lab import Lab
from hardening.playbook import Playbook

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _history_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs record history under $XDG_STATE_HOME: keep every test's history out of the home folder."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def lab() -> Lab:
    """The built-in demo scenario, fresh and in memory (MAIL01-03 drifted, MAIL04 compliant)."""
    return load_lab()


@pytest.fixture
def demo_inventory() -> Inventory:
    return load_inventory(DEMO_INVENTORY)


@pytest.fixture
def baseline() -> Playbook:
    """The demo's first three procedures (a stable copy: the shipped baseline grows with the procedures)."""
    return load_playbook(ROOT / "tests" / "data" / "core-baseline.yml")
