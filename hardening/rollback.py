"""Rollback: write back the before-state a recorded run captured for the controls it fixed.

Each fixed outcome in the history holds the control's kind, its parameters (as they were for
that host) and the state before the change. A rollback runs those controls again in apply mode
with the before-state as the desired state, through the same write and re-read verification; a
control is refused, with a reason, where the before-state is unknown or its object no longer
exists.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compare import State
from .errors import HardeningError
from .history import HistoryStore
from .inventory import Inventory
from .lab import Lab
from .model import Mode, Run
from .playbook import Control, Playbook, load_playbook
from .run import Options, execute

__all__ = ["Refusal", "rollback"]


@dataclass(frozen=True)
class Refusal:
    """A fixed control of the run that cannot be rolled back, and why."""

    host: str
    control: str
    reason: str


def rollback(store: HistoryStore, run_id: str, inventory: Inventory, *, host: str | None = None,
             control: str | None = None, lab: Lab | None = None) -> tuple[Run | None, list[Refusal]]:
    """Roll back what run ``run_id`` fixed (optionally one host or control); the rollback run, if any
    control could be rolled back, and the refusals."""
    rows = [r for r in store.outcomes(run_id=run_id, host=host, control=control) if r["status"] == "fixed"]
    if not store.outcomes(run_id=run_id):
        raise HardeningError(f"no run {run_id} in {store.path}")
    refusals: list[Refusal] = []
    usable: list[dict[str, Any]] = []
    for row in rows:
        detail = row["detail"]
        if not detail.get("before"):
            refusals.append(Refusal(row["host"], row["control"], "the run recorded no before-state"))
        elif not detail.get("params"):
            refusals.append(Refusal(row["host"], row["control"], "the run recorded no parameters (an older run)"))
        elif row["host"] not in inventory.hosts:
            refusals.append(Refusal(row["host"], row["control"], "the host is not in the inventory"))
        else:
            usable.append(row)
    if not usable:
        return None, refusals
    with tempfile.TemporaryDirectory(prefix="hardening-rollback-") as folder:
        controls: list[Control] = []
        desired: dict[tuple[str, str], State] = {}
        for i, row in enumerate(usable):
            detail = row["detail"]
            path = Path(folder) / f"{i}.yml"
            # JSON is YAML: one playbook per host × control, limited to that host.
            path.write_text(json.dumps({
                "name": f"rollback of {run_id}", "hosts": [row["host"]],
                "controls": [{"id": row["control"], "title": f"roll back: {detail['title']}",
                              row["kind"]: detail["params"]}],
            }), encoding="utf-8")
            controls += load_playbook(path).controls
            desired[(row["host"], row["control"])] = _before(detail["before"])
        playbook = Playbook(f"rollback of {run_id}", f"rollback of {run_id}", "", tuple(controls), ())
        hosts = sorted({row["host"] for row in usable})
        run = execute(Mode.APPLY, playbook, inventory, Options(limit=tuple(hosts), desired=desired), lab)
    return run, refusals


def _before(before: Mapping[str, Any]) -> State:
    return {obj: dict(props) if props is not None else None for obj, props in before.items()}

