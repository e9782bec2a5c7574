"""Windows service kinds: start type and running state of services (a script kind,
``templates/windows_service.ps1.j2``). The STIG's answer to clear-text POP3/IMAP4 is to disable
the services altogether (EX16-MB-000190, EX16-MB-000180); this is the kind that does it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..compare import TEXT, Comparer, State
from ..model import Call, ScriptCall
from .base import Context, ControlFailed, Kind, KindParams, NotApplicable, canonical_names
from .files import MODERN as WINDOWS_MODERN

__all__ = ["FAMILY_KINDS", "WindowsService"]

START_TYPES: tuple[str, ...] = ("Automatic", "Manual", "Disabled")
STATUSES: tuple[str, ...] = ("Running", "Stopped")
# Win32_Service.StartMode spells Automatic "Auto"; Boot and System are drivers' start modes.
START_MODES = {"auto": "Automatic", "manual": "Manual", "disabled": "Disabled", "boot": "Boot", "system": "System"}


def _one_or_list(schema: dict[str, Any]) -> None:
    items = schema.pop("items")
    schema.pop("type", None)
    schema["anyOf"] = [items, {"type": "array", "items": items}]


class WindowsServiceParams(KindParams):
    """Parameters of ``windows_service``."""

    name: list[str] = Field(description="Service name or names (the short name, e.g. MSExchangePOP3; not the "
                            "display name). Matched exactly, never as a pattern.", json_schema_extra=_one_or_list)
    start_type: Literal["Automatic", "Manual", "Disabled"] | None = Field(
        None, description="Start type: Automatic, Manual or Disabled.")
    status: Literal["Running", "Stopped"] | None = Field(None, description="Running or Stopped.")
    stop_dependents: bool = Field(
        False, description="When stopping: also stop the services that depend on it (Stop-Service -Force). "
        "Without it a service with running dependents fails to stop, and the control says so.")

    @field_validator("name", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _named(cls, value: list[str]) -> list[str]:
        if not value or any(name == "" for name in value):
            raise ValueError("name at least one service; names cannot be empty")
        return value

    @field_validator("start_type", mode="before")
    @classmethod
    def _start_name(cls, value: Any) -> Any:
        return canonical_names(value, START_TYPES)

    @field_validator("status", mode="before")
    @classmethod
    def _status_name(cls, value: Any) -> Any:
        return canonical_names(value, STATUSES)

    @model_validator(mode="after")
    def _consistent(self) -> WindowsServiceParams:
        if self.start_type is None and self.status is None:
            raise ValueError("set at least one of start_type and status")
        if self.start_type == "Disabled" and self.status == "Running":
            raise ValueError("a Disabled service cannot be Running: Windows refuses to start it")
        return self

    def names(self) -> list[str]:
        """The service names, each once (Windows compares them case-insensitively)."""
        seen: dict[str, str] = {}
        for name in self.name:
            seen.setdefault(name.casefold(), name)
        return list(seen.values())


class WindowsService(Kind[WindowsServiceParams]):
    """The start type (Automatic, Manual, Disabled) and status (Running, Stopped) of Windows
    services, by exact service name.

    Reads ``Get-CimInstance Win32_Service`` (``StartMode``, ``State``), matching names exactly
    (``Get-Service -Name`` would treat ``*`` and ``[`` as patterns). Writes through a
    ``ServiceController`` of that exact name: ``Set-Service -StartupType`` first (a Disabled service
    cannot start), then ``Stop-Service`` or ``Start-Service``. A service that is not installed is
    not applicable, with a sentence; when only some of the names are installed, the others are
    shown as not installed and left alone.

    Used for the STIG's choice of turning POP3 and IMAP4 off (EX16-MB-000190, EX16-MB-000180:
    MSExchangePOP3/MSExchangePOP3BE, MSExchangeIMAP4/MSExchangeIMAP4BE Disabled and Stopped). That
    contradicts offering POP3 with Secure Password Authentication, so the shipped control lives in
    its own playbook (``pop3-disable``), not in the baseline. Pitfalls: stopping a service with
    running dependents fails unless ``stop_dependents`` is true; AutomaticDelayedStart is reported
    as Automatic (Win32_Service does not tell them apart on every release [U]). Starting or
    stopping is the change itself: no restart is collected.
    """

    name = "windows_service"
    summary = "Start type (Automatic, Manual, Disabled) and status (Running, Stopped) of Windows services"
    params_model = WindowsServiceParams
    channel = "script"
    template = "windows_service.ps1.j2"
    variants = (WINDOWS_MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {"StartType": TEXT, "Status": TEXT}

    def read(self, params: WindowsServiceParams, ctx: Context) -> tuple[Call, ...]:
        return (ScriptCall(self.name, "read", {"names": params.names()}),)

    def observe(self, params: WindowsServiceParams, ctx: Context, values: Sequence[Any]) -> State:
        value = values[0] if values else None
        if not isinstance(value, Mapping):
            raise ControlFailed(f"the service read on {ctx.host} returned nothing")
        found = value.get("services") or []
        found = found if isinstance(found, list) else [found]
        by_name = {str(s.get("name", "")).casefold(): s for s in found if isinstance(s, Mapping)}
        state: dict[str, dict[str, Any]] = {}
        missing = []
        for name in params.names():
            service = by_name.get(name.casefold())
            if service is None or not service.get("exists"):
                missing.append(name)
                state[name] = {"Installed": False}
                continue
            mode = str(service.get("start_mode") or "")
            state[str(service.get("name") or name)] = {
                "StartType": START_MODES.get(mode.casefold(), mode or None),
                "Status": service.get("status"),
            }
        if len(missing) == len(params.names()):
            what = "service" if len(missing) == 1 else "services"
            raise NotApplicable(f"{what} {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed "
                                f"on {ctx.host}")
        return state

    def desire(self, params: WindowsServiceParams, ctx: Context, observed: State | None) -> State:
        want: dict[str, Any] = {}
        if params.start_type is not None:
            want["StartType"] = params.start_type
        if params.status is not None:
            want["Status"] = params.status
        if observed is None:
            return {name: dict(want) for name in params.names()}
        return {name: dict(want) for name, seen in observed.items() if (seen or {}).get("Installed", True)}

    def write(self, params: WindowsServiceParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        entries = []
        for name, props in desired.items():
            want = props or {}
            seen = (observed or {}).get(name) or {}
            entry: dict[str, Any] = {"name": name}
            for prop, key in (("StartType", "start_type"), ("Status", "status")):
                if prop in want and (observed is None or not TEXT.equal(want[prop], seen.get(prop))):
                    entry[key] = want[prop]
            if entry.get("status") == "Stopped":
                entry["stop_dependents"] = params.stop_dependents
            if len(entry) > 1:
                entries.append(entry)
        return (ScriptCall(self.name, "write", {"services": entries}),) if entries else ()


FAMILY_KINDS = (WindowsService(),)
