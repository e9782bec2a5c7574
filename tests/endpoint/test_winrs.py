"""WinRS through the real pywinrm: the script on stdin, UTF-8 with codepage 65001, errors as CLIXML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import winrm
from winrm.exceptions import InvalidCredentialsError

from hardening.lab import Lab
from hardening.lab.endpoint import PASSWORD, LabEndpoint, serve_lab

from .conftest import EchoHost, records, winrs_protocol, winrs_run

SOAP_OPERATIONS = ["Create", "Command", "Send", "Receive", "Signal", "Delete"]


def test_a_bundle_over_http_ntlm_is_answered_by_the_lab_and_every_soap_body_is_sealed(
        http_endpoint: LabEndpoint, facts_script: str) -> None:
    host = http_endpoint.hosts["MAIL01"]
    with winrs_protocol(host, message_encryption="always") as protocol:
        out, err, rc = winrs_run(protocol, facts_script)
    assert (rc, err) == (0, b"")
    assert out.endswith(b"\r\n")
    [record] = records(out.decode("utf-8").splitlines())
    assert record["id"] == "_facts" and record["ok"] is True
    assert record["state"]["computer_name"] == "MAIL01"
    # 3 authentication legs (the empty POST that sets up encryption), then one request per operation.
    assert host.operations == SOAP_OPERATIONS
    assert host.requests == 9
    assert [bool(body) for body in host.received] == [False] * 3 + [True] * 6
    assert host.encrypted == [False] * 3 + [True] * 6
    assert not host.plaintext_seen(PASSWORD.encode())
    assert not host.plaintext_seen(b"ConvertFrom-Json")  # the script never crossed in clear


def test_the_script_may_arrive_in_several_chunks(http_endpoint: LabEndpoint, facts_script: str) -> None:
    host = http_endpoint.hosts["MAIL02"]
    with winrs_protocol(host) as protocol:
        out, _, rc = winrs_run(protocol, facts_script, chunks=3)
    assert rc == 0
    assert records(out.decode().splitlines())[0]["state"]["computer_name"] == "MAIL02"
    assert host.operations.count("Send") == 3


def test_https_basic_with_ca_validation(https_endpoint: LabEndpoint, facts_script: str) -> None:
    host = https_endpoint.hosts["MAIL03"]
    assert https_endpoint.ca_pem is not None
    with winrs_protocol(host, transport="basic", ca=https_endpoint.ca_pem) as protocol:
        out, _, rc = winrs_run(protocol, facts_script)
    assert rc == 0
    assert records(out.decode().splitlines())[0]["state"]["computer_name"] == "MAIL03"
    assert host.requests == 6  # Basic is sent with the first request: no authentication leg
    assert host.encrypted == [False] * 6  # TLS protects it; nothing is in clear on the wire
    assert not host.plaintext_seen(PASSWORD.encode())


def test_https_ntlm_with_channel_binding(https_endpoint: LabEndpoint, facts_script: str) -> None:
    host = https_endpoint.hosts["MAIL04"]
    with winrs_protocol(host, ca=https_endpoint.ca_pem) as protocol:
        _, _, rc = winrs_run(protocol, facts_script)
    assert rc == 0
    assert host.requests == 8  # two NTLM legs, no encryption set-up over TLS


def test_an_unknown_ca_is_refused_by_the_client(https_endpoint: LabEndpoint) -> None:
    with winrs_protocol(https_endpoint.hosts["MAIL01"], transport="basic", ca=None) as protocol, \
            pytest.raises(requests.exceptions.SSLError):
        protocol.open_shell(codepage=65001)
    assert https_endpoint.hosts["MAIL01"].requests == 0


@pytest.mark.parametrize("transport", ["ntlm", "basic"])
def test_a_wrong_password_is_refused(http_endpoint: LabEndpoint, transport: str) -> None:
    host = http_endpoint.hosts["MAIL01"]
    options: dict[str, Any] = {"message_encryption": "never"} if transport == "basic" else {}
    with winrs_protocol(host, transport=transport, password="wrong", **options) as protocol, \
            pytest.raises(InvalidCredentialsError):
        protocol.open_shell(codepage=65001)
    assert host.operations == []


def test_utf8_survives_codepage_65001_and_437_mangles_it_as_windows_does() -> None:
    lab = Lab({"ECHO": EchoHost("ECHO", ["Serveur café ✓ Ω"])})
    with serve_lab(lab) as endpoint:
        host = endpoint.hosts["ECHO"]
        with winrs_protocol(host) as protocol:
            utf8, _, _ = winrs_run(protocol, "# a script\n", codepage=65001)
            cp437, _, _ = winrs_run(protocol, "# a script\n", codepage=437)
    assert utf8.decode("utf-8") == "Serveur café ✓ Ω\r\n"
    assert cp437 == b"Serveur caf\x82 ? \xea\r\n"


def test_stdin_is_read_in_the_shells_codepage() -> None:
    echo = EchoHost("ECHO")
    with serve_lab(Lab({"ECHO": echo})) as endpoint, winrs_protocol(endpoint.hosts["ECHO"]) as protocol:
        out, _, _ = winrs_run(protocol, "# naïve ✓\nWrite-Output 1\n".encode(), codepage=65001)
        winrs_run(protocol, "# naïve\n".encode("cp437"), codepage=437)
    assert out.decode("utf-8") == "# naïve ✓\r\n"
    assert echo.scripts == ["# naïve ✓\nWrite-Output 1\n", "# naïve\n"]


def test_any_other_command_line_gets_a_clixml_error_and_exit_code_1(http_endpoint: LabEndpoint) -> None:
    host = http_endpoint.hosts["MAIL01"]
    with winrs_protocol(host) as protocol:
        out, err, rc = winrs_run(protocol, b"", command="ipconfig /all")
    assert (out, rc) == (b"", 1)
    assert err.startswith(b"#< CLIXML\r\n")
    session = winrm.Session(host.url, auth=("lab\\hardening", PASSWORD), transport="ntlm", ca_trust_path=None)
    result = session.run_ps("Get-Service")  # pywinrm's own run_ps: powershell -encodedcommand …
    assert result.status_code == 1
    assert b"The lab answers only the requests hardening sends" in result.std_err
    assert b"CLIXML" not in result.std_err  # pywinrm cleaned it: it is well-formed CLIXML


def test_a_script_the_lab_cannot_read_is_an_error_on_stderr(http_endpoint: LabEndpoint) -> None:
    with winrs_protocol(http_endpoint.hosts["MAIL01"]) as protocol:
        out, err, rc = winrs_run(protocol, "Get-Service -Name WinRM\n")
    assert (out, rc) == (b"", 1)
    assert b"the lab cannot read this script" in err


def test_a_large_answer_comes_back_in_several_receives(tmp_path: Path) -> None:
    line = "x" * 1000
    lab = Lab({"ECHO": EchoHost("ECHO", [line] * 400)})
    with serve_lab(lab) as endpoint, winrs_protocol(endpoint.hosts["ECHO"]) as protocol:
        out, _, rc = winrs_run(protocol, "# big\n")
        receives = endpoint.hosts["ECHO"].operations.count("Receive")
    assert rc == 0 and out == (line + "\r\n").encode() * 400
    assert receives == 4  # 401,600 bytes at most 112,128 per reply (pywinrm's MaxEnvelopeSize 153600)
