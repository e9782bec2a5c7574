"""Real Windows hosts: PSRP through pypsrp (the main path) or WinRS through pywinrm, and the
Exchange endpoint (``Microsoft.Exchange``, cmdlet invocations only) through pypsrp.

Secure by default: certificates are validated (against ``ca_bundle`` or the system store);
Basic and certificate authentication only over HTTPS; over plain HTTP only authentications that
encrypt every message (NTLM/Negotiate, Kerberos, CredSSP), with encryption required. Anything
weaker needs an ``insecure_*`` setting in the inventory. Every third-party exception is caught
here and re-raised as :class:`~hardening.errors.TargetError`; passwords never appear in them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Literal, TypeVar, cast

from ..errors import SecretError, TargetError
from ..inventory import Connection, Host
from ..model import AddRemove, Bundle, CmdletCall, ScriptCall, SectionResult, Switch
from ..render import bundle_script, winrs_command_line
from .base import results_from_records

__all__ = ["RemoteTarget", "transport_problems"]

log = logging.getLogger(__name__)

ENCRYPTING_AUTHS = frozenset({"negotiate", "ntlm", "kerberos", "credssp"})
# Transient transport errors are retried for reads only, with this backoff (seconds).
READ_RETRIES = (1.0, 3.0)
T = TypeVar("T")


def transport_problems(conn: Connection, scheme: str, auth: str) -> list[str]:
    """Why a connection's settings are refused (empty when acceptable)."""
    problems = []
    if scheme == "http" and auth not in ENCRYPTING_AUTHS and not conn.insecure_allow_unencrypted:
        problems.append(f"auth {auth} over plain HTTP would send the password and every script in clear text; use "
                        "scheme https, or an encrypting auth (negotiate, kerberos, ntlm, credssp), or set "
                        "insecure_allow_unencrypted: true")
    if auth == "certificate" and not (conn.client_certificate and conn.client_key):
        problems.append("auth certificate needs client_certificate and client_key")
    if auth in {"basic", "ntlm", "negotiate", "credssp", "kerberos"} and auth != "kerberos" and not conn.username:
        problems.append(f"auth {auth} needs a username")
    return problems


def is_read_only(bundle: Bundle) -> bool:
    """Whether sending a bundle again can change nothing (only reads): then it may be retried."""
    for section in bundle:
        for call in section.calls:
            if isinstance(call, ScriptCall) and call.op != "read":
                return False
            if isinstance(call, CmdletCall) and not call.cmdlet.casefold().startswith("get-"):
                return False
    return True


class _Counter:
    """Counts HTTP requests at the connection adapters of a requests session, so that the legs
    authentication handlers send on their own (NTLM challenges, the empty encryption POST) count."""

    def __init__(self) -> None:
        self.count = 0

    def watch(self, session: Any) -> None:
        for adapter in session.adapters.values():
            send = adapter.send

            def counted(*args: Any, _send: Any = send, **kwargs: Any) -> Any:
                self.count += 1
                return _send(*args, **kwargs)

            adapter.send = counted


