"""The listeners: one HTTP(S) server per lab host on its own loopback address, in daemon threads.

Each request is read whole (Content-Length), counted, recorded, checked for injected faults,
authenticated (per connection for NTLM), unsealed if message-encrypted, parsed as a SOAP
envelope and routed by resource URI to the host's WinRS or PSRP service; the reply is sealed
when the request was. TLS is negotiated in the connection's worker thread, so a client that
rejects the certificate cannot block ``accept``. Connections are kept alive (HTTP/1.1,
Content-Length on every answer): NTLM authenticates the connection, and an encrypted session
must not be dropped.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
import selectors
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from spnego.channel_bindings import GssChannelBindings

from ..host import LabHost
from .auth import ConnectionAuth
from .certs import ServerCertificate, lab_dns_name
from .encryption import EncryptionError, is_encrypted, protocol_of, seal, unseal
from .faults import Fault, FaultKind, FaultPlan
from .psrp import PSRPService
from .shells import CallerContext, ShellService
from .winrs import WinRSService
from .wsman import (
    ENVELOPE_TOO_LARGE,
    INVALID_REQUEST,
    RESOURCE_CMD,
    RESOURCE_EXCHANGE,
    RESOURCE_POWERSHELL,
    UNSPECIFIED,
    WSManFault,
    fault_envelope,
    parse_request,
    reply_envelope,
)

__all__ = ["EndpointHost"]

log = logging.getLogger(__name__)

PATHS = ("/wsman", "/powershell")
# Windows' default MaxEnvelopeSizekb (500): a larger request is refused, as a real host would.
MAX_REQUEST_ENVELOPE = 500 * 1024
_B64_RUN = re.compile(rb"[A-Za-z0-9+/]{12,}={0,2}")
_SOAP = "application/soap+xml;charset=UTF-8"


class EndpointHost:
    """One lab host's listener: where it listens, what it received, and its fault plan.

    ``address``/``port``/``url``: where it listens. ``requests``: HTTP requests received, every
    authentication leg included. ``received``: each request's body as it arrived (sealed bodies
    stay sealed; empty bodies included), with ``encrypted[i]`` telling whether body ``i`` was
    message-encrypted. ``operations``: the WS-Management operation of each SOAP request that was
    dispatched (``Create``, ``Command``, ``Send``, ``Receive``, ``Signal``, ``Delete``).
    ``lab_host``: the simulated host that answers.
    """

    def __init__(self, name: str, lab_host: LabHost, address: str, *, https: bool, users: Mapping[str, str],
                 schemes: frozenset[str], latency: float, closing: threading.Event,
                 certificate: ServerCertificate | None) -> None:
        self.name = name
        self.lab_host = lab_host
        self.address = address
        self.port = 0
        self.https = https
        self.latency = latency
        self.requests = 0
        self.received: list[bytes] = []
        self.encrypted: list[bool] = []
        self.operations: list[str] = []
        self.faults = FaultPlan()
        self._users = dict(users)
        self._schemes = schemes
        self._closing = closing
        self._certificate = certificate
        self._clear: list[bytes] = []
        self._lock = threading.Lock()
        self._services: dict[str, ShellService] = {
            RESOURCE_CMD: WinRSService(lab_host),
            RESOURCE_POWERSHELL: PSRPService(lab_host, "Microsoft.PowerShell", no_language=False),
            RESOURCE_EXCHANGE: PSRPService(lab_host, "Microsoft.Exchange", no_language=True),
        }
        self._listener: _Listener | None = None
        self._thread: threading.Thread | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"

    @property
    def url(self) -> str:
        """``http://127.0.10.1:PORT/wsman``."""
        return f"{self.scheme}://{self.address}:{self.port}/wsman"

    @property
    def dns_name(self) -> str:
        """The name in the host's certificate besides its IP (``mail01.lab.invalid``)."""
        return lab_dns_name(self.name)

    def inject(self, fault: FaultKind, *, after: int = 0, times: int = 1, release: threading.Event | None = None,
               hold: float = 30.0) -> None:
        """Misbehave on this host: ``drop``, ``http500``, ``timeout`` or ``auth`` (see :mod:`.faults`).

        ``after`` requests go through first; then ``times`` requests get the fault. A ``timeout``
        holds its answer until ``release`` is set, at most ``hold`` seconds (and never past
        :meth:`LabEndpoint.close`), then answers normally.
        """
        self.faults.add(Fault(fault, after=after, times=times, release=release, hold=hold))

    def plaintext_seen(self, secret: bytes) -> bool:
        """Whether ``secret`` crossed the wire readable: in any request received without TLS, in its
        headers or body, as is, in UTF-16-LE, or inside base64 (a Basic header, a WinRS stdin
        stream, a PSRP fragment) — sealed bodies count, but cannot match."""
        needles = {secret}
        with contextlib.suppress(UnicodeDecodeError):
            needles.add(secret.decode("utf-8").encode("utf-16-le"))
        with self._lock:
            blobs = list(self._clear)
        return any(n in hay for blob in blobs for hay in _readable(blob) for n in needles)

    # -- serving -----------------------------------------------------------------------------

    def _start(self, port: int) -> int:
        context = self._certificate.context() if self._certificate is not None else None
        self._listener = _Listener((self.address, port), self, context)
        self.port = self._listener.server_address[1]
        self._thread = threading.Thread(target=self._listener.serve, name=f"lab-endpoint-{self.name}", daemon=True)
        self._thread.start()
        return self.port

    def _stop(self) -> None:
        for service in self._services.values():
            service.close()
        if self._listener is not None:
            self._listener.stop()
        if self._thread is not None:
            self._thread.join(5)
        if self._listener is not None:
            self._listener.close_connections()
            self._listener.server_close()

    def _new_auth(self) -> ConnectionAuth:
        bindings = None
        if self._certificate is not None:
            bindings = GssChannelBindings(application_data=self._certificate.end_point_hash())
        return ConnectionAuth(self._users, self._schemes, bindings)

    def _record(self, handler: _Handler, body: bytes, encrypted: bool) -> None:
        with self._lock:
            self.requests += 1
            self.received.append(body)
            self.encrypted.append(encrypted)
            if not self.https:
                head = f"{handler.requestline}\r\n{handler.headers}".encode("latin-1", errors="replace")
                self._clear.append(head + body)

    def _answer(self, handler: _Handler) -> None:
        """Serve one HTTP request (called in the connection's thread)."""
        length = handler.headers.get("Content-Length")
        if length is None or not length.isdigit():
            handler.reply(411, [], b"", close=True)
            return
        body = handler.rfile.read(int(length))  # always read it all, even for a 401: keep-alive depends on it
        content_type = handler.headers.get("Content-Type", "")
        encrypted = is_encrypted(content_type)
        self._record(handler, body, encrypted)
        fault = self.faults.next()
        if self.latency:
            self._closing.wait(self.latency)
        if fault is not None and fault.kind == "drop":
            handler.drop()
            return
        if fault is not None and fault.kind == "timeout":
            fault.wait(self._closing)
        if fault is not None and fault.kind == "auth":
            handler.auth.reset()
            handler.reply(401, list(handler.auth.offers()), b"")
            return
        outcome = handler.auth.check(handler.headers.get("Authorization"))
        headers = list(outcome.headers)
        injected = fault is not None and fault.kind == "http500"
        if not outcome.ok and not injected:
            handler.reply(401, headers, b"")
            return
        if handler.path.split("?")[0].lower() not in PATHS:
            handler.reply(404, headers, b"")
            return
        if not body and not injected:
            handler.reply(200, headers, b"")  # the empty POST that sets up message encryption
            return
        if encrypted and outcome.ok:
            # Unsealed even when the answer is an injected fault: NTLM sealing is a stream (RC4 and
            # sequence numbers), so skipping one request would break every later one.
            try:
                if handler.auth.context is None:
                    raise EncryptionError("no security context on this connection")
                body = unseal(handler.auth.context, body)
            except EncryptionError as exc:
                log.debug("%s: %s", self.name, exc)
                handler.reply(400, headers, b"", close=True)
                return
        if injected:
            reply = fault_envelope(WSManFault(UNSPECIFIED, "The lab endpoint answered with an injected fault "
                                              "(HTTP 500, not OperationTimeout)."), _message_id(body), self.name)
            self._send(handler, headers, reply, encrypted and outcome.ok, 500, content_type)
            return
        status, reply = self._dispatch(handler, body, outcome.user or "")
        self._send(handler, headers, reply, encrypted, status, content_type)

    def _dispatch(self, handler: _Handler, envelope: bytes, user: str) -> tuple[int, bytes]:
        message_id = ""
        try:
            if len(envelope) > MAX_REQUEST_ENVELOPE:
                raise WSManFault(ENVELOPE_TOO_LARGE, "The WS-Management service cannot process the request because "
                                 "the request size exceeded the configured MaxEnvelopeSize quota.",
                                 subcode="w:EncodingLimit", value="s:Sender")
            request = parse_request(envelope)
            message_id = request.message_id
            with self._lock:
                self.operations.append(request.operation)
            service = self._services.get(request.resource_uri)
            if service is None:
                raise WSManFault(INVALID_REQUEST, "The lab does not serve the resource URI "
                                 f"{request.resource_uri!r}: only WinRS (cmd), Microsoft.PowerShell and "
                                 "Microsoft.Exchange.",
                                 subcode="w:DestinationUnreachable", value="s:Sender")
            caller = CallerContext(user, handler.client_address[0], f"{self.scheme}://{self.address}:{self.port}"
                                   f"{handler.path}", self._closing)
            return 200, reply_envelope(request, service.handle(request, caller))
        except WSManFault as fault:
            return 500, fault_envelope(fault, message_id, self.name)

    def _send(self, handler: _Handler, headers: list[tuple[str, str]], reply: bytes, encrypted: bool, status: int,
              request_type: str) -> None:
        if encrypted and handler.auth.context is not None:
            content_type, reply = seal(handler.auth.context, reply, protocol_of(request_type))
        else:
            content_type = _SOAP
        handler.reply(status, [*headers, ("Content-Type", content_type)], reply)


