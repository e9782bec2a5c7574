"""Loopback servers for the notification tests, and the lab for drift passes.

- ``pki``: a test CA with a server certificate for 127.0.0.1/localhost, one for another name,
  and a certificate from a second CA that nothing trusts (ECDSA P-256, generated once).
- ``smtp_server``: aiosmtpd on 127.0.0.1, port 0, in its own event loop thread, with or without
  STARTTLS and AUTH; it records every byte received, MAIL FROM, RCPT TO, DATA and AUTH.
- ``webhook_server``: http.server on 127.0.0.1, port 0 (optionally HTTPS), recording requests and
  answering with statuses from a script.

Every server started is stopped at the end of its test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hardening import Lab, load_lab
from hardening.lab import BUILTIN_SCENARIO
from hardening.lab.scenario import merged_lab_text

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "baseline.yml"
INVENTORY = ROOT / "hardening" / "lab" / "scenarios" / "demo-inventory.yml"
LAB_HOSTS = ("MAIL01", "MAIL02", "MAIL03", "MAIL04")

T = TypeVar("T")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The webhook client honours proxy variables; loopback tests must not go through one."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


# --- certificates -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA the client trusts
    server_cert: Path  # for 127.0.0.1 and localhost, signed by ca
    server_key: Path
    wrong_name_cert: Path  # for mail.example.org only, signed by ca
    wrong_name_key: Path
    rogue_cert: Path  # for 127.0.0.1, signed by a CA nobody trusts
    rogue_key: Path

    def server_context(self, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert or self.server_cert, key or self.server_key)
        return context


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hardening tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _ca(common: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
          names: list[x509.GeneralName]) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name("hardening test server")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _write(directory: Path, stem: str, key: ec.EllipticCurvePrivateKey | None, cert: x509.Certificate,
           ) -> tuple[Path, Path]:
    cert_path = directory / f"{stem}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = directory / f"{stem}.key"
    if key is not None:
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _ca("hardening test CA")
    rogue_ca_key, rogue_ca_cert = _ca("someone else's CA")
    loopback: list[x509.GeneralName] = [x509.IPAddress(IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
    server = _leaf(ca_key, ca_cert, loopback)
    wrong = _leaf(ca_key, ca_cert, [x509.DNSName("mail.example.org")])
    rogue = _leaf(rogue_ca_key, rogue_ca_cert, loopback)
    ca_path, _ = _write(directory, "ca", None, ca_cert)
    server_paths = _write(directory, "server", *server)
    wrong_paths = _write(directory, "wrong-name", *wrong)
    rogue_paths = _write(directory, "rogue", *rogue)
    return Pki(ca_path, *server_paths, *wrong_paths, *rogue_paths)


# --- SMTP -------------------------------------------------------------------------------------------------


class _LoopThread:
    """An asyncio event loop running in its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-smtp-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def close(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@dataclass
class SmtpRecord:
    """What an SMTP server received."""

    raw: bytearray = field(default_factory=bytearray)  # every byte after TLS decryption, in order
    mail_from: list[str] = field(default_factory=list)
    rcpt_to: list[str] = field(default_factory=list)
    tls_at_mail: list[bool] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    logins: list[tuple[str, str, bool]] = field(default_factory=list)  # user, password, inside TLS

    @property
    def commands(self) -> list[str]:
        """The SMTP verbs received in clear text (before TLS) and inside it."""
        return [line.split(b" ", 1)[0].split(b":", 1)[0].decode("ascii", "replace").upper()
                for line in bytes(self.raw).split(b"\r\n") if line]


class _Handler:
    def __init__(self, record: SmtpRecord) -> None:
        self.record = record

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        self.record.mail_from.append(address)
        self.record.tls_at_mail.append(session.ssl is not None)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        self.record.rcpt_to.append(address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.record.messages.append(content)
        return "250 Message accepted"


class _RecordingSMTP(SMTP):
    """aiosmtpd's SMTP that keeps every byte it receives (plain text, and inside TLS once decrypted)."""

    def __init__(self, *args: Any, record: SmtpRecord, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._record = record

    def data_received(self, data: bytes) -> None:
        self._record.raw.extend(data)
        super().data_received(data)


@dataclass
class SmtpServer:
    host: str
    port: int
    record: SmtpRecord


SmtpFactory = Callable[..., SmtpServer]


@pytest.fixture
def smtp_server(pki: Pki) -> Iterator[SmtpFactory]:
    """Start SMTP servers on 127.0.0.1: ``smtp_server(starttls=True, cert=None, key=None, password=None)``."""
    loop = _LoopThread()
    servers: list[asyncio.base_events.Server] = []

    def start(*, starttls: bool = True, cert: Path | None = None, key: Path | None = None,
              password: str | None = None) -> SmtpServer:
        record = SmtpRecord()
        context = pki.server_context(cert, key) if starttls else None

        def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                          auth_data: Any) -> AuthResult:
            assert isinstance(auth_data, LoginPassword)
            user, secret = auth_data.login.decode(), auth_data.password.decode()
            record.logins.append((user, secret, session.ssl is not None))
            return AuthResult(success=secret == password, handled=False)

        def factory() -> SMTP:
            return _RecordingSMTP(_Handler(record), record=record, hostname="mail.test", tls_context=context,
                                  authenticator=authenticator if password is not None else None,
                                  auth_require_tls=True, loop=loop.loop)

        async def listen() -> asyncio.base_events.Server:
            return await loop.loop.create_server(factory, "127.0.0.1", 0)

        server = loop.run(listen())
        servers.append(server)
        return SmtpServer("127.0.0.1", server.sockets[0].getsockname()[1], record)

    try:
        yield start
    finally:
        async def stop() -> None:
            for server in servers:
                server.close()
                await server.wait_closed()

        loop.run(stop())
        loop.close()


# --- webhook ----------------------------------------------------------------------------------------------


@dataclass
class HookRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _HookServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, statuses: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), _HookHandler)
        self.statuses = statuses
        self.requests: list[HookRequest] = []


