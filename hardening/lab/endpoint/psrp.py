"""PSRP over WS-Management (resource URIs ``…/powershell/<configuration>``), on psrpcore.

psrpcore does the protocol (fragments, negotiation, CLIXML); this module maps the WS-Management
shell operations onto it and answers pipelines from the lab host:

* ``Microsoft.PowerShell`` — a pipeline whose single command is a script (pypsrp ``add_script``)
  goes to :meth:`LabHost.run_script`; each JSON record line comes back as one string output.
* ``Microsoft.Exchange`` — NoLanguage, like the real endpoint: pipelines of cmdlet commands only
  (``add_cmdlet`` + named parameters, one or several statements). Each statement becomes a
  :class:`~hardening.model.CmdletCall` for :meth:`LabHost.invoke`; each dict it returns comes
  back as a PSCustomObject, and a :class:`~hardening.lab.LabError` as a non-terminating error
  record (the pipeline completes and the next statement runs).

Anything else (a script on the Exchange endpoint, a cmdlet on the Windows endpoint, piped
commands, positional arguments, pipeline input) fails the whole pipeline with a terminating
error record before anything runs, as PowerShell refuses a pipeline it cannot bind. This is
not a PowerShell interpreter: nothing in a script is ever executed.
"""

from __future__ import annotations

import base64
import binascii
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psrpcore import (
    Command,
    EndOfPipelineInputEvent,
    GetAvailableRunspacesEvent,
    PowerShell,
    PSRPCoreError,
    PSRPPayload,
    ResetRunspaceStateEvent,
    ServerPipeline,
    ServerRunspacePool,
    SetMaxRunspacesEvent,
    SetMinRunspacesEvent,
    StreamType,
)
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    NETException,
    PSCustomObject,
    PSInvocationState,
    PSVersion,
)

from ...model import AddRemove, CmdletCall, ParamValue
from ..host import LabError, LabHost
from .shells import CallerContext, command_state, receive_budget, resource_created, shell_not_found
from .wsman import ACTION_NOT_SUPPORTED, INVALID_REQUEST, NS, WSManFault, WSManRequest, element, timed_out

__all__ = ["NO_LANGUAGE_MESSAGE", "PSRPService"]

NO_LANGUAGE_MESSAGE = ("The syntax is not supported by this runspace. This can occur if the runspace is in "
                       "no-language mode.")
_PS_NS = {"ps": "http://schemas.microsoft.com/powershell"}
_TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"
# A payload psrpcore packs at once; a Receive reply carries as many as its envelope allows.
_CHUNK = 32 * 1024
MAX_RECEIVE_WAIT = 5.0


class _Refused(Exception):
    """A pipeline the lab will not run; its message becomes the terminating error record."""

    def __init__(self, message: str, error_id: str, category: ErrorCategory = ErrorCategory.InvalidOperation) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.category = category


@dataclass
class _Pipeline:
    command_id: str
    server: ServerPipeline
    input_ended: bool = False
    finished: bool = False


@dataclass
class _Pool:
    shell_id: str
    server: ServerRunspacePool
    pipelines: dict[uuid.UUID, _Pipeline] = field(default_factory=dict)
    outbox: dict[uuid.UUID | None, list[bytes]] = field(default_factory=dict)
    ready: threading.Condition = field(default_factory=threading.Condition)


