"""The engine: observe → decide → enforce + re-read, hosts in parallel.

Per host: facts (one round trip unless declared), one bundle of reads, then in apply mode one
bundle of writes each followed by its re-read (drifted, enforced controls only), then one
bundle of service restarts where changes need them and the playbook allows. Decisions are
made here, in Python; the remote side never sees a mode. An outcome is ``fixed`` only when the
re-read matches the desired state. A failing control is an outcome, never an exception.
A change that a kind holds back until the playbook allows it (a held :class:`~.kinds.Caveat`)
is neither written nor verified: the outcome stays ``drifted`` with the kind's sentence, so a
scheduler never reads it as compliant (exit 3, not 2: nothing failed).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from . import plan as planning
from .compare import EXACT, Comparer, State, describe_change, diff, display
from .errors import TargetError
from .facts import (
    DIRECTORY_FACTS_SECTION_ID,
    FACTS_SECTION_ID,
    Facts,
    directory_facts_from,
    directory_facts_section,
    exchange_facts_from,
    exchange_facts_section,
    facts_section,
    needs_exchange_facts,
)
from .inventory import Host, Inventory
from .kinds import KINDS, Caveat, ControlFailed, NotApplicable, caveats_for, without_held
from .lab import Lab, load_lab
from .model import Bundle, Change, HostResult, Mode, Outcome, Policy, Run, ScriptCall, Section, SectionResult, Status
from .playbook import Control, Playbook
from .targets import Target, open_target
from .version import __version__

__all__ = ["ChangeBudget", "Options", "execute"]

log = logging.getLogger(__name__)

RESTART_SECTION_ID = "_restart"


@dataclass(frozen=True)
class Options:
    """How a run is done. ``timeout`` bounds each host's whole conversation, in seconds."""

    limit: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    forks: int = 16
    timeout: float = 900.0
    today: dt.date | None = None
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    # Rollback: per (host, control), the state to write instead of what the kind desires.
    desired: Mapping[tuple[str, str], State] = field(default_factory=dict)
    # At most this many controls changed in the whole run (hosts share it); None: no limit.
    max_changes: int | None = None


class ChangeBudget:
    """How many more controls a run may change, shared by the hosts' workers (thread-safe)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._left = limit
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Use one change; False when the budget is spent."""
        with self._lock:
            if self._left is None:
                return True
            if self._left <= 0:
                return False
            self._left -= 1
            return True


def execute(mode: Mode, playbook: Playbook, inventory: Inventory, options: Options | None = None,
            lab: Lab | None = None) -> Run:
    """Run a playbook against an inventory in one mode and return the :class:`Run`."""
    options = options or Options()
    started = dt.datetime.now(dt.UTC)
    today = options.today or dt.date.today()
    host_plans = planning.select(playbook, inventory, limit=options.limit, tags=options.tags,
                                 skip_tags=options.skip_tags)
    if lab is None and mode is not Mode.PLAN and any(p.host.connection.transport == "lab" for p in host_plans):
        lab = load_lab(inventory.lab)
    if mode is Mode.APPLY:
        planning.refuse_guarded(host_plans)
    if mode is Mode.PLAN:
        texts = {p.host.name: planning.describe(p, Facts.from_mapping({}, p.host.facts), today) for p in host_plans}
        hosts = tuple(HostResult(p.host.name, True, None, dict(p.host.facts), 0, ()) for p in host_plans)
        return Run(_run_id(), mode, started, dt.datetime.now(dt.UTC), __version__, playbook.sources,
                   hosts, texts)
    workers = max(1, min(options.forks, len(host_plans)))
    budget = ChangeBudget(options.max_changes)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hardening-host") as pool:
        futures = [pool.submit(_run_host, mode, p, lab, today, options, budget) for p in host_plans]
        results = _reviewed(tuple(f.result() for f in futures))
    if lab is not None:
        lab.save()
    return Run(_run_id(), mode, started, dt.datetime.now(dt.UTC), __version__, playbook.sources, results)


def _reviewed(results: tuple[HostResult, ...]) -> tuple[HostResult, ...]:
    """Each outcome with what its kind says about it in the light of the whole run."""
    everything = [o for r in results for o in r.outcomes]
    out = []
    for result in results:
        outcomes = []
        for outcome in result.outcomes:
            kind = KINDS.get(outcome.kind)
            note = kind.review(outcome, everything) if kind is not None else None
            outcomes.append(replace(outcome, message=f"{outcome.message}; note: {note}") if note else outcome)
        out.append(replace(result, outcomes=tuple(outcomes)))
    return tuple(out)


