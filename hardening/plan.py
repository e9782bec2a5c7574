"""Pure planning: playbook × inventory → which controls run on which host; × facts → steps.

Nothing here talks to a host. ``select`` needs no facts; ``steps`` adds what facts decide
(variant, not applicable) and what the date decides (exceptions); ``describe`` is the text of
``hardening plan``: every request that would be read and written, as PowerShell and cmdlet lines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
import jinja2.meta
import jinja2.sandbox
import pydantic

from .errors import InputError, InputErrors, MissingVariablesError, PlaybookError, SourceLocation
from .facts import Facts
from .inventory import Host, Inventory
from .kinds import KINDS, Context, ControlFailed, Kind, KindParams, NotApplicable
from .model import Section, Status
from .playbook import Control, Playbook, matches_any
from .render import bundle_text

__all__ = ["HostPlan", "Step", "describe", "inventory_variables", "select", "steps"]


@dataclass(frozen=True)
class HostPlan:
    """The controls that apply to one host, before facts are known.

    ``refusals`` are the sentences of the kinds' guards (``preflight``) by control id: ``apply``
    refuses them before anything is sent; ``check`` and ``plan`` report them on the outcome.
    ``inventory_vars`` are the render variables the whole inventory gives (``groups``, ``hostvars``).
    """

    host: Host
    controls: tuple[Control, ...]
    refusals: Mapping[str, str] = field(default_factory=dict)
    inventory_vars: Mapping[str, Any] = field(default_factory=dict)


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
    shared = inventory_variables(inventory)
    chosen_by_host = []
    for host in inventory.hosts.values():
        if limit and not matches_any(host.name, host.groups, limit):
            continue
        chosen = tuple(c for c in playbook.controls
                       if all(matches_any(host.name, host.groups, chain.patterns) for chain in c.hosts)
                       and _tagged(c, tags, skip))
        if chosen:
            chosen_by_host.append((host, chosen))
    _refuse_missing_variables(chosen_by_host, inventory)
    plans = []
    for host, chosen in chosen_by_host:
        refusals: dict[str, str] = {}
        for control in chosen:
            params = control.params
            if params is None and not _uses_facts(control.raw_params):
                # bad input is refused before anything is sent
                params = render_params(control, host, Facts(), shared)
            if params is not None:
                problem = KINDS[control.kind].preflight(params, host)
                if problem:
                    refusals[control.id] = problem
        plans.append(HostPlan(host, chosen, refusals, shared))
    return tuple(plans)


def refuse_guarded(plans: Iterable[HostPlan]) -> None:
    """Refuse an ``apply`` before anything is sent when a kind's guard refuses a control on a host
    (e.g. a firewall change that would cut the connection in use); every refusal in one message."""
    errors = [PlaybookError(control.location, f"refused for host {plan.host.name}: {plan.refusals[control.id]}",
                            key=control.kind)
              for plan in plans for control in plan.controls if control.id in plan.refusals]
    if errors:
        raise InputErrors(errors, "apply refused before anything was sent")


def inventory_variables(inventory: Inventory) -> dict[str, Any]:
    """``groups`` (group → host names, as Ansible's) and ``hostvars`` (host → address, declared facts,
    vars, groups) for ``{{ … }}`` in parameters. The inventory holds no secret values: passwords are
    references and are not part of these."""
    groups = {name: sorted(members) for name, members in inventory.groups.items()}
    groups["all"] = list(inventory.hosts)
    hostvars = {name: {"address": host.address, "facts": dict(host.facts), "vars": dict(host.vars),
                       "groups": sorted(host.groups)}
                for name, host in inventory.hosts.items()}
    return {"groups": groups, "hostvars": hostvars}


# Names every template may use besides the variables: what the engine itself provides.
PROVIDED_NAMES = frozenset({"facts", "host", "groups", "hostvars"})


def template_names(value: Any) -> set[str]:
    """The variables that the ``{{ … }}`` templates in a parameter value refer to."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return set()
        try:
            return set(jinja2.meta.find_undeclared_variables(_ENVIRONMENT.parse(value)))
        except jinja2.TemplateSyntaxError:
            return set()  # rendering reports the syntax error with its place
    if isinstance(value, Mapping):
        return {n for v in value.values() for n in template_names(v)}
    if isinstance(value, list):
        return {n for v in value for n in template_names(v)}
    return set()


