"""Pure planning: playbook × inventory → which controls run on which host; × facts → steps.

Nothing here talks to a host. ``select`` needs no facts; ``steps`` adds what facts decide
(variant, not applicable) and what the date decides (exceptions); ``describe`` is the text of
``hardening plan``: every request that would be read and written, as PowerShell and cmdlet lines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
import jinja2.sandbox
import pydantic

from .errors import InputError, PlaybookError, SourceLocation
from .facts import Facts
from .inventory import Host, Inventory
from .kinds import KINDS, Context, ControlFailed, Kind, KindParams, NotApplicable
from .model import Section, Status
from .playbook import Control, Playbook, matches_any
from .render import bundle_text, ps_comment

__all__ = ["HostPlan", "Step", "describe", "select", "steps"]


@dataclass(frozen=True)
class HostPlan:
    """The controls that apply to one host, before facts are known."""

    host: Host
    controls: tuple[Control, ...]


@dataclass(frozen=True)
class Step:
    """One control on one host, ready to run, or already decided (``status`` set)."""

    control: Control
    kind: Kind[Any]
    params: KindParams | None
    ctx: Context | None
    status: Status | None = None
    message: str = ""

    def ready(self) -> tuple[KindParams, Context]:
        """Parameters and context of a step that runs (one with no preset status)."""
        if self.params is None or self.ctx is None:
            raise RuntimeError(f"step {self.control.id} was decided before it ran: {self.message}")
        return self.params, self.ctx


def select(playbook: Playbook, inventory: Inventory, *, limit: Iterable[str] = (), tags: Iterable[str] = (),
           skip_tags: Iterable[str] = ()) -> tuple[HostPlan, ...]:
    """Hosts × controls after host patterns, ``--limit``, ``--tags`` and ``--skip-tags``."""
    limit, tags, skip = tuple(limit), frozenset(tags), frozenset(skip_tags)
    for control in playbook.controls:
        for chain in control.hosts:
            unknown = inventory.unknown_patterns(chain.patterns)
            if unknown:
                raise PlaybookError(chain.location, f"unknown host or group {unknown[0]!r} in inventory "
                                    f"{inventory.path}", key="hosts")
        for exception in control.exceptions:
            unknown = inventory.unknown_patterns(exception.hosts)
            if unknown and exception.location is not None:
                # A misspelt exception would silently never apply.
                raise PlaybookError(exception.location, f"unknown host or group {unknown[0]!r} in inventory "
                                    f"{inventory.path}", key="exceptions.hosts")
    unknown_limit = inventory.unknown_patterns(limit)
    if unknown_limit:
        raise InputError(SourceLocation("--limit"), f"unknown host or group {unknown_limit[0]!r} in inventory "
                         f"{inventory.path}")
    _check_tags(playbook, tags, "--tags")
    _check_tags(playbook, skip, "--skip-tags")
    plans = []
    for host in inventory.hosts.values():
        if limit and not matches_any(host.name, host.groups, limit):
            continue
        chosen = tuple(c for c in playbook.controls
                       if all(matches_any(host.name, host.groups, chain.patterns) for chain in c.hosts)
                       and _tagged(c, tags, skip))
        if chosen:
            plans.append(HostPlan(host, chosen))
    for plan in plans:
        for control in plan.controls:
            params = control.params
            if params is None and not _uses_facts(control.raw_params):
                params = render_params(control, plan.host, Facts())  # bad input is refused before anything is sent
            if params is not None:
                problem = KINDS[control.kind].preflight(params, plan.host)
                if problem:
                    raise PlaybookError(control.location, f"refused for host {plan.host.name}: {problem}",
                                        key=control.kind)
    return tuple(plans)


def _check_tags(playbook: Playbook, tags: frozenset[str], option: str) -> None:
    """A tag that selects nothing is a typo that would silently turn an audit off."""
    known = {name for c in playbook.controls for name in (*c.tags, c.id, c.kind)}
    for tag in sorted(tags - known):
        raise InputError(SourceLocation(option), f"no control of {playbook.path} has the tag, id or kind {tag!r}")


def _uses_facts(value: Any) -> bool:
    if isinstance(value, str):
        return "facts" in value and ("{{" in value or "{%" in value)
    if isinstance(value, Mapping):
        return any(_uses_facts(v) for v in value.values())
    if isinstance(value, list):
        return any(_uses_facts(v) for v in value)
    return False


def _tagged(control: Control, tags: frozenset[str], skip: frozenset[str]) -> bool:
    names = {*control.tags, control.id, control.kind}
    if skip & names:
        return False
    return not tags or bool(tags & names)


def steps(plan: HostPlan, facts: Facts, today: dt.date) -> tuple[Step, ...]:
    """Each control of a host as a step: variant chosen, parameters rendered, exceptions applied."""
    out = []
    for control in plan.controls:
        kind = KINDS[control.kind]
        exception = next((e for e in control.exceptions if e.active(today)
                          and matches_any(plan.host.name, plan.host.groups, e.hosts)), None)
        if exception is not None:
            until = f" until {exception.until.isoformat()}" if exception.until else ""
            out.append(Step(control, kind, None, None, Status.SKIPPED, f"exception{until}: {exception.reason}"))
            continue
        variant = kind.variant_for(facts)
        if isinstance(variant, str):
            out.append(Step(control, kind, None, None, Status.NOT_APPLICABLE, variant))
            continue
        try:
            params = control.params or render_params(control, plan.host, facts)
        except InputError as exc:
            out.append(Step(control, kind, None, None, Status.FAILED, f"bad parameters: {exc}"))
            continue
        out.append(Step(control, kind, params, Context(plan.host.name, facts, variant)))
    return tuple(out)


def render_params(control: Control, host: Host, facts: Facts) -> KindParams:
    """Render ``{{ … }}`` in a control's parameters for one host, then validate them."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                                       finalize=_known)
    variables: dict[str, Any] = {**control.vars, **host.vars, "facts": facts.to_json(), "host": host.name}

    def render(value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            try:
                return env.from_string(value).render(variables)
            except jinja2.TemplateError as exc:
                error = control.document.error(("controls", control.index, control.kind, *path),
                                               f"cannot render {value!r} for host {host.name}: {exc.message or exc}",
                                               cls=PlaybookError)
                raise error from None
        if isinstance(value, Mapping):
            return {k: render(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [render(v, (*path, i)) for i, v in enumerate(value)]
        return value

    rendered = render(control.raw_params, ())
    try:
        return KINDS[control.kind].params_model.model_validate(rendered)
    except pydantic.ValidationError as exc:
        raise control.params_error(exc) from None


def _known(value: Any) -> Any:
    """Refuse to render an unknown fact (None) as the text "None" into a parameter."""
    if value is None:
        raise jinja2.UndefinedError("a variable or fact used here has no value on this host")
    return value


def describe(plan: HostPlan, facts: Facts, today: dt.date) -> str:
    """What ``check`` would read and ``apply`` could write on this host, as text (sends nothing).

    Every comment line goes through :func:`~hardening.render.ps_comment`: a value quoted in it
    (a host name, a title, a kind's sentence) cannot end the comment or start a line of its own.
    """
    lines = [ps_comment(f"host {plan.host.name}")]
    if not facts.os_version:
        facts = _assumed(plan.host)
        lines.append(ps_comment("facts are not declared: a real run reads them first (one round trip); shown with "
                                f"assumed facts: {facts.windows_product}, {facts.exchange_product}, install path "
                                f"{facts.exchange_install_path}, directory DC=example,DC=com"))
    for step in steps(plan, facts, today):
        lines.append("\n#" + ps_comment(f"{step.control.id} ({step.kind.name}): {step.control.title}"))
        if step.status is not None or step.params is None or step.ctx is None:
            lines.append(ps_comment(f"{step.status.value if step.status else 'skipped'}: {step.message}"))
            continue
        try:
            reads = step.kind.read(step.params, step.ctx)
            desired = step.kind.desire(step.params, step.ctx, None)
            writes = step.kind.write(step.params, step.ctx, None, desired)
        except (ControlFailed, NotApplicable) as exc:
            lines.append(ps_comment(f"cannot plan: {exc}"))
            continue
        lines.append("# read:")
        lines.append(bundle_text((Section(step.control.id, reads),)))
        lines.append("# write, where the read differs (values shown as if nothing matched yet):")
        lines += [ps_comment(f"and, decided from what is read: {note}") for note in step.kind.plan_notes(step.params)]
        lines.append(bundle_text((Section(step.control.id, writes),)) if writes else "# (nothing)")
    return "\n".join(lines) + "\n"


ASSUMED_INSTALL = "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\"
ASSUMED_NAMING_CONTEXTS = {"default": "DC=example,DC=com", "configuration": "CN=Configuration,DC=example,DC=com",
                           "schema": "CN=Schema,CN=Configuration,DC=example,DC=com", "root": "DC=example,DC=com"}


def _assumed(host: Host) -> Facts:
    """Facts to plan with when none are declared: the first variant of every kind applies."""
    return Facts.from_mapping({"computer_name": host.name.split(".")[0].upper(), "os_version": "10.0.17763",
                               "exchange_version": "15.2.0.0",
                               "exchange_install_path": ASSUMED_INSTALL,
                               "transport_queue_path": ASSUMED_INSTALL + "TransportRoles\\data\\Queue",
                               "naming_contexts": ASSUMED_NAMING_CONTEXTS},
                              host.facts)
