"""The whole check → apply → apply → check loop through the real clients (pypsrp and pywinrm) against
the loopback endpoint: NTLM over HTTP with message encryption, and Basic over HTTPS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hardening import apply, check, load_inventory, load_lab, load_playbook
from hardening.inventory import Inventory
from hardening.lab.endpoint import PASSWORD, LabEndpoint, serve_lab
from hardening.playbook import Playbook

ROOT = Path(__file__).resolve().parents[2]
PASSWORD_ENV = "HARDENING_LAB_TEST_PASSWORD"


@pytest.fixture
def playbook() -> Playbook:
    """The demo's three families (receive connectors, POP3/IMAP4, NTFS): Exchange and Windows requests."""
    return load_playbook(ROOT / "playbooks" / "smtp-tls.yml").__class__(
        "e2e", "e2e", "", tuple(c for name in ("smtp-tls.yml", "pop3-spa.yml", "ntfs.yml")
                                for c in load_playbook(ROOT / "playbooks" / name).controls
                                if c.kind in {"receive_connector_tls", "pop_imap_login", "ntfs_acl"}), ())


def _inventory(endpoint: LabEndpoint, tmp_path: Path, **override: object) -> Inventory:
    data = endpoint.inventory(f"env:{PASSWORD_ENV}")
    data["connection"].update(override)
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_inventory(path)


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[LabEndpoint]:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    with serve_lab(load_lab()) as served:
        yield served


@pytest.fixture
def https_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[LabEndpoint]:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    with serve_lab(load_lab(), https=True) as served:
        yield served


def _loop(playbook: Playbook, inventory: Inventory) -> list[int]:
    first = check(playbook, inventory)
    fixed = apply(playbook, inventory)
    again = apply(playbook, inventory)
    last = check(playbook, inventory)
    assert {o.status.value for o in fixed.outcomes} <= {"fixed", "compliant"}, [o.message for o in fixed.outcomes
                                                                                  if o.status.value == "failed"]
    assert {o.status.value for o in again.outcomes} == {"compliant"}
    assert {o.status.value for o in last.outcomes} == {"compliant"}
    return [first.exit_code, fixed.exit_code, again.exit_code, last.exit_code]


@pytest.mark.parametrize("transport", ["psrp", "winrm"])
def test_loop_over_http_with_ntlm_and_encryption(endpoint: LabEndpoint, tmp_path: Path, playbook: Playbook,
                                                 transport: str) -> None:
    inventory = _inventory(endpoint, tmp_path, transport=transport)
    assert _loop(playbook, inventory) == [3, 3, 0, 0]
    for host in endpoint.hosts.values():
        assert host.requests > 0
        clear = [body[:80] for body, sealed in zip(host.received, host.encrypted, strict=True) if body and not sealed]
        assert clear == [], f"{host.name}: bodies crossed unencrypted"  # auth legs carry no body
        assert not host.plaintext_seen(PASSWORD.encode()), "the password crossed in clear"
        assert not host.plaintext_seen(b"ConvertFrom-Json"), "script text crossed in clear"
        assert not host.plaintext_seen(b"Set-PopSettings")


@pytest.mark.parametrize("transport", ["psrp", "winrm"])
def test_loop_over_https_with_basic(https_endpoint: LabEndpoint, tmp_path: Path, playbook: Playbook,
                                    transport: str) -> None:
    inventory = _inventory(https_endpoint, tmp_path, transport=transport, auth="basic", exchange_auth="basic")
    assert _loop(playbook, inventory) == [3, 3, 0, 0]


def test_an_unknown_ca_is_refused(https_endpoint: LabEndpoint, tmp_path: Path, playbook: Playbook) -> None:
    inventory = _inventory(https_endpoint, tmp_path, auth="basic", exchange_auth="basic")
    data = yaml.safe_load((tmp_path / "inventory.yml").read_text(encoding="utf-8"))
    del data["connection"]["ca_bundle"]
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    run = check(playbook, load_inventory(tmp_path / "inventory.yml"))
    assert run.exit_code == 2
    assert all(not h.reachable and "certificate" in (h.error or "") for h in run.hosts), [h.error for h in run.hosts]
    assert inventory  # the valid inventory was built first


def test_a_certificate_for_another_name_is_refused(https_endpoint: LabEndpoint, tmp_path: Path,
                                                   playbook: Playbook) -> None:
    _inventory(https_endpoint, tmp_path, auth="basic", exchange_auth="basic")
    data = yaml.safe_load((tmp_path / "inventory.yml").read_text(encoding="utf-8"))
    names = list(data["hosts"])
    # MAIL01's entry points at MAIL02's listener: its certificate names another host.
    data["hosts"][names[0]]["address"] = https_endpoint.hosts[names[1]].address.replace(
        https_endpoint.hosts[names[1]].address, https_endpoint.hosts[names[1]].dns_name)
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    run = check(playbook, load_inventory(tmp_path / "inventory.yml"), limit=[names[0]])
    assert run.exit_code == 2
    (host,) = run.hosts
    assert not host.reachable and host.error


# Requests per host for the demo controls (receive connectors, POP3/IMAP4, NTFS) through the real clients,
# HTTP + NTLM + encryption:
#   psrp check:  facts 7 (Windows pool open 5: empty POST, 2 NTLM legs, Create, Receive; one pipeline 2)
#                + Windows reads 2 (one pipeline for every script control) + Exchange pool open 5
#                + 3 distinct Exchange reads x 2 (Get-ReceiveConnector serves both connector controls)
#                + closing the two pools 2 = 22
#   psrp apply on a drifted host: + Windows writes 2 + 10 Exchange calls (5 writes, 5 re-reads) x 2
#                + the restart bundle 2 = 46
#   winrm: the Windows side through WinRS (a shell, 3 NTLM legs, 5 operations per bundle) = 25 / 53
# Controls that read the same cmdlets cost nothing more.
REQUESTS = {"psrp": {"check": 22, "apply-drifted": 46}, "winrm": {"check": 25, "apply-drifted": 53}}


