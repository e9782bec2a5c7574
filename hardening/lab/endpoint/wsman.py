"""WS-Management SOAP envelopes: reading a request's header, writing replies and faults.

Only what pywinrm and pypsrp send and read is handled (see ``reference/winrm-endpoint.md`` §1.2):
every reply carries ``a:RelatesTo`` equal to the request's ``a:MessageID``, faults carry a
``f:WSManFault`` with a numeric code as Windows writes it.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "ACTION",
    "NS",
    "RESOURCE_CMD",
    "RESOURCE_EXCHANGE",
    "RESOURCE_POWERSHELL",
    "WSManFault",
    "WSManRequest",
    "element",
    "fault_envelope",
    "parse_request",
    "reply_envelope",
]

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "cfg": "http://schemas.microsoft.com/wbem/wsman/1/config",
    "xml": "http://www.w3.org/XML/1998/namespace",
}
_PREFIX = {uri: prefix for prefix, uri in NS.items()}

RESOURCE_CMD = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
RESOURCE_POWERSHELL = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
RESOURCE_EXCHANGE = "http://schemas.microsoft.com/powershell/Microsoft.Exchange"
RESOURCE_CONFIG = "http://schemas.microsoft.com/wbem/wsman/1/config"

_TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
ACTION = {
    "Create": _TRANSFER + "Create",
    "Delete": _TRANSFER + "Delete",
    "Get": _TRANSFER + "Get",
    "Command": _SHELL + "Command",
    "Send": _SHELL + "Send",
    "Receive": _SHELL + "Receive",
    "Signal": _SHELL + "Signal",
}
_ACTION_NAME = {uri: name for name, uri in ACTION.items()}
_FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"

# The defaults Windows applies when a header is absent.
DEFAULT_MAX_ENVELOPE = 153600
DEFAULT_OPERATION_TIMEOUT = 60.0
_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


class WSManFault(Exception):
    """A WS-Management fault, answered as HTTP 500 with an ``s:Fault`` envelope."""

    def __init__(self, code: int, reason: str, *, subcode: str = "w:InternalError",
                 value: str = "s:Receiver") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.subcode = subcode
        self.value = value


# Codes as Windows writes them (decimal HRESULTs of the WinRM facility).
OPERATION_TIMEOUT = 2150858793  # 0x80338029 ERROR_WSMAN_OPERATION_TIMEDOUT: the client polls again
SHELL_NOT_FOUND = 2150858843  # 0x8033805B ERROR_WSMAN_INVALID_SELECTORS / shell not found
ACTION_NOT_SUPPORTED = 2150858771  # 0x80338013 ERROR_WSMAN_ACTION_NOT_SUPPORTED
ENVELOPE_TOO_LARGE = 2150859025  # 0x80338111 ERROR_WSMAN_QUOTA_MAX_ENVELOPE_SIZE
INVALID_REQUEST = 2150858778  # 0x8033801A ERROR_WSMAN_INVALID_XML / schema violation
UNSPECIFIED = 2147467259  # 0x80004005 E_FAIL


def timed_out() -> WSManFault:
    """The fault both clients treat as "nothing yet, ask again" (HTTP 500, code 2150858793)."""
    return WSManFault(OPERATION_TIMEOUT, "The WS-Management service cannot complete the operation within the time "
                      "specified in OperationTimeout.", subcode="w:TimedOut")


@dataclass
class WSManRequest:
    """The parts of a request envelope the lab reads."""

    action: str
    message_id: str
    resource_uri: str
    body: ET.Element
    selectors: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    max_envelope: int = DEFAULT_MAX_ENVELOPE
    operation_timeout: float = DEFAULT_OPERATION_TIMEOUT

    @property
    def operation(self) -> str:
        """``Create``, ``Command``, ``Receive`` …, or the full action URI when unknown."""
        return _ACTION_NAME.get(self.action, self.action)

    def first(self, path: str) -> ET.Element | None:
        """The first body element at ``path`` (prefixes from :data:`NS`)."""
        return self.body.find(path, NS)


def _text(root: ET.Element, path: str) -> str:
    node = root.find(path, NS)
    return (node.text or "").strip() if node is not None else ""


def _duration(text: str) -> float | None:
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def parse_request(data: bytes) -> WSManRequest:
    """Read a SOAP request; a body that is not a WS-Management envelope is a fault."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise WSManFault(INVALID_REQUEST, "The request contains a document type declaration.", value="s:Sender",
                         subcode="w:InvalidMessageInformationHeader")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise WSManFault(INVALID_REQUEST, f"The request is not well-formed XML: {exc}", value="s:Sender",
                         subcode="w:InvalidMessageInformationHeader") from None
    header = root.find("s:Header", NS)
    body = root.find("s:Body", NS)
    if root.tag != f"{{{NS['s']}}}Envelope" or header is None or body is None:
        raise WSManFault(INVALID_REQUEST, "The request is not a SOAP 1.2 envelope with a header and a body.",
                         value="s:Sender", subcode="w:InvalidMessageInformationHeader")
    request = WSManRequest(action=_text(header, "a:Action"), message_id=_text(header, "a:MessageID"),
                           resource_uri=_text(header, "w:ResourceURI"), body=body)
    if not request.action or not request.message_id:
        raise WSManFault(INVALID_REQUEST, "The request has no Action or no MessageID header.", value="s:Sender",
                         subcode="w:InvalidMessageInformationHeader")
    for selector in header.findall("w:SelectorSet/w:Selector", NS):
        request.selectors[selector.get("Name", "")] = (selector.text or "").strip()
    for option in header.findall("w:OptionSet/w:Option", NS):
        request.options[option.get("Name", "")] = (option.text or "").strip()
    size = _text(header, "w:MaxEnvelopeSize")
    if size.isdigit():
        request.max_envelope = int(size)
    timeout = _duration(_text(header, "w:OperationTimeout"))
    if timeout is not None:
        request.operation_timeout = timeout
    return request


