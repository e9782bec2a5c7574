"""WinRM message encryption over plain HTTP: the MIME framing around pyspnego's wrap/unwrap.

A sealed body is ``multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";
boundary="Encrypted Boundary"``: a part stating the original length, then ``<u32le header
length><header><sealed data>``. The reply to an encrypted request is sealed the same way with
the connection's context (``wrap_winrm``), under the protocol the client used.
"""

from __future__ import annotations

import re
import struct

import spnego

__all__ = ["EncryptionError", "is_encrypted", "seal", "unseal"]

_BOUNDARY = b"Encrypted Boundary"
_PROTOCOL = re.compile(r'protocol="([^"]+)"')
_LENGTH = re.compile(rb"Length=(\d+)")


class EncryptionError(Exception):
    """A body that claims to be encrypted but cannot be unsealed."""


def is_encrypted(content_type: str) -> bool:
    """Whether a Content-Type announces a sealed WinRM body."""
    return content_type.lower().startswith(("multipart/encrypted", "multipart/x-multi-encrypted"))


def protocol_of(content_type: str) -> str:
    """The ``protocol=`` of a multipart/encrypted Content-Type."""
    match = _PROTOCOL.search(content_type)
    return match.group(1) if match else "application/HTTP-SPNEGO-session-encrypted"


def unseal(context: spnego.ContextProxy, body: bytes) -> bytes:
    """The SOAP envelope inside a sealed body (several parts for multi-encrypted ones)."""
    parts = [p for p in re.split(rb"--\s*" + re.escape(_BOUNDARY) + rb"(?:--)?\r\n", body) if p.strip()]
    if not parts or len(parts) % 2:
        raise EncryptionError("the encrypted body does not have the multipart/encrypted layout")
    plain = b""
    for description, payload in zip(parts[0::2], parts[1::2], strict=True):
        length = _LENGTH.search(description)
        payload = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
        if length is None or len(payload) < 4:
            raise EncryptionError("an encrypted part has no length or no data")
        header_length = struct.unpack("<I", payload[:4])[0]
        try:
            data = context.unwrap_winrm(payload[4:4 + header_length], payload[4 + header_length:])
        except Exception as exc:  # pyspnego raises several types for a bad seal (BadMIC, struct errors …)
            raise EncryptionError(f"the body could not be unsealed: {exc}") from None
        if len(data) != int(length.group(1)):
            raise EncryptionError("the unsealed length does not match the announced one")
        plain += data
    return plain


def seal(context: spnego.ContextProxy, plain: bytes, protocol: str) -> tuple[str, bytes]:
    """(Content-Type, body) of ``plain`` sealed for the client."""
    wrapped = context.wrap_winrm(plain)
    body = b"\r\n".join([
        b"--" + _BOUNDARY,
        b"\tContent-Type: " + protocol.encode("ascii"),
        b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=%d" % (len(plain) + wrapped.padding_length),
        b"--" + _BOUNDARY,
        b"\tContent-Type: application/octet-stream",
        struct.pack("<I", len(wrapped.header)) + wrapped.header + wrapped.data + b"--" + _BOUNDARY + b"--\r\n",
    ])
    return f'multipart/encrypted;protocol="{protocol}";boundary="Encrypted Boundary"', body
