"""Listeners: loopback addresses in lab order on one port, isolation, close, the generated inventory."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
from pypsrp.exceptions import AuthenticationError
from pypsrp.powershell import RunspacePool

from hardening.inventory import load_inventory
from hardening.lab import Lab
from hardening.lab.endpoint import PASSWORD, POWERSHELL_STDIN, USERNAME, LabEndpoint, serve_lab

from .conftest import endpoint_threads, exchange, winrs_protocol, wsman


def refused(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_one_loopback_address_per_host_in_lab_order_on_one_port(http_endpoint: LabEndpoint) -> None:
    hosts = http_endpoint.hosts
    assert list(hosts) == ["MAIL01", "MAIL02", "MAIL03", "MAIL04"]
    assert [h.address for h in hosts.values()] == ["127.0.10.1", "127.0.10.2", "127.0.10.3", "127.0.10.4"]
    assert {h.port for h in hosts.values()} == {http_endpoint.port}
    assert hosts["MAIL02"].url == f"http://127.0.10.2:{http_endpoint.port}/wsman"
    for host in hosts.values():
        assert host.lab_host is http_endpoint.lab.hosts[host.name]
    assert refused("127.0.10.5", http_endpoint.port)


def test_a_given_port_and_first_address_are_used(lab: Lab) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.30.1", 0))
        port = probe.getsockname()[1]
    with serve_lab(lab, port=port, first_address="127.0.30.1") as endpoint:
        assert [(h.address, h.port) for h in endpoint.hosts.values()] == [
            (f"127.0.30.{n}", port) for n in range(1, 5)]


@pytest.mark.parametrize("first", ["10.0.0.1", "0.0.0.0", "127.255.255.254"])
def test_it_never_listens_beyond_loopback(lab: Lab, first: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        serve_lab(lab, first_address=first)


def test_close_stops_every_listener_thread_and_socket_and_removes_its_files(lab: Lab) -> None:
    endpoint = serve_lab(lab, https=True)
    assert endpoint.ca_pem is not None and endpoint.ca_pem.is_file()
    assert len(endpoint_threads()) == 4
    user_file = Path(os.environ["NTLM_USER_FILE"])
    assert user_file.read_text() == f"lab:hardening:{PASSWORD}\n"
    with wsman(endpoint.hosts["MAIL01"], ca=endpoint.ca_pem) as connection:
        exchange(connection, ("Get-PopSettings", {"Server": "MAIL01"}))
        # the connection stays open (keep-alive): close must end it and its thread too
        endpoint.close()
    endpoint.close()  # twice is fine
    assert endpoint_threads() == []
    assert all(refused(h.address, h.port) for h in endpoint.hosts.values())
    assert not endpoint.ca_pem.exists() and not user_file.exists()


def test_close_releases_a_held_answer(lab: Lab) -> None:
    endpoint = serve_lab(lab)
    host = endpoint.hosts["MAIL01"]
    host.inject("timeout", hold=600)  # no release event: only close() can end it
    errors: list[BaseException] = []

    def client() -> None:
        try:
            with wsman(host, read_timeout=60) as connection:
                RunspacePool(connection).open()
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    while host.requests == 0:
        threading.Event().wait(0.01)
    endpoint.close()
    thread.join(30)
    assert not thread.is_alive()
    assert errors  # the client saw its connection end


def test_each_endpoint_accepts_its_own_users_only(lab: Lab) -> None:
    other = Lab({"MAIL01": lab.hosts["MAIL01"]})
    with serve_lab(lab, users={"lab\\alice": "alice-pw-1"}) as first, \
            serve_lab(other, users={"other\\bob": "bob-pw-2"}, first_address="127.0.20.1") as second:
        # pyspnego's NTLM acceptor reads one process-wide user file holding both endpoints' users.
        assert sorted(Path(os.environ["NTLM_USER_FILE"]).read_text().split()) == [
            "lab:alice:alice-pw-1", "other:bob:bob-pw-2"]
        with wsman(first.hosts["MAIL01"]) as connection:
            connection.transport.username, connection.transport.password = "other\\bob", "bob-pw-2"
            with pytest.raises(AuthenticationError):
                RunspacePool(connection).open()
        with wsman(second.hosts["MAIL01"]) as connection:
            connection.transport.username, connection.transport.password = "other\\bob", "bob-pw-2"
            assert len(exchange(connection, ("Get-PopSettings", {"Server": "MAIL01"}))[0]) == 1
        assert Path(os.environ["NTLM_USER_FILE"]).exists()
        first.close()
        assert Path(os.environ["NTLM_USER_FILE"]).read_text() == "other:bob:bob-pw-2\n"


def test_basic_can_be_turned_off(lab: Lab) -> None:
    with serve_lab(lab, https=True, auth=["negotiate"]) as endpoint, \
            wsman(endpoint.hosts["MAIL01"], auth="basic", ca=endpoint.ca_pem) as connection, \
            pytest.raises(AuthenticationError):
        RunspacePool(connection).open()


@pytest.mark.parametrize("https", [False, True])
def test_the_generated_inventory_loads_and_names_these_listeners(lab: Lab, tmp_path: Path, https: bool) -> None:
    with serve_lab(lab, https=https) as endpoint:
        path = endpoint.write_inventory(tmp_path / "inventory.yml", "env:LAB_PASSWORD")
        inventory = load_inventory(path)
        scheme = "https" if https else "http"
        assert sorted(inventory.hosts) == ["MAIL01", "MAIL02", "MAIL03", "MAIL04"]
        for name, host in inventory.hosts.items():
            connection = host.connection
            assert host.address == endpoint.hosts[name].address
            assert (connection.transport, connection.scheme, connection.auth) == ("psrp", scheme, "ntlm")
            assert connection.effective_port == endpoint.port
            assert connection.username == USERNAME and str(connection.password) == "env:LAB_PASSWORD"
            assert connection.ca_bundle == (str(endpoint.ca_pem) if https else None)
            assert (connection.exchange_scheme, connection.effective_exchange_port, connection.exchange_path,
                    connection.exchange_auth) == (scheme, endpoint.port, "PowerShell", "ntlm")
        assert PASSWORD not in path.read_text()


def test_close_wakes_a_receive_waiting_for_its_command(lab: Lab) -> None:
    endpoint = serve_lab(lab)
    host = endpoint.hosts["MAIL01"]
    errors: list[BaseException] = []

    def client() -> None:
        try:
            with winrs_protocol(host, read_timeout_sec=60, operation_timeout_sec=30) as protocol:
                shell = protocol.open_shell(codepage=65001)
                command = protocol.run_command(shell, POWERSHELL_STDIN)
                protocol.send_command_input(shell, command, b"# stdin not ended\n", end=False)
                protocol.get_command_output_raw(shell, command)  # waits: the command has not finished
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    while "Receive" not in host.operations:
        threading.Event().wait(0.01)
    endpoint.close()
    thread.join(30)
    assert not thread.is_alive() and errors