class _HookHandler(http.server.BaseHTTPRequestHandler):
    server: _HookServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(HookRequest("POST", self.path, dict(self.headers.items()), body))
        status = self.server.statuses.pop(0) if self.server.statuses else 204
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@dataclass
class WebhookServer:
    url: str
    requests: list[HookRequest]


WebhookFactory = Callable[..., WebhookServer]


@pytest.fixture
def webhook_server(pki: Pki) -> Iterator[WebhookFactory]:
    """Start webhook receivers: ``webhook_server(statuses=[500, 204], tls=False, cert=None, key=None)``."""
    started: list[tuple[_HookServer, threading.Thread]] = []

    def start(*, statuses: list[int] | None = None, tls: bool = False, cert: Path | None = None,
              key: Path | None = None) -> WebhookServer:
        server = _HookServer(list(statuses or []))
        if tls:
            server.socket = pki.server_context(cert, key).wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        started.append((server, thread))
        port = server.server_address[1]
        return WebhookServer(f"{'https' if tls else 'http'}://127.0.0.1:{port}/hooks/hardening", server.requests)

    try:
        yield start
    finally:
        for server, thread in started:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


# --- the lab ----------------------------------------------------------------------------------------------


def write_lab(directory: Path, faults: dict[str, list[dict[str, Any]]]) -> Lab:
    """The built-in scenario as a lab file with ``faults`` per host (README, "The lab")."""
    data = yaml.safe_load(merged_lab_text(BUILTIN_SCENARIO))
    for host, host_faults in faults.items():
        data["hosts"][host]["faults"] = host_faults
    path = directory / "lab.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_lab(path, fresh=True)


@pytest.fixture
def demo_lab() -> Lab:
    """The built-in scenario, fresh and in memory."""
    return load_lab()
