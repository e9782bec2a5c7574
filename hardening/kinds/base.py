"""The kind mechanism: a kind is declared once and used by every stage.

A kind declares its parameter model (validation, JSON Schema, docs), its variants (which
platforms it supports, chosen from facts), how to read a host (requests), how to turn what came
back into a state, what state it desires, how to write the difference, how its properties
compare, and which services a change needs restarted. The engine never knows more than this.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from ..compare import Comparer, State
from ..facts import Facts
from ..model import Call, Change, Outcome

if TYPE_CHECKING:  # the inventory imports the kinds (through the playbook), not the other way round
    from ..inventory import Host

__all__ = [
    "Caveat",
    "Context",
    "ControlFailed",
    "Kind",
    "KindParams",
    "NotApplicable",
    "RestartPolicy",
    "Variant",
    "canonical_names",
    "caveats_for",
    "host_objects",
    "without_held",
]

RestartPolicy = Literal["allowed", "deferred"]


class KindParams(BaseModel):
    """Base of every kind's parameter model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=KindParams)


@dataclass(frozen=True)
class Variant:
    """One platform implementation of a kind.

    ``products`` are the cmdlet catalogue's labels whose cmdlets and parameters this variant's
    requests must all exist in; ``applies`` decides from facts whether a host gets it.
    """

    name: str
    description: str
    products: tuple[str, ...]
    applies: Callable[[Facts], bool]


@dataclass(frozen=True)
class Context:
    """What a kind knows about the host it is planning for."""

    host: str
    facts: Facts
    variant: Variant
    # The TCP ports this run reaches the host through (WinRM, Exchange's endpoint): never to be closed.
    management_ports: tuple[int, ...] = (5985, 5986)

    @property
    def server(self) -> str:
        """The server name Exchange knows this host by (for ``-Server`` and identities)."""
        return self.facts.computer_name or self.host.split(".")[0].upper()


class ControlFailed(Exception):
    """Raised by a kind when the observed state makes the control fail (with a sentence)."""


class NotApplicable(Exception):
    """Raised by a kind when the control has nothing to act on for this host (with a reason)."""


@dataclass(frozen=True)
class Caveat:
    """What changing ``properties`` of ``object`` (from the observed to the desired state) would
    do that an administrator must know, as one sentence.

    ``held``: the control leaves these changes alone until the playbook allows them (a mailbox
    quota lowered without ``allow_lower``, the bypass of an account nobody reviewed). The engine
    keeps them out of the writes and out of the re-read's verification; the outcome stays
    ``drifted`` with the sentence, in check and apply alike: never ``compliant`` (the host still
    differs from the playbook), never ``failed`` (nothing went wrong; the tool did what it should).
    Not held: the change is made, and the sentence is added to the outcome (e.g. how many
    mailboxes an allowed lowering puts over the new limit).
    """

    object: str
    properties: tuple[str, ...]
    sentence: str
    held: bool = True

    def covers(self, change: Change) -> bool:
        """Whether a change is one of this caveat's."""
        return any(change.path == f"{self.object}.{prop}" for prop in self.properties)


def caveats_for(caveats: Sequence[Caveat], changes: Sequence[Change]) -> tuple[Caveat, ...]:
    """The caveats that concern these changes, each narrowed to the properties that do differ."""
    out: list[Caveat] = []
    for caveat in caveats:
        props = tuple(p for p in caveat.properties if any(c.path == f"{caveat.object}.{p}" for c in changes))
        if props:
            out.append(replace(caveat, properties=props))
    return tuple(out)


def without_held(desired: State, caveats: Sequence[Caveat]) -> State:
    """The desired state less what held caveats keep back: what the writes may make true."""
    held: dict[str, set[str]] = {}
    for caveat in caveats:
        if caveat.held:
            held.setdefault(caveat.object, set()).update(caveat.properties)
    if not held:
        return desired
    out: dict[str, Any] = {}
    for obj, props in desired.items():
        if props is None or obj not in held:
            out[obj] = props
            continue
        kept = {k: v for k, v in props.items() if k not in held[obj]}
        if kept:
            out[obj] = kept
    return out


