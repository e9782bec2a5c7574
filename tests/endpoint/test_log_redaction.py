"""``hardening -vv`` through the loopback endpoint with the real clients: no password, no NTLM
message, no ``Authorization:`` header in anything it writes — stdout, stderr, the clients' own
log files (PYPSRP_LOG_CFG / PYSPNEGO_LOG_CFG), reports and the history store — for check, apply
and doctor, over PSRP and WinRS, HTTP with NTLM and message encryption, and HTTPS with Basic.

The debug output must still say what happened (the NTLM legs, the envelopes sent), redacted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hardening.lab import load_lab
from hardening.lab.endpoint import USERNAME, LabEndpoint, serve_lab
from hardening.lab.scenario import DEMO_INVENTORY
from hardening.logredact import base64_cores

CANARY = "Canary-Pa55word-9b1e3c"
ENV = "HARDENING_CANARY"
# A playbook value: it is in the scripts and cmdlet calls sent, so in every PSRP payload and
# envelope; it may be shown as a desired value (stdout, reports), never in the debug log.
VALUE = "https://canary-value-5d1f.example.com/owa"


def forbidden(password: str) -> list[bytes]:
    """Every text that would show the password or an authentication message."""
    texts = [password.encode(), password.encode("utf-16-le"), password.encode().hex().encode(),
             b"TlRMTVNTUA", b"NTLMSSP", b"Authorization:"]
    for data in (password.encode(), password.encode("utf-16-le"), f"{USERNAME}:{password}".encode()):
        texts += [core.encode() for core in base64_cores(data, minimum=8)]
    return texts


@pytest.fixture(params=["http-ntlm", "https-basic"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[LabEndpoint]:
    https = request.param == "https-basic"
    with serve_lab(load_lab(), users={USERNAME: CANARY}, https=https, port=0) as served:
        yield served


def _inventory(endpoint: LabEndpoint, transport: str, path: Path) -> Path:
    site = yaml.safe_load(DEMO_INVENTORY.read_text(encoding="utf-8"))  # the site values the baseline requires
    document = endpoint.inventory(f"env:{ENV}", site)
    document["vars"] = {**(document.get("vars") or {}), "owa_redirect_url": VALUE}
    connection = document["connection"]
    connection["transport"] = transport
    if endpoint.https:  # Basic, which sends the password itself (base64) on every request
        connection.update(auth="basic", exchange_auth="basic")
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _client_log_configs(folder: Path) -> dict[str, str]:
    """pypsrp's and pyspnego's own logging configurations: a debug log file each."""
    variables = {}
    for variable, package in (("PYPSRP_LOG_CFG", "pypsrp"), ("PYSPNEGO_LOG_CFG", "spnego")):
        config = {"version": 1, "disable_existing_loggers": False,
                  "handlers": {"file": {"class": "logging.FileHandler", "filename": str(folder / f"{package}.log"),
                                        "level": "DEBUG", "encoding": "utf-8"}},
                  "loggers": {package: {"handlers": ["file"], "level": "DEBUG"}}}
        (folder / f"{package}-log.json").write_text(json.dumps(config), encoding="utf-8")
        variables[variable] = str(folder / f"{package}-log.json")
    return variables


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "hardening", "-vv", *argv], capture_output=True, env=env,
                          cwd=cwd, timeout=300, check=False)


@pytest.mark.parametrize("transport", ["psrp", "winrm"])
def test_debug_output_carries_no_secret(endpoint: LabEndpoint, transport: str, tmp_path: Path) -> None:
    inventory = _inventory(endpoint, transport, tmp_path / "inventory.yml")
    env = {**os.environ, ENV: CANARY, "XDG_STATE_HOME": str(tmp_path / "state"), **_client_log_configs(tmp_path)}
    history = tmp_path / "history.sqlite"
    # The firewall allow-list refuses a WinRM port it would close, and port 0 picks one at random.
    common = ["-i", str(inventory), "--skip-tags", "firewall", "--history", str(history)]
    results = {
        "check": _run(["check", "baseline", *common, "--report-json", "c.json", "--report-junit", "c.xml",
                       "--report-html", "c.html"], env, tmp_path),
        "apply": _run(["apply", "baseline", *common, "--report-json", "a.json"], env, tmp_path),
        "doctor": _run(["doctor", "MAIL01", "-i", str(inventory)], env, tmp_path),
        "wrong password": _run(["check", "baseline", *common[:-2], "--no-history"],
                               {**env, ENV: "Wrong-" + CANARY}, tmp_path),
    }
    assert [results[c].returncode for c in ("check", "apply", "doctor", "wrong password")] == [3, 3, 0, 2], \
        {c: r.stderr[-3000:] for c, r in results.items()}
    assert sorted(p.name for p in tmp_path.glob("*.log")) == ["pypsrp.log", "spnego.log"]

    outputs = {f"{command} {stream}": getattr(result, stream)
               for command, result in results.items() for stream in ("stdout", "stderr")}
    outputs |= {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*")
                if p.is_file() and p != inventory}
    for text in forbidden(CANARY) + forbidden("Wrong-" + CANARY):
        leaks = [where for where, data in outputs.items() if text in data]
        assert not leaks, f"{text!r} appears in {leaks}"

    logs = {where: data for where, data in outputs.items() if where.endswith(("stderr", ".log"))}
    assert VALUE.encode() in results["check"].stdout + (tmp_path / "c.json").read_bytes()  # it was sent
    assert not [where for where, data in logs.items() if VALUE.encode() in data], "a payload reached a log"

    # Still useful: the debug output says what was sent, and what was redacted.
    stderr = results["check"].stderr.decode("utf-8", "replace")
    assert "DEBUG pypsrp.wsman: Sending message on attempt 0: [redacted: WS-Man Create envelope" in stderr
    assert "Packing PSRP message: [redacted: PSRP message" in stderr
    assert "urllib3.connectionpool: Starting new HTTP" in stderr
    if not endpoint.https:
        assert "NTLM step output: [redacted: NTLM AUTHENTICATE message" in stderr
        assert "NTLM step output: [redacted: NTLM AUTHENTICATE message" in (tmp_path / "spnego.log").read_text()
    assert "[redacted: WS-Man" in (tmp_path / "pypsrp.log").read_text()