def _run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


class NotSent(TargetError):
    """A round trip that was not made (so nothing of it can have happened on the host)."""


class _Session:
    """A target with the host's deadline checked before every round trip."""

    def __init__(self, target: Target, host: str, deadline: float, options: Options) -> None:
        self.target = target
        self.host = host
        self.deadline = deadline
        self.options = options

    def run(self, bundle: Bundle) -> dict[str, SectionResult]:
        if self.options.clock() > self.deadline:
            raise NotSent(self.host, f"per-host timeout of {self.options.timeout:g} s reached")
        return {r.id: r for r in self.target.run(bundle)}


def _run_host(mode: Mode, host_plan: planning.HostPlan, lab: Lab | None, today: dt.date,
              options: Options, budget: ChangeBudget | None = None) -> HostResult:
    host = host_plan.host
    deadline = options.clock() + options.timeout
    try:
        target = open_target(host, lab)
    except TargetError as exc:
        return _unreachable(host_plan, str(exc.problem), 0, host.facts)
    session = _Session(target, host.name, deadline, options)
    facts: Facts | None = None
    try:
        facts = _facts(session, host, host_plan.controls)
        steps = planning.steps(host_plan, facts, today)
        overrides = {c: s for (h, c), s in options.desired.items() if h == host.name}
        outcomes, problem = _run_steps(mode, session, host.name, steps, overrides, budget or ChangeBudget(None))
    except TargetError as exc:
        target.close()
        return _unreachable(host_plan, exc.problem, target.requests, facts.to_json() if facts else host.facts)
    except BaseException:
        target.close()
        raise
    target.close()  # before counting: closing the connections is part of what the run cost
    return HostResult(host.name, True, problem, facts.to_json(), target.requests,
                      tuple(_with_refusal(o, host_plan.refusals) for o in outcomes))


def _with_refusal(outcome: Outcome, refusals: Mapping[str, str]) -> Outcome:
    """A check's outcome with what ``apply`` would refuse for it (a guard never stops a read)."""
    refusal = refusals.get(outcome.control)
    if refusal is None:
        return outcome
    return replace(outcome, message=f"{outcome.message}; apply would refuse this control on this host: {refusal}")


# Declaring these facts (exchange_version may be null: no Exchange) skips the facts round trip.
DECLARED_FACTS_ENOUGH = ("computer_name", "os_version", "exchange_version")


def _facts(session: _Session, host: Host, controls: Sequence[Control]) -> Facts:
    """Declared facts, else the Windows facts and, for directory controls, the directory's rootDSE
    (one round trip for both); then, only where a control names an Exchange path role, the paths
    from the Exchange endpoint (one more). A host reached over LDAP only has no Windows facts."""
    channels = {KINDS[c.kind].channel for c in controls if c.kind in KINDS}
    sections = []
    if (host.connection.transport != "ldap" and channels - {"directory"}
            and not all(key in host.facts for key in DECLARED_FACTS_ENOUGH)):
        sections.append(facts_section())
    if "directory" in channels and "naming_contexts" not in host.facts:
        sections.append(directory_facts_section())
    results = session.run(tuple(sections)) if sections else {}
    found: dict[str, Any] = {}
    windows = results.get(FACTS_SECTION_ID)
    if windows is not None:
        if not windows.ok or not isinstance(windows.values[0], Mapping):
            raise TargetError(host.name, f"could not read facts: {windows.error or 'no answer'}")
        found.update(windows.values[0])
    directory = results.get(DIRECTORY_FACTS_SECTION_ID)
    if directory is not None:
        try:
            if not directory.ok:
                raise ValueError(directory.error or "no answer")
            found.update(directory_facts_from(directory.values[0]))
        except ValueError as exc:
            raise TargetError(host.name, f"could not read the directory's rootDSE: {exc}") from None
    facts = Facts.from_mapping(found, host.facts)
    wanted = any(needs_exchange_facts(c.raw_params) for c in controls)
    if wanted and facts.exchange_release in {"2016", "2019", "SE"} and not facts.has_exchange_paths:
        section = exchange_facts_section(facts.computer_name or host.name.split(".")[0])
        result = session.run((section,))[section.id]
        facts = facts.with_exchange(exchange_facts_from(result.values, result.errors))
    return facts


