"""WinRS (resource URI ``…/windows/shell/cmd``): the one command line hardening runs, fed on stdin.

The client opens a shell (``WINRS_CODEPAGE`` 65001 for UTF-8), runs
``powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -Command -`` and sends the
whole script on stdin (``Send``, possibly several chunks, the last with ``End="true"``). The
script, decoded in the shell's codepage as powershell.exe would read it, goes to
:meth:`LabHost.run_script`; its lines come back on stdout, encoded in the shell's codepage
(437 turns ``é`` into ``\\x82`` and ``✓`` into ``?``, as Windows does), with exit code 0.

Any other command line gets a CLIXML error on stderr and exit code 1: the lab answers only the
requests hardening sends. It is not cmd.exe and not PowerShell.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from ...render import winrs_command_line
from ..host import LabError, LabHost
from .shells import CallerContext, clixml_error, command_state, receive_budget, resource_created, shell_not_found
from .wsman import ACTION_NOT_SUPPORTED, INVALID_REQUEST, NS, WSManFault, WSManRequest, element, timed_out

__all__ = ["POWERSHELL_STDIN", "WinRSService"]

# The command hardening's WinRS target runs (a short -EncodedCommand that runs the script read
# whole from stdin); the lab answers no other command line.
POWERSHELL_STDIN = winrs_command_line()
# cmd.exe refuses longer command lines (WINRS_SKIP_CMD_SHELL is FALSE for both clients).
CMD_LINE_LIMIT = 8191
# Longest a Receive waits for a command that has not finished before answering OperationTimeout.
MAX_RECEIVE_WAIT = 5.0


def _codec(codepage: str) -> str:
    """The Python codec for a Windows code page (65001 → utf-8, 437 → cp437)."""
    name = "utf-8" if codepage == "65001" else f"cp{codepage}"
    try:
        codecs.lookup(name)
    except LookupError:
        raise WSManFault(INVALID_REQUEST, f"The WinRS code page {codepage} is not valid.",
                         subcode="w:InvalidOptions", value="s:Sender") from None
    return name


def _normal(command_line: str) -> str:
    return " ".join(command_line.split()).casefold()


@dataclass
class _Command:
    id: str
    accepted: bool
    stdin: bytearray = field(default_factory=bytearray)
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    exit_code: int | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def finish(self, codec: str, stdout: str, stderr: str, exit_code: int) -> None:
        self.stdout += stdout.encode(codec, errors="replace")
        self.stderr += stderr.encode(codec, errors="replace")
        self.exit_code = exit_code
        self.finished.set()


@dataclass
class _Shell:
    id: str
    codec: str
    commands: dict[str, _Command] = field(default_factory=dict)


class WinRSService:
    """The cmd shells of one lab host."""

    def __init__(self, host: LabHost) -> None:
        self._host = host
        self._shells: dict[str, _Shell] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Forget every shell and wake every waiting Receive (it then sees ``closing`` and gives up)."""
        with self._lock:
            shells = list(self._shells.values())
            self._shells.clear()
        for shell in shells:
            for command in shell.commands.values():
                command.finished.set()

    def handle(self, request: WSManRequest, caller: CallerContext) -> list[ET.Element]:
        """Answer one WinRS operation."""
        operation = request.operation
        if operation == "Create":
            return self._create(request, caller)
        shell = self._shell(request)
        if operation == "Command":
            return self._command(request, shell)
        if operation == "Send":
            return self._send(request, shell)
        if operation == "Receive":
            return self._receive(request, shell, caller)
        if operation == "Signal":
            signal = request.first("rsp:Signal")
            with self._lock:
                shell.commands.pop(signal.get("CommandId", "") if signal is not None else "", None)
            return [element("rsp:SignalResponse")]
        if operation == "Delete":
            with self._lock:
                self._shells.pop(shell.id, None)
            return []
        raise WSManFault(ACTION_NOT_SUPPORTED, f"The lab's WinRS shell does not support the action {request.action}.",
                         subcode="a:ActionNotSupported", value="s:Sender")

    def _shell(self, request: WSManRequest) -> _Shell:
        shell_id = request.selectors.get("ShellId", "")
        with self._lock:
            shell = self._shells.get(shell_id)
        if shell is None:
            raise shell_not_found(shell_id)
        return shell

    def _create(self, request: WSManRequest, caller: CallerContext) -> list[ET.Element]:
        body = request.first("rsp:Shell")
        if body is None:
            raise WSManFault(INVALID_REQUEST, "Create needs an rsp:Shell body.", value="s:Sender",
                             subcode="w:SchemaValidationError")
        shell = _Shell(str(uuid.uuid4()).upper(), _codec(request.options.get("WINRS_CODEPAGE", "437")))
        with self._lock:
            self._shells[shell.id] = shell
        inputs = body.findtext("rsp:InputStreams", "stdin", NS)
        outputs = body.findtext("rsp:OutputStreams", "stdout stderr", NS)
        return resource_created(request, caller, shell.id, inputs, outputs)

    def _command(self, request: WSManRequest, shell: _Shell) -> list[ET.Element]:
        line = request.first("rsp:CommandLine")
        if line is None:
            raise WSManFault(INVALID_REQUEST, "Command needs an rsp:CommandLine body.", value="s:Sender",
                             subcode="w:SchemaValidationError")
        parts = [line.findtext("rsp:Command", "", NS)] + [a.text or "" for a in line.findall("rsp:Arguments", NS)]
        command_line = " ".join(p.strip() for p in parts if p.strip())
        command = _Command(line.get("CommandId") or str(uuid.uuid4()).upper(),
                           accepted=_normal(command_line) == _normal(POWERSHELL_STDIN))
        if len(command_line) > CMD_LINE_LIMIT:
            command.finish(shell.codec, "", "The command line is too long.\r\n", 1)
        elif not command.accepted:
            command.finish(shell.codec, "", clixml_error(
                f"The lab answers only the requests hardening sends; it does not run {command_line!r}. "
                f"Expected: {POWERSHELL_STDIN} with the script on stdin."), 1)
        with self._lock:
            shell.commands[command.id] = command
        return [element("rsp:CommandResponse", children=[element("rsp:CommandId", text=command.id)])]

    def _find(self, shell: _Shell, command_id: str) -> _Command:
        with self._lock:
            command = shell.commands.get(command_id)
        if command is None:
            raise WSManFault(INVALID_REQUEST, f"The shell {shell.id} has no command {command_id}.",
                             subcode="w:InvalidSelectors", value="s:Sender")
        return command

    def _send(self, request: WSManRequest, shell: _Shell) -> list[ET.Element]:
        for stream in request.body.findall("rsp:Send/rsp:Stream", NS):
            command = self._find(shell, stream.get("CommandId", ""))
            if stream.get("Name") != "stdin":
                raise WSManFault(INVALID_REQUEST, f"The shell has no input stream {stream.get('Name')!r}.",
                                 subcode="w:InvalidStream", value="s:Sender")
            try:
                command.stdin += base64.b64decode(stream.text or "", validate=True)
            except binascii.Error:
                raise WSManFault(INVALID_REQUEST, "The stdin stream is not base64.", value="s:Sender",
                                 subcode="w:SchemaValidationError") from None
            if stream.get("End", "").lower() == "true" and not command.finished.is_set():
                self._run(shell, command)
        return [element("rsp:SendResponse")]

    def _run(self, shell: _Shell, command: _Command) -> None:
        # powershell.exe reads stdin in the console's input code page, which WINRS_CODEPAGE sets.
        script = bytes(command.stdin).decode(shell.codec, errors="replace")
        try:
            lines = self._host.run_script(script)
        except LabError as exc:
            command.finish(shell.codec, "", clixml_error(str(exc)), 1)
            return
        command.finish(shell.codec, "".join(line + "\r\n" for line in lines), "", 0)

    def _receive(self, request: WSManRequest, shell: _Shell, caller: CallerContext) -> list[ET.Element]:
        desired = request.first("rsp:Receive/rsp:DesiredStream")
        command = self._find(shell, desired.get("CommandId", "") if desired is not None else "")
        wait = min(request.operation_timeout, MAX_RECEIVE_WAIT)
        if not command.finished.wait(wait) or caller.closing.is_set():
            raise timed_out()
        budget = receive_budget(request)
        streams = []
        with self._lock:
            for name, buffer in (("stdout", command.stdout), ("stderr", command.stderr)):
                chunk = bytes(buffer[:budget])
                del buffer[:budget]
                budget -= len(chunk)
                if chunk:
                    streams.append(element("rsp:Stream", {"Name": name, "CommandId": command.id},
                                           base64.b64encode(chunk).decode("ascii")))
            done = not command.stdout and not command.stderr
        if done:
            streams += [element("rsp:Stream", {"Name": name, "CommandId": command.id, "End": "true"})
                        for name in ("stdout", "stderr")]
        state = command_state(command.id, command.exit_code if done else None)
        return [element("rsp:ReceiveResponse", children=[*streams, state])]
