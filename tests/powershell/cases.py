"""Representative requests of every kind, built from the kinds themselves.

``SAMPLES`` holds parameter sets per kind, validated through each kind's ``params_model``. The
tests enumerate ``hardening.kinds.KINDS`` and fail for a kind without samples, so a new kind
cannot be forgotten. From a sample and a variant the kind itself builds the requests:

- ``read``: what ``check`` sends;
- ``write-plan``: what ``plan`` shows and ``apply`` would send if nothing matched yet
  (``desire``/``write`` with nothing observed);
- ``write-observed``: what ``apply`` sends to the built-in lab host MAIL01, after reading it
  through the in-process lab target (only when MAIL01's facts select that variant); for directory
  kinds, to the domain controller DC01 of ``tests/engine/labs/directory.yml`` instead (the built-in
  lab has no directory).

``string_slots`` walks a parameter model (nested models and list items too) and lists every
place a string goes, so the hostile-value tests cover every string parameter of every kind.
"""

from __future__ import annotations

import copy
import itertools
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from hardening.compare import diff
from hardening.facts import (
    Facts,
    directory_facts_from,
    directory_facts_section,
    exchange_facts_from,
    exchange_facts_section,
    facts_section,
)
from hardening.kinds import (
    KINDS,
    Context,
    ControlFailed,
    Kind,
    KindParams,
    NotApplicable,
    Variant,
    caveats_for,
    without_held,
)
from hardening.kinds.platforms import EXCHANGE_MODERN_PRODUCTS, WINDOWS_MODERN_PRODUCTS
from hardening.lab import LabHost, load_lab
from hardening.ldif import ldif_text
from hardening.model import Call, Change, CmdletCall, LdapCall, ScriptCall, Section
from hardening.render import bundle_script, cmdlet_text
from hardening.run import RESTART_SECTION_ID
from hardening.targets.memory import LabTarget

KINDS_DIR = Path(__file__).resolve().parents[1] / "kinds"
# The built-in lab has no directory: directory kinds are observed on this lab's domain controller.
DIRECTORY_LAB = Path(__file__).resolve().parents[1] / "engine" / "labs" / "directory.yml"
DIRECTORY_HOST = "DC01"


