"""YAML playbooks → validated :class:`Playbook` values. Every error carries file:line:column.

A playbook has ``name``, ``description``, ``hosts`` (patterns), ``vars``, ``include`` (other
playbooks, relative to this file or shipped with hardening) and ``controls``. A control has an
``id`` unique across the run, a ``title``, ``references``, ``tags``, ``policy``, ``exceptions``
and exactly one kind key whose value is that kind's parameters.
"""

from __future__ import annotations

import datetime as dt
import difflib
import fnmatch
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pydantic
import pydantic.json_schema
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import PlaybookError, SourceLocation
from .kinds import KINDS, KindParams
from .model import PlaybookRef, Policy
from .resources import data_dir
from .sourcefile import Document, load_yaml, validate, validation_error

__all__ = [
    "Control",
    "ControlException",
    "HostPatterns",
    "Playbook",
    "load_playbook",
    "matches_any",
    "playbook_schema",
    "resolve_playbook_path",
]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReferencesModel(_Strict):
    """Where a control comes from: the guide's section and benchmark ids."""

    guide: str | None = Field(None, description="Section of the hardening guide, e.g. 'Require TLS on inbound SMTP'.")
    stig: list[str] = Field(default_factory=list, description="DISA STIG ids (V-… or EX19-…).")
    cis: list[str] = Field(default_factory=list, description="CIS benchmark ids.")
    urls: list[str] = Field(default_factory=list, description="Further reading.")


class ExceptionModel(_Strict):
    """A documented exception: the control is skipped on matching hosts until ``until``."""

    hosts: str | list[str] = Field(description="Host or group patterns the exception covers.")
    reason: str = Field(min_length=1, description="Why; shown in every report.")
    until: dt.date | None = Field(None, description="Last day the exception holds (YYYY-MM-DD); none = open-ended.")


class ControlBase(_Strict):
    """The keys every control has besides its one kind key."""

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not re.match(ID_PATTERN, value):
            raise ValueError(f"{value!r} is not a valid id: use letters, digits, '.', '_' and '-', starting with a "
                             "letter or digit")
        return value

    id: str = Field(description="Unique across the run; letters, digits, . _ - (starting with a letter or digit)",
                    json_schema_extra={"pattern": ID_PATTERN})
    title: str = Field(min_length=1)
    references: ReferencesModel = Field(default_factory=lambda: ReferencesModel())
    tags: list[str] = Field(default_factory=list)
    policy: Policy = Field(Policy.ENFORCE, description="enforce: apply writes it; monitor: only checked.")
    exceptions: list[ExceptionModel] = Field(default_factory=list)
    on_unsupported: Literal["unsupported", "not_applicable"] = Field(
        "unsupported", description="A host for which the kind has no variant (its platform is not supported): "
        "unsupported (default) is a finding that makes the run's exit code 2, since the control was not checked; "
        "not_applicable says the control is not wanted on such hosts.")


class PlaybookModel(_Strict):
    """The top level of a playbook file."""

    name: str = Field(min_length=1)
    description: str = ""
    hosts: str | list[str] = Field("all", description="Host or group patterns (globs; !pattern excludes).")
    vars: dict[str, Any] = Field(default_factory=dict, description="Defaults for {{ var }} in parameters.")
    required_vars: dict[str, str] = Field(
        default_factory=dict,
        description="Variables this playbook needs and has no default for (site values: networks, domain "
        "controllers, partner domains ...), each with a sentence saying what to set. A run whose inventory "
        "does not set one refuses before anything is sent.")
    include: list[str] = Field(default_factory=list, description="Other playbooks, relative to this file.")
    controls: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class ControlException:
    """A documented exception of a control for some hosts, until a date."""

    hosts: tuple[str, ...]
    reason: str
    until: dt.date | None
    location: SourceLocation | None = None

    def active(self, today: dt.date) -> bool:
        return self.until is None or today <= self.until


@dataclass(frozen=True)
class HostPatterns:
    """The ``hosts`` of one playbook in a control's include chain, and where it was written."""

    patterns: tuple[str, ...]
    location: SourceLocation


@dataclass(frozen=True)
class Control:
    """One control of a playbook, with its kind's parameters validated.

    ``params`` is None when a parameter holds ``{{ … }}``: those are rendered per host with the
    variables and facts, and validated then (errors still point at this file and line).
    """

    id: str
    title: str
    kind: str
    params: KindParams | None
    raw_params: Mapping[str, Any]
    references: Mapping[str, Any]
    tags: tuple[str, ...]
    policy: Policy
    exceptions: tuple[ControlException, ...]
    location: SourceLocation
    playbook: str
    hosts: tuple[HostPatterns, ...]
    vars: Mapping[str, Any]
    document: Document = field(compare=False, repr=False)
    index: int = 0
    # Variables of this control's playbook and its includers that have no default: name → what to set.
    required_vars: Mapping[str, str] = field(default_factory=dict)
    on_unsupported: Literal["unsupported", "not_applicable"] = "unsupported"

    def params_error(self, exc: pydantic.ValidationError) -> PlaybookError:
        """A validation error of rendered parameters, placed in this control's file."""
        err = validation_error(self.document, exc, ("controls", self.index, self.kind),
                               KINDS[self.kind].params_model, PlaybookError)
        assert isinstance(err, PlaybookError)
        return err