@pytest.mark.parametrize("transport", ["psrp", "winrm"])
def test_request_counts_are_pinned(endpoint: LabEndpoint, tmp_path: Path, transport: str) -> None:
    baseline = load_playbook(ROOT / "playbooks" / "baseline.yml")
    baseline = baseline.__class__(baseline.path, baseline.name, "", tuple(
        c for c in baseline.controls if c.kind in {"receive_connector_tls", "pop_imap_login", "ntfs_acl"}),
        baseline.sources)
    inventory = _inventory(endpoint, tmp_path, transport=transport)
    run = check(baseline, inventory, limit=["MAIL01", "MAIL04"])
    assert {h.name: h.requests for h in run.hosts} == dict.fromkeys(["MAIL01", "MAIL04"], REQUESTS[transport]["check"])
    assert all(h.requests == endpoint.hosts[h.name].requests for h in run.hosts), "client and server disagree"
    applied = apply(baseline, inventory, limit=["MAIL01", "MAIL04"])
    assert {h.name: h.requests for h in applied.hosts} == {
        "MAIL01": REQUESTS[transport]["apply-drifted"], "MAIL04": REQUESTS[transport]["check"]}
    # More controls reading the same cmdlets cost nothing more.
    doubled = baseline.__class__(baseline.path, baseline.name, "", baseline.controls + tuple(
        c.__class__(**{**c.__dict__, "id": c.id + "-again"}) for c in baseline.controls
        if c.kind != "ntfs_acl"), baseline.sources)
    again = check(doubled, inventory, limit=["MAIL04"])
    assert again.hosts[0].requests == REQUESTS[transport]["check"]


@pytest.mark.parametrize(("fault", "after", "expect"), [
    ("drop", 0, "unreachable"),        # the very first request
    ("http500", 0, "unreachable"),
    ("auth", 0, "unreachable"),
    ("drop", 9, "read-failed"),        # after the facts: the Windows read bundle
])
def test_faults_give_the_right_outcomes(endpoint: LabEndpoint, tmp_path: Path, playbook: Playbook, fault: str,
                                        after: int, expect: str) -> None:
    inventory = _inventory(endpoint, tmp_path)
    endpoint.hosts["MAIL01"].inject(fault, after=after, times=10)
    run = check(playbook, inventory, limit=["MAIL01", "MAIL02"])
    mail01, mail02 = run.hosts
    assert run.exit_code == 2
    assert mail02.reachable and {o.status.value for o in mail02.outcomes} <= {"drifted", "compliant"}
    assert all(o.status.value == "failed" for o in mail01.outcomes)
    if expect == "unreachable":
        assert not mail01.reachable and mail01.error
    else:
        assert mail01.reachable and mail01.error


def test_a_connection_lost_after_the_writes_reports_nothing_fixed(endpoint: LabEndpoint, tmp_path: Path,
                                                                   playbook: Playbook) -> None:
    inventory = _inventory(endpoint, tmp_path)
    baseline_requests = check(playbook, inventory, limit=["MAIL01"]).hosts[0].requests
    # Let apply's facts and reads through (a check's requests, less the 2 closing ones), then drop.
    endpoint.hosts["MAIL01"].inject("drop", after=baseline_requests - 2 + 1, times=100)
    run = apply(playbook, inventory, limit=["MAIL01"])
    assert run.exit_code == 2
    assert not any(o.status.value == "fixed" for o in run.outcomes), [o.message for o in run.outcomes]
    assert any("result unknown" in o.message or "unreachable" in o.message or "not done" in o.message
               for o in run.outcomes)


@pytest.mark.parametrize("fault", ["drop", "http500"])
def test_a_fault_at_any_request_of_an_apply_never_reports_fixed_what_is_not(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, playbook: Playbook, fault: str) -> None:
    """Walk the fault through an apply's requests (every third one): the run fails (exit 2) or, when
    the fault hits a request that is retried or not needed, completes; and every outcome it calls
    fixed is really compliant afterwards (checked in process against the same simulated host)."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    monkeypatch.setattr("hardening.targets.windows.READ_RETRIES", (0.0,))  # no waiting between read retries
    total = REQUESTS["psrp"]["apply-drifted"]
    for after in range(0, total, 3):
        lab = load_lab()
        with serve_lab(lab) as served:
            inventory = _inventory(served, tmp_path)
            served.hosts["MAIL01"].inject(fault, after=after, times=1)
            run = apply(playbook, inventory, limit=["MAIL01"])
        truth = {o.control: o.status.value for o in check(playbook, _lab_inventory(tmp_path), lab=lab).outcomes}
        for outcome in run.outcomes:
            if outcome.status.value == "fixed":
                assert truth[outcome.control] == "compliant", (after, outcome.control, outcome.message)
        assert run.exit_code in {2, 3}, (after, run.exit_code)


def _lab_inventory(tmp_path: Path) -> Inventory:
    path = tmp_path / "lab-inventory.yml"
    path.write_text("connection: {transport: lab}\nhosts:\n  MAIL01: {}\n", encoding="utf-8")
    return load_inventory(path)