class Kind(ABC, Generic[P]):
    """A type of setting. Subclasses set the class attributes and implement the four steps.

    ``read`` → requests; ``observe`` → state from their results; ``desire`` → the state wanted
    (may depend on what was observed, e.g. ``at_least`` modes); ``write`` → requests that make
    the observed state the desired one, touching only what differs. ``observed`` is None in
    ``plan`` mode, where nothing has been read.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    params_model: ClassVar[type[KindParams]]
    channel: ClassVar[Literal["exchange", "script", "directory"]]
    variants: ClassVar[tuple[Variant, ...]]
    comparers: ClassVar[Mapping[str, Comparer]] = {}
    # Script kinds: the template under templates/ that holds the read and write blocks.
    template: ClassVar[str | None] = None
    # Exchange kinds: cmdlets that act on one organisation-wide object (Get-AdminAuditLogConfig),
    # which have no -Identity or -Server to name it; every other call must name its object.
    org_wide_cmdlets: ClassVar[frozenset[str]] = frozenset()

    def variant_for(self, facts: Facts) -> Variant | str:
        """The variant for a host, or a sentence saying why none applies."""
        for variant in self.variants:
            if variant.applies(facts):
                return variant
        supported = "; ".join(v.description for v in self.variants)
        return f"{self.name} has no variant for this host ({describe_platform(facts)}); it supports {supported}"

    @abstractmethod
    def read(self, params: P, ctx: Context) -> tuple[Call, ...]:
        """The requests that read the current state."""

    @abstractmethod
    def observe(self, params: P, ctx: Context, values: Sequence[Any]) -> State:
        """The state from the values the read requests returned (one per request)."""

    @abstractmethod
    def desire(self, params: P, ctx: Context, observed: State | None) -> State:
        """The state wanted, for each object observed (or planned, when observed is None)."""

    @abstractmethod
    def write(self, params: P, ctx: Context, observed: State | None, desired: State) -> tuple[Call, ...]:
        """The requests that change what differs; never anything that already matches."""

    def preflight(self, params: P, host: Host) -> str | None:
        """Why this control must not run on this host at all, checked before anything is sent
        (e.g. a firewall change that would cut the remoting connection in use); None if fine."""
        return None

    def plan_notes(self, params: P) -> tuple[str, ...]:
        """Sentences for ``plan`` about what only the read can decide (none by default)."""
        return ()

    def restarts(self, params: P, ctx: Context, changes: Sequence[Change]) -> tuple[str, ...]:
        """Services that must restart before the changes are live (none by default)."""
        return ()

    def restart_policy(self, params: P) -> RestartPolicy:
        """Whether the playbook lets this control's restarts happen now."""
        return "deferred"

    def caveats(self, params: P, ctx: Context, observed: State, desired: State) -> tuple[Caveat, ...]:
        """What the changes from ``observed`` to ``desired`` would do that the outcome must say,
        and which of them the control holds back (see :class:`Caveat`); none by default. Called
        only when something differs, in check and apply alike, before anything is written."""
        return ()

    def review(self, outcome: Outcome, outcomes: Sequence[Outcome]) -> str | None:
        """A sentence to add to this kind's outcome once every host of the run is done, from the
        other outcomes (e.g. a SACL that needs an audit policy another control checks); None by default."""
        return None


def host_objects(value: Any) -> list[Mapping[str, Any]]:
    """What a host returned as a list of property bags: Windows PowerShell 5.1 unwraps a
    one-element array, and nothing at all may come back as None."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, Mapping)]


def canonical_names(value: Any, choices: Sequence[str]) -> Any:
    """Enum names as Microsoft spells them, whatever case the playbook used (PowerShell ignores
    case); anything unknown is left for the model to refuse with its list of values."""
    by_fold = {c.casefold(): c for c in choices}
    if isinstance(value, str):
        return by_fold.get(value.casefold(), value)
    if isinstance(value, list):
        return [by_fold.get(v.casefold(), v) if isinstance(v, str) else v for v in value]
    return value


def describe_platform(facts: Facts) -> str:
    """``Windows Server 2019, Exchange Server 2019`` or what is known of it."""
    parts = [facts.windows_product or (f"Windows {facts.os_version}" if facts.os_version else "unknown OS")]
    if facts.exchange_product:
        parts.append(facts.exchange_product)
    elif facts.exchange_version:
        parts.append(f"Exchange {facts.exchange_version}")
    else:
        parts.append("no Exchange")
    return ", ".join(parts)