class RemoteTarget:
    """A Windows host (and its Exchange endpoint) over PSRP or WinRS. Connects lazily, keeps one
    runspace pool per endpoint for the whole run, and closes them on :meth:`close`."""

    def __init__(self, host: Host) -> None:
        conn = host.connection
        problems = transport_problems(conn, conn.scheme, conn.auth)
        problems += [f"exchange endpoint: {p}" for p in transport_problems(conn, conn.exchange_scheme,
                                                                            conn.exchange_auth)]
        if problems:
            raise TargetError(host.name, "refused to connect: " + "; ".join(problems))
        self.host = host
        self.conn = conn
        self.counter = _Counter()
        self._password: str | None = None
        self._windows: Any = None  # pypsrp RunspacePool or (pywinrm Protocol, shell id)
        self._exchange: Any = None
        self._closed = False

    @property
    def requests(self) -> int:
        return self.counter.count

    # --- connection -------------------------------------------------------------------------------

    def _secret(self) -> str | None:
        if self._password is None and self.conn.password is not None:
            try:
                self._password = self.conn.password.resolve()
            except SecretError as exc:
                raise TargetError(self.host.name, str(exc)) from None
        return self._password

    def _cert_validation(self) -> bool | str:
        if self.conn.insecure_skip_certificate_validation:
            return False
        return self.conn.ca_bundle or True

    def _wsman(self, scheme: str, port: int, path: str, auth: str) -> Any:
        from pypsrp.wsman import WSMan

        kwargs: dict[str, Any] = {}
        if auth == "certificate":
            kwargs.update(certificate_pem=self.conn.client_certificate, certificate_key_pem=self.conn.client_key)
        timeout = int(max(1, self.conn.timeout))
        wsman = WSMan(self.host.address, port=port, path=path, ssl=scheme == "https", auth=auth,
                      username=self.conn.username, password=self._secret(),
                      # pypsrp passes this to requests' verify: True, False or a CA bundle path.
                      cert_validation=cast(bool, self._cert_validation()),
                      encryption="always" if scheme == "http" and auth in ENCRYPTING_AUTHS else "auto",
                      connection_timeout=timeout, read_timeout=timeout + 10, operation_timeout=timeout, **kwargs)
        # Count every HTTP request of this endpoint (the session is built here so the hook sees all).
        transport = wsman.transport
        if getattr(transport, "session", None) is None:
            transport.session = transport._build_session()
        assert transport.session is not None
        self.counter.watch(transport.session)
        return wsman

    def _pool(self, configuration: str) -> Any:
        from pypsrp.powershell import RunspacePool

        if configuration == "Microsoft.Exchange":
            wsman = self._wsman(self.conn.exchange_scheme, self.conn.effective_exchange_port, self.conn.exchange_path,
                                self.conn.exchange_auth)
        else:
            wsman = self._wsman(self.conn.scheme, self.conn.effective_port, self.conn.path, self.conn.auth)
        pool = RunspacePool(wsman, configuration_name=configuration)
        pool.open()
        return pool

    def _winrs(self) -> tuple[Any, str]:
        from winrm.protocol import Protocol

        transport = {"negotiate": "ntlm", "basic": "basic", "ntlm": "ntlm", "kerberos": "kerberos",
                     "credssp": "credssp", "certificate": "certificate"}[self.conn.auth]
        if self.conn.scheme == "https" and transport == "basic":
            transport = "ssl"
        endpoint = f"{self.conn.scheme}://{self.host.address}:{self.conn.effective_port}/{self.conn.path}"
        validation: Literal["ignore", "validate"] = (
            "ignore" if self.conn.insecure_skip_certificate_validation else "validate")
        protocol = Protocol(endpoint=endpoint, transport=transport,  # type: ignore[arg-type]
                            username=self.conn.username, password=self._secret(),
                            server_cert_validation=validation,
                            ca_trust_path=cast(str, self.conn.ca_bundle),  # None: no trust path beyond the default
                            cert_pem=self.conn.client_certificate, cert_key_pem=self.conn.client_key,
                            message_encryption="always" if self.conn.scheme == "http" else "auto",
                            read_timeout_sec=int(self.conn.timeout) + 10, operation_timeout_sec=int(self.conn.timeout))
        # pywinrm sets up encryption (an empty POST and the auth legs) while building its session;
        # build it without, watch it, then set encryption up, so those requests are counted too.
        transport_layer = protocol.transport
        wanted = transport_layer.message_encryption
        transport_layer.message_encryption = "never"
        session = transport_layer.build_session()
        transport_layer.message_encryption = wanted
        self.counter.watch(session)
        if self.conn.scheme == "http":
            transport_layer.setup_encryption(session)
        # UTF-8 (65001), or non-ASCII names come back in the OEM code page (437), or as '?'.
        shell = protocol.open_shell(codepage=65001, noprofile=True)
        return protocol, shell

    # --- requests ---------------------------------------------------------------------------------

    def run(self, bundle: Bundle) -> list[SectionResult]:
        if self._closed:
            raise TargetError(self.host.name, "the connection is closed")
        retry = is_read_only(bundle)
        results: dict[str, SectionResult] = {}
        script = [s for s in bundle if s.is_script]
        cmdlets = [s for s in bundle if not s.is_script]
        if script:
            text = bundle_script(script)
            lines = self._call(lambda: self._run_script(text), retry, "the Windows bundle")
            results.update(results_from_records(script, lines))
        # In a bundle of reads, the same cmdlet call made for several controls is sent once: the
        # Exchange endpoint costs a pipeline (two requests) per call, whatever the controls.
        answered: dict[CmdletCall, tuple[list[Any] | None, str | None]] = {}
        for section in cmdlets:
            values: list[Any] = []
            errors: list[str | None] = []
            for call in section.calls:
                assert isinstance(call, CmdletCall)
                if retry and call in answered:
                    output, error = answered[call]
                else:
                    output, error = self._call(partial(self._invoke, call), retry, call.cmdlet)
                    answered[call] = (output, error)
                values.append(output)
                errors.append(error)
            results[section.id] = SectionResult(section.id, tuple(values), tuple(errors))
        return [results[s.id] for s in bundle]

    def _call(self, action: Callable[[], T], retry: bool, what: str) -> T:
        """Run one request; transient transport errors are retried for reads only, never for writes."""
        delays = READ_RETRIES if retry else ()
        for attempt in range(len(delays) + 1):
            try:
                return action()
            except TargetError:
                raise
            except Exception as exc:  # third-party errors stop here, as ours
                problem = _describe(exc)
                if attempt < len(delays) and _transient(exc):
                    log.info("%s: %s failed (%s); retrying in %ss", self.host.name, what, problem, delays[attempt])
                    self._reset()
                    time.sleep(delays[attempt])
                    continue
                raise TargetError(self.host.name, f"{what}: {problem}") from None
        raise AssertionError("unreachable")

    def _run_script(self, text: str) -> list[str]:
        if self.conn.transport == "winrm":
            return self._run_winrs(text)
        from pypsrp.powershell import PowerShell

        if self._windows is None:
            self._windows = self._pool("Microsoft.PowerShell")
        ps = PowerShell(self._windows)
        ps.add_script(text)
        output = ps.invoke()
        lines = [str(o) for o in output]
        if ps.had_errors and not lines:
            raise TargetError(self.host.name, "the Windows bundle failed: " + "; ".join(
                str(e) for e in ps.streams.error) or "no detail")
        return lines

    def _run_winrs(self, text: str) -> list[str]:
        if self._windows is None:
            self._windows = self._winrs()
        protocol, shell = self._windows
        # The script goes on stdin: the command line stays short (cmd.exe limits it to 8191 chars).
        command = protocol.run_command(shell, winrs_command_line())
        try:
            protocol.send_command_input(shell, command, text.encode("utf-8"), end=True)
            stdout, stderr, code = protocol.get_command_output(shell, command)
        finally:
            protocol.cleanup_command(shell, command)
        if code != 0 and not stdout.strip():
            raise TargetError(self.host.name, f"the Windows bundle failed (exit {code}): "
                              + _clixml_text(stderr.decode("utf-8", "replace")))
        return str(stdout.decode("utf-8", "replace")).splitlines()

    def _invoke(self, call: CmdletCall) -> tuple[list[Any] | None, str | None]:
        from pypsrp.powershell import PowerShell

        if self._exchange is None:
            self._exchange = self._pool("Microsoft.Exchange")
        ps = PowerShell(self._exchange)
        ps.add_cmdlet(call.cmdlet)
        for name, value in call.parameters:
            if isinstance(value, Switch):
                ps.add_parameter(name)
            else:
                ps.add_parameter(name, _wire_value(value))
        output = ps.invoke()
        errors = [str(e) for e in ps.streams.error]
        if errors or ps.had_errors:
            return None, "; ".join(errors) or "the cmdlet failed without an error record"
        return [_plain(o) for o in output], None

    def _reset(self) -> None:
        """Forget the connections after a transport error; the next request reconnects."""
        self._windows = None
        self._exchange = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for closer in (self._close_windows, self._close_exchange):
            try:
                closer()
            except Exception as exc:  # closing must never hide a result
                log.debug("%s: closing failed: %s", self.host.name, _describe(exc))

    def _close_windows(self) -> None:
        if self._windows is None:
            return
        if isinstance(self._windows, tuple):
            protocol, shell = self._windows
            protocol.close_shell(shell)
        else:
            self._windows.close()

    def _close_exchange(self) -> None:
        if self._exchange is not None:
            self._exchange.close()


