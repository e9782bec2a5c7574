"""The long-running watch: stopped before a pass, or during one (the pass finishes and is recorded
whole), by an event or a signal. Nothing sleeps: the stop comes from the pass's own clock."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
from pathlib import Path

import pytest

from hardening import Lab
from hardening.errors import HardeningError, InputError
from hardening.history import HistoryStore
from hardening.model import Mode
from hardening.watch import MaintenanceWindow, PassResult, stop_on_signals, watch

from .conftest import INVENTORY, LAB_HOSTS, PLAYBOOK

WINDOW = MaintenanceWindow.parse("Sat 22:00-Sun 04:00 UTC")
INSIDE = dt.datetime(2026, 6, 6, 23, 0, tzinfo=dt.UTC)
NEVER_SOON = "0 0 1 1 *"  # New Year's midnight: the schedule itself never fires during a test


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    return HistoryStore(tmp_path / "history.sqlite")


def test_stop_set_before_start_runs_no_pass(store: HistoryStore, demo_lab: Lab) -> None:
    stop = threading.Event()
    stop.set()
    passes: list[PassResult] = []
    threads = threading.active_count()
    watch(PLAYBOOK, INVENTORY, cron=NEVER_SOON, windows=[WINDOW], history=store, notify=None, stop=stop,
          now=lambda: INSIDE, lab=demo_lab, run_now=True, on_pass=passes.append, timezone="UTC")
    assert passes == [] and store.runs() == []
    assert all(len(demo_lab.hosts[h].received) == 0 for h in LAB_HOSTS)
    assert threading.active_count() == threads


def test_stop_during_a_pass_lets_it_finish_and_record_whole(store: HistoryStore, demo_lab: Lab) -> None:
    stop = threading.Event()
    passes: list[PassResult] = []

    def now() -> dt.datetime:  # the stop arrives while the pass runs (it has just decided its mode)
        stop.set()
        return INSIDE

    threads = threading.active_count()
    watch(PLAYBOOK, INVENTORY, cron=NEVER_SOON, jitter=0, windows=[WINDOW], canary="MAIL01", history=store,
          notify=None, stop=stop, now=now, lab=demo_lab, run_now=True, on_pass=passes.append, timezone="UTC")
    assert len(passes) == 1
    result = passes[0]
    assert result.mode is Mode.APPLY and [h.name for h in result.run.hosts] == list(LAB_HOSTS)
    runs = store.runs()
    assert [r.run_id for r in runs] == [result.run.run_id]
    assert runs[0].summary == result.run.summary
    assert {row["host"] for row in store.outcomes(run_id=result.run.run_id)} == set(LAB_HOSTS)
    assert threading.active_count() == threads  # the scheduler and its workers are gone


def test_sigterm_during_a_pass_stops_the_watch_after_it(store: HistoryStore, demo_lab: Lab) -> None:
    stop = threading.Event()
    passes: list[PassResult] = []

    def now() -> dt.datetime:
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to the main thread, which waits in watch()
        return INSIDE

    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(stop):
        watch(PLAYBOOK, INVENTORY, cron=NEVER_SOON, windows=[WINDOW], history=store, notify=None, stop=stop,
              now=now, lab=demo_lab, run_now=True, on_pass=passes.append, timezone="UTC")
    assert stop.is_set() and len(passes) == 1
    assert [r.run_id for r in store.runs()] == [passes[0].run.run_id]
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_first_signal_sets_stop_and_a_second_acts_as_usual(signum: signal.Signals) -> None:
    stop = threading.Event()
    before = signal.getsignal(signum)
    with stop_on_signals(stop):
        assert signal.getsignal(signum) is not before
        os.kill(os.getpid(), signum)
        assert stop.wait(5)
        assert signal.getsignal(signum) is before  # the next one: default action / KeyboardInterrupt
    assert signal.getsignal(signum) is before


def test_bad_input_fails_at_start_before_any_pass(store: HistoryStore, tmp_path: Path) -> None:
    stop = threading.Event()
    with pytest.raises(HardeningError, match="five fields"):
        watch(PLAYBOOK, INVENTORY, cron="* *", history=store, notify=None, stop=stop)
    with pytest.raises(HardeningError, match="--canary MAIL09"):
        watch(PLAYBOOK, INVENTORY, cron=NEVER_SOON, canary="MAIL09", history=store, notify=None, stop=stop)
    with pytest.raises(HardeningError, match="--max-changes must be 0 or more"):
        watch(PLAYBOOK, INVENTORY, cron=NEVER_SOON, max_changes=-1, history=store, notify=None, stop=stop)
    with pytest.raises(InputError, match="file not found"):
        watch(tmp_path / "missing.yml", INVENTORY, cron=NEVER_SOON, history=store, notify=None, stop=stop)
    assert store.runs() == []