class PSRPService:
    """The runspace pools of one lab host for one session configuration."""

    def __init__(self, host: LabHost, configuration: str, *, no_language: bool) -> None:
        self._host = host
        self.configuration = configuration
        self.no_language = no_language
        self._pools: dict[str, _Pool] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Forget every pool and wake every waiting Receive."""
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            with pool.ready:
                pool.ready.notify_all()

    def handle(self, request: WSManRequest, caller: CallerContext) -> list[ET.Element]:
        """Answer one WS-Management operation on this configuration's pools."""
        operation = request.operation
        if operation == "Create":
            return self._create(request, caller)
        pool = self._pool(request)
        if operation == "Command":
            return self._command(request, pool)
        if operation == "Send":
            return self._send(request, pool)
        if operation == "Receive":
            return self._receive(request, pool, caller)
        if operation == "Signal":
            return self._signal(request, pool)
        if operation == "Delete":
            with self._lock:
                self._pools.pop(pool.shell_id.upper(), None)
            with pool.ready:
                pool.ready.notify_all()
            return []
        raise WSManFault(ACTION_NOT_SUPPORTED, f"The lab's {self.configuration} endpoint does not support the action "
                         f"{request.action} (no disconnect or reconnect).", subcode="a:ActionNotSupported",
                         value="s:Sender")

    # -- pools -------------------------------------------------------------------------------

    def _pool(self, request: WSManRequest) -> _Pool:
        shell_id = request.selectors.get("ShellId", "")
        with self._lock:
            pool = self._pools.get(shell_id.upper())
        if pool is None:
            raise shell_not_found(shell_id)
        return pool

    def _create(self, request: WSManRequest, caller: CallerContext) -> list[ET.Element]:
        shell = request.first("rsp:Shell")
        creation = shell.find("ps:creationXml", _PS_NS) if shell is not None else None
        if shell is None or creation is None:
            raise WSManFault(INVALID_REQUEST, "Creating a runspace pool needs an rsp:Shell with creationXml.",
                             value="s:Sender", subcode="w:SchemaValidationError")
        version = str(self._host.state.get("powershell_version") or "5.1")
        server = ServerRunspacePool(application_private_data={
            "PSVersionTable": {"PSVersion": PSVersion(version), "PSEdition": "Desktop"}})
        pool = _Pool(shell.get("ShellId") or str(uuid.uuid4()).upper(), server)
        self._feed(pool, None, _b64(creation.text))
        with self._lock:
            self._pools[pool.shell_id.upper()] = pool
        inputs = shell.findtext("rsp:InputStreams", "stdin pr", NS)
        outputs = shell.findtext("rsp:OutputStreams", "stdout", NS)
        return resource_created(request, caller, pool.shell_id, inputs, outputs)

    def _feed(self, pool: _Pool, pipeline_id: uuid.UUID | None, data: bytes) -> None:
        """Give psrpcore the client's fragments, act on the events, queue what it answers."""
        with pool.ready:
            try:
                pool.server.receive_data(PSRPPayload(data, StreamType.default, pipeline_id))
                while (event := pool.server.next_event()) is not None:
                    if isinstance(event, (SetMaxRunspacesEvent, SetMinRunspacesEvent, ResetRunspaceStateEvent)):
                        pool.server.runspace_availability_response(event.ci, True)
                    elif isinstance(event, GetAvailableRunspacesEvent):
                        pool.server.runspace_availability_response(event.ci, 1)
                    elif isinstance(event, EndOfPipelineInputEvent) and event.pipeline_id in pool.pipelines:
                        pool.pipelines[event.pipeline_id].input_ended = True
                for pipeline in pool.pipelines.values():
                    if self._ready(pipeline):
                        self._run(pipeline)
            except PSRPCoreError as exc:
                raise WSManFault(INVALID_REQUEST, f"The PSRP data could not be processed: {exc}", value="s:Sender",
                                 subcode="w:SchemaValidationError") from None
            while (payload := pool.server.data_to_send(_CHUNK)) is not None:
                pool.outbox.setdefault(payload.pipeline_id, []).append(payload.data)
            pool.ready.notify_all()

    @staticmethod
    def _ready(pipeline: _Pipeline) -> bool:
        metadata = pipeline.server.metadata
        if pipeline.finished or metadata is None:
            return False
        # A GetCommandMetadata request runs (and is refused) at once; a pipeline with input waits for its end.
        return not isinstance(metadata, PowerShell) or metadata.no_input or pipeline.input_ended

    # -- operations --------------------------------------------------------------------------

    def _command(self, request: WSManRequest, pool: _Pool) -> list[ET.Element]:
        line = request.first("rsp:CommandLine")
        command_id = line.get("CommandId", "") if line is not None else ""
        try:
            pipeline_id = uuid.UUID(command_id)
        except ValueError:
            raise WSManFault(INVALID_REQUEST, "A PSRP Command needs the pipeline id as its CommandId.",
                             value="s:Sender", subcode="w:SchemaValidationError") from None
        with pool.ready:
            pool.pipelines[pipeline_id] = _Pipeline(command_id, ServerPipeline(pool.server, pipeline_id))
        arguments = line.findtext("rsp:Arguments", "", NS) if line is not None else ""
        self._feed(pool, pipeline_id, _b64(arguments))
        return [element("rsp:CommandResponse", children=[element("rsp:CommandId", text=command_id)])]

    def _send(self, request: WSManRequest, pool: _Pool) -> list[ET.Element]:
        for stream in request.body.findall("rsp:Send/rsp:Stream", NS):
            command_id = stream.get("CommandId")
            pipeline_id = _pipeline_id(pool, command_id) if command_id else None
            self._feed(pool, pipeline_id, _b64(stream.text))
        return [element("rsp:SendResponse")]

    def _receive(self, request: WSManRequest, pool: _Pool, caller: CallerContext) -> list[ET.Element]:
        desired = request.first("rsp:Receive/rsp:DesiredStream")
        command_id = desired.get("CommandId") if desired is not None else None
        target = _pipeline_id(pool, command_id) if command_id else None
        budget = receive_budget(request)
        with pool.ready:
            pool.ready.wait_for(lambda: bool(pool.outbox.get(target)) or caller.closing.is_set(),
                                timeout=min(request.operation_timeout, MAX_RECEIVE_WAIT))
            queued = pool.outbox.get(target, [])
            if not queued or caller.closing.is_set():
                raise timed_out()
            chunks = [queued.pop(0)]
            while queued and sum(map(len, chunks)) + len(queued[0]) <= budget:
                chunks.append(queued.pop(0))
            pipeline = pool.pipelines.get(target) if target is not None else None
            done = pipeline is not None and pipeline.finished and not queued
        attrib = {"Name": "stdout"} if command_id is None else {"Name": "stdout", "CommandId": command_id}
        streams = [element("rsp:Stream", attrib, base64.b64encode(c).decode("ascii")) for c in chunks]
        if command_id is not None:
            streams.append(command_state(command_id, 0 if done else None))
        return [element("rsp:ReceiveResponse", children=streams)]

    def _signal(self, request: WSManRequest, pool: _Pool) -> list[ET.Element]:
        signal = request.first("rsp:Signal")
        command_id = signal.get("CommandId", "") if signal is not None else ""
        code = signal.findtext("rsp:Code", "", NS) if signal is not None else ""
        pipeline_id = _pipeline_id(pool, command_id)
        with pool.ready:
            pipeline = pool.pipelines.get(pipeline_id)
            if pipeline is not None and pipeline.server.state == PSInvocationState.Running:
                pipeline.server.stop()
            if pipeline is not None and code.strip() == _TERMINATE:
                pipeline.server.close()
                del pool.pipelines[pipeline_id]
                pool.outbox.pop(pipeline_id, None)
        return [element("rsp:SignalResponse")]

    # -- running a pipeline ------------------------------------------------------------------

    def _run(self, pipeline: _Pipeline) -> None:
        metadata = pipeline.server.metadata
        pipeline.finished = True
        pipeline.server.start()
        try:
            if not isinstance(metadata, PowerShell):
                raise _Refused("The lab answers only the requests hardening sends: no command metadata requests.",
                               "LabRequestNotSupported")
            if not metadata.no_input:
                raise _Refused("The lab answers only the requests hardening sends: it takes no pipeline input.",
                               "PipelineInputNotSupported")
            statements = _statements(metadata.commands)
            if self.no_language:
                calls = [_cmdlet_call(s) for s in statements]
                for call in calls:
                    self._invoke(pipeline.server, call)
            else:
                for line in self._host_script(statements):
                    pipeline.server.write_output(line)
        except _Refused as refused:
            _fail(pipeline.server, str(refused), refused.error_id, refused.category)
            return
        pipeline.server.complete()

    def _host_script(self, statements: list[list[Command]]) -> list[str]:
        if len(statements) != 1 or len(statements[0]) != 1 or not statements[0][0].is_script:
            raise _Refused("The lab answers only the requests hardening sends: on Microsoft.PowerShell, one script "
                           "(add_script) per pipeline.", "LabRequestNotSupported")
        command = statements[0][0]
        if command.parameters:
            raise _Refused("The lab answers only the requests hardening sends: a script with no arguments.",
                           "LabRequestNotSupported")
        try:
            return self._host.run_script(str(command.command_text))
        except LabError as exc:
            raise _Refused(str(exc), "LabScriptNotUnderstood") from None

    def _invoke(self, server: ServerPipeline, call: CmdletCall) -> None:
        try:
            objects = self._host.invoke(call)
        except LabError as exc:
            server.write_error(NETException(Message=str(exc)),
                               ErrorCategoryInfo(Category=ErrorCategory.NotSpecified, Activity=call.cmdlet,
                                                 Reason="LabError"),
                               fully_qualified_error_id=f"LabError,{call.cmdlet}")
            return
        for obj in objects:
            server.write_output(_ps_object(obj))