def _load_samples() -> dict[str, dict[str, dict[str, Any]]]:
    """Samples per kind from ``tests/kinds/<kind>/samples.yml``: a sample per behaviour worth seeing
    in a snapshot (the names are file names). Kept beside the kind's cases so that adding a kind
    touches only its own folder."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(KINDS_DIR.glob("*/samples.yml")):
        out[path.parent.name] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return out


SAMPLES: dict[str, dict[str, dict[str, Any]]] = _load_samples()

# Platforms a context can be built for; the first that a variant accepts is used for plans.
# Exchange hosts carry every path role's folders, so ``paths_from`` samples have paths to plan.
INSTALL = "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\"
EXCHANGE_PATH_FACTS: dict[str, Any] = {
    "exchange_install_path": INSTALL,
    "transport_queue_path": INSTALL + "TransportRoles\\data\\Queue",
    "mailbox_databases": [
        {"name": "DB01", "edb_file_path": "D:\\ExchangeDatabases\\DB01\\DB01.edb", "log_folder_path": "E:\\Logs\\DB01"},
        {"name": "DB02", "edb_file_path": "D:\\ExchangeDatabases\\DB02\\DB02.edb", "log_folder_path": "E:\\Logs\\DB02"},
    ],
    "transport_log_paths": [INSTALL + "TransportRoles\\Logs\\MessageTracking"],
}
WINDOWS_CANDIDATES: tuple[dict[str, Any], ...] = tuple(
    {"computer_name": "MAIL01", "os_caption": f"Microsoft Windows Server {release}", "os_version": os_version,
     "powershell_version": "5.1.17763.1", "exchange_version": exchange,
     **({"exchange_roles": ["Mailbox"], **EXCHANGE_PATH_FACTS} if exchange else {})}
    for exchange in ("15.2.1544.4", "15.1.2507.6", "15.2.2562.17", None, "6.5.7638.1")
    for release, os_version in (("2019", "10.0.17763"), ("2016", "10.0.14393"), ("2022", "10.0.20348"),
                                ("2025", "10.0.26100"), ("2003", "5.2.3790"))
)
# A domain controller as its rootDSE describes it (directory kinds); last, so no other variant picks it.
DIRECTORY_CANDIDATE: dict[str, Any] = {"computer_name": "DC01", "naming_contexts": {
    "default": "DC=lab,DC=example,DC=test", "configuration": "CN=Configuration,DC=lab,DC=example,DC=test",
    "schema": "CN=Schema,CN=Configuration,DC=lab,DC=example,DC=test", "root": "DC=lab,DC=example,DC=test"}}
CANDIDATE_FACTS: tuple[dict[str, Any], ...] = (*WINDOWS_CANDIDATES, DIRECTORY_CANDIDATE)
LAB_HOST = "MAIL01"
PHASES = ("read", "write-plan", "write-observed")


@dataclass(frozen=True)
class Case:
    """One sample of one kind on one variant."""

    kind: Kind[Any]
    variant: Variant
    sample: str
    raw: Mapping[str, Any]

    @property
    def id(self) -> str:
        return f"{self.kind.name}/{self.variant.name}.{self.sample}"

    @property
    def params(self) -> KindParams:
        return self.kind.params_model.model_validate(self.raw)

    @property
    def products(self) -> tuple[str, ...]:
        return self.variant.products


def kinds_without_samples() -> list[str]:
    return sorted(name for name in KINDS if not SAMPLES.get(name))


def cases() -> list[Case]:
    """Every kind × variant × sample (kinds without samples are caught by their own test)."""
    return [Case(kind, variant, sample, raw)
            for name, kind in sorted(KINDS.items())
            for variant in kind.variants
            for sample, raw in SAMPLES.get(name, {}).items()]


def plan_context(variant: Variant) -> Context:
    """A context on the first candidate platform the variant applies to."""
    for data in CANDIDATE_FACTS:
        facts = Facts.from_mapping(data)
        if variant.applies(facts):
            return Context(LAB_HOST, facts, variant)
    raise LookupError(f"no candidate platform in cases.CANDIDATE_FACTS selects variant {variant.name}; add one")


@cache
def lab_facts(channel: str = "script") -> Facts:
    """MAIL01's facts, read from the built-in lab the way the engine reads them: the Windows
    facts bundle, then the Exchange endpoint's paths (databases, transport logs). For the
    directory channel, DC01's: the naming contexts from its rootDSE, as the engine reads them."""
    if channel == "directory":
        (root,) = LabTarget(DIRECTORY_HOST, lab_host(channel)).run((directory_facts_section(),))
        assert root.ok, root.error
        return Facts.from_mapping(directory_facts_from(root.values[0]))
    target = LabTarget(LAB_HOST, lab_host())
    (result,) = target.run((facts_section(),))
    assert result.ok, result.error
    facts = Facts.from_mapping(result.values[0])
    if facts.exchange_release is not None:
        (paths,) = target.run((exchange_facts_section(facts.computer_name or LAB_HOST),))
        facts = facts.with_exchange(exchange_facts_from(paths.values, paths.errors))
    return facts


def lab_host_name(channel: str) -> str:
    """The lab host a kind of this channel is observed on."""
    return DIRECTORY_HOST if channel == "directory" else LAB_HOST


def lab_host(channel: str = "script") -> LabHost:
    """A fresh lab host for the channel: MAIL01 of the built-in lab, or DC01 of the directory lab
    (loaded fresh and never saved, so no state file is written beside it)."""
    lab = load_lab(DIRECTORY_LAB, fresh=True) if channel == "directory" else load_lab()
    host = lab.host(lab_host_name(channel))
    assert host is not None
    return host