def _unreachable(host_plan: planning.HostPlan, problem: str, requests: int, facts: Mapping[str, Any]) -> HostResult:
    outcomes = tuple(
        Outcome(host_plan.host.name, c.id, c.title, c.kind, Status.FAILED, f"host unreachable: {problem}",
                references=c.references)
        for c in host_plan.controls)
    return HostResult(host_plan.host.name, False, problem, dict(facts), requests, outcomes)


@dataclass
class _Work:
    """A step's progress through the phases (mutable only inside one host's worker)."""

    step: planning.Step
    host: str
    override: State | None = None
    reads: tuple[Any, ...] = ()
    observed: State | None = None
    desired: State | None = None
    changes: tuple[Change, ...] = ()
    caveats: tuple[Caveat, ...] = ()
    writes: tuple[Any, ...] = ()
    outcome: Outcome | None = None

    @property
    def held(self) -> tuple[Change, ...]:
        """The changes a caveat holds back: not written, not verified."""
        return tuple(c for c in self.changes if any(k.held and k.covers(c) for k in self.caveats))

    @property
    def to_make(self) -> tuple[Change, ...]:
        """The changes apply makes."""
        held = {c.path for c in self.held}
        return tuple(c for c in self.changes if c.path not in held)


def _run_steps(mode: Mode, session: _Session, host: str, steps: Sequence[planning.Step],
               overrides: Mapping[str, State] | None = None,
               budget: ChangeBudget | None = None) -> tuple[list[Outcome], str | None]:
    """Every step's outcome, and the problem that cut the conversation short, if one did.

    A connection lost in one phase fails only the controls still waiting in that phase, with a
    sentence saying whether their requests were sent; outcomes already verified stay.
    """
    work = [_Work(s, host, override=(overrides or {}).get(s.control.id)) for s in steps]
    for w in work:
        if w.step.status is not None:
            w.outcome = _outcome(w, w.step.status, w.step.message)
    active = [w for w in work if w.outcome is None]
    for w in active:
        _guard(w, _plan_reads)
    reading = [w for w in active if w.outcome is None]
    problem = None
    try:
        results = session.run(tuple(Section(w.step.control.id, w.reads) for w in reading)) if reading else {}
        for w in reading:
            _guard(w, partial(_decide, mode, result=results[w.step.control.id]))
        writing = [w for w in reading if w.outcome is None]
        for w in writing:
            if budget is not None and not budget.take():
                w.outcome = _outcome(w, Status.DRIFTED, f"not changed: the run's change budget ({budget.limit}) is "
                                     "spent; " + _drift_sentence(w.changes, w.step.kind.comparers))
        writing = [w for w in writing if w.outcome is None]
        for w in writing:
            _guard(w, _plan_writes)
        writing = [w for w in writing if w.outcome is None]
        if writing:
            results = session.run(tuple(Section(w.step.control.id, (*w.writes, *w.reads)) for w in writing))
            for w in writing:
                _guard(w, partial(_verify, result=results[w.step.control.id]))
    except NotSent as exc:
        problem = exc.problem
        _fail_waiting(work, f"not done: {problem} before its requests were sent")
    except TargetError as exc:
        problem = exc.problem
        _fail_waiting(work, f"result unknown: the connection failed after its requests were sent ({problem}); "
                      "if it was a write, the next check reads the truth")
    fixed = [w for w in work if w.outcome and (w.outcome.status is Status.FIXED
                                              or (w.outcome.status is Status.DRIFTED and w.writes and w.to_make))]
    problem = _restart(session, fixed) or problem
    return [w.outcome for w in work if w.outcome is not None], problem


def _fail_waiting(work: Sequence[_Work], message: str) -> None:
    for w in work:
        if w.outcome is None:
            w.outcome = _outcome(w, Status.FAILED, message)


def _plan_reads(w: _Work) -> None:
    params, ctx = w.step.ready()
    w.reads = w.step.kind.read(params, ctx)


def _plan_writes(w: _Work) -> None:
    params, ctx = w.step.ready()
    w.writes = w.step.kind.write(params, ctx, w.observed, without_held(w.desired or {}, w.caveats))


def _guard(w: _Work, action: Callable[[_Work], None]) -> None:
    """Run one phase of one control; what it raises becomes that control's outcome only."""
    try:
        action(w)
    except NotApplicable as exc:
        w.outcome = _outcome(w, Status.NOT_APPLICABLE, str(exc))
    except ControlFailed as exc:
        w.outcome = _outcome(w, Status.FAILED, str(exc))
    except TargetError:
        raise
    except Exception as exc:  # a kind's bug must not hide the other controls
        log.exception("kind %s failed on control %s", w.step.kind.name, w.step.control.id)
        w.outcome = _outcome(w, Status.FAILED, f"internal error in kind {w.step.kind.name}: {exc!r}")