def _wire_value(value: Any) -> Any:
    """A parameter value as pypsrp serialises it: a list as an array, an :class:`AddRemove` as the
    Hashtable ``@{Add=...; Remove=...}`` (a dict becomes a Hashtable on the wire)."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, AddRemove):
        return {key: list(items) for key, items in (("Add", value.add), ("Remove", value.remove)) if items}
    return value


def _plain(value: Any) -> Any:
    """A deserialised object as plain data: property bags as dicts, lists as lists."""
    props: dict[str, Any] = {}
    for attribute in ("adapted_properties", "extended_properties"):
        props.update(getattr(value, attribute, None) or {})
    if props:
        return {str(k): _plain(v) for k, v in props.items()}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _transient(exc: Exception) -> bool:
    """Connection-level failures that a retry may cure (not authentication, not certificates)."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        return False
    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError))


def _describe(exc: Exception) -> str:
    """One sentence for a third-party exception, without credentials."""
    import requests

    name = type(exc).__name__
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS: the server's certificate was not accepted ({_first_line(exc)})"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "no connection within the timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no answer within the timeout"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"connection failed ({_first_line(exc)})"
    if "Credentials" in name or "Authentication" in name or "401" in str(exc):
        return f"authentication failed ({name})"
    return f"{name}: {_first_line(exc)}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _clixml_text(text: str) -> str:
    """The error text of a CLIXML stderr stream (``_x000D__x000A_`` are line breaks)."""
    import re

    if not text.startswith("#< CLIXML"):
        return text.strip()
    parts = re.findall(r'<S S="Error">(.*?)</S>', text, flags=re.DOTALL)
    joined = "".join(parts).replace("_x000D__x000A_", "\n")
    return re.sub(r"_x([0-9A-F]{4})_", lambda m: chr(int(m.group(1), 16)), joined).strip()

