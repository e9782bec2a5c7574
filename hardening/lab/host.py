"""A simulated host: its state as plain data, and the requests hardening sends, answered.

Script bundles are decoded (:mod:`.decode`) and each call is answered by its kind's lab model;
cmdlet invocations by the simulated cmdlets (:mod:`.models`, one module per family); directory
requests (LDAP) by the simulated directory (:mod:`.models.directory`). Every request is recorded in
``received`` so tests can assert what crossed, byte for byte.
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

from ..model import CmdletCall, LdapCall
from .decode import UnreadableScript, decode_bundle
from .models import CMDLETS, LDAP, SCRIPTS, LabCmdletError, LabLdapError, LabScriptError

__all__ = ["LabError", "LabHost"]


class LabError(Exception):
    """An error the simulated host answers with (as a real host would with an exception)."""


class LabHost:
    """One simulated host. Thread-safe: one lock around every request."""

    def __init__(self, name: str, state: dict[str, Any]) -> None:
        self.name = name
        self.state = state
        self.received: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the state (what the sidecar file keeps)."""
        with self._lock:
            return copy.deepcopy(self.state)

    def _fault(self, call: str) -> bool:
        """Raise the error a fault asks for; True when the call must be ignored (answered, not done)."""
        for fault in self.state.get("faults", []):
            if fault["call"].casefold() != call.casefold() or fault.get("times") == 0:
                continue
            if fault.get("after", 0) > 0:
                fault["after"] -= 1
                continue
            if fault.get("times") is not None:
                fault["times"] -= 1
            if fault.get("effect", "error") == "ignore":
                return True
            raise LabError(fault["error"])
        return False

    def run_script(self, script: str) -> list[str]:
        """Answer a bundle script with one JSON record per call, as the wrapper would print."""
        with self._lock:
            try:
                calls = decode_bundle(script)
            except UnreadableScript as exc:
                raise LabError(f"the lab cannot read this script: {exc}") from None
            lines = []
            for call in calls:
                self.received.append((f"{call.kind}.{call.op}", call.data))
                record: dict[str, Any] = {"id": call.id, "n": call.n}
                try:
                    handler = SCRIPTS.get((call.kind, call.op))
                    if handler is None:
                        raise LabScriptError(f"the lab does not simulate the {call.op} block of {call.kind}")
                    ignored = self._fault(f"{call.kind}.{call.op}")
                    record.update(ok=True, state={} if ignored else handler(self.state, call.data))
                except (LabError, LabScriptError) as exc:
                    record.update(ok=False, error=str(exc))
                lines.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
            return lines

    def invoke(self, call: CmdletCall) -> list[dict[str, Any]]:
        """Answer one cmdlet invocation with its output objects (deserialised form)."""
        with self._lock:
            self.received.append((call.cmdlet, call.parameters))
            if self._fault(call.cmdlet):
                return []
            if self.state.get("exchange") is None:
                raise LabError(f"The term '{call.cmdlet}' is not recognized: Exchange is not installed on "
                               f"{self.state['computer_name']}.")
            handler = CMDLETS.get(call.cmdlet.casefold())
            if handler is None:
                raise LabError(f"The term '{call.cmdlet}' is not recognized as the name of a cmdlet "
                               "(the lab simulates only the cmdlets hardening sends).")
            try:
                return handler(self.state, call)
            except LabCmdletError as exc:
                raise LabError(str(exc)) from None

    def ldap(self, call: LdapCall) -> Any:
        """Answer one directory request: a search's entries (``[{"dn", "attributes"}]``) or None for a
        modify. A refusal (no such object, insufficient rights) raises :class:`LabError` with the
        sentence the directory target gives for that call. Faults are named ``ldap.search`` and
        ``ldap.modify``; an ignored one answers an empty search or a modify that changes nothing."""
        with self._lock:
            self.received.append((f"ldap.{call.op}", call))
            if self._fault(f"ldap.{call.op}"):
                return [] if call.op == "search" else None
            if self.state.get("directory") is None:
                raise LabError(f"{call.op} {call.dn}: {self.state['computer_name']} is not a directory "
                               "(its lab host has no directory: section)")
            handler = LDAP.get(call.op)
            if handler is None:
                raise LabError(f"{call.op} {call.dn}: the lab does not simulate the LDAP operation {call.op}")
            try:
                return handler(self.state, call)
            except LabLdapError as exc:
                raise LabError(str(exc)) from None
