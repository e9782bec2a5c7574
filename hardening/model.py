"""Frozen values that flow forward between the stages: requests, results, outcomes, runs.

Nothing here talks to a host or reads a file; every stage hands the next one of these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "AddRemove",
    "Bundle",
    "Call",
    "Change",
    "Channel",
    "CmdletCall",
    "HostResult",
    "LdapCall",
    "Mode",
    "Outcome",
    "PlaybookRef",
    "Policy",
    "Run",
    "ScriptCall",
    "Section",
    "SectionResult",
    "Status",
    "Switch",
    "channel_of",
]


class Status(StrEnum):
    """The result of one control on one host."""

    COMPLIANT = "compliant"
    DRIFTED = "drifted"
    FIXED = "fixed"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_APPLICABLE = "not_applicable"
    # No variant of the control's kind exists for the host's platform: the control was not checked,
    # and a scheduler must not read that as compliant (exit code 2 unless the playbook says otherwise).
    UNSUPPORTED = "unsupported"


class Mode(StrEnum):
    """What a run does: ``plan`` sends nothing, ``check`` only reads, ``apply`` also writes."""

    PLAN = "plan"
    CHECK = "check"
    APPLY = "apply"


class Policy(StrEnum):
    """Per control: ``enforce`` is written by apply; ``monitor`` is only ever checked."""

    ENFORCE = "enforce"
    MONITOR = "monitor"


class Switch:
    """A switch parameter's value (``-Force``): present, no argument."""

    def __repr__(self) -> str:
        return "Switch()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Switch)

    def __hash__(self) -> int:
        return hash(Switch)


@dataclass(frozen=True)
class AddRemove:
    """A multi-valued parameter's change that keeps the other entries: PowerShell's
    ``@{Add='a','b'; Remove='c'}``, which Exchange's MultiValuedProperty parameters accept [V]
    (OPS, e.g. Set-TransportConfig -TLSSendDomainSecureList). Sent as a Hashtable, not a list: a
    list replaces the whole property, so two writes computed from the same read would undo each
    other's additions."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


ParamValue = str | int | bool | tuple[str, ...] | AddRemove | Switch | None


@dataclass(frozen=True)
class CmdletCall:
    """One cmdlet invocation, as data: sent as a PSRP command, never as script text."""

    cmdlet: str
    parameters: tuple[tuple[str, ParamValue], ...] = ()

    def param(self, name: str) -> ParamValue:
        """The value of a named parameter (case-insensitive), or None."""
        for key, value in self.parameters:
            if key.lower() == name.lower():
                return value
        return None


@dataclass(frozen=True)
class ScriptCall:
    """One section of a Windows bundle: a kind's template block fed with one JSON value."""

    kind: str
    op: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class LdapCall:
    """One directory request, as data: a search, or a modify of one object's attributes.

    ``sd_flags`` sends the security-descriptor control (1.2.840.113556.1.4.801) with those flags;
    0x8 reads or writes the SACL only, so owner, group and DACL are never rewritten. Attributes
    named in ``binary`` come back as bytes, the others as strings. A search's value is a list of
    ``{"dn": ..., "attributes": {name: [values]}}`` keyed by the names asked for; an attribute the
    server did not return is absent (which, for a SACL, means the bound account may not read it).
    """

    op: Literal["search", "modify"]
    dn: str
    scope: Literal["base", "one", "subtree"] = "base"
    filter: str = "(objectClass=*)"
    attributes: tuple[str, ...] = ()
    binary: tuple[str, ...] = ()
    sd_flags: int | None = None
    # modify: (attribute, "replace" | "add" | "delete", values)
    changes: tuple[tuple[str, Literal["replace", "add", "delete"], tuple[str | bytes, ...]], ...] = ()

    @property
    def is_read(self) -> bool:
        return self.op == "search"


Call = CmdletCall | ScriptCall | LdapCall
Channel = Literal["script", "exchange", "directory"]