@dataclass(frozen=True)
class Playbook:
    """A loaded playbook with its includes flattened, in order, and the files that made it."""

    path: str
    name: str
    description: str
    controls: tuple[Control, ...]
    sources: tuple[PlaybookRef, ...]


def resolve_playbook_path(name: str | Path, base: Path | None = None) -> Path:
    """A playbook path as given, else relative to ``base``, else a shipped playbook by name."""
    path = Path(name)
    candidates = [base / path] if base is not None and not path.is_absolute() else []
    candidates.append(path)
    shipped = data_dir("playbooks")
    candidates += [shipped / path.name, shipped / f"{path.name}.yml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[0]


def load_playbook(path: str | Path) -> Playbook:
    """Load and validate a playbook and everything it includes."""
    resolved = resolve_playbook_path(path)
    controls: list[Control] = []
    sources: list[PlaybookRef] = []
    name, description = _load(resolved, controls, sources, (), {}, {}, stack=())
    seen: dict[str, Control] = {}
    for control in controls:
        if control.id in seen:
            first = seen[control.id]
            raise PlaybookError(control.location, f"duplicate control id {control.id!r} (first defined at "
                                f"{first.location})", key="id")
        seen[control.id] = control
    return Playbook(str(resolved), name, description, tuple(controls), tuple(sources))


def _load(path: Path, controls: list[Control], sources: list[PlaybookRef], hosts: tuple[HostPatterns, ...],
          inherited_vars: Mapping[str, Any], inherited_required: Mapping[str, str],
          stack: tuple[Path, ...]) -> tuple[str, str]:
    real = path.resolve()
    if real in stack:
        chain = " → ".join(p.name for p in (*stack, real))
        raise PlaybookError(SourceLocation(str(path)), f"include cycle: {chain}")
    doc = load_yaml(path, error=PlaybookError)
    if doc.data is None:
        raise PlaybookError(SourceLocation(str(path), 1, 1), "the playbook is empty; it needs at least a name")
    if not isinstance(doc.data, dict):
        raise doc.error((), f"a playbook is a mapping of keys (name, hosts, controls …), not a "
                        f"{type(doc.data).__name__}", cls=PlaybookError)
    top = validate(doc, PlaybookModel, error=PlaybookError)
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    sources.append(PlaybookRef(str(path), top.name, digest))
    own_hosts = (*hosts, HostPatterns(tuple([top.hosts] if isinstance(top.hosts, str) else top.hosts),
                                      doc.location(("hosts",))))
    for name in top.required_vars:
        if name in top.vars:
            raise doc.error(("vars", name), f"{name!r} is a required variable of this playbook (required_vars): "
                            "it has no default here; set it in the inventory's vars", key=True, cls=PlaybookError)
    variables = {**inherited_vars, **top.vars}
    # A value an including playbook sets (a site's own playbook) satisfies a requirement of the included one.
    required = {k: v for k, v in {**inherited_required, **top.required_vars}.items() if k not in variables}
    for i, name in enumerate(top.include):
        target = resolve_playbook_path(name, path.parent)
        if not target.is_file():
            raise doc.error(("include", i), f"included playbook {name!r} not found (looked beside {path.name} "
                            "and among the shipped playbooks)", cls=PlaybookError)
        if target.resolve() in (*stack, real):
            chain = " → ".join(p.name for p in (*stack, real, target.resolve()))
            raise doc.error(("include", i), f"include cycle: {chain}", cls=PlaybookError)
        _load(target, controls, sources, own_hosts, variables, required, (*stack, real))
    for i, raw in enumerate(top.controls):
        controls.append(_control(doc, i, raw, own_hosts, variables, required))
    return top.name, top.description


def _control(doc: Document, index: int, raw: Any, hosts: tuple[HostPatterns, ...],
             variables: Mapping[str, Any], required: Mapping[str, str]) -> Control:
    path = ("controls", index)
    if not isinstance(raw, dict):
        raise doc.error(path, "a control is a mapping with id, title and one kind", cls=PlaybookError)
    base_keys = set(ControlBase.model_fields)
    kind_keys = [k for k in raw if k in KINDS]
    unknown = [k for k in raw if k not in base_keys and k not in KINDS]
    if unknown:
        key = unknown[0]
        hint = difflib.get_close_matches(str(key), [*KINDS, *base_keys], n=1)
        problem = f"unknown key {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else
                                             f"; kinds are: {', '.join(sorted(KINDS))}")
        raise doc.error((*path, key), problem, key=True, cls=PlaybookError)
    if not kind_keys:
        raise doc.error(path, f"the control has no kind; add exactly one of: {', '.join(sorted(KINDS))}",
                        cls=PlaybookError)
    if len(kind_keys) > 1:
        raise doc.error((*path, kind_keys[1]), f"a control has exactly one kind; found {', '.join(kind_keys)}",
                        key=True, cls=PlaybookError)
    kind = kind_keys[0]
    base = validate(doc, ControlBase, path, data={k: v for k, v in raw.items() if k != kind},
                    error=PlaybookError)
    raw_params = raw[kind] if raw[kind] is not None else {}
    if not isinstance(raw_params, dict):
        raise doc.error((*path, kind), f"the parameters of {kind} are a mapping, not a "
                        f"{type(raw_params).__name__}", cls=PlaybookError)
    params = None
    if not _templated(raw_params):
        params = validate(doc, KINDS[kind].params_model, (*path, kind), data=raw_params, error=PlaybookError)
    return Control(
        id=base.id,
        title=base.title,
        kind=kind,
        params=params,
        raw_params=raw_params,
        references=base.references.model_dump(exclude_defaults=True),
        tags=tuple(base.tags),
        policy=base.policy,
        exceptions=tuple(ControlException(tuple([e.hosts] if isinstance(e.hosts, str) else e.hosts), e.reason,
                                          e.until, doc.location((*path, "exceptions", i, "hosts")))
                         for i, e in enumerate(base.exceptions)),
        location=doc.location(path),
        playbook=doc.path,
        hosts=hosts,
        vars=dict(variables),
        document=doc,
        index=index,
        required_vars=dict(required),
        on_unsupported=base.on_unsupported,
    )


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return False


