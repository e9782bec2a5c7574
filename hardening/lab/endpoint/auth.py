"""HTTP authentication as WinRM does it: Basic per request, NTLM/Negotiate per TCP connection.

NTLM authenticates the *connection*: after the handshake (``Authorization: Negotiate`` or
``NTLM``, answered 401 with the challenge), later requests on that connection carry no header
and are accepted, and the completed context seals and unseals message-encrypted bodies. The
acceptor is pyspnego's ``spnego.server``, which reads its users from the file named by the
``NTLM_USER_FILE`` environment variable — process-wide, so :class:`NtlmUserFile` keeps one file
with the users of every open endpoint and each endpoint then checks the authenticated principal
against its own users.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import spnego
from spnego.channel_bindings import GssChannelBindings
from spnego.exceptions import SpnegoError

__all__ = ["AuthOutcome", "ConnectionAuth", "NtlmUserFile", "split_user"]


def split_user(user: str) -> tuple[str, str]:
    """``DOMAIN\\name`` → (domain, name); a bare name has domain ``""``."""
    domain, sep, name = user.partition("\\")
    return (domain, name) if sep else ("", user)


class NtlmUserFile:
    """The ``NTLM_USER_FILE`` the NTLM acceptor reads, shared by every open endpoint.

    It lives in a private temporary directory while at least one endpoint is open; the
    variable's previous value is restored when the last one closes.
    """

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _users: ClassVar[dict[int, dict[str, str]]] = {}
    _directory: ClassVar[Path | None] = None
    _previous: ClassVar[str | None] = None

    @classmethod
    def acquire(cls, token: int, users: Mapping[str, str]) -> None:
        """Add an endpoint's users (``DOMAIN\\name`` → password)."""
        for user, password in users.items():
            if ":" in user or ":" in password or "\n" in user + password:
                raise ValueError("lab user names and passwords cannot hold ':' or newlines (NTLM user file format)")
        with cls._lock:
            if cls._directory is None:
                cls._directory = Path(tempfile.mkdtemp(prefix="hardening-lab-ntlm-"))
                cls._previous = os.environ.get("NTLM_USER_FILE")
            cls._users[token] = dict(users)
            cls._write()

    @classmethod
    def release(cls, token: int) -> None:
        """Remove an endpoint's users; the last one out removes the file and restores the variable."""
        with cls._lock:
            cls._users.pop(token, None)
            if cls._users or cls._directory is None:
                if cls._directory is not None:
                    cls._write()
                return
            shutil.rmtree(cls._directory, ignore_errors=True)
            cls._directory = None
            if cls._previous is None:
                os.environ.pop("NTLM_USER_FILE", None)
            else:
                os.environ["NTLM_USER_FILE"] = cls._previous

    @classmethod
    def _write(cls) -> None:
        assert cls._directory is not None
        lines = sorted({":".join((*split_user(u), p)) for users in cls._users.values() for u, p in users.items()})
        fd, tmp = tempfile.mkstemp(dir=cls._directory)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        path = cls._directory / "ntlm-users"
        os.replace(tmp, path)  # the acceptor rereads it at every handshake: never half-written
        os.environ["NTLM_USER_FILE"] = str(path)


@dataclass(frozen=True)
class AuthOutcome:
    """The verdict on one request: the user, or a 401 with the headers to send."""

    user: str | None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.user is not None


class ConnectionAuth:
    """The authentication state of one TCP connection."""

    def __init__(self, users: Mapping[str, str], schemes: frozenset[str],
                 channel_bindings: GssChannelBindings | None) -> None:
        self._users = {u.casefold(): (u, p) for u, p in users.items()}
        self._schemes = schemes
        self._bindings = channel_bindings
        self._pending: spnego.ContextProxy | None = None
        self.context: spnego.ContextProxy | None = None
        self.user: str | None = None

    def reset(self) -> None:
        """Forget the connection's authentication (as after a 401)."""
        self._pending = self.context = None
        self.user = None

    def offers(self) -> tuple[tuple[str, str], ...]:
        """The ``WWW-Authenticate`` headers of a bare 401."""
        headers = []
        if "negotiate" in self._schemes:
            headers.append(("WWW-Authenticate", "Negotiate"))
        if "basic" in self._schemes:
            headers.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        return tuple(headers)

    def check(self, authorization: str | None) -> AuthOutcome:
        """Authenticate one request from its ``Authorization`` header."""
        if not authorization:
            return AuthOutcome(self.user, () if self.user else self.offers())
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "basic" and "basic" in self._schemes:
            return self._basic(token.strip())
        if scheme.lower() in ("negotiate", "ntlm") and "negotiate" in self._schemes:
            return self._negotiate(scheme, token.strip())
        self.reset()
        return AuthOutcome(None, self.offers())

    def _basic(self, token: str) -> AuthOutcome:
        try:
            user, _, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return AuthOutcome(None, self.offers())
        known = self._users.get(user.casefold())
        if known is None or known[1] != password:
            return AuthOutcome(None, self.offers())
        return AuthOutcome(known[0])

    def _negotiate(self, scheme: str, token: str) -> AuthOutcome:
        try:
            data = base64.b64decode(token, validate=True)
        except binascii.Error:
            self.reset()
            return AuthOutcome(None, self.offers())
        if self._pending is None:
            self.reset()
            self._pending = spnego.server(protocol="negotiate", channel_bindings=self._bindings)
        try:
            answer = self._pending.step(data)
        except SpnegoError:
            self.reset()
            return AuthOutcome(None, self.offers())
        reply = ((("WWW-Authenticate", f"{scheme} {base64.b64encode(answer).decode('ascii')}"),)
                 if answer else ())
        if not self._pending.complete:
            return AuthOutcome(None, reply)
        context, self._pending = self._pending, None
        known = self._users.get((context.client_principal or "").casefold())
        if known is None:
            # The shared user file may hold another endpoint's users; this endpoint accepts its own only.
            self.reset()
            return AuthOutcome(None, self.offers())
        self.context, self.user = context, known[0]
        return AuthOutcome(self.user, reply)
