"""Golden snapshots of every rendered request (DESIGN §9): a change in what crosses to a host
shows up as a reviewed diff under tests/snapshots/, never silently.

Snapshotted: the facts and service_restart bundles and the directory facts (rootDSE) search; per
kind, variant and sample, the read, the plan-mode write and the write against the built-in lab
host MAIL01 (``write-observed``; DC01 of tests/engine/labs/directory.yml for directory kinds), as
the bundle script (``.ps1``), the cmdlet lines (``.txt``) or LDIF (``.ldif``) exactly as
rendered. An empty file means that phase sends nothing. Regenerate on purpose only:

    HARDENING_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/powershell/test_ps_snapshots.py

then review ``git diff tests/snapshots`` (see tests/snapshots/README.md).
"""

from __future__ import annotations

import difflib
import os
from functools import cache
from pathlib import Path

import pytest

from hardening.facts import directory_facts_section

from . import cases

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots"
UPDATE = os.environ.get("HARDENING_UPDATE_SNAPSHOTS") == "1"
NOT_SNAPSHOTS = {"README.md"}
HOW_TO_UPDATE = ("if the change is intended, regenerate with HARDENING_UPDATE_SNAPSHOTS=1 "
                 ".venv/bin/python -m pytest tests/powershell/test_ps_snapshots.py and review git diff tests/snapshots")


@cache
def rendered() -> dict[str, str]:
    """Every snapshot's relative path and the text it must hold."""
    out = {f"{name}{'.ps1' if section.is_script else '.txt'}": cases.render(section.id, section.calls)
           for name, section in cases.framework_sections().items()}
    root = directory_facts_section()
    out["directory_facts/read.ldif"] = cases.render(root.id, root.calls)
    for case in cases.cases():
        suffix = {"script": ".ps1", "directory": ".ldif"}.get(case.kind.channel, ".txt")
        for phase, calls in cases.requests(case).items():
            name = f"{case.kind.name}/{case.variant.name}.{case.sample}.{phase}{suffix}"
            out[name] = cases.render(case.sample, calls)
    return out


def test_rendering_is_deterministic() -> None:
    """Rendering twice gives the same text (no set or dict order leaks into a request)."""
    first = dict(rendered())
    rendered.cache_clear()
    assert rendered() == first


@pytest.mark.parametrize("name", sorted(rendered()))
def test_snapshot(name: str) -> None:
    """The request renders exactly as its snapshot file says, byte for byte."""
    path = SNAPSHOTS / name
    text = rendered()[name]
    if UPDATE:
        if not path.is_file() or path.read_bytes() != text.encode("utf-8"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode("utf-8"))
        return
    assert path.is_file(), f"no snapshot {path.relative_to(SNAPSHOTS.parent.parent)}; {HOW_TO_UPDATE}"
    expected = path.read_bytes().decode("utf-8")
    if expected != text:
        diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True), text.splitlines(keepends=True),
                                            f"snapshot/{name}", f"rendered/{name}", n=2))
        pytest.fail(f"{name} differs from its snapshot; {HOW_TO_UPDATE}\n{diff[:6000]}")


def test_no_orphan_snapshots() -> None:
    """Every file under tests/snapshots/ is a snapshot some case renders: a renamed or removed
    sample leaves no stale file behind (update mode deletes them)."""
    present = {p.relative_to(SNAPSHOTS).as_posix() for p in SNAPSHOTS.rglob("*") if p.is_file()}
    orphans = sorted(present - set(rendered()) - NOT_SNAPSHOTS)
    if UPDATE:
        for orphan in orphans:
            (SNAPSHOTS / orphan).unlink()
        return
    assert orphans == [], f"snapshots no case renders: {orphans}; {HOW_TO_UPDATE}"