def plan_requests(kind: Kind[Any], params: KindParams, ctx: Context) -> dict[str, tuple[Call, ...]]:
    """What ``check`` reads and what ``plan`` shows as the write, for these parameters."""
    desired = kind.desire(params, ctx, None)
    return {"read": kind.read(params, ctx), "write-plan": kind.write(params, ctx, None, desired)}


@dataclass(frozen=True)
class Observed:
    """A run of the read against the lab host, and the writes the kind then asks for."""

    target: LabTarget
    ctx: Context
    observed: Mapping[str, Any]
    desired: Mapping[str, Any]
    writes: tuple[Call, ...]


def observe_on_lab(kind: Kind[Any], params: KindParams, variant: Variant) -> Observed | None:
    """Read MAIL01 of a fresh built-in lab (DC01 of the directory lab for directory kinds) and
    decide the writes; None when that host does not get this variant or the kind has nothing to
    act on there."""
    facts = lab_facts(kind.channel)
    if not variant.applies(facts):
        return None
    name = lab_host_name(kind.channel)
    ctx = Context(name, facts, variant)
    target = LabTarget(name, lab_host(kind.channel))
    try:
        reads = kind.read(params, ctx)
        (result,) = target.run((Section("observe", reads),))
        observed = kind.observe(params, ctx, result.values)
        desired = kind.desire(params, ctx, observed)
        changes = diff(desired, observed, kind.comparers)
        caveats = caveats_for(kind.caveats(params, ctx, observed, desired), changes) if changes else ()
    except (NotApplicable, ControlFailed):
        return None
    # As the engine does: what a kind holds back is not written.
    return Observed(target, ctx, observed, desired, kind.write(params, ctx, observed, without_held(desired, caveats)))


def requests(case: Case) -> dict[str, tuple[Call, ...]]:
    """Every phase's requests for a case (``write-observed`` only where the lab applies)."""
    out = plan_requests(case.kind, case.params, plan_context(case.variant))
    seen = observe_on_lab(case.kind, case.params, case.variant)
    if seen is not None:
        out["write-observed"] = seen.writes
    return out


def render(section_id: str, calls: Sequence[Call]) -> str:
    """The request as it crosses: the bundle script, the cmdlet lines (one per call), or the
    directory requests as LDIF (one record or search comment per call, a blank line between)."""
    if calls and isinstance(calls[0], ScriptCall):
        return bundle_script([Section(section_id, tuple(calls))])
    if calls and isinstance(calls[0], LdapCall):
        return "\n".join(ldif_text(c) + "\n" for c in calls if isinstance(c, LdapCall))
    return "".join(cmdlet_text(c) + "\n" for c in calls if isinstance(c, CmdletCall))


def restart_services() -> list[str]:
    """Every service any sample's kind would ask to restart, sorted (as the engine sends them)."""
    services: set[str] = set()
    for case in cases():
        ctx = plan_context(case.variant)
        services.update(case.kind.restarts(case.params, ctx, [Change("probe.Property", 0, 1)]))
    return sorted(services)


def framework_sections() -> dict[str, Section]:
    """The sections the engine sends on its own, not from a kind: the Windows facts, the
    Exchange facts (paths Exchange keeps in its configuration) and the service restarts."""
    return {
        "facts/read": facts_section(),
        "exchange_facts/read": exchange_facts_section(LAB_HOST),
        "service_restart/write": Section(RESTART_SECTION_ID, (
            ScriptCall("service_restart", "write", {"services": restart_services()}),)),
    }


def framework_products(section: Section) -> tuple[str, ...]:
    """Where the engine sends a framework section: script sections to every Windows host it
    manages, cmdlet sections to modern Exchange only (run.py asks 2016/2019/SE for paths)."""
    return WINDOWS_MODERN_PRODUCTS if section.is_script else EXCHANGE_MODERN_PRODUCTS


# ---------------------------------------------------------------------------------------------
# Where strings go in a parameter model


