"""``hardening watch``: the drift pass on a schedule, in one long-running process.

Each pass (:func:`drift_pass`, a plain function):

1. decides its mode from the time: inside a maintenance window the pass **applies** (enforce
   controls written, monitor controls only checked — as ``hardening drift``); outside every
   window it only **checks**. With no window given every pass only checks; a window of
   ``00:00-24:00`` makes every pass apply;
2. in an apply pass with a canary host, applies to the canary first and to the other hosts only
   when the canary ended with no failed outcome and was reachable; otherwise the others are
   *held back* (not contacted this pass). Check passes contact every host at once (a check
   writes nothing, and a canary that is down must not hide the others' drift);
3. honours ``max_changes`` over the whole pass (canary and the rest share the budget);
4. records the pass as **one** run in the history store (one transaction), then notifies.

:func:`watch` runs passes on a cron schedule with APScheduler (3.x) until its ``stop`` event is
set. A pass that has started always finishes and is recorded whole; a stop between passes
starts no new one. :func:`stop_on_signals` sets the event on SIGTERM or SIGINT (a second signal
acts as usual: the history store's one-transaction-per-run keeps it consistent even then).

Maintenance windows (:meth:`MaintenanceWindow.parse`)::

    Sat 22:00-Sun 04:00            weekly, in this machine's local time (start included, end not)
    Sat 22:00-Sun 04:00 UTC        weekly, in UTC
    Sat 22:00-04:00 Europe/Berlin  the end without a day is the first 04:00 after the start
    01:00-03:00                    every day, local time; 22:00-02:00 crosses midnight
    00:00-24:00                    always

Days are ``Mon``…``Sun`` (or full names, any case); the zone is ``local`` (default), ``UTC``
or an IANA name. Times are wall-clock times in that zone, so a window keeps its hours across a
daylight-saving change.

The schedule is a five-field crontab line in cron's own convention (day of week 0 or 7 is
Sunday; APScheduler 3 numbers Monday 0, so day-of-week numbers are translated), plus
``@hourly``, ``@daily``, ``@weekly``, ``@monthly``. Restricting both day of month and day of
week is refused: cron fires when either matches, APScheduler only when both do. Each fire time
is delayed by a random 0..``jitter`` seconds so many watchers do not hit the hosts at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import signal
import threading
import uuid
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from .errors import HardeningError
from .history import DriftEntry, HistoryStore
from .inventory import Inventory, load_inventory
from .lab import Lab
from .model import Mode, Run, Status
from .notify import Notification, Notifier, NotifyError
from .plan import select
from .playbook import Playbook, load_playbook
from .report import run_to_json
from .run import Options, execute

__all__ = [
    "PASS_SCHEMA_ID",
    "MaintenanceWindow",
    "PassResult",
    "active_window",
    "cron_trigger",
    "drift_pass",
    "next_fire_times",
    "pass_notification",
    "pass_summary",
    "stop_on_signals",
    "utc_now",
    "watch",
]

log = logging.getLogger(__name__)

PASS_SCHEMA_ID = "hardening.drift-pass/1"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MINUTES = 24 * 60
WEEK_MINUTES = 7 * DAY_MINUTES
# How often the waiting thread looks at the stop event when no signal wakes it (Windows).
STOP_POLL_SECONDS = 1.0

Now = Callable[[], dt.datetime]
HtmlRenderer = Callable[[dict[str, Any]], str]


def utc_now() -> dt.datetime:
    """The current time, aware, in UTC (the default clock of passes)."""
    return dt.datetime.now(dt.UTC)


# --- maintenance windows ----------------------------------------------------------------------------------

_WINDOW = re.compile(
    r"^\s*(?:(?P<d1>[A-Za-z]+)\s+)?(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*-\s*"
    r"(?:(?P<d2>[A-Za-z]+)\s+)?(?P<h2>\d{1,2}):(?P<m2>\d{2})(?:\s+(?P<zone>\S+))?\s*$")
WINDOW_HELP = ("use 'Sat 22:00-Sun 04:00', 'Sat 22:00-04:00', '01:00-03:00' (every day), optionally followed by "
               "UTC, local or a zone name such as Europe/Berlin")


def _day(text: str, spec: str) -> int:
    key = text.casefold()
    for index, name in enumerate(DAYS):
        full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")[index]
        if key in {name, full}:
            return index
    raise HardeningError(f"maintenance window {spec!r}: unknown day {text!r}; use Mon, Tue, Wed, Thu, Fri, Sat "
                         "or Sun")


def _zone(text: str | None, spec: str) -> dt.tzinfo | None:
    if text is None or text.casefold() == "local":
        return None
    if text.casefold() in {"utc", "z", "gmt"}:
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise HardeningError(f"maintenance window {spec!r}: unknown time zone {text!r}; use UTC, local or a "
                             "zone name such as Europe/Berlin") from None


@dataclass(frozen=True)
class MaintenanceWindow:
    """A weekly (or daily) span of wall-clock time in one zone; start included, end excluded.

    ``start`` and ``end`` are minutes from Monday 00:00 (weekly) or from 00:00 (daily); an
    ``end`` not after ``start`` wraps (over the week's or the day's end). ``zone`` None is this
    machine's local time.
    """

    start: int
    end: int
    daily: bool = False
    zone: dt.tzinfo | None = None
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, spec: str) -> MaintenanceWindow:
        """``Sat 22:00-Sun 04:00 [UTC|local|Area/City]``, ``Sat 22:00-04:00``, ``01:00-03:00``."""
        match = _WINDOW.match(spec)
        if match is None:
            raise HardeningError(f"maintenance window {spec!r}: {WINDOW_HELP}")
        h1, m1, h2, m2 = (int(match[k]) for k in ("h1", "m1", "h2", "m2"))
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
            raise HardeningError(f"maintenance window {spec!r}: times are HH:MM from 00:00 to 23:59 (24:00 only "
                                 "as an end)")
        zone = _zone(match["zone"], spec)
        start_clock, end_clock = h1 * 60 + m1, h2 * 60 + m2
        d1, d2 = match["d1"], match["d2"]
        if d1 is None and d2 is not None:
            raise HardeningError(f"maintenance window {spec!r}: the end has a day, so the start needs one too")
        text = " ".join(spec.split())
        if d1 is None:
            if start_clock == end_clock % DAY_MINUTES and end_clock != DAY_MINUTES:
                raise HardeningError(f"maintenance window {spec!r}: starts and ends at the same time")
            if end_clock == DAY_MINUTES and start_clock == 0:
                return cls(0, DAY_MINUTES, True, zone, text)
            return cls(start_clock, end_clock % DAY_MINUTES, True, zone, text)
        start = _day(d1, spec) * DAY_MINUTES + start_clock
        if d2 is not None:
            end = (_day(d2, spec) * DAY_MINUTES + end_clock) % WEEK_MINUTES
        else:  # the first end time after the start: "Sat 22:00-04:00" ends Sunday 04:00
            day = _day(d1, spec) + (1 if end_clock <= start_clock else 0)
            end = (day * DAY_MINUTES + end_clock) % WEEK_MINUTES
        if start == end:
            raise HardeningError(f"maintenance window {spec!r}: starts and ends at the same time")
        return cls(start, end, False, zone, text)

    def contains(self, when: dt.datetime) -> bool:
        """Whether the aware datetime ``when`` falls inside the window (in the window's zone)."""
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("an aware datetime is needed to place it in a maintenance window")
        local = when.astimezone(self.zone)  # zone None: this machine's local time
        minute = local.hour * 60 + local.minute
        if not self.daily:
            minute += local.weekday() * DAY_MINUTES
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def __str__(self) -> str:
        return self.text or f"{self.start}-{self.end}"


def active_window(windows: Sequence[MaintenanceWindow], when: dt.datetime) -> MaintenanceWindow | None:
    """The first window that contains ``when``, if any."""
    return next((w for w in windows if w.contains(when)), None)


# --- the schedule -----------------------------------------------------------------------------------------

_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
           "@monthly": "0 0 1 * *"}
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_day(text: str, expr: str) -> int:
    """A cron day of week (0-7 or a name) as 0..6 with Sunday 0, cron's convention."""
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text) % 7
    if text.casefold()[:3] in _CRON_DAYS and len(text) == 3:
        return _CRON_DAYS.index(text.casefold())
    raise HardeningError(f"--cron {expr!r}: bad day of week {text!r} (0-7 or sun..sat)")