def _decide(mode: Mode, w: _Work, result: SectionResult) -> None:
    kind, (params, ctx) = w.step.kind, w.step.ready()
    if not result.ok:
        w.outcome = _outcome(w, Status.FAILED, f"could not read: {result.error}")
        return
    w.observed = kind.observe(params, ctx, result.values)
    w.desired = kind.desire(params, ctx, w.observed) if w.override is None else _restore(w, w.override)
    w.changes = diff(w.desired, w.observed, kind.comparers)
    if not w.changes:
        w.outcome = _outcome(w, Status.COMPLIANT, _compliant_sentence(w.desired))
        return
    w.caveats = caveats_for(kind.caveats(params, ctx, w.observed, w.desired), w.changes)
    if mode is Mode.CHECK:
        w.outcome = _outcome(w, Status.DRIFTED, _drift_sentence(w.changes, kind.comparers) + _notes(w.caveats))
    elif w.step.control.policy is Policy.MONITOR:
        w.outcome = _outcome(w, Status.DRIFTED, "policy monitor, not changed: "
                             + _drift_sentence(w.changes, kind.comparers) + _notes(w.caveats))
    elif not w.to_make:
        w.outcome = _outcome(w, Status.DRIFTED, "not changed: " + _drift_sentence(w.changes, kind.comparers)
                             + _notes(w.caveats))


def _restore(w: _Work, before: State) -> State:
    """A recorded before-state as the desired one (rollback): only objects that still exist, and
    only the properties the kind compares."""
    observed = w.observed or {}
    desired: dict[str, dict[str, Any]] = {}
    for obj, props in before.items():
        if obj not in observed or observed[obj] is None:
            raise ControlFailed(f"{obj} no longer exists on {w.host}; nothing rolled back")
        desired[obj] = {k: v for k, v in (props or {}).items() if k in w.step.kind.comparers}
    if not any(desired.values()):
        raise ControlFailed("the recorded before-state holds nothing to restore")
    return desired


def _verify(w: _Work, result: SectionResult) -> None:
    kind, (params, ctx) = w.step.kind, w.step.ready()
    n = len(w.writes)
    write_error = next((e for e in result.errors[:n] if e is not None), None)
    read_error = next((e for e in result.errors[n:] if e is not None), None)
    if read_error is not None:
        problem = f"write failed: {write_error}; " if write_error else "written, but "
        w.outcome = _outcome(w, Status.FAILED, f"{problem}the re-read failed: {read_error}; state unknown")
        return
    after = kind.observe(params, ctx, result.values[n:])
    remaining = diff(without_held(w.desired or {}, w.caveats), after, kind.comparers)
    if write_error is not None:
        w.outcome = _outcome(w, Status.FAILED, f"write failed: {write_error}", after=after)
    elif remaining:
        w.outcome = _outcome(w, Status.FAILED, "written, but the re-read does not match: "
                             + _drift_sentence(remaining, kind.comparers), after=after)
    elif w.held:
        w.outcome = _outcome(w, Status.DRIFTED, _fixed_sentence(w.to_make, kind.comparers) + "; not changed: "
                             + _drift_sentence(w.held, kind.comparers) + _notes(w.caveats), after=after)
    else:
        w.outcome = _outcome(w, Status.FIXED, _fixed_sentence(w.changes, kind.comparers) + _notes(w.caveats),
                             after=after)