def element(tag: str, attrib: dict[str, str] | None = None, text: str | None = None,
            children: list[ET.Element] | None = None) -> ET.Element:
    """``element("rsp:Stream", {"Name": "stdout"}, "…")`` with prefixes from :data:`NS`."""
    node = ET.Element(_qualify(tag), {_qualify(k) if ":" in k else k: v for k, v in (attrib or {}).items()})
    node.text = text
    node.extend(children or [])
    return node


def _qualify(name: str) -> str:
    prefix, _, local = name.partition(":")
    return f"{{{NS[prefix]}}}{local}" if local else name


def _name(qualified: str) -> str:
    if qualified.startswith("{"):
        uri, _, local = qualified[1:].partition("}")
        return f"{_PREFIX[uri]}:{local}"
    return qualified


def _serialize(node: ET.Element, out: list[str]) -> None:
    # ElementTree would invent ns0/ns1 prefixes (or need the process-wide register_namespace).
    attrs = "".join(f" {_name(k)}={quoteattr(v)}" for k, v in node.attrib.items())
    tag = _name(node.tag)
    if node.text is None and not len(node):
        out.append(f"<{tag}{attrs}/>")
        return
    out.append(f"<{tag}{attrs}>{escape(node.text or '')}")
    for child in node:
        _serialize(child, out)
    out.append(f"</{tag}>")


def _envelope(action: str, relates_to: str, body: list[ET.Element]) -> bytes:
    declarations = "".join(f' xmlns:{p}="{uri}"' for p, uri in NS.items() if p != "xml")
    out = [f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xml:lang="en-US"{declarations}><s:Header>',
           f"<a:Action>{escape(action)}</a:Action>",
           "<a:MessageID>uuid:" + _new_id() + "</a:MessageID>",
           "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>",
           f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo></s:Header><s:Body>"]
    for node in body:
        _serialize(node, out)
    out.append("</s:Body></s:Envelope>")
    return "".join(out).encode("utf-8")


def _new_id() -> str:
    return str(uuid.uuid4()).upper()


def reply_envelope(request: WSManRequest, body: list[ET.Element]) -> bytes:
    """The response to ``request``: action ``…Response``, RelatesTo its MessageID."""
    return _envelope(request.action + "Response", request.message_id, body)


def fault_envelope(fault: WSManFault, relates_to: str, machine: str) -> bytes:
    """An ``s:Fault`` with the WSManFault detail both clients parse (code, machine, message)."""
    body = element("s:Fault", children=[
        element("s:Code", children=[
            element("s:Value", text=fault.value),
            element("s:Subcode", children=[element("s:Value", text=fault.subcode)]),
        ]),
        element("s:Reason", children=[element("s:Text", {"xml:lang": "en-US"}, fault.reason)]),
        element("s:Detail", children=[
            element("f:WSManFault", {"Code": str(fault.code), "Machine": machine}, children=[
                element("f:Message", text=fault.reason),
            ]),
        ]),
    ])
    return _envelope(_FAULT_ACTION, relates_to, [body])