def _days_of_week(field_text: str, expr: str) -> str:
    """Cron's day-of-week field as APScheduler 3 names (which number Monday 0, not Sunday)."""
    if field_text in {"*", "?"}:
        return "*"
    days: set[int] = set()
    for item in field_text.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise HardeningError(f"--cron {expr!r}: bad step in day of week {item!r}")
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            left, _, right = base.partition("-")
            first, last = _cron_day(left, expr), _cron_day(right, expr)
            if right == "7" or (right.casefold() == "sun" and first > 0):
                last = 7  # "5-7", "sat-sun": Sunday as the end of the week
            if last < first:
                raise HardeningError(f"--cron {expr!r}: day range {base!r} goes backwards")
        else:
            first = _cron_day(base, expr)
            last = 6 if step else first
        days.update(d % 7 for d in range(first, last + 1, step or 1))
    if days == set(range(7)):
        return "*"
    return ",".join(_CRON_DAYS[d] for d in sorted(days))


def cron_trigger(expr: str, *, timezone: dt.tzinfo | str | None = None, jitter: int | None = None) -> CronTrigger:
    """An APScheduler ``CronTrigger`` from a crontab line in cron's convention (Sunday is 0 or 7).

    ``timezone`` None is this machine's local zone; ``jitter`` delays each fire time by up to
    that many seconds. Raises :class:`HardeningError` for a line cron would not accept the same.
    """
    text = _MACROS.get(expr.strip().casefold(), expr.strip())
    fields = text.split()
    if len(fields) != 5:
        raise HardeningError(f"--cron {expr!r}: five fields are needed (minute hour day month day-of-week), "
                             "or @hourly, @daily, @weekly, @monthly")
    minute, hour, day, month, day_of_week = fields
    if day not in {"*", "?"} and day_of_week not in {"*", "?"}:
        raise HardeningError(f"--cron {expr!r}: restrict either the day of month or the day of week, not both "
                             "(cron runs when either matches, APScheduler only when both do)")
    if jitter is not None and jitter < 0:
        raise HardeningError(f"--jitter must be 0 or more seconds, got {jitter}")
    try:
        return CronTrigger(minute=minute, hour=hour, day="*" if day == "?" else day, month=month,
                           day_of_week=_days_of_week(day_of_week, expr), timezone=timezone, jitter=jitter or None)
    except ValueError as exc:
        raise HardeningError(f"--cron {expr!r}: {exc}") from None