def channel_of(call: Call) -> Channel:
    """Which endpoint a request goes to: the Windows host, Exchange's endpoint, or the directory."""
    if isinstance(call, ScriptCall):
        return "script"
    if isinstance(call, LdapCall):
        return "directory"
    return "exchange"


@dataclass(frozen=True)
class Section:
    """The requests of one control in one bundle; its results come back under ``id``.

    A section holds the calls of one channel only: script calls (for the Windows host), cmdlet
    calls (for the Exchange endpoint) or directory requests (LDAP).
    """

    id: str
    calls: tuple[Call, ...]

    @property
    def is_script(self) -> bool:
        return bool(self.calls) and isinstance(self.calls[0], ScriptCall)

    @property
    def channel(self) -> Channel:
        """The channel of the section's calls (``exchange`` for an empty section)."""
        return channel_of(self.calls[0]) if self.calls else "exchange"


Bundle = tuple[Section, ...]


@dataclass(frozen=True)
class SectionResult:
    """What a host answered for one section: one value and one error (or None) per call.

    A script call's value is the state its block returned; a cmdlet call's value is the list
    of objects the cmdlet wrote. Every call of a section runs even when an earlier one failed,
    so a failed write is still followed by its re-read.
    """

    id: str
    values: tuple[Any, ...]
    errors: tuple[str | None, ...]

    @property
    def ok(self) -> bool:
        return all(e is None for e in self.errors)

    @property
    def error(self) -> str | None:
        """The first error of the section, if any."""
        return next((e for e in self.errors if e is not None), None)


@dataclass(frozen=True)
class Change:
    """One property that differs: ``path`` is ``object.property``."""

    path: str
    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "from": self.before, "to": self.after}


@dataclass(frozen=True)
class Outcome:
    """The result of one control on one host, with a sentence that says what happened."""

    host: str
    control: str
    title: str
    kind: str
    status: Status
    message: str
    desired: Mapping[str, Any] = field(default_factory=dict)
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)
    changes: tuple[Change, ...] = ()
    references: Mapping[str, Any] = field(default_factory=dict)
    variant: str | None = None
    pending_restarts: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    # Changes a kind's guard holds back until the playbook allows them (e.g. a quota that would stop
    # mail): not written by apply, and named in the sentence; the control stays drifted meanwhile.
    held: tuple[Change, ...] = ()


@dataclass(frozen=True)
class HostResult:
    """All outcomes of one host, and what reaching it cost."""

    name: str
    reachable: bool
    error: str | None
    facts: Mapping[str, Any]
    requests: int
    outcomes: tuple[Outcome, ...]


@dataclass(frozen=True)
class PlaybookRef:
    """A playbook file that took part in a run, with the digest of its bytes."""

    path: str
    name: str
    digest: str


@dataclass(frozen=True)
class Run:
    """The outcomes of one invocation: its id, times, mode, playbooks and tool version."""

    run_id: str
    mode: Mode
    started_at: dt.datetime
    finished_at: dt.datetime
    tool_version: str
    playbooks: tuple[PlaybookRef, ...]
    hosts: tuple[HostResult, ...]
    plan_text: Mapping[str, str] = field(default_factory=dict)

    @property
    def outcomes(self) -> Iterator[Outcome]:
        for host in self.hosts:
            yield from host.outcomes

    @property
    def summary(self) -> dict[str, int]:
        counts = {"hosts": len(self.hosts), "unreachable": sum(not h.reachable for h in self.hosts)}
        for status in Status:
            counts[status.value] = 0
        for outcome in self.outcomes:
            counts[outcome.status.value] += 1
        return counts

    @property
    def exit_code(self) -> int:
        """0 all compliant; 2 a control failed, could not be checked (``unsupported``) or a host was
        unreachable; 3 drift found or fixed."""
        summary = self.summary
        if summary["failed"] or summary["unreachable"] or summary["unsupported"]:
            return 2
        if summary["drifted"] or summary["fixed"]:
            return 3
        return 0
