"""Injected transport faults, as the real clients see them; ``after`` and ``times`` count requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from pypsrp.exceptions import AuthenticationError, WinRMTransportError
from pypsrp.exceptions import WSManFaultError as PSRPFault
from pypsrp.powershell import PowerShell, RunspacePool
from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError
from winrm.exceptions import WSManFaultError as WinRMFault

from hardening.lab import Lab
from hardening.lab.endpoint import FAULTS, POWERSHELL_STDIN, EndpointHost, LabEndpoint, serve_lab

from .conftest import EchoHost, exchange, winrs_protocol, wsman

INJECTED_CODE = 2147467259  # E_FAIL: not OperationTimeout (2150858793), so neither client retries it


@contextmanager
def open_pool(host: EndpointHost, **kwargs: object) -> Iterator[RunspacePool]:
    """An opened Microsoft.Exchange pool on an authenticated, encrypted connection; not closed
    politely afterwards (a fault may have broken the session), only its connection."""
    with wsman(host, **kwargs) as connection:  # type: ignore[arg-type]
        pool = RunspacePool(connection, configuration_name="Microsoft.Exchange")
        pool.open()
        yield pool


def get_pop(pool: RunspacePool) -> PowerShell:
    ps = PowerShell(pool)
    ps.add_cmdlet("Get-PopSettings").add_parameter("Server", "MAIL01")
    ps.invoke()
    return ps


def still_serves(endpoint: LabEndpoint) -> None:
    """A fresh client still gets answers: the fault was the request's, not the endpoint's."""
    with wsman(endpoint.hosts["MAIL01"]) as connection:
        assert len(exchange(connection, ("Get-PopSettings", {"Server": "MAIL01"}))[0]) == 1


def test_drop_closes_the_connection_without_an_answer(http_endpoint: LabEndpoint) -> None:
    host = http_endpoint.hosts["MAIL01"]
    with open_pool(host) as pool:
        host.inject("drop")
        with pytest.raises(requests.exceptions.ConnectionError, match="RemoteDisconnected"):
            get_pop(pool)
    assert host.operations == ["Create", "Receive"]  # the Command was read, then dropped: never run
    assert host.requests == 6 and host.received[-1]
    assert http_endpoint.lab.hosts["MAIL01"].received == []
    still_serves(http_endpoint)


def test_drop_with_pywinrm(http_endpoint: LabEndpoint) -> None:
    host = http_endpoint.hosts["MAIL01"]
    with winrs_protocol(host) as protocol:
        shell = protocol.open_shell(codepage=65001)
        host.inject("drop")
        with pytest.raises(requests.exceptions.ConnectionError):
            protocol.run_command(shell, POWERSHELL_STDIN)


def test_http500_is_a_wsman_fault_both_clients_raise(http_endpoint: LabEndpoint) -> None:
    host = http_endpoint.hosts["MAIL01"]
    with open_pool(host) as pool:
        host.inject("http500")
        with pytest.raises(PSRPFault) as info:
            get_pop(pool)
        assert info.value.code == INJECTED_CODE
        assert not get_pop(pool).had_errors  # times=1: the next request is answered
    with winrs_protocol(host) as protocol:
        host.inject("http500", after=3)  # the three authentication legs go through
        with pytest.raises(WinRMFault) as fault:
            protocol.open_shell(codepage=65001)
    assert fault.value.wsman_fault_code == INJECTED_CODE
    assert host.encrypted[-1] is True  # the fault answered an encrypted request (sealed in turn)


def test_timeout_holds_the_answer_until_the_test_releases_it(http_endpoint: LabEndpoint) -> None:
    host = http_endpoint.hosts["MAIL01"]
    release = threading.Event()
    with open_pool(host) as pool:
        pool.connection.transport.read_timeout = 1  # for the held request only
        host.inject("timeout", release=release)
        with pytest.raises(requests.exceptions.ReadTimeout):
            get_pop(pool)
    release.set()  # the held request then runs, as on a slow host, and its answer finds no one
    still_serves(http_endpoint)


def test_timeout_with_pywinrm(http_endpoint: LabEndpoint) -> None:
    host = http_endpoint.hosts["MAIL02"]
    release = threading.Event()
    try:
        with winrs_protocol(host) as protocol:
            shell = protocol.open_shell(codepage=65001)
            protocol.transport.read_timeout_sec = 1  # for the held request only
            host.inject("timeout", release=release)
            with pytest.raises(requests.exceptions.ReadTimeout):
                protocol.run_command(shell, POWERSHELL_STDIN)
    finally:
        release.set()


def test_auth_answers_401_whatever_the_credentials(https_endpoint: LabEndpoint) -> None:
    host = https_endpoint.hosts["MAIL01"]
    host.inject("auth", times=2)
    with wsman(host, auth="basic", ca=https_endpoint.ca_pem) as connection, pytest.raises(AuthenticationError):
        RunspacePool(connection).open()
    with winrs_protocol(host, transport="basic", ca=https_endpoint.ca_pem) as protocol, \
            pytest.raises(InvalidCredentialsError):
        protocol.open_shell(codepage=65001)
    assert host.operations == []
    with wsman(host, auth="basic", ca=https_endpoint.ca_pem) as connection:
        assert len(exchange(connection, ("Get-PopSettings", {"Server": "MAIL01"}))[0]) == 1


def test_auth_mid_session_breaks_the_encrypted_session(http_endpoint: LabEndpoint) -> None:
    # pypsrp authenticates again on the same connection, then resends the body sealed with the
    # old keys: the endpoint cannot unseal it (400), as a real host could not.
    host = http_endpoint.hosts["MAIL01"]
    with open_pool(host) as pool:
        host.inject("auth")
        with pytest.raises(WinRMTransportError, match="Code: 400"):
            get_pop(pool)


def test_after_and_times_count_http_requests(https_endpoint: LabEndpoint) -> None:
    host = https_endpoint.hosts["MAIL02"]
    host.inject("http500", after=2, times=2)  # Basic over TLS: no authentication legs to count
    with wsman(host, auth="basic", ca=https_endpoint.ca_pem) as connection:
        pool = RunspacePool(connection, configuration_name="Microsoft.Exchange")
        pool.open()  # requests 1 and 2: Create, Receive
        for _ in range(2):
            with pytest.raises(PSRPFault):
                get_pop(pool)  # requests 3 and 4: the Command is refused
        assert not get_pop(pool).had_errors
        pool.close()
    assert host.requests == 7  # Create, Receive, Command ×3, Receive, Delete
    assert host.faults.applied == ["http500", "http500"]


def test_an_unknown_fault_is_refused(http_endpoint: LabEndpoint) -> None:
    assert FAULTS == ("drop", "http500", "timeout", "auth")
    with pytest.raises(ValueError, match="unknown fault"):
        http_endpoint.hosts["MAIL01"].inject("slow")  # type: ignore[arg-type]


def test_a_wsman_fault_from_a_closed_shell_is_not_a_timeout(http_endpoint: LabEndpoint) -> None:
    host = http_endpoint.hosts["MAIL03"]
    with winrs_protocol(host) as protocol:
        shell = protocol.open_shell(codepage=65001)
        protocol.close_shell(shell, close_session=False)
        with pytest.raises(WinRMFault) as fault:
            protocol.run_command(shell, POWERSHELL_STDIN)
    assert fault.value.wsman_fault_code == 2150858843
    assert "the shell was not found" in str(fault.value)


def test_a_receive_before_the_end_of_stdin_answers_operation_timeout() -> None:
    # The Receive waits (the OperationTimeout the client asked for, here 1 s), then answers the
    # fault the clients retry silently; pywinrm's get_command_output asks again.
    echo = EchoHost("ECHO", ["done"])
    with serve_lab(Lab({"ECHO": echo})) as endpoint, \
            winrs_protocol(endpoint.hosts["ECHO"], read_timeout_sec=3, operation_timeout_sec=1) as protocol:
        shell = protocol.open_shell(codepage=65001)
        command = protocol.run_command(shell, POWERSHELL_STDIN)
        protocol.send_command_input(shell, command, b"# part\n", end=False)
        with pytest.raises(WinRMOperationTimeoutError):
            protocol.get_command_output_raw(shell, command)
        protocol.send_command_input(shell, command, b"# end\n", end=True)
        out, _, rc = protocol.get_command_output(shell, command)
        protocol.close_shell(shell, close_session=False)
    assert (out, rc) == (b"done\r\n", 0)
    assert echo.scripts == ["# part\n# end\n"]