def next_fire_times(trigger: CronTrigger, start: dt.datetime, count: int = 1) -> list[dt.datetime]:
    """The next ``count`` fire times of ``trigger`` after the aware datetime ``start`` (jitter included)."""
    out: list[dt.datetime] = []
    previous: dt.datetime | None = None
    now = start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        out.append(fire)
        previous, now = fire, fire
    return out


# --- one pass ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PassResult:
    """What one drift pass did: its mode and why, the recorded run, the canary's verdict, notifications."""

    mode: Mode
    at: dt.datetime  # when the mode was decided (the pass's clock)
    window: MaintenanceWindow | None  # the window the pass ran in; None: outside every window
    run: Run  # the run recorded in the history store (canary and the rest together)
    canary: str | None = None  # the canary host, in an apply pass with a canary
    canary_ok: bool | None = None  # None: no canary this pass
    held_back: tuple[str, ...] = ()  # hosts not contacted because the canary failed
    drift: tuple[DriftEntry, ...] = ()  # changes since the previous recorded run
    notified: tuple[str, ...] = ()  # channels that sent a notification
    notify_error: str | None = None

    @property
    def exit_code(self) -> int:
        """As for ``hardening drift``; 2 also when the canary held hosts back."""
        return 2 if self.held_back else self.run.exit_code


def _canary_host(canary: str, selected: Sequence[str]) -> str:
    for name in selected:
        if name.casefold() == canary.casefold():
            return name
    raise HardeningError(f"--canary {canary}: not one of the hosts this playbook runs on "
                         f"({', '.join(selected) or 'none'})")


def _canary_failed(run: Run) -> bool:
    return any(not h.reachable for h in run.hosts) or any(o.status is Status.FAILED for o in run.outcomes)