def _b64(text: str | None) -> bytes:
    try:
        return base64.b64decode(text or "", validate=True)
    except binascii.Error:
        raise WSManFault(INVALID_REQUEST, "PSRP data must be base64.", value="s:Sender",
                         subcode="w:SchemaValidationError") from None


def _pipeline_id(pool: _Pool, command_id: str) -> uuid.UUID:
    try:
        pipeline_id = uuid.UUID(command_id)
    except ValueError:
        pipeline_id = None
    if pipeline_id is None or pipeline_id not in pool.pipelines:
        raise WSManFault(INVALID_REQUEST, f"The runspace pool {pool.shell_id} has no pipeline {command_id}.",
                         subcode="w:InvalidSelectors", value="s:Sender")
    return pipeline_id


def _fail(server: ServerPipeline, message: str, error_id: str, category: ErrorCategory) -> None:
    record = ErrorRecord(Exception=NETException(Message=message),
                         CategoryInfo=ErrorCategoryInfo(Category=category, Reason=error_id),
                         FullyQualifiedErrorId=error_id)
    # psrpcore 0.3.1 has no public "fail" on a server pipeline; this is what complete() does, with Failed.
    server._change_state(PSInvocationState.Failed, record)


def _statements(commands: Sequence[Command]) -> list[list[Command]]:
    statements: list[list[Command]] = [[]]
    for command in commands:
        statements[-1].append(command)
        if command.end_of_statement:
            statements.append([])
    return [s for s in statements if s]


