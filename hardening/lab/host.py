"""A simulated host: its state as plain data, and the requests hardening sends, answered.

Script bundles are decoded (:mod:`.decode`) and each call is answered by the kind's lab model
in :mod:`.windows`; cmdlet invocations are answered by :mod:`.exchange`. Every request is
recorded in ``received`` so tests can assert what crossed, byte for byte.
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

from ..model import CmdletCall
from . import exchange, windows
from .decode import UnreadableScript, decode_bundle

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

    def _fault(self, call: str) -> None:
        for fault in self.state.get("faults", []):
            if fault["call"].casefold() == call.casefold() and fault.get("times", 1) != 0:
                if fault.get("times") is not None:
                    fault["times"] -= 1
                raise LabError(fault["error"])

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
                    self._fault(f"{call.kind}.{call.op}")
                    record.update(ok=True, state=windows.answer(self.state, call.kind, call.op, call.data))
                except (LabError, windows.LabScriptError) as exc:
                    record.update(ok=False, error=str(exc))
                lines.append(json.dumps(record, separators=(",", ":")))
            return lines

    def invoke(self, call: CmdletCall) -> list[dict[str, Any]]:
        """Answer one cmdlet invocation with its output objects (deserialised form)."""
        with self._lock:
            self.received.append((call.cmdlet, call.parameters))
            self._fault(call.cmdlet)
            try:
                return exchange.answer(self.state, call)
            except exchange.LabCmdletError as exc:
                raise LabError(str(exc)) from None