def _combined(first: Run, second: Run, order: Sequence[str]) -> Run:
    """One run of two (canary, then the rest): one id, the first start, the last end, hosts in inventory order."""
    position = {name: i for i, name in enumerate(order)}
    hosts = tuple(sorted((*first.hosts, *second.hosts), key=lambda h: position.get(h.name, len(position))))
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    return Run(run_id, first.mode, first.started_at, second.finished_at, first.tool_version, first.playbooks, hosts)


def drift_pass(playbook: Playbook, inventory: Inventory, *, history: HistoryStore,
               windows: Sequence[MaintenanceWindow] = (), max_changes: int | None = None,
               canary: str | None = None, notify: Notifier | None = None, html: HtmlRenderer | None = None,
               options: Options | None = None, lab: Lab | None = None, now: Now = utc_now) -> PassResult:
    """One drift pass: decide the mode from the windows, run (canary first), record once, notify.

    ``options`` carries selection and tuning (limit, tags, skip_tags, forks, timeout, today);
    its ``max_changes`` is replaced by ``max_changes``. ``html`` renders the HTML report from
    the run's JSON document (only called when a mail channel will attach it). Failing to notify
    does not fail the pass: it is logged and reported in ``notify_error``.
    """
    if max_changes is not None and max_changes < 0:
        raise HardeningError(f"--max-changes must be 0 or more, got {max_changes}")
    base = replace(options or Options(), max_changes=max_changes)
    at = now()
    window = active_window(windows, at)
    mode = Mode.APPLY if window is not None else Mode.CHECK
    selected = [p.host.name for p in select(playbook, inventory, limit=base.limit, tags=base.tags,
                                            skip_tags=base.skip_tags)]
    canary_name = _canary_host(canary, selected) if canary is not None else None
    held_back: tuple[str, ...] = ()
    canary_ok: bool | None = None
    if mode is Mode.APPLY and canary_name is not None:
        first = execute(mode, playbook, inventory, replace(base, limit=(canary_name,)), lab)
        canary_ok = not _canary_failed(first)
        others = [name for name in selected if name != canary_name]
        if not canary_ok:
            run, held_back = first, tuple(others)
            log.warning("canary %s failed: %s not done this pass", canary_name, ", ".join(others) or "no other host")
        elif others:
            spent = sum(o.status is Status.FIXED for o in first.outcomes)
            left = None if max_changes is None else max(0, max_changes - spent)
            rest = execute(mode, playbook, inventory, replace(base, limit=(*base.limit, f"!{canary_name}"),
                                                              max_changes=left), lab)
            run = _combined(first, rest, selected)
        else:
            run = first
    else:
        run = execute(mode, playbook, inventory, base, lab)
    history.record(run)
    drift = tuple(history.drift(run))
    result = PassResult(mode, at, window, run, canary_name if mode is Mode.APPLY else None, canary_ok, held_back,
                        drift)
    if notify is None:
        return result
    notification = pass_notification(result, html=html if notify.wants_html else None)
    try:
        sent = notify.send(notification)
    except NotifyError as exc:
        log.error("%s", exc)
        return replace(result, notified=exc.sent, notify_error=str(exc))
    except Exception as exc:  # the run is recorded; a notification bug must not hide that
        log.exception("notification failed")
        return replace(result, notify_error=f"notification failed: {exc!r}")
    return replace(result, notified=sent)


# --- what a pass tells -----------------------------------------------------------------------------------


def pass_summary(result: PassResult) -> dict[str, Any]:
    """The JSON summary of a pass (``hardening.drift-pass/1``), as posted to a webhook."""
    run = result.run
    return {
        "schema": PASS_SCHEMA_ID,
        "run_id": run.run_id,
        "mode": result.mode.value,
        "decided_at": result.at.isoformat(),
        "window": str(result.window) if result.window is not None else None,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat(),
        "tool_version": run.tool_version,
        "playbooks": [{"path": p.path, "name": p.name, "digest": p.digest} for p in run.playbooks],
        "canary": None if result.canary is None else {"host": result.canary, "ok": result.canary_ok},
        "held_back": list(result.held_back),
        "summary": run.summary,
        "exit_code": result.exit_code,
        "changes": [{"host": e.host, "control": e.control, "before": e.before, "after": e.after,
                     "message": e.message} for e in result.drift],
        "failed": [{"host": o.host, "control": o.control, "message": o.message} for o in run.outcomes
                   if o.status is Status.FAILED],
        "unreachable": [{"host": h.name, "error": h.error} for h in run.hosts if not h.reachable],
    }


