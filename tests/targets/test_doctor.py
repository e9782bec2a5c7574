"""`hardening doctor`: each check, against the lab and against addresses where nothing listens."""

from __future__ import annotations

import socket
from pathlib import Path

from hardening.cli import main
from hardening.doctor import diagnose
from hardening.inventory import Connection, Host
from hardening.lab import load_lab


def test_a_lab_host_passes_every_check() -> None:
    checks = diagnose(Host("MAIL01", "MAIL01", Connection(transport="lab")), load_lab())
    assert [(c.name, c.status) for c in checks] == [
        ("transport", "ok"), ("authentication and remoting", "ok"), ("Exchange endpoint", "ok")]
    assert "Windows Server 2019" in checks[1].detail and checks[2].detail == "Exchange Server 2019"


def test_a_lab_fault_on_the_facts_read_is_reported_with_a_fix(tmp_path: Path) -> None:
    lab_file = tmp_path / "lab.yml"
    lab_file.write_text("hosts:\n  H1:\n    faults: [{call: facts.read, error: 'Access is denied.'}]\n",
                        encoding="utf-8")
    checks = diagnose(Host("H1", "H1", Connection(transport="lab")), load_lab(lab_file))
    assert checks[-1].name == "authentication and remoting" and checks[-1].status == "fail"
    assert checks[-1].detail == "Access is denied." and checks[-1].fix


def test_nothing_listening_fails_reachability_and_skips_the_rest() -> None:
    with socket.socket() as probe:  # a port on loopback that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = Host("H1", "127.0.0.1", Connection(transport="psrp", scheme="https", port=port, username="u"))
    checks = diagnose(host)
    assert [(c.name, c.status) for c in checks] == [("reachable", "fail"), ("authentication and remoting", "skipped")]
    assert "WinRM" in checks[0].fix


def test_the_cli_exits_2_on_a_failed_check_and_1_for_an_unknown_host(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inventory = tmp_path / "inv.yml"
    inventory.write_text(f"hosts:\n  H1: {{address: 127.0.0.1, connection: {{port: {port}, username: u}}}}\n",
                         encoding="utf-8")
    assert main(["doctor", "H1", "-i", str(inventory)]) == 2
    assert main(["doctor", "H9", "-i", str(inventory)]) == 1
