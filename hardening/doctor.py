"""``hardening doctor``: can we reach this host, and if not, what to fix.

Checks, in order, each stopping the ones after it when it fails: the address resolves and the
port answers; TLS (the certificate is trusted, matches the name, is in date); the clock is close
to the host's (Kerberos refuses more than 5 minutes); authentication and the Windows remoting
endpoint (the facts bundle runs); the Exchange endpoint (``Get-ExchangeServer`` answers).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .errors import TargetError
from .facts import Facts, facts_section
from .inventory import Host
from .lab import Lab
from .model import CmdletCall, Section
from .targets import open_target

__all__ = ["Check", "diagnose"]

KERBEROS_MAX_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Check:
    """One diagnosis: ``ok``, ``warn`` or ``fail``, what was seen, and what to do about it."""

    name: str
    status: Literal["ok", "warn", "fail", "skipped"]
    detail: str
    fix: str = ""


def diagnose(host: Host, lab: Lab | None = None, *, now: Callable[[], dt.datetime] | None = None) -> list[Check]:
    """Every check for one inventory host; a failed check skips those that depend on it."""
    now = now or (lambda: dt.datetime.now(dt.UTC))
    conn = host.connection
    checks: list[Check] = []
    if conn.transport == "lab":
        checks.append(Check("transport", "ok", "transport lab: a simulated host, no network"))
    else:
        port = conn.effective_port
        reach = _reach(host.address, port, conn.timeout)
        checks.append(reach)
        if reach.status == "ok" and conn.scheme == "https":
            checks.append(_tls(host, port))
        if reach.status == "ok":
            checks.append(_clock(host, port, now()))
    if any(c.status == "fail" for c in checks):
        checks.append(Check("authentication and remoting", "skipped", "not tried: an earlier check failed"))
        return checks
    try:
        target = open_target(host, lab)
    except TargetError as exc:
        checks.append(Check("connection settings", "fail", exc.problem, "change the inventory's connection settings"))
        return checks
    try:
        try:
            result = target.run((facts_section(),))[0]
        except TargetError as exc:
            checks.append(Check("authentication and remoting", "fail", exc.problem, _fix_for(exc.problem)))
            return checks
        if not result.ok:
            checks.append(Check("authentication and remoting", "fail", result.error or "no answer",
                                "the account needs to run PowerShell remotely (Remote Management Users or admin)"))
            return checks
        facts = Facts.from_mapping(result.values[0] or {}, host.facts)
        checks.append(Check("authentication and remoting", "ok",
                            f"{facts.os_caption or 'Windows'} {facts.os_version or ''}, PowerShell "
                            f"{facts.powershell_version or '?'} ({target.requests} requests)"))
        if not facts.exchange_version:
            checks.append(Check("Exchange endpoint", "skipped", "no Exchange on this host"))
            return checks
        call = CmdletCall("Get-ExchangeServer", (("Identity", facts.computer_name or host.name),))
        try:
            answer = target.run((Section("doctor", (call,)),))[0]
        except TargetError as exc:
            checks.append(Check("Exchange endpoint", "fail", exc.problem,
                                f"the Exchange endpoint is {conn.exchange_scheme}://{host.address}:"
                                f"{conn.effective_exchange_port}/{conn.exchange_path} with {conn.exchange_auth}; "
                                "the account needs RemotePowerShellEnabled and an Exchange role"))
            return checks
        if answer.ok:
            product = facts.exchange_product or f"Exchange {facts.exchange_version}"
            checks.append(Check("Exchange endpoint", "ok", product))
        else:
            checks.append(Check("Exchange endpoint", "fail", answer.error or "no answer",
                                "the account needs an Exchange management role (View-Only Organization Management at "
                                "least for check, Organization Management for apply)"))
    finally:
        target.close()
    return checks


def _reach(address: str, port: int, timeout: float) -> Check:
    try:
        with socket.create_connection((address, port), timeout=min(timeout, 10)):
            return Check("reachable", "ok", f"{address}:{port} answers")
    except socket.gaierror as exc:
        return Check("reachable", "fail", f"{address} does not resolve ({exc.strerror})", "check the address or DNS")
    except OSError as exc:
        return Check("reachable", "fail", f"{address}:{port}: {exc.strerror or exc}",
                     "is WinRM listening (winrm quickconfig / Enable-PSRemoting) and the port open in the firewall?")


def _tls(host: Host, port: int) -> Check:
    conn = host.connection
    context = ssl.create_default_context(cafile=conn.ca_bundle) if conn.ca_bundle else ssl.create_default_context()
    if conn.insecure_skip_certificate_validation:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host.address, port), timeout=min(conn.timeout, 10)) as raw, \
                context.wrap_socket(raw, server_hostname=host.address) as tls:
            cert = tls.getpeercert() or {}
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or str(exc)
        fix = ("give the inventory the issuing CA as ca_bundle" if "issuer" in reason or "self" in reason
               else "connect by a name the certificate holds (address), or reissue the certificate")
        return Check("TLS certificate", "fail", f"not accepted: {reason}", fix)
    except (ssl.SSLError, OSError) as exc:
        return Check("TLS certificate", "fail", f"TLS handshake failed: {exc}", "is the listener HTTPS on this port?")
    if conn.insecure_skip_certificate_validation:
        return Check("TLS certificate", "warn", "not validated (insecure_skip_certificate_validation)",
                     "remove the insecure flag and give ca_bundle")
    expires = cert.get("notAfter")
    detail = f"trusted, valid until {expires}" if expires else "trusted"
    return Check("TLS certificate", "ok", detail)


def _clock(host: Host, port: int, local: dt.datetime) -> Check:
    """The host's clock from the Date header of an unauthenticated request (a 401 carries it)."""
    conn = host.connection
    import requests

    url = f"{conn.scheme}://{host.address}:{port}/{conn.path}"
    verify: bool | str = False if conn.insecure_skip_certificate_validation else (conn.ca_bundle or True)
    try:
        response = requests.post(url, data=b"", timeout=min(conn.timeout, 10), verify=verify,
                                 headers={"Content-Type": "application/soap+xml;charset=UTF-8"})
    except requests.RequestException as exc:
        return Check("clock", "warn", f"could not read the host's time ({type(exc).__name__})")
    header = response.headers.get("Date")
    if not header:
        return Check("clock", "warn", "the host sent no Date header")
    remote = email.utils.parsedate_to_datetime(header)
    skew = abs(remote - local)
    if skew > KERBEROS_MAX_SKEW and "kerberos" in {conn.auth, conn.exchange_auth}:
        return Check("clock", "fail", f"{skew} apart from this machine; Kerberos allows 5 minutes",
                     "synchronise the clocks (w32tm /resync on the host, NTP here)")
    return Check("clock", "ok" if skew <= KERBEROS_MAX_SKEW else "warn", f"{int(skew.total_seconds())} s apart")


def _fix_for(problem: str) -> str:
    text = problem.casefold()
    if "authentication" in text or "credential" in text:
        return "check username and the password reference; for Kerberos use DOMAIN\\user or user@REALM and a ticket"
    if "tls" in text or "certificate" in text:
        return "give the inventory the issuing CA as ca_bundle"
    if "refused to connect" in text:
        return "change the inventory's connection settings as the message says"
    return "see the message; rerun with -vv for the transport's log"