QUIET_FIRST_SEEN = frozenset({Status.COMPLIANT.value, Status.NOT_APPLICABLE.value, Status.SKIPPED.value})
MAX_LINES = 100  # per list in the mail's text; the JSON summary and the history hold them all


def _counts(summary: Mapping[str, int]) -> str:
    parts = [f"{summary.get(k, 0)} {k.replace('_', ' ')}" for k in
             ("fixed", "drifted", "failed", "unsupported", "compliant", "skipped", "not_applicable")
             if summary.get(k)]
    return ", ".join(parts) or "no outcomes"


def pass_notification(result: PassResult, *, html: HtmlRenderer | None = None) -> Notification:
    """The notification of a pass: subject, plain text, JSON summary, and the HTML report if ``html``."""
    run, summary = result.run, result.run.summary
    where = (f"inside maintenance window {result.window}" if result.window is not None
             else "outside maintenance windows, check only")
    subject = f"{result.mode.value} on {summary['hosts']} hosts: {_counts(summary)}"
    if result.held_back:
        subject += f"; canary {result.canary} failed, {len(result.held_back)} hosts held back"
    lines = [f"hardening drift pass {run.run_id}: {result.mode.value} ({where})",
             f"decided at {result.at.isoformat()}; ran {run.started_at.isoformat()} to {run.finished_at.isoformat()}"]
    lines += [f"playbook: {p.name} ({p.path}, {p.digest})" for p in run.playbooks]
    lines.append(f"{summary['hosts']} hosts ({summary['unreachable']} unreachable): {_counts(summary)}")
    if result.canary is not None:
        verdict = "succeeded" if result.canary_ok else "FAILED"
        lines.append(f"canary {result.canary} {verdict}" + (
            f"; not done this pass: {', '.join(result.held_back)}" if result.held_back else ""))
    lines.append("")
    # A control seen for the first time and already fine is not news (the first pass lists them all).
    notable = [e for e in result.drift if not (e.before is None and e.after in QUIET_FIRST_SEEN)]
    first_seen = len(result.drift) - len(notable)
    lines.append(f"since the previous run: {len(notable) or 'no'} changes"
                 + (f" ({first_seen} more controls recorded for the first time, already fine)" if first_seen else ""))
    lines += [f"  {e.host} {e.control}: {e.before or 'new'} -> {e.after}: {e.message}" for e in notable[:MAX_LINES]]
    if len(notable) > MAX_LINES:
        lines.append(f"  … and {len(notable) - MAX_LINES} more (hardening history --run {run.run_id})")
    failed = [o for o in run.outcomes if o.status is Status.FAILED]
    if failed:
        lines.append("")
        lines.append(f"failed ({len(failed)}):")
        lines += [f"  {o.host} {o.control}: {o.message}" for o in failed[:MAX_LINES]]
        if len(failed) > MAX_LINES:
            lines.append(f"  … and {len(failed) - MAX_LINES} more")
    lines += ["", f"exit code {result.exit_code}; hardening history --run {run.run_id}"]
    rendered: str | None = None
    if html is not None:
        try:
            rendered = html(run_to_json(run))
        except Exception:  # the mail still goes, without the attachment
            log.exception("could not render the HTML report of run %s", run.run_id)
    problem = bool(result.held_back or failed or summary["unreachable"])
    changed = bool(notable or summary["fixed"])
    return Notification(subject=subject, text="\n".join(lines) + "\n", summary=pass_summary(result), html=rendered,
                        html_name=f"hardening-{run.run_id}.html", changed=changed, problem=problem)


# --- the long-running process -----------------------------------------------------------------------------


