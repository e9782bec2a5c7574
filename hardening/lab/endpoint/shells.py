"""What the WinRS and PSRP services share: the caller's context, shell replies, CLIXML errors.

Both services answer WS-Management shell operations (Create, Command, Send, Receive, Signal,
Delete) for one resource URI; the HTTP layer picks the service by the request's resource URI.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Protocol

from .wsman import SHELL_NOT_FOUND, WSManFault, WSManRequest, element

__all__ = ["CallerContext", "ShellService", "clixml_error", "receive_budget", "resource_created", "shell_not_found"]

DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
RUNNING = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"


@dataclass(frozen=True)
class CallerContext:
    """Who is asking, and where: the authenticated user, the client's IP, this endpoint's URL."""

    user: str
    client_ip: str
    url: str
    closing: threading.Event


class ShellService(Protocol):
    """One resource URI's shells."""

    def handle(self, request: WSManRequest, caller: CallerContext) -> list[ET.Element]:
        """The reply body for one request; raises :class:`WSManFault`."""

    def close(self) -> None:
        """Forget every shell and wake every waiting Receive."""


def shell_not_found(shell_id: str) -> WSManFault:
    """What Windows answers for a ShellId it does not know (closed, or never created)."""
    return WSManFault(SHELL_NOT_FOUND, f"The request for the Windows Remote Shell with ShellId {shell_id} failed "
                      "because the shell was not found on the server. Possible causes are: the specified ShellId is "
                      "incorrect or the shell no longer exists on the server.", subcode="w:InvalidSelectors",
                      value="s:Sender")


def resource_created(request: WSManRequest, caller: CallerContext, shell_id: str, input_streams: str,
                     output_streams: str) -> list[ET.Element]:
    """The Create reply: the ShellId selector where pypsrp reads it, and the shell's description."""
    return [
        element("x:ResourceCreated", children=[
            element("a:Address", text=caller.url),
            element("a:ReferenceParameters", children=[
                element("w:ResourceURI", text=request.resource_uri),
                element("w:SelectorSet", children=[element("w:Selector", {"Name": "ShellId"}, shell_id)]),
            ]),
        ]),
        element("rsp:Shell", children=[
            element("rsp:ShellId", text=shell_id),
            element("rsp:ResourceUri", text=request.resource_uri),
            element("rsp:Owner", text=caller.user),
            element("rsp:ClientIP", text=caller.client_ip),
            element("rsp:IdleTimeOut", text="PT7200.000S"),
            element("rsp:InputStreams", text=input_streams),
            element("rsp:OutputStreams", text=output_streams),
            element("rsp:ShellRunTime", text="P0DT0H0M0S"),
            element("rsp:ShellInactivity", text="P0DT0H0M0S"),
        ]),
    ]


def command_state(command_id: str, exit_code: int | None) -> ET.Element:
    """``Done`` with its exit code when ``exit_code`` is set, else ``Running``."""
    if exit_code is None:
        return element("rsp:CommandState", {"CommandId": command_id, "State": RUNNING})
    return element("rsp:CommandState", {"CommandId": command_id, "State": DONE},
                   children=[element("rsp:ExitCode", text=str(exit_code))])


def receive_budget(request: WSManRequest) -> int:
    """How many raw bytes of stream data fit in one reply within the client's MaxEnvelopeSize
    (base64 inflates by 4/3; 4 KiB are kept for the envelope around it)."""
    return max(1024, (request.max_envelope - 4096) * 3 // 4)


def _clixml_text(text: str) -> str:
    # PowerShell's serializer: "_x" escaped first, control characters as _xHHHH_, then XML escapes.
    out = text.replace("_x", "_x005F_x")
    out = "".join(f"_x{ord(ch):04X}_" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch for ch in out)
    return out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clixml_error(message: str) -> str:
    """An error as powershell.exe writes it to stderr when its output is redirected."""
    lines = message.splitlines() or [""]
    records = "".join(f'<S S="Error">{_clixml_text(line + chr(13) + chr(10))}</S>' for line in lines)
    return f'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">{records}</Objs>'