def _restart(session: _Session, fixed: list[_Work]) -> str | None:
    """Restart what the fixed controls need, once per host, only where the playbook allows.

    Returns the problem that kept the restart from being confirmed, if any.
    """
    needs: list[tuple[_Work, tuple[str, ...], str]] = []
    for w in fixed:
        params, ctx = w.step.ready()
        services = w.step.kind.restarts(params, ctx, w.to_make)
        if services:
            needs.append((w, services, w.step.kind.restart_policy(params)))
    allowed = sorted({s for _, services, policy in needs if policy == "allowed" for s in services})
    actions: dict[str, str] = {}
    failure: str | None = None
    known = True  # the host said the restart failed, rather than the answer being lost
    if allowed:
        section = Section(RESTART_SECTION_ID, (ScriptCall("service_restart", "write", {"services": allowed}),))
        try:
            result = session.run((section,))[section.id]
            if result.ok and isinstance(result.values[0], Mapping):
                actions = {str(e.get("name")): str(e.get("action")) for e in result.values[0].get("services") or []}
            else:
                failure = result.error or "no answer"
        except TargetError as exc:
            failure, known = exc.problem, False
    for w, services, policy in needs:
        assert w.outcome is not None
        if policy == "allowed" and failure is not None:
            what = (f"failed: {failure}; the setting is not live yet" if known else
                    f"was not confirmed: {failure}; the setting may not be live yet")
            w.outcome = replace(w.outcome, status=Status.FAILED, pending_restarts=services,
                                message=w.outcome.message + f"; but restarting {', '.join(services)} {what}")
            continue
        restarted = tuple(s for s in services if actions.get(s) == "restarted")
        idle = [s for s in services if actions.get(s) == "not running"]
        missing = [s for s in services if s in actions and actions[s] not in {"restarted", "not running"}]
        pending = tuple(s for s in services if s not in actions)
        note = ""
        if restarted:
            note += f"; restarted {', '.join(restarted)}"
        if idle:
            note += f"; {', '.join(idle)} not running, left stopped (the setting applies when started)"
        if missing:
            note += f"; service {', '.join(missing)} not found"
        if pending:
            note += f"; not live until {', '.join(pending)} restart (restart: deferred)"
        w.outcome = replace(w.outcome, restarted=restarted, pending_restarts=pending, message=w.outcome.message + note)
    return failure


def _public(state: State | None) -> dict[str, Any]:
    """A state for reports: kinds' bookkeeping keys (leading underscore) left out."""
    if state is None:
        return {}
    out: dict[str, Any] = {}
    for obj, props in state.items():
        if props is None:
            out[obj] = None
            continue
        shown = {k: v for k, v in props.items() if not k.startswith("_")}
        if shown or not props:  # an object of bookkeeping only is not shown as an empty one
            out[obj] = shown
    return out


def _outcome(w: _Work, status: Status, message: str, after: State | None = None) -> Outcome:
    control = w.step.control
    return Outcome(
        host=w.host,
        control=control.id,
        title=control.title,
        kind=control.kind,
        status=status,
        message=message,
        desired=_public(w.desired),
        before=_public(w.observed),
        after=_public(after if after is not None else (w.observed if status is not Status.FAILED else None)),
        changes=w.changes,
        references=control.references,
        variant=w.step.ctx.variant.name if w.step.ctx else None,
        params=w.step.params.model_dump(mode="json", exclude_none=True) if w.step.params else {},
        held=w.held if status is Status.DRIFTED else (),
    )


def _notes(caveats: Sequence[Caveat]) -> str:
    """The caveats' sentences, to follow an outcome's own sentence."""
    return "".join(f"; {c.sentence}" for c in caveats)


def _compliant_sentence(desired: State) -> str:
    pairs = [(obj, prop, value) for obj, props in desired.items() for prop, value in (props or {}).items()]
    if not pairs:
        return f"nothing to set on {', '.join(desired) or 'this host'}: already as desired"
    if len(pairs) == 1:
        obj, prop, value = pairs[0]
        return f"{prop} is already {display(value)} on {obj}"
    objects = list(desired)
    if len(objects) == 1:
        settings = ", ".join(f"{prop} {_short(value)}" for _, prop, value in pairs)
        return f"already as desired on {objects[0]}: {settings}"
    shown = ", ".join(objects[:3]) + (", …" if len(objects) > 3 else "")
    return f"{len(pairs)} settings already as desired on {len(objects)} objects ({shown})"


def _short(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        return f"({len(value)} entries)"
    return display(value)


def _drift_sentence(changes: Sequence[Change], comparers: Mapping[str, Comparer]) -> str:
    shown = [describe_change(c, comparers) for c in changes[:3]]
    more = f"; and {len(changes) - 3} more" if len(changes) > 3 else ""
    return "; ".join(shown) + more


def _fixed_sentence(changes: Sequence[Change], comparers: Mapping[str, Comparer]) -> str:
    shown = []
    for c in changes[:3]:
        delta = comparers.get(c.path.rsplit(".", 1)[-1], EXACT).delta(c.before, c.after)
        shown.append(f"{c.path}: {delta}" if delta else f"{c.path} {display(c.before)} → {display(c.after)}")
    more = f"; and {len(changes) - 3} more" if len(changes) > 3 else ""
    return "changed " + "; ".join(shown) + more + " (verified by re-read)"