@contextmanager
def stop_on_signals(stop: threading.Event,
                    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """Set ``stop`` on the first SIGTERM or SIGINT; a second one acts as usual. Main thread only.

    The previous handlers are restored on exit.
    """
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        log.warning("%s: stopping after the pass in progress, if any", signal.Signals(signum).name)
        stop.set()
        for number, old in previous.items():  # a second signal: the usual behaviour
            signal.signal(number, old)

    for number in signals:
        previous[number] = signal.signal(number, handler)
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def _playbook_source(source: Playbook | str | Path) -> Callable[[], Playbook]:
    """A playbook object as is; a path loaded again at every call."""
    if isinstance(source, Playbook):
        loaded = source
        return lambda: loaded
    path = source
    return lambda: load_playbook(path)


def _inventory_source(source: Inventory | str | Path) -> Callable[[], Inventory]:
    """An inventory object as is; a path loaded again at every call."""
    if isinstance(source, Inventory):
        loaded = source
        return lambda: loaded
    path = source
    return lambda: load_inventory(path)


def watch(playbook: Playbook | str | Path, inventory: Inventory | str | Path, *, cron: str, jitter: int = 60,
          windows: Sequence[MaintenanceWindow] = (), max_changes: int | None = None, canary: str | None = None,
          history: HistoryStore, notify: Notifier | None, stop: threading.Event, now: Now = utc_now,
          options: Options | None = None, lab: Lab | None = None, html: HtmlRenderer | None = None,
          timezone: dt.tzinfo | str | None = None, run_now: bool = False,
          on_pass: Callable[[PassResult], None] | None = None) -> None:
    """Run :func:`drift_pass` on the ``cron`` schedule until ``stop`` is set.

    ``playbook`` and ``inventory`` given as paths are loaded again for every pass (edits are
    picked up; a file that no longer loads fails that pass only, logged); they are loaded once
    first so that a bad file fails at start. ``timezone`` is the schedule's (default: local);
    windows carry their own. ``run_now`` also runs a pass at start. ``on_pass`` receives each
    pass's result (the CLI prints it). Passes never overlap: a fire time reached while a pass
    runs is skipped. Returns when ``stop`` is set, after the pass in progress has finished.
    """
    trigger = cron_trigger(cron, timezone=timezone, jitter=jitter)
    if max_changes is not None and max_changes < 0:
        raise HardeningError(f"--max-changes must be 0 or more, got {max_changes}")
    load_pb, load_inv = _playbook_source(playbook), _inventory_source(inventory)
    first_pb, first_inv = load_pb(), load_inv()
    base = options or Options()
    selected = [p.host.name for p in select(first_pb, first_inv, limit=base.limit, tags=base.tags,
                                            skip_tags=base.skip_tags)]
    if canary is not None:
        _canary_host(canary, selected)
    if stop.is_set():
        return
    busy = threading.Lock()

    def one_pass() -> None:
        if stop.is_set() or not busy.acquire(blocking=False):
            return
        try:
            result = drift_pass(load_pb(), load_inv(), history=history, windows=windows, max_changes=max_changes,
                                canary=canary, notify=notify, html=html, options=options, lab=lab, now=now)
        except HardeningError as exc:
            log.error("drift pass not done: %s", exc)
            return
        except Exception:
            log.exception("drift pass failed")
            return
        finally:
            busy.release()
        log.info("drift pass %s: %s, exit %d", result.run.run_id, result.mode.value, result.exit_code)
        if on_pass is not None:
            try:
                on_pass(result)
            except Exception:  # the pass is recorded; a reporting problem must not stop the watch
                log.exception("reporting drift pass %s failed", result.run.run_id)

    scheduler = BackgroundScheduler(timezone=trigger.timezone, daemon=False)
    first_run = dt.datetime.now(trigger.timezone) if run_now else None
    job_options: dict[str, Any] = {"next_run_time": first_run} if run_now else {}
    scheduler.add_job(one_pass, trigger, id="drift-pass", name="hardening drift pass", coalesce=True,
                      max_instances=1, misfire_grace_time=None, **job_options)
    scheduler.start()
    try:
        job = scheduler.get_job("drift-pass")
        if job is not None and job.next_run_time is not None:
            log.info("next drift pass at %s", job.next_run_time.isoformat())
        while not stop.wait(STOP_POLL_SECONDS):
            pass
    finally:
        scheduler.shutdown(wait=True)  # a pass in progress finishes and is recorded
