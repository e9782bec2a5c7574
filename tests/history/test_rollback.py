"""Rollback round trip: apply, rollback, and check shows the original drift back."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardening import apply, check, load_lab
from hardening.cli import main
from hardening.history import HistoryStore
from hardening.inventory import Inventory
from hardening.playbook import Playbook
from hardening.rollback import rollback


def _statuses(run: object) -> dict[tuple[str, str], str]:
    return {(o.host, o.control): o.status.value for o in run.outcomes}  # type: ignore[attr-defined]


def test_rollback_restores_the_drift_apply_fixed(tmp_path: Path, baseline: Playbook,
                                                 demo_inventory: Inventory) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    lab = load_lab()
    before = check(baseline, demo_inventory, lab=lab)
    original = {n: h.snapshot() for n, h in lab.hosts.items()}
    applied = apply(baseline, demo_inventory, lab=lab)
    store.record(applied)
    fixed = {k for k, v in _statuses(applied).items() if v == "fixed"}
    assert fixed

    run, refusals = rollback(store, applied.run_id, demo_inventory, lab=lab)
    assert refusals == [] and run is not None
    assert {k: v for k, v in _statuses(run).items()} == dict.fromkeys(fixed, "fixed")
    assert all("verified by re-read" in o.message for o in run.outcomes)
    after = check(baseline, demo_inventory, lab=lab)
    assert _statuses(after) == _statuses(before)  # the original drift is back
    for name in ("MAIL01", "MAIL02", "MAIL03"):
        state = lab.hosts[name].snapshot()
        assert state["pop3"] == original[name]["pop3"]
        assert state["receive_connectors"] == original[name]["receive_connectors"]


def test_rollback_of_one_host_and_control(tmp_path: Path, baseline: Playbook, demo_inventory: Inventory) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    lab = load_lab()
    applied = apply(baseline, demo_inventory, lab=lab)
    store.record(applied)
    run, _ = rollback(store, applied.run_id, demo_inventory, host="MAIL01", control="pop3-secure-login", lab=lab)
    assert run is not None and list(_statuses(run)) == [("MAIL01", "pop3-secure-login")]
    assert lab.hosts["MAIL01"].state["pop3"]["LoginType"] == "PlainTextLogin"
    assert lab.hosts["MAIL02"].state["pop3"]["LoginType"] == "SecureLogin"


def test_rollback_refuses_where_the_object_is_gone(tmp_path: Path, baseline: Playbook,
                                                   demo_inventory: Inventory) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    lab = load_lab()
    applied = apply(baseline, demo_inventory, lab=lab)
    store.record(applied)
    # The client connector of MAIL01 was deleted since the run.
    connectors = lab.hosts["MAIL01"].state["receive_connectors"]
    lab.hosts["MAIL01"].state["receive_connectors"] = [c for c in connectors if not c["Name"].startswith("Client F")]
    run, _ = rollback(store, applied.run_id, demo_inventory, host="MAIL01", control="smtp-in-client-require-tls",
                      lab=lab)
    assert run is not None
    (outcome,) = run.outcomes
    assert outcome.status.value in {"failed", "not_applicable"}
    assert "no longer exists" in outcome.message or "no receive connector" in outcome.message


def test_rollback_of_an_unknown_run_is_an_error(tmp_path: Path, demo_inventory: Inventory) -> None:
    with pytest.raises(Exception, match="no run nope"):
        rollback(HistoryStore(tmp_path / "h.sqlite"), "nope", demo_inventory)


def test_the_cli_rolls_back_and_records(tmp_path: Path) -> None:
    assert main(["lab", "init", str(tmp_path / "lab")]) == 0
    inventory = str(tmp_path / "lab" / "inventory.yml")
    store = str(tmp_path / "h.sqlite")
    core = str(Path(__file__).resolve().parents[1] / "data" / "core-baseline.yml")
    assert main(["apply", core, "-i", inventory, "--history", store]) == 3
    applied = HistoryStore(store).runs()[0]
    assert main(["rollback", applied.run_id, "-i", inventory, "--history", store]) == 3
    assert main(["check", core, "-i", inventory, "--history", store]) == 3  # drift is back
    assert len(HistoryStore(store).runs()) == 3