def _where_used(control: Control, name: str) -> SourceLocation:
    """The place of the first parameter of a control whose template uses the variable."""

    def find(value: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
        if isinstance(value, str):
            return path if name in template_names(value) else None
        items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            found = find(item, (*path, key))
            if found is not None:
                return found
        return None

    path = find(control.raw_params, ())
    return control.location if path is None else control.document.location(("controls", control.index,
                                                                              control.kind, *path))


def _refuse_missing_variables(chosen: Iterable[tuple[Host, tuple[Control, ...]]], inventory: Inventory) -> None:
    """Every variable that a selected control uses and nothing sets, for every host, in one message,
    before anything is sent: site values (networks, domain controllers, partners) have no defaults."""
    missing: dict[str, dict[str, Any]] = {}
    for host, controls in chosen:
        for control in controls:
            for name in sorted(template_names(control.raw_params) - PROVIDED_NAMES):
                if name in control.vars or name in host.vars:
                    continue
                entry = missing.setdefault(name, {"description": None, "controls": {}, "hosts": []})
                entry["description"] = entry["description"] or control.required_vars.get(name)
                entry["controls"].setdefault(control.id, _where_used(control, name))
                if host.name not in entry["hosts"]:
                    entry["hosts"].append(host.name)
    if not missing:
        return
    lines = [f"{len(missing)} variable{'s' if len(missing) > 1 else ''} that the selected controls need "
             f"{'are' if len(missing) > 1 else 'is'} not set; nothing was sent:"]
    for name, entry in missing.items():
        lines.append(f"  {name}: " + (entry["description"] or "used by the playbook, which neither gives it a "
                                                             "default nor declares it in required_vars"))
        hosts = entry["hosts"]
        shown = ", ".join(hosts[:5]) + (f" and {len(hosts) - 5} more" if len(hosts) > 5 else "")
        for control_id, location in entry["controls"].items():
            lines.append(f"    needed by {control_id} ({location}) on {shown}")
    lines.append("set them in the inventory's vars: at the top level (every host), under a group, or under a "
                 "host, e.g.")
    lines.append("  vars:")
    lines += [f"    {name}: ..." for name in missing]
    raise MissingVariablesError(SourceLocation(inventory.path), "\n".join(lines), list(missing))


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
            if control.on_unsupported == "not_applicable":
                out.append(Step(control, kind, None, None, Status.NOT_APPLICABLE,
                                f"{variant} (not wanted there: on_unsupported: not_applicable)"))
            else:
                out.append(Step(control, kind, None, None, Status.UNSUPPORTED, f"not checked: {variant}"))
            continue
        try:
            params = control.params or render_params(control, plan.host, facts, plan.inventory_vars)
        except InputError as exc:
            out.append(Step(control, kind, None, None, Status.FAILED, f"bad parameters: {exc}"))
            continue
        out.append(Step(control, kind, params, Context(plan.host.name, facts, variant,
                                                       management_ports(plan.host))))
    return tuple(out)


def management_ports(host: Host) -> tuple[int, ...]:
    """The TCP ports this run manages the host through: WinRM as the inventory says, and Exchange's
    remote PowerShell endpoint (on the host itself) — a guard must never close them."""
    connection = host.connection
    if connection.transport == "ldap":
        return ()
    return tuple(dict.fromkeys((connection.effective_port, connection.effective_exchange_port)))


_ENVIRONMENT = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def render_params(control: Control, host: Host, facts: Facts,
                  inventory_vars: Mapping[str, Any] | None = None) -> KindParams:
    """Render ``{{ … }}`` in a control's parameters for one host, then validate them."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                                       finalize=_known)
    variables: dict[str, Any] = {**control.vars, **host.vars, **(inventory_vars or {}), "facts": facts.to_json(),
                                 "host": host.name}

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
    """What ``check`` would read and ``apply`` could write on this host, as text (sends nothing)."""
    lines = [f"# host {plan.host.name}"]
    if not facts.os_version:
        facts = _assumed(plan.host)
        lines.append("# facts are not declared: a real run reads them first (one round trip); shown with "
                     f"assumed facts: {facts.windows_product}, {facts.exchange_product}, install path "
                     f"{facts.exchange_install_path}, directory DC=example,DC=com")
    for step in steps(plan, facts, today):
        lines.append(f"\n## {step.control.id} ({step.kind.name}): {step.control.title}")
        if step.control.id in plan.refusals:
            lines.append(f"# apply would refuse this control on this host: {plan.refusals[step.control.id]}")
        if step.status is not None or step.params is None or step.ctx is None:
            lines.append(f"# {step.status.value if step.status else 'skipped'}: {step.message}")
            continue
        try:
            reads = step.kind.read(step.params, step.ctx)
            desired = step.kind.desire(step.params, step.ctx, None)
            writes = step.kind.write(step.params, step.ctx, None, desired)
        except (ControlFailed, NotApplicable) as exc:
            lines.append(f"# cannot plan: {exc}")
            continue
        lines.append("# read:")
        lines.append(bundle_text((Section(step.control.id, reads),)))
        lines.append("# write, where the read differs (values shown as if nothing matched yet):")
        lines += [f"# and, decided from what is read: {note}" for note in step.kind.plan_notes(step.params)]
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
