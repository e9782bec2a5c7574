"""The loopback endpoint under the real clients: fixtures, client helpers, and a leak check.

Every test in this folder must leave no endpoint thread and no socket behind: the autouse
fixture below snapshots the process's threads and sockets before the test and compares after
(the endpoint fixtures close their endpoint; tests close their clients).
"""

from __future__ import annotations

import gc
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan
from winrm.protocol import Protocol

from hardening.facts import facts_section
from hardening.lab import Lab, LabHost, load_lab
from hardening.lab.endpoint import PASSWORD, POWERSHELL_STDIN, USERNAME, EndpointHost, LabEndpoint, serve_lab
from hardening.render import bundle_script


def sockets() -> set[str]:
    """The socket inodes this process holds open."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def endpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lab-endpoint")]


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Nothing the endpoint (or a test's client) opened survives the test."""
    gc.collect()
    before = sockets()
    nfu = os.environ.get("NTLM_USER_FILE")
    yield
    gc.collect()
    assert endpoint_threads() == []
    assert sockets() - before == set()
    assert os.environ.get("NTLM_USER_FILE") == nfu


@pytest.fixture
def lab() -> Lab:
    """The built-in demo lab, fresh (MAIL01–MAIL04)."""
    return load_lab()


@pytest.fixture
def http_endpoint(lab: Lab) -> Iterator[LabEndpoint]:
    with serve_lab(lab) as endpoint:
        yield endpoint


@pytest.fixture
def https_endpoint(lab: Lab) -> Iterator[LabEndpoint]:
    with serve_lab(lab, https=True) as endpoint:
        yield endpoint


@pytest.fixture
def facts_script() -> str:
    """A real bundle: the facts section, rendered as hardening sends it."""
    return bundle_script([facts_section()])


def records(lines: list[str]) -> list[dict[str, Any]]:
    """The JSON records of a bundle's output."""
    return [json.loads(line) for line in lines if line.strip()]


class EchoHost(LabHost):
    """A test double: answers a script with its comment lines, to show what text arrived."""

    def __init__(self, name: str, answer: list[str] | None = None) -> None:
        super().__init__(name, {"computer_name": name})
        self.answer = answer
        self.scripts: list[str] = []

    def run_script(self, script: str) -> list[str]:
        self.scripts.append(script)
        if self.answer is not None:
            return list(self.answer)
        return [line for line in script.splitlines() if line.startswith("#")]


# -- clients -------------------------------------------------------------------------------------


@contextmanager
def winrs_protocol(host: EndpointHost, *, transport: str = "ntlm", ca: Path | None = None,
                   password: str = PASSWORD, **kwargs: Any) -> Iterator[Protocol]:
    """A pywinrm Protocol to one endpoint host, closed after."""
    protocol = Protocol(host.url, transport=transport, username=USERNAME, password=password,  # type: ignore[arg-type]
                        ca_trust_path=str(ca) if ca is not None else None, **kwargs)  # type: ignore[arg-type]
    try:
        yield protocol
    finally:
        protocol.transport.close_session()


def winrs_run(protocol: Protocol, script: str | bytes, *, codepage: int = 65001,
              command: str = POWERSHELL_STDIN, chunks: int = 1) -> tuple[bytes, bytes, int]:
    """Run the script the way hardening does: a shell in ``codepage``, the script on stdin."""
    data = script.encode("utf-8") if isinstance(script, str) else script
    shell = protocol.open_shell(codepage=codepage)
    try:
        command_id = protocol.run_command(shell, command)
        size = -(-len(data) // chunks)
        for n in range(chunks):
            protocol.send_command_input(shell, command_id, data[n * size:(n + 1) * size], end=n == chunks - 1)
        out, err, rc = protocol.get_command_output(shell, command_id)
        protocol.cleanup_command(shell, command_id)
    finally:
        protocol.close_shell(shell, close_session=False)
    return out, err, rc


@contextmanager
def wsman(host: EndpointHost, *, auth: str = "ntlm", ca: Path | None = None, password: str = PASSWORD,
          path: str = "wsman", **kwargs: Any) -> Iterator[WSMan]:
    """A pypsrp WSMan connection to one endpoint host (HTTPS when the endpoint is), closed after."""
    https = host.url.startswith("https")
    validation: Any = str(ca) if ca is not None else True
    connection = WSMan(host.address, port=host.port, ssl=https, auth=auth, username=USERNAME, password=password,
                       cert_validation=validation, path=path, no_proxy=True, **kwargs)
    try:
        yield connection
    finally:
        connection.close()


def psrp_script(connection: WSMan, script: str) -> tuple[list[Any], PowerShell]:
    """Run a script in a Microsoft.PowerShell pool, as hardening's PSRP target does."""
    with RunspacePool(connection) as pool:
        ps = PowerShell(pool)
        ps.add_script(script)
        output = ps.invoke()
        ps.close()
    return output, ps


def exchange(connection: WSMan, *statements: tuple[str, dict[str, Any]]) -> tuple[list[Any], PowerShell]:
    """Invoke cmdlets (one statement each) in a Microsoft.Exchange pool."""
    with RunspacePool(connection, configuration_name="Microsoft.Exchange") as pool:
        ps = PowerShell(pool)
        for cmdlet, parameters in statements:
            ps.add_cmdlet(cmdlet)
            for name, value in parameters.items():
                ps.add_parameter(name, value)
            ps.add_statement()
        output = ps.invoke()
        ps.close()
    return output, ps


def properties(obj: Any) -> dict[str, Any]:
    """The properties of a deserialised object (note properties of a PSCustomObject)."""
    return {**obj.adapted_properties, **obj.extended_properties}