def matches_any(name: str, groups: frozenset[str], patterns: tuple[str, ...]) -> bool:
    """Whether a host (by name or one of its groups) matches host patterns (``!p`` excludes)."""
    included = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        hit = pat.casefold() == "all" or any(
            fnmatch.fnmatchcase(n.casefold(), pat.casefold()) for n in (name, *groups))
        if negate and hit:
            return False
        if not negate and hit:
            included = True
    return included or all(p.startswith("!") for p in patterns)


def playbook_schema() -> dict[str, Any]:
    """The JSON Schema of playbook files, for editors (VS Code YAML) and validation."""
    models: list[type[BaseModel]] = [PlaybookModel, ControlBase, *(k.params_model for k in KINDS.values())]
    refs, defs = pydantic.json_schema.models_json_schema([(m, "validation") for m in models],
                                                         ref_template="#/$defs/{model}")
    schema_defs = dict(defs.get("$defs", {}))
    control_base = schema_defs[ControlBase.__name__]
    control: dict[str, Any] = {
        "type": "object",
        "description": "A control: id, title, references, tags, policy, exceptions and exactly one kind.",
        "properties": {**control_base["properties"]},
        "required": control_base.get("required", []),
        "additionalProperties": False,
        "oneOf": [{"required": [name]} for name in KINDS],
    }
    for name, kind in KINDS.items():
        ref = refs[(kind.params_model, "validation")]
        control["properties"][name] = {**ref, "description": kind.summary}
        _allow_templates(schema_defs, kind.params_model.__name__)
    schema_defs["Control"] = control
    top = dict(schema_defs.pop(PlaybookModel.__name__))
    top["properties"]["controls"] = {"type": "array", "items": {"$ref": "#/$defs/Control"}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://hardening.invalid/schema/playbook.json",
        **top,
        "title": "hardening playbook",
        "$defs": schema_defs,
    }


TEMPLATE_SCHEMA = {"type": "string", "pattern": r"\{\{|\{%",
                   "description": "a {{ jinja2 }} template, rendered per host"}


def _allow_templates(defs: dict[str, Any], name: str, seen: set[str] | None = None) -> None:
    """Let every parameter of a kind (and of its nested models) be a {{ template }} as well."""
    seen = seen if seen is not None else set()
    if name in seen or name not in defs:
        return
    seen.add(name)
    for prop, schema in defs[name].get("properties", {}).items():
        for ref in _refs(schema):
            _allow_templates(defs, ref, seen)
        defs[name]["properties"][prop] = {"anyOf": [schema, TEMPLATE_SCHEMA], **(
            {"description": schema["description"]} if "description" in schema else {})}


def _refs(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        found = [schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else []
        return found + [r for v in schema.values() for r in _refs(v)]
    if isinstance(schema, list):
        return [r for v in schema for r in _refs(v)]
    return []