def _cmdlet_call(statement: list[Command]) -> CmdletCall:
    if any(c.is_script for c in statement):
        raise _Refused(NO_LANGUAGE_MESSAGE, "ScriptsNotAllowed", ErrorCategory.ParserError)
    if len(statement) != 1:
        raise _Refused("The lab answers only the requests hardening sends: one cmdlet per statement, not "
                       f"{' | '.join(str(c.command_text) for c in statement)}.", "LabRequestNotSupported")
    command = statement[0]
    parameters: list[tuple[str, ParamValue]] = []
    for name, value in command.parameters:
        if not name:
            raise _Refused(f"The lab answers only named parameters; {command.command_text} got a positional "
                           "argument.", "PositionalParameterNotFound", ErrorCategory.InvalidArgument)
        parameters.append((str(name), _param_value(str(command.command_text), str(name), value)))
    return CmdletCall(str(command.command_text), tuple(parameters))


def _param_value(cmdlet: str, name: str, value: Any) -> ParamValue:
    # On the wire a switch (-Force) and a null value (-TlsAuthLevel $null) look the same: a named
    # parameter holding nil. So nil is a null value here, and the lab's cmdlet models decide what it
    # means: a model of a cmdlet that takes switches (Get-MailboxStatistics -NoADLookup) reads a
    # switch parameter that is present, nil or Switch(), as set.
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        return tuple(str(v) for v in value)
    if isinstance(value, Mapping):
        return _add_remove(cmdlet, name, value)
    raise _Refused(f"The lab accepts string, integer, boolean, string list, @{{Add=...; Remove=...}} and switch "
                   f"values; -{name} of {cmdlet} "
                   f"got {type(value).__name__}.", "ParameterArgumentTransformationError",
                   ErrorCategory.InvalidData)


def _add_remove(cmdlet: str, name: str, value: Mapping[Any, Any]) -> AddRemove:
    """A Hashtable ``@{Add=...; Remove=...}`` (PowerShell's keys are case-insensitive), each entry one
    string or a list of strings; any other Hashtable is refused."""
    parts: dict[str, tuple[str, ...]] = {"add": (), "remove": ()}
    for key, entry in value.items():
        folded = str(key).casefold()
        items = [entry] if isinstance(entry, (str, int)) and not isinstance(entry, bool) else entry
        if folded not in parts or not isinstance(items, (list, tuple)) or not all(
                isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
            raise _Refused(f"The lab accepts a Hashtable for -{name} of {cmdlet} only as @{{Add=...; Remove=...}} "
                           "with string values.", "ParameterArgumentTransformationError", ErrorCategory.InvalidData)
        parts[folded] = tuple(str(v) for v in items)
    return AddRemove(parts["add"], parts["remove"])


def _ps_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _ps_object(value)
    if isinstance(value, (list, tuple)):
        return [_ps_value(v) for v in value]
    return value


def _ps_object(obj: Mapping[str, Any]) -> PSCustomObject:
    """A lab answer as the deserialised object a client sees: note properties, lists as lists."""
    return PSCustomObject(**{str(k): _ps_value(v) for k, v in obj.items()})
