"""PSRP through the real pypsrp: scripts on Microsoft.PowerShell, cmdlets on Microsoft.Exchange."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import requests
from pypsrp.complex_objects import PSInvocationState
from pypsrp.exceptions import AuthenticationError
from pypsrp.powershell import PowerShell, RunspacePool

from hardening.lab import Lab
from hardening.lab.endpoint import NO_LANGUAGE_MESSAGE, PASSWORD, LabEndpoint, lab_dns_name
from hardening.model import ScriptCall, Section
from hardening.render import bundle_script

from .conftest import exchange, properties, psrp_script, records, wsman

POOL_WITH_ONE_PIPELINE = ["Create", "Receive", "Command", "Receive", "Signal", "Delete"]


def test_a_bundle_on_microsoft_powershell_over_http_ntlm_is_sealed_end_to_end(
        http_endpoint: LabEndpoint, lab: Lab, facts_script: str) -> None:
    host = http_endpoint.hosts["MAIL01"]
    with wsman(host) as connection:
        output, ps = psrp_script(connection, facts_script)
    assert not ps.had_errors and ps.streams.error == []
    [record] = records(output)
    assert record["state"]["computer_name"] == "MAIL01"
    assert lab.hosts["MAIL01"].received == [("facts.read", {})]
    assert host.operations == POOL_WITH_ONE_PIPELINE
    assert host.requests == 9  # 3 authentication legs (with the empty POST), 6 operations
    assert host.encrypted == [False] * 3 + [True] * 6
    assert not host.plaintext_seen(PASSWORD.encode())
    assert not host.plaintext_seen(b"ConvertFrom-Json")


def test_plaintext_seen_does_see_basic_and_scripts_over_unencrypted_http(http_endpoint: LabEndpoint,
                                                                           facts_script: str) -> None:
    # The control case: what the client must refuse to do (Basic over HTTP) is visible on the wire.
    host = http_endpoint.hosts["MAIL02"]
    with wsman(host, auth="basic", encryption="never") as connection:
        psrp_script(connection, facts_script)
    assert host.encrypted == [False] * 6
    assert host.plaintext_seen(PASSWORD.encode())
    assert host.plaintext_seen(b"ConvertFrom-Json")


def test_exchange_get_popsettings_on_the_powershell_path(http_endpoint: LabEndpoint, lab: Lab) -> None:
    host = http_endpoint.hosts["MAIL01"]
    with wsman(host, path="PowerShell") as connection:
        output, ps = exchange(connection, ("Get-PopSettings", {"Server": "MAIL01"}))
    assert not ps.had_errors
    [settings] = [properties(o) for o in output]
    assert settings["LoginType"] == "PlainTextLogin"
    assert settings["EnableGSSAPIAndNTLMAuth"] is True
    assert settings["SSLBindings"] == ["[::]:995", "0.0.0.0:995"]
    assert lab.hosts["MAIL01"].received == [("Get-PopSettings", (("Server", "MAIL01"),))]
    assert host.encrypted[-6:] == [True] * 6


def test_statements_run_in_order_and_a_lab_error_does_not_stop_the_pipeline(http_endpoint: LabEndpoint) -> None:
    with wsman(http_endpoint.hosts["MAIL01"]) as connection:
        output, ps = exchange(connection, ("Get-PopSettings", {"Server": "MAIL01"}),
                              ("Get-NotACmdlet", {"Server": "MAIL01"}),
                              ("Get-ImapSettings", {"Server": "MAIL01"}))
    assert [properties(o)["SSLBindings"][1] for o in output] == ["0.0.0.0:995", "0.0.0.0:993"]
    assert ps.state == PSInvocationState.COMPLETED and not ps.had_errors
    [error] = ps.streams.error
    assert "The term 'Get-NotACmdlet' is not recognized" in str(error)


def test_parameters_arrive_as_data_with_nulls_lists_ints_and_bools(http_endpoint: LabEndpoint, lab: Lab) -> None:
    """A nil parameter (a switch or -X $null: the wire cannot tell them apart) arrives as None."""
    with wsman(http_endpoint.hosts["MAIL02"]) as connection:
        _, ps = exchange(connection, ("Get-PopSettings", {"Server": "MAIL02", "Bindings": ["a", "b"], "Count": 3,
                                                          "Enabled": False, "Force": None}))
    assert lab.hosts["MAIL02"].received == [("Get-PopSettings", (
        ("Server", "MAIL02"), ("Bindings", ("a", "b")), ("Count", 3), ("Enabled", False), ("Force", None)))]
    assert [str(e) for e in ps.streams.error] == [
        "A parameter cannot be found that matches parameter name 'Bindings'."]


def test_the_exchange_endpoint_is_no_language(http_endpoint: LabEndpoint, lab: Lab) -> None:
    with wsman(http_endpoint.hosts["MAIL01"]) as connection, \
            RunspacePool(connection, configuration_name="Microsoft.Exchange") as pool:
        ps = PowerShell(pool)
        ps.add_script("Get-PopSettings -Server MAIL01")
        assert ps.invoke() == []
        ps.close()
        piped = PowerShell(pool)
        piped.add_cmdlet("Get-PopSettings").add_cmdlet("Set-PopSettings")
        piped.invoke()
        piped.close()
    assert ps.had_errors and ps.state == PSInvocationState.FAILED
    assert [str(e) for e in ps.streams.error] == [NO_LANGUAGE_MESSAGE]
    assert piped.had_errors and "one cmdlet per statement" in str(piped.streams.error[0])
    assert lab.hosts["MAIL01"].received == []


@pytest.mark.parametrize("kind", ["cmdlet", "input", "two scripts"])
def test_microsoft_powershell_runs_one_script_per_pipeline_and_nothing_else(
        http_endpoint: LabEndpoint, lab: Lab, facts_script: str, kind: str) -> None:
    with wsman(http_endpoint.hosts["MAIL01"]) as connection, RunspacePool(connection) as pool:
        ps = PowerShell(pool)
        if kind == "cmdlet":
            ps.add_cmdlet("Get-Service")
            ps.invoke()
        elif kind == "input":
            ps.add_script(facts_script)
            ps.invoke(input=(x for x in ["x"]))
        else:
            ps.add_script(facts_script).add_statement().add_script(facts_script)
            ps.invoke()
        ps.close()
    assert ps.had_errors and ps.output == []
    assert "The lab answers only the requests hardening sends" in str(ps.streams.error[0])
    assert lab.hosts["MAIL01"].received == []


def test_each_path_serves_each_configuration(http_endpoint: LabEndpoint, facts_script: str) -> None:
    host = http_endpoint.hosts["MAIL03"]
    with wsman(host, path="PowerShell") as connection:
        output, _ = psrp_script(connection, facts_script)
    with wsman(host, path="wsman") as connection:
        objects, _ = exchange(connection, ("Get-ExchangeServer", {"Identity": "MAIL03"}))
    assert records(output)[0]["state"]["computer_name"] == "MAIL03"
    assert properties(objects[0])["Name"] == "MAIL03"


def test_https_basic_with_ca_validation(https_endpoint: LabEndpoint, facts_script: str) -> None:
    host = https_endpoint.hosts["MAIL04"]
    with wsman(host, auth="basic", ca=https_endpoint.ca_pem) as connection:
        output, _ = psrp_script(connection, facts_script)
        objects, _ = exchange(connection, ("Get-PopSettings", {"Server": "MAIL04"}))
    assert records(output)[0]["state"]["computer_name"] == "MAIL04"
    assert properties(objects[0])["LoginType"] == "SecureLogin"
    assert host.requests == 12 and host.encrypted == [False] * 12
    assert not host.plaintext_seen(PASSWORD.encode())


def test_https_ntlm_with_channel_binding(https_endpoint: LabEndpoint) -> None:
    host = https_endpoint.hosts["MAIL01"]
    with wsman(host, auth="negotiate", ca=https_endpoint.ca_pem) as connection:
        objects, _ = exchange(connection, ("Get-PopSettings", {"Server": "MAIL01"}))
    assert len(objects) == 1
    assert host.requests == 8  # two SPNEGO legs, then six operations on the authenticated connection


def test_an_unknown_ca_is_refused_by_the_client(https_endpoint: LabEndpoint) -> None:
    with wsman(https_endpoint.hosts["MAIL01"], auth="basic") as connection, \
            pytest.raises(requests.exceptions.SSLError):
        RunspacePool(connection).open()


def test_a_certificate_for_another_name_is_refused(https_endpoint: LabEndpoint,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    host = https_endpoint.hosts["MAIL01"]
    names = {lab_dns_name("MAIL01"): host.address, lab_dns_name("MAIL02"): host.address}
    resolve = socket.getaddrinfo

    def fake_dns(name: Any, *args: Any, **kwargs: Any) -> Any:
        return resolve(names.get(name, name), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    host.address = "mail01.lab.invalid"  # connect by the DNS name in the certificate: accepted
    with wsman(host, auth="basic", ca=https_endpoint.ca_pem) as connection:
        assert len(exchange(connection, ("Get-PopSettings", {"Server": "MAIL01"}))[0]) == 1
    host.address = "mail02.lab.invalid"  # same listener, a name its certificate does not hold
    with wsman(host, auth="basic", ca=https_endpoint.ca_pem) as connection, \
            pytest.raises(requests.exceptions.SSLError, match=r"match|mismatch"):
        RunspacePool(connection).open()


def test_a_wrong_password_is_refused(http_endpoint: LabEndpoint) -> None:
    with wsman(http_endpoint.hosts["MAIL01"], password="wrong") as connection, \
            pytest.raises(AuthenticationError):
        RunspacePool(connection).open()
    assert http_endpoint.hosts["MAIL01"].operations == []


def test_a_script_over_the_envelope_size_arrives_in_command_and_send(http_endpoint: LabEndpoint, lab: Lab) -> None:
    script = bundle_script([Section(f"s{i}", (ScriptCall("facts", "read", {}),)) for i in range(200)])
    assert len(script) > 512_000
    with wsman(http_endpoint.hosts["MAIL02"]) as connection:
        output, ps = psrp_script(connection, script)
    assert not ps.had_errors
    assert [r["id"] for r in records(output)] == [f"s{i}" for i in range(200)]
    assert http_endpoint.hosts["MAIL02"].operations[:4] == ["Create", "Receive", "Command", "Send"]