def _message_id(envelope: bytes) -> str:
    try:
        return parse_request(envelope).message_id
    except WSManFault:
        return ""


def _readable(blob: bytes) -> Iterator[bytes]:
    yield blob
    for run in _B64_RUN.findall(blob):
        run = run.rstrip(b"=")
        run = run[: len(run) - len(run) % 4] if len(run) % 4 == 1 else run
        try:
            yield base64.b64decode(run + b"=" * (-len(run) % 4))
        except (binascii.Error, ValueError):
            continue


class _Handler(BaseHTTPRequestHandler):
    """One keep-alive connection; its authentication state lives as long as it does."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: Nagle would add ~40 ms each
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    server: _Listener

    def setup(self) -> None:
        super().setup()
        self.auth = self.server.host._new_auth()

    def do_POST(self) -> None:
        self.server.host._answer(self)

    def do_GET(self) -> None:
        self.reply(405, [("Allow", "POST")], b"")

    def reply(self, status: int, headers: Iterable[tuple[str, str]], body: bytes, *, close: bool = False) -> None:
        """Answer with a Content-Length, keeping the connection open unless ``close``."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def drop(self) -> None:
        """Close the connection without a word."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.server.host.name, format % args)


class _Listener(socketserver.TCPServer):
    """A TCP server whose connections each get a tracked daemon thread (TLS negotiated there)."""

    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], host: EndpointHost, context: ssl.SSLContext | None) -> None:
        self.host = host
        self._context = context
        self._connections: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._wake_read, self._wake_write = socket.socketpair()
        self._stopping = False
        try:
            super().__init__(address, _Handler)
        except OSError:
            self._wake_read.close()
            self._wake_write.close()
            raise

    def serve(self) -> None:
        """Accept connections until :meth:`stop` (woken at once, not by polling)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self._stopping:
                        try:
                            request, client_address = self.get_request()
                        except OSError:
                            continue
                        self.process_request(request, client_address)

    def stop(self) -> None:
        """End :meth:`serve`; open connections are ended by :meth:`close_connections`."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_read.close()
        self._wake_write.close()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._connection, args=(request, client_address), daemon=True,
                                  name=f"lab-endpoint-{self.host.name}-connection")
        with self._lock:
            self._threads.add(thread)
            self._connections.add(request)
        thread.start()

    def _connection(self, sock: socket.socket, client_address: Any) -> None:
        try:
            if self._context is not None:
                raw = sock
                sock.settimeout(10)  # a client that never finishes its handshake cannot hold a thread forever
                try:
                    sock = self._context.wrap_socket(raw, server_side=True)
                except (OSError, ssl.SSLError) as exc:
                    log.debug("%s: TLS handshake failed: %s", self.host.name, exc)
                    return
                finally:
                    with self._lock:
                        self._connections.discard(raw)
                        self._connections.add(sock)
                sock.settimeout(None)
            self.finish_request(sock, client_address)
        except Exception as exc:  # a client gone mid-request must not print tracebacks
            log.debug("%s: connection ended: %r", self.host.name, exc)
        finally:
            self.shutdown_request(sock)
            with self._lock:
                self._connections.discard(sock)
                self._threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("%s: error serving %s", self.host.name, client_address, exc_info=True)

    def close_connections(self) -> None:
        """Shut every open connection and wait for its thread."""
        with self._lock:
            connections, threads = list(self._connections), list(self._threads)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)
