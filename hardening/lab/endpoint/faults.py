"""Transport faults a test injects into one host's listener at run time.

``drop`` closes the connection without answering; ``http500`` answers a WS-Management fault
that is not OperationTimeout (so the clients do not retry it); ``timeout`` holds the answer
until the test sets its ``release`` event (or ``hold`` seconds pass, or the endpoint closes),
then answers normally, as a slow host would; ``auth`` answers 401 whatever the credentials.

``after`` requests go through first, then ``times`` requests get the fault. Every HTTP request
counts, authentication legs included (the same count as :attr:`EndpointHost.requests`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["FAULTS", "Fault", "FaultKind", "FaultPlan"]

FaultKind = Literal["drop", "http500", "timeout", "auth"]
FAULTS: tuple[str, ...] = get_args(FaultKind)


@dataclass
class Fault:
    """One injected fault and how many requests it still waits for and affects."""

    kind: FaultKind
    after: int = 0
    times: int = 1
    release: threading.Event | None = None
    hold: float = 30.0

    def wait(self, closing: threading.Event) -> None:
        """Hold a ``timeout`` answer: until released, ``hold`` seconds, or the endpoint closes."""
        deadline = time.monotonic() + self.hold
        while not closing.is_set() and not (self.release is not None and self.release.is_set()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            (self.release or closing).wait(min(remaining, 0.05))


class FaultPlan:
    """The faults pending on one host, consulted once per HTTP request (thread-safe)."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []
        self._lock = threading.Lock()
        self.applied: list[FaultKind] = []

    def add(self, fault: Fault) -> None:
        """Queue a fault; several may be pending, each with its own ``after`` count."""
        if fault.kind not in FAULTS:
            raise ValueError(f"unknown fault {fault.kind!r}; one of {', '.join(FAULTS)}")
        if fault.after < 0 or fault.times < 1:
            raise ValueError("after must be >= 0 and times >= 1")
        with self._lock:
            self._pending.append(fault)

    def clear(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._pending.clear()

    def next(self) -> Fault | None:
        """The fault this request gets, if any; every pending fault's ``after`` counts it."""
        with self._lock:
            chosen = None
            for fault in self._pending:
                if fault.after > 0:
                    fault.after -= 1
                elif chosen is None:
                    chosen = fault
            if chosen is not None:
                chosen.times -= 1
                if chosen.times == 0:
                    self._pending.remove(chosen)
                self.applied.append(chosen.kind)
            return chosen
