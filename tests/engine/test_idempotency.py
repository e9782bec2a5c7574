"""The idempotency loop for every kind on the in-process lab (DESIGN §9):
check → drifted, apply → fixed, apply → nothing written and everything compliant, check → compliant.

Each kind has at least one playbook ``playbooks/<kind>*.yml`` beside this file. A playbook runs on
the built-in lab (MAIL01-MAIL04) unless a line ``# lab: <file>`` names a lab file under ``labs/``
(the directory kinds' DC01, say); it then runs on every host of that lab, with no facts declared,
so the facts are read the way a real run reads them (for a directory, from the rootDSE).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from hardening import Lab, check, load_lab, load_playbook
from hardening import apply as apply_run
from hardening.kinds import KINDS
from hardening.model import LdapCall

from .conftest import LAB_HOSTS, assert_every_write_reread, lab_host, statuses, write_inventory, writes

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
LABS = Path(__file__).resolve().parent / "labs"
LAB_LINE = re.compile(r"^#\s*lab:\s*(\S+)\s*$", re.MULTILINE)


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


def _lab_of(path: Path, tmp_path: Path) -> tuple[Lab, tuple[str, ...]]:
    """The lab a playbook names (a fresh copy in tmp_path, so its saved state stays there) and its
    hosts; the built-in lab and MAIL01-MAIL04 when it names none."""
    match = LAB_LINE.search(path.read_text(encoding="utf-8"))
    if match is None:
        return load_lab(), LAB_HOSTS
    source = LABS / match[1]
    assert source.is_file(), f"{path.name} names the lab {match[1]}, which is not in {LABS}"
    copy = tmp_path / source.name
    shutil.copyfile(source, copy)
    lab = load_lab(copy, fresh=True)
    return lab, tuple(lab.hosts)


def test_every_named_lab_is_used() -> None:
    named = {m[1] for p in PLAYBOOKS.glob("*.yml") for m in LAB_LINE.finditer(p.read_text(encoding="utf-8"))}
    assert {p.name for p in LABS.glob("*.yml")} <= named, "a lab file under labs/ that no playbook names"


@pytest.mark.parametrize("path", sorted(PLAYBOOKS.glob("*.yml")), ids=lambda p: p.stem)
def test_idempotency_loop(path: Path, tmp_path: Path) -> None:
    kind = _kind_of(path)
    playbook = load_playbook(path)
    assert {c.kind for c in playbook.controls} == {kind}, "an idempotency playbook exercises its own kind only"
    lab, hosts = _lab_of(path, tmp_path)
    inventory = write_inventory(tmp_path, hosts)

    first = check(playbook, inventory, lab=lab)
    seen = statuses(first)
    assert set(seen.values()) <= {"drifted", "compliant"}, seen
    drifted = {key for key, status in seen.items() if status == "drifted"}
    assert drifted, f"{path.name} finds nothing to fix on the lab; it proves nothing"
    assert all(writes(lab_host(lab, h)) == [] for h in hosts), "check wrote something"
    for name in hosts:
        received = lab_host(lab, name).received
        if lab_host(lab, name).state.get("directory") is not None:
            # No facts declared: the naming contexts came from the directory's rootDSE, first.
            assert received and received[0][0] == "ldap.search" and isinstance(received[0][1], LdapCall)
            assert received[0][1].dn == "" and received[0][1].scope == "base", received[0]

    fixed = apply_run(playbook, inventory, lab=lab)
    after = statuses(fixed)
    assert {key for key, status in after.items() if status == "fixed"} == drifted, after
    assert {key for key, status in after.items() if status != "fixed"} == set(seen) - drifted
    assert set(after.values()) <= {"fixed", "compliant"}
    for name in hosts:
        assert_every_write_reread(lab_host(lab, name))

    marks = {name: len(lab_host(lab, name).received) for name in hosts}
    again = apply_run(playbook, inventory, lab=lab)
    assert set(statuses(again).values()) == {"compliant"}, statuses(again)
    for name in hosts:
        assert writes(lab_host(lab, name), marks[name]) == [], f"{name} received writes on the second apply"
    assert {h.name: h.requests for h in again.hosts} == {h.name: h.requests for h in first.hosts}

    last = check(playbook, inventory, lab=lab)
    assert set(statuses(last).values()) == {"compliant"}
    assert (first.exit_code, fixed.exit_code, again.exit_code, last.exit_code) == (3, 3, 0, 0)
