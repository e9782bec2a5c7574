"""The idempotency loop for every kind on the in-process lab (DESIGN §9):
check → drifted, apply → fixed, apply → nothing written and everything compliant, check → compliant.

Each kind has at least one playbook ``playbooks/<kind>*.yml`` beside this file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hardening import apply as apply_run
from hardening import check, load_lab, load_playbook
from hardening.kinds import KINDS

from .conftest import LAB_HOSTS, assert_every_write_reread, lab_host, statuses, write_inventory, writes

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"


def _kind_of(path: Path) -> str | None:
    """``<kind>.yml`` or ``<kind>-<variation>.yml``."""
    return next((k for k in sorted(KINDS, key=len, reverse=True)
                 if path.stem == k or path.stem.startswith(k + "-")), None)


def test_every_kind_has_a_lab_playbook() -> None:
    strays = [p.name for p in PLAYBOOKS.glob("*.yml") if _kind_of(p) is None]
    assert not strays, f"playbooks here are named <kind>.yml or <kind>-<variation>.yml: {strays}"
    covered = {_kind_of(p) for p in PLAYBOOKS.glob("*.yml")}
    missing = sorted(set(KINDS) - covered)
    assert not missing, f"kinds without an idempotency playbook tests/engine/playbooks/<kind>.yml: {missing}"


@pytest.mark.parametrize("path", sorted(PLAYBOOKS.glob("*.yml")), ids=lambda p: p.stem)
def test_idempotency_loop(path: Path, tmp_path: Path) -> None:
    kind = _kind_of(path)
    playbook = load_playbook(path)
    assert {c.kind for c in playbook.controls} == {kind}, "an idempotency playbook exercises its own kind only"
    inventory = write_inventory(tmp_path)
    lab = load_lab()

    first = check(playbook, inventory, lab=lab)
    seen = statuses(first)
    assert set(seen.values()) <= {"drifted", "compliant"}, seen
    drifted = {key for key, status in seen.items() if status == "drifted"}
    assert drifted, f"{path.name} finds nothing to fix on the lab; it proves nothing"
    assert all(writes(lab_host(lab, h)) == [] for h in LAB_HOSTS), "check wrote something"

    fixed = apply_run(playbook, inventory, lab=lab)
    after = statuses(fixed)
    assert {key for key, status in after.items() if status == "fixed"} == drifted, after
    assert {key for key, status in after.items() if status != "fixed"} == set(seen) - drifted
    assert set(after.values()) <= {"fixed", "compliant"}
    for name in LAB_HOSTS:
        assert_every_write_reread(lab_host(lab, name))

    marks = {name: len(lab_host(lab, name).received) for name in LAB_HOSTS}
    again = apply_run(playbook, inventory, lab=lab)
    assert set(statuses(again).values()) == {"compliant"}, statuses(again)
    for name in LAB_HOSTS:
        assert writes(lab_host(lab, name), marks[name]) == [], f"{name} received writes on the second apply"
    assert {h.name: h.requests for h in again.hosts} == {h.name: h.requests for h in first.hosts}

    last = check(playbook, inventory, lab=lab)
    assert set(statuses(last).values()) == {"compliant"}
    assert (first.exit_code, fixed.exit_code, again.exit_code, last.exit_code) == (3, 3, 0, 0)