@dataclass(frozen=True)
class Slot:
    """A place in a parameter model that holds a string. ``path`` uses 0 for list items.
    ``choices`` is set for Literal (enum) slots; ``constraints`` lists pydantic metadata
    (pattern, lengths). A slot with neither is free text and must accept any string."""

    path: tuple[str | int, ...]
    choices: tuple[str, ...] | None
    constraints: tuple[Any, ...]

    @property
    def free_text(self) -> bool:
        return self.choices is None and not self.constraints

    @property
    def name(self) -> str:
        return ".".join("[]" if isinstance(p, int) else p for p in self.path).replace(".[]", "[]")


def string_slots(model: type[BaseModel], prefix: tuple[str | int, ...] = ()) -> list[Slot]:
    """Every string slot of a model, recursively (nested models, lists, optionals)."""
    slots: list[Slot] = []
    for name, info in model.model_fields.items():
        slots += _slots_of(info.annotation, tuple(info.metadata), (*prefix, name))
    return slots


def _slots_of(annotation: Any, metadata: tuple[Any, ...], path: tuple[str | int, ...]) -> list[Slot]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _slots_of(args[0], (*metadata, *args[1:]), path)
    if origin in (typing.Union, types.UnionType):
        return [s for arg in args if arg is not type(None) for s in _slots_of(arg, metadata, path)]
    if origin in (list, tuple, set, frozenset, Sequence):
        return _slots_of(args[0], (), (*path, 0))
    if origin is typing.Literal:
        strings = tuple(a for a in args if isinstance(a, str))
        return [Slot(path, strings, metadata)] if strings else []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return string_slots(annotation, path)
    if annotation is str:
        return [Slot(path, None, metadata)]
    return []


def with_value(raw: Mapping[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any] | None:
    """A deep copy of ``raw`` with ``value`` at ``path``; None if ``raw`` has no list item there."""
    out = copy.deepcopy(dict(raw))
    node: Any = out
    for key, following in itertools.pairwise(path):
        if isinstance(key, int):
            if not isinstance(node, list) or len(node) <= key:
                return None
            node = node[key]
        else:
            if key not in node or node[key] is None:
                if isinstance(following, int):
                    return None
                node[key] = {}
            node = node[key]
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or len(node) <= last:
            return None
        node[last] = value
    else:
        node[last] = value
    return out


def base_for(kind_name: str, path: tuple[str | int, ...], valid: Sequence[str] = ("probe",)
             ) -> tuple[str, dict[str, Any]] | None:
    """The first sample of a kind that can carry a value at ``path``: it has the place, and it
    still validates with one of the ``valid`` values there (so only the value put there later
    decides whether validation passes)."""
    kind = KINDS[kind_name]
    for sample, raw in SAMPLES.get(kind_name, {}).items():
        for value in valid:
            probe = with_value(raw, path, value)
            if probe is None:
                break
            try:
                kind.params_model.model_validate(probe)
            except ValueError:
                continue
            return sample, dict(raw)
    return None


def set_paths(value: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every path a raw sample sets (list items as index 0), for the sample-coverage test."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield (*prefix, key)
            yield from set_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for item in value:
            yield (*prefix, 0)
            yield from set_paths(item, (*prefix, 0))


def field_paths(model: type[BaseModel], prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every field path of a model, recursively (list items as index 0)."""
    out: list[tuple[str | int, ...]] = []
    for name, info in model.model_fields.items():
        out += _field_paths(info.annotation, (*prefix, name))
    return out


def _field_paths(annotation: Any, path: tuple[str | int, ...]) -> list[tuple[str | int, ...]]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    out = [path] if not isinstance(path[-1], int) else []
    if origin is typing.Annotated:
        return _field_paths(args[0], path)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            out += [p for p in _field_paths(arg, path) if p != path]
        return out
    if origin in (list, tuple, set, frozenset, Sequence):
        return out + [p for p in _field_paths(args[0], (*path, 0)) if p != (*path, 0)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return out + field_paths(annotation, path)
    return out
