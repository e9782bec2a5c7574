"""The engine on the in-process lab: restarts, policy, exceptions, faults, selection, request
counts, timeouts, unreachable hosts, exit codes, reports, declared facts, templating and plan.

Every test starts from a fresh lab; nothing depends on timing (clocks and dates are injected).
"""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hardening import HardeningError, InputError, Lab, Playbook, PlaybookError, Run, Status, check, load_lab, plan
from hardening import apply as apply_run
from hardening.compare import diff
from hardening.errors import MissingVariablesError
from hardening.inventory import Inventory
from hardening.kinds import KINDS
from hardening.lab import LabError
from hardening.model import CmdletCall, HostResult, Mode, Outcome
from hardening.report import JSON_SCHEMA_ID, run_to_json, write_junit
from hardening.run import Options, execute

from .conftest import (
    LAB_HOSTS,
    QUEUE,
    assert_every_write_reread,
    lab_host,
    outcomes,
    statuses,
    write_inventory,
    write_lab,
    write_playbook,
    writes,
)

POP3_SERVICES = ("MSExchangePOP3", "MSExchangePOP3BE")


def names(host_received: list[tuple[str, Any]]) -> list[str]:
    return [entry[0] for entry in host_received]


def two_pop3_controls(restart_a: str, restart_b: str) -> str:
    """Two controls that both need the POP3 services restarted when they change something."""
    return f"""\
        name: two POP3 controls
        controls:
          - id: pop3-login
            title: POP3 secure login
            tags: [pop3]
            pop_imap_login: {{protocol: pop3, login_type: SecureLogin, restart: {restart_a}}}
          - id: pop3-certificate
            title: POP3 certificate
            tags: [pop3, certificates]
            pop_imap_login: {{protocol: pop3, x509_certificate_name: pop.contoso.com, restart: {restart_b}}}
        """


# --- restarts ---------------------------------------------------------------------------------------


def test_restart_allowed_restarts_running_services_once_per_host(tmp_path: Path, lab: Lab,
                                                                 lab_inventory: Inventory) -> None:
    playbook = write_playbook(tmp_path, two_pop3_controls("allowed", "allowed"))
    run = apply_run(playbook, lab_inventory, lab=lab)
    got = outcomes(run)

    mail01 = lab_host(lab, "MAIL01")
    assert names(mail01.received).count("service_restart.write") == 1
    restart_data = next(data for name, data in mail01.received if name == "service_restart.write")
    assert restart_data == {"services": list(POP3_SERVICES)}
    assert {s: v["restarts"] for s, v in mail01.state["services"].items()} == {
        "MSExchangePOP3": 1, "MSExchangePOP3BE": 1, "MSExchangeIMAP4": 0, "MSExchangeIMAP4BE": 0,
        "MSExchangeTransport": 0, "MSExchangeFrontEndTransport": 0}
    for control in ("pop3-login", "pop3-certificate"):
        outcome = got[("MAIL01", control)]
        assert outcome.status is Status.FIXED
        assert outcome.restarted == POP3_SERVICES
        assert outcome.pending_restarts == ()
        assert "restarted MSExchangePOP3, MSExchangePOP3BE" in outcome.message

    # MAIL03: POP3 is stopped. It stays stopped, and the outcome says the setting applies when started.
    mail03 = lab_host(lab, "MAIL03")
    assert got[("MAIL03", "pop3-login")].status is Status.COMPLIANT
    cert = got[("MAIL03", "pop3-certificate")]
    assert cert.status is Status.FIXED
    assert cert.restarted == ()
    assert "MSExchangePOP3, MSExchangePOP3BE not running, left stopped" in cert.message
    assert {s: mail03.state["services"][s] for s in POP3_SERVICES} == {
        s: {"status": "Stopped", "restarts": 0} for s in POP3_SERVICES}

    # MAIL04: only the certificate drifted; one control is enough to restart, once.
    mail04 = lab_host(lab, "MAIL04")
    assert got[("MAIL04", "pop3-login")].status is Status.COMPLIANT
    assert got[("MAIL04", "pop3-certificate")].restarted == POP3_SERVICES
    assert [mail04.state["services"][s]["restarts"] for s in POP3_SERVICES] == [1, 1]


def test_restart_deferred_restarts_nothing_and_says_not_live(tmp_path: Path, lab: Lab,
                                                            lab_inventory: Inventory) -> None:
    playbook = write_playbook(tmp_path, two_pop3_controls("deferred", "deferred"))
    run = apply_run(playbook, lab_inventory, lab=lab)
    for name in LAB_HOSTS:
        host = lab_host(lab, name)
        assert "service_restart.write" not in names(host.received)
        assert all(v["restarts"] == 0 for v in host.state["services"].values())
    outcome = outcomes(run)[("MAIL01", "pop3-login")]
    assert outcome.status is Status.FIXED
    assert outcome.pending_restarts == POP3_SERVICES
    assert outcome.restarted == ()
    assert "not live until MSExchangePOP3, MSExchangePOP3BE restart (restart: deferred)" in outcome.message
    # A control that changed nothing needs no restart and reports none pending.
    assert outcomes(run)[("MAIL04", "pop3-login")].pending_restarts == ()


def test_no_restart_when_nothing_changed(lab: Lab, lab_inventory: Inventory, baseline: Playbook) -> None:
    apply_run(baseline, lab_inventory, limit=["MAIL04"], lab=lab)
    assert "service_restart.write" not in names(lab_host(lab, "MAIL04").received)


def test_deferred_control_is_live_when_another_control_restarted_its_services(
        tmp_path: Path, lab: Lab, lab_inventory: Inventory) -> None:
    playbook = write_playbook(tmp_path, two_pop3_controls("allowed", "deferred"))
    run = apply_run(playbook, lab_inventory, limit=["MAIL01"], lab=lab)
    assert [lab_host(lab, "MAIL01").state["services"][s]["restarts"] for s in POP3_SERVICES] == [1, 1]
    deferred = outcomes(run)[("MAIL01", "pop3-certificate")]
    assert deferred.pending_restarts == ()
    assert "not live" not in deferred.message


def test_restart_failure_fails_the_control_and_keeps_it_pending(tmp_path: Path, lab_inventory: Inventory,
                                                               baseline: Playbook) -> None:
    lab = write_lab(tmp_path, lambda hosts: hosts["MAIL01"].update(
        faults=[{"call": "service_restart.write", "error": "Cannot open MSExchangePOP3 service: access denied"}]))
    run = apply_run(baseline, lab_inventory, limit=["MAIL01"], lab=lab)
    pop3 = outcomes(run)[("MAIL01", "pop3-secure-login")]
    assert pop3.status is Status.FAILED
    assert pop3.pending_restarts == POP3_SERVICES
    assert "restarting MSExchangePOP3, MSExchangePOP3BE failed: Cannot open MSExchangePOP3 service" in pop3.message
    assert "not live yet" in pop3.message
    assert statuses(run)[("MAIL01", "ntfs-transport-queue")] == "fixed"


# --- what crosses the wire ------------------------------------------------------------------------------


def test_apply_writes_only_what_differs(lab: Lab, lab_inventory: Inventory, baseline: Playbook) -> None:
    apply_run(baseline, lab_inventory, limit=["MAIL02"], lab=lab)
    sent = [(name, data) for name, data in lab_host(lab, "MAIL02").received if name != "service_restart.write"
            and (name.startswith("Set-") or name.endswith(".write"))]
    # EnableGSSAPIAndNTLMAuth is already true; the queue's access list is already exact: neither is sent.
    assert sent == [
        ("ntfs_acl.write", {"path": QUEUE, "protected": True, "preserve_inherited": False}),
        ("Set-ReceiveConnector", (("Identity", "MAIL02\\Client Frontend MAIL02"), ("RequireTLS", True),
                                  ("AuthMechanism", ("Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS")))),
        ("Set-PopSettings", (("Server", "MAIL02"), ("LoginType", "SecureLogin"))),
    ]


# --- policy ---------------------------------------------------------------------------------------------


def test_policy_monitor_is_checked_never_written(tmp_path: Path, lab: Lab, lab_inventory: Inventory) -> None:
    playbook = write_playbook(tmp_path, """\
        name: monitored
        controls:
          - id: pop3-monitored
            title: POP3 secure login, watched only
            policy: monitor
            pop_imap_login: {protocol: pop3, login_type: SecureLogin, restart: allowed}
          - id: imap4-enforced
            title: IMAP4 secure login
            pop_imap_login: {protocol: imap4, login_type: SecureLogin}
        """)
    run = apply_run(playbook, lab_inventory, limit=["MAIL01"], lab=lab)
    monitored = outcomes(run)[("MAIL01", "pop3-monitored")]
    assert monitored.status is Status.DRIFTED
    assert monitored.message.startswith("policy monitor, not changed: MAIL01\\POP3.LoginType is PlainTextLogin")
    mail01 = lab_host(lab, "MAIL01")
    assert "Set-PopSettings" not in names(mail01.received)
    assert mail01.state["pop3"]["LoginType"] == "PlainTextLogin"
    assert statuses(run)[("MAIL01", "imap4-enforced")] == "fixed"
    assert run.exit_code == 3


# --- exceptions -----------------------------------------------------------------------------------------

EXCEPTIONS = """\
    name: exceptions
    controls:
      - id: pop3-active-exception
        title: POP3 secure login
        exceptions:
          - {hosts: MAIL01, reason: legacy scanner logs in with clear text (CHG-1234), until: 2025-06-30}
        pop_imap_login: {protocol: pop3, login_type: SecureLogin}
      - id: imap4-expired-exception
        title: IMAP4 secure login
        exceptions:
          - {hosts: MAIL01, reason: migration, until: 2025-05-31}
        pop_imap_login: {protocol: imap4, login_type: SecureLogin}
      - id: smtp-other-hosts-exception
        title: Client connectors require TLS
        exceptions:
          - {hosts: ["EDGE*", "!MAIL01"], reason: edge servers are out of scope}
        receive_connector_tls: {select: {usage: client, role: frontend}, require_tls: true}
      - id: ntfs-open-ended-exception
        title: Queue folder
        exceptions:
          - {hosts: "MAIL0[12]", reason: "queue moved to D, open-ended"}
        ntfs_acl: {path: "C:\\\\nowhere", protected: true}
    """


def test_exceptions(tmp_path: Path, lab: Lab, lab_inventory: Inventory) -> None:
    playbook = write_playbook(tmp_path, EXCEPTIONS)
    run = execute(Mode.APPLY, playbook, lab_inventory, Options(limit=("MAIL01", "MAIL03"), today=dt.date(2025, 6, 1)),
                  lab)
    got = outcomes(run)
    skipped = got[("MAIL01", "pop3-active-exception")]
    assert skipped.status is Status.SKIPPED
    assert skipped.message == "exception until 2025-06-30: legacy scanner logs in with clear text (CHG-1234)"
    assert "Set-PopSettings" not in names(lab_host(lab, "MAIL01").received)
    # The same control on a host the exception does not name is evaluated (MAIL03 is already compliant).
    assert got[("MAIL03", "pop3-active-exception")].status is Status.COMPLIANT
    # An expired exception is ignored.
    assert got[("MAIL01", "imap4-expired-exception")].status is Status.FIXED
    # A pattern that matches no host (and a negation of this host) does not skip.
    assert got[("MAIL01", "smtp-other-hosts-exception")].status is Status.FIXED
    # Open-ended (no until) on a glob: skipped on MAIL01, evaluated (and failed: no such folder) on MAIL03.
    assert got[("MAIL01", "ntfs-open-ended-exception")].message == "exception: queue moved to D, open-ended"
    assert got[("MAIL03", "ntfs-open-ended-exception")].status is Status.FAILED


def test_exception_holds_on_its_last_day_and_not_after(tmp_path: Path, lab_inventory: Inventory) -> None:
    playbook = write_playbook(tmp_path, EXCEPTIONS)
    on_last_day = execute(Mode.CHECK, playbook, lab_inventory, Options(limit=("MAIL01",), today=dt.date(2025, 6, 30)),
                          load_lab())
    day_after = execute(Mode.CHECK, playbook, lab_inventory, Options(limit=("MAIL01",), today=dt.date(2025, 7, 1)),
                        load_lab())
    assert statuses(on_last_day)[("MAIL01", "pop3-active-exception")] == "skipped"
    assert statuses(day_after)[("MAIL01", "pop3-active-exception")] == "drifted"


# --- faults ---------------------------------------------------------------------------------------------


def _fault(host: str, call: str, error: str, times: int | None = None) -> Callable[[dict[str, Any]], None]:
    def edit(hosts: dict[str, Any]) -> None:
        fault: dict[str, Any] = {"call": call, "error": error}
        if times is not None:
            fault["times"] = times
        hosts[host]["faults"] = [fault]
    return edit


def _assert_fixed_means_reread(run: Run, lab: Lab) -> None:
    """Every fixed outcome carries an after state read back from the host that matches the desired one."""
    for outcome in run.outcomes:
        if outcome.status is Status.FIXED:
            assert outcome.after, outcome
            assert diff(outcome.desired, outcome.after, KINDS[outcome.kind].comparers) == (), outcome
    for name in LAB_HOSTS:
        assert_every_write_reread(lab_host(lab, name))


def test_fault_on_set_popsettings(tmp_path: Path, lab_inventory: Inventory, baseline: Playbook) -> None:
    lab = write_lab(tmp_path, _fault("MAIL01", "Set-PopSettings", "Active Directory operation failed on DC01."))
    run = apply_run(baseline, lab_inventory, lab=lab)
    got = outcomes(run)
    pop3 = got[("MAIL01", "pop3-secure-login")]
    assert pop3.status is Status.FAILED
    assert pop3.message == "write failed: Active Directory operation failed on DC01."
    assert pop3.after == {"MAIL01\\POP3": {"LoginType": "PlainTextLogin", "EnableGSSAPIAndNTLMAuth": True,
                                          "ExtendedProtectionPolicy": "None",
                                          "X509CertificateName": "mail01.contoso.com"}}
    assert pop3.restarted == () and pop3.pending_restarts == ()
    mail01 = lab_host(lab, "MAIL01")
    assert [mail01.state["services"][s]["restarts"] for s in POP3_SERVICES] == [0, 0]
    # Every other control on MAIL01 and every other host still gets its outcome.
    assert {c: s for (h, c), s in statuses(run).items() if h == "MAIL01"} == {
        "smtp-in-client-require-tls": "fixed", "smtp-in-internet-offers-tls": "fixed",
        "pop3-secure-login": "failed", "imap4-secure-login": "fixed", "ntfs-transport-queue": "fixed"}
    assert statuses(run)[("MAIL02", "pop3-secure-login")] == "fixed"
    assert len(list(run.outcomes)) == 4 * 5
    _assert_fixed_means_reread(run, lab)
    assert run.exit_code == 2


def test_fault_on_ntfs_write(tmp_path: Path, lab_inventory: Inventory, baseline: Playbook) -> None:
    lab = write_lab(tmp_path, _fault("MAIL02", "ntfs_acl.write",
                                     'Exception calling "SetAccessControl": Attempted to perform an unauthorized '
                                     'operation.'))
    run = apply_run(baseline, lab_inventory, lab=lab)
    ntfs = outcomes(run)[("MAIL02", "ntfs-transport-queue")]
    assert ntfs.status is Status.FAILED
    assert "write failed: Exception calling \"SetAccessControl\"" in ntfs.message
    assert ntfs.after[QUEUE]["Protected"] is False  # the re-read still ran and shows nothing changed
    assert lab_host(lab, "MAIL02").state["directories"][QUEUE]["protected"] is False
    assert {c: s for (h, c), s in statuses(run).items() if h == "MAIL02"} == {
        "smtp-in-client-require-tls": "fixed", "smtp-in-internet-offers-tls": "compliant",
        "pop3-secure-login": "fixed", "imap4-secure-login": "compliant", "ntfs-transport-queue": "failed"}
    _assert_fixed_means_reread(run, lab)


def test_fault_on_get_receiveconnector(tmp_path: Path, lab_inventory: Inventory, baseline: Playbook) -> None:
    lab = write_lab(tmp_path, _fault("MAIL03", "Get-ReceiveConnector",
                                     "Active Directory server DC01.contoso.com is not available."))
    run = apply_run(baseline, lab_inventory, lab=lab)
    for control in ("smtp-in-client-require-tls", "smtp-in-internet-offers-tls"):
        outcome = outcomes(run)[("MAIL03", control)]
        assert outcome.status is Status.FAILED
        assert outcome.message == "could not read: Active Directory server DC01.contoso.com is not available."
        assert outcome.changes == () and outcome.after == {}
    assert "Set-ReceiveConnector" not in names(lab_host(lab, "MAIL03").received)
    assert statuses(run)[("MAIL03", "imap4-secure-login")] == "fixed"
    assert statuses(run)[("MAIL03", "ntfs-transport-queue")] == "fixed"
    assert statuses(run)[("MAIL01", "smtp-in-client-require-tls")] == "fixed"
    _assert_fixed_means_reread(run, lab)


def test_fault_on_facts_read(tmp_path: Path, lab_inventory: Inventory, baseline: Playbook) -> None:
    lab = write_lab(tmp_path, _fault("MAIL02", "facts.read", "Get-CimInstance: The RPC server is unavailable."))
    run = check(baseline, lab_inventory, lab=lab)
    mail02 = next(h for h in run.hosts if h.name == "MAIL02")
    assert not mail02.reachable
    assert mail02.error == "could not read facts: Get-CimInstance: The RPC server is unavailable."
    assert mail02.requests == 1
    assert len(mail02.outcomes) == 5
    assert {o.status for o in mail02.outcomes} == {Status.FAILED}
    assert all(o.message == "host unreachable: could not read facts: Get-CimInstance: The RPC server is "
               "unavailable." for o in mail02.outcomes)
    assert all(h.reachable and len(h.outcomes) == 5 for h in run.hosts if h.name != "MAIL02")
    assert run.exit_code == 2


def test_fault_times_fails_then_succeeds(tmp_path: Path, lab_inventory: Inventory, baseline: Playbook) -> None:
    lab = write_lab(tmp_path, _fault("MAIL01", "Get-PopSettings", "Service unavailable", times=1))
    first = check(baseline, lab_inventory, limit=["MAIL01"], lab=lab)
    second = check(baseline, lab_inventory, limit=["MAIL01"], lab=lab)
    assert statuses(first)[("MAIL01", "pop3-secure-login")] == "failed"
    assert statuses(second)[("MAIL01", "pop3-secure-login")] == "drifted"


def test_reread_mismatch_when_a_cmdlet_write_silently_does_nothing(
        monkeypatch: pytest.MonkeyPatch, lab: Lab, lab_inventory: Inventory, baseline: Playbook) -> None:
    # The lab file cannot express "the write succeeds but changes nothing", so the test patches it in.
    host = lab_host(lab, "MAIL01")
    invoke = host.invoke

    def ignore_set_popsettings(call: CmdletCall) -> list[dict[str, Any]]:
        if call.cmdlet == "Set-PopSettings":
            host.received.append((call.cmdlet, call.parameters))
            return []
        return invoke(call)

    monkeypatch.setattr(host, "invoke", ignore_set_popsettings)
    run = apply_run(baseline, lab_inventory, limit=["MAIL01"], lab=lab)
    pop3 = outcomes(run)[("MAIL01", "pop3-secure-login")]
    assert pop3.status is Status.FAILED
    assert pop3.message == ("written, but the re-read does not match: MAIL01\\POP3.LoginType is PlainTextLogin, "
                            "should be SecureLogin")
    assert pop3.after["MAIL01\\POP3"]["LoginType"] == "PlainTextLogin"
    assert pop3.restarted == ()
    assert [host.state["services"][s]["restarts"] for s in POP3_SERVICES] == [0, 0]
    _assert_fixed_means_reread(run, lab)


def test_reread_mismatch_when_a_script_write_silently_does_nothing(
        monkeypatch: pytest.MonkeyPatch, lab: Lab, lab_inventory: Inventory, baseline: Playbook) -> None:
    # Nor can it make a script block succeed without effect: swap the lab's ntfs_acl write model for a no-op.
    import hardening.lab.host as lab_host_module

    scripts = {**lab_host_module.SCRIPTS, ("ntfs_acl", "write"): lambda state, data: {"written": True}}
    monkeypatch.setattr(lab_host_module, "SCRIPTS", scripts)
    run = apply_run(baseline, lab_inventory, limit=["MAIL02"], lab=lab)
    ntfs = outcomes(run)[("MAIL02", "ntfs-transport-queue")]
    assert ntfs.status is Status.FAILED
    assert ntfs.message.startswith("written, but the re-read does not match: ")
    assert f"{QUEUE}.Protected is False, should be True" in ntfs.message


def test_reread_failure_is_failed_with_state_unknown(
        monkeypatch: pytest.MonkeyPatch, lab: Lab, lab_inventory: Inventory, baseline: Playbook) -> None:
    host = lab_host(lab, "MAIL01")
    invoke = host.invoke
    reads = {"n": 0}

    def second_read_fails(call: CmdletCall) -> list[dict[str, Any]]:
        if call.cmdlet == "Get-PopSettings":
            reads["n"] += 1
            if reads["n"] == 2:
                raise LabError("The remote server returned an error: (500).")
        return invoke(call)

    monkeypatch.setattr(host, "invoke", second_read_fails)
    run = apply_run(baseline, lab_inventory, limit=["MAIL01"], lab=lab)
    pop3 = outcomes(run)[("MAIL01", "pop3-secure-login")]
    assert pop3.status is Status.FAILED
    assert pop3.message == "written, but the re-read failed: The remote server returned an error: (500).; state unknown"
    assert pop3.after == {}


def test_lab_file_can_express_a_silent_write(tmp_path: Path, lab_inventory: Inventory, baseline: Playbook) -> None:
    lab = write_lab(tmp_path, lambda hosts: hosts["MAIL01"].update(
        faults=[{"call": "Set-PopSettings", "effect": "ignore"}]))
    run = apply_run(baseline, lab_inventory, limit=["MAIL01"], lab=lab)
    assert outcomes(run)[("MAIL01", "pop3-secure-login")].message.startswith("written, but the re-read does not match")


# --- selection ------------------------------------------------------------------------------------------


def test_limit_selects_hosts_and_sends_nothing_to_others(lab: Lab, lab_inventory: Inventory,
                                                         baseline: Playbook) -> None:
    run = check(baseline, lab_inventory, limit=["MAIL02"], lab=lab)
    assert [h.name for h in run.hosts] == ["MAIL02"]
    assert all(lab_host(lab, n).received == [] for n in LAB_HOSTS if n != "MAIL02")
    negated = check(baseline, lab_inventory, limit=["!MAIL02"], lab=load_lab())
    assert [h.name for h in negated.hosts] == ["MAIL01", "MAIL03", "MAIL04"]


def test_limit_by_group(tmp_path: Path, baseline: Playbook) -> None:
    inventory = write_inventory(tmp_path, extra="""\
        groups:
          windows2022: {hosts: [MAIL03, MAIL04]}
        """)
    run = check(baseline, inventory, limit=["windows2022"], lab=load_lab())
    assert [h.name for h in run.hosts] == ["MAIL03", "MAIL04"]


def test_unknown_limit_is_an_input_error(lab_inventory: Inventory, baseline: Playbook) -> None:
    with pytest.raises(InputError, match="unknown host or group 'MAIL99'") as info:
        check(baseline, lab_inventory, limit=["MAIL99"], lab=load_lab())
    assert info.value.exit_code == 1


@pytest.mark.parametrize(("tags", "skip_tags", "expected"), [
    (["spa"], [], {"pop3-secure-login", "imap4-secure-login"}),
    (["pop3"], [], {"pop3-secure-login"}),
    (["ntfs-transport-queue"], [], {"ntfs-transport-queue"}),  # a control's id works as a tag
    (["receive_connector_tls"], [], {"smtp-in-client-require-tls", "smtp-in-internet-offers-tls"}),  # its kind too
    ([], ["spa", "ntfs"], {"smtp-in-client-require-tls", "smtp-in-internet-offers-tls"}),
    (["smtp", "ntfs"], ["smtp-in-internet-offers-tls"], {"smtp-in-client-require-tls", "ntfs-transport-queue"}),
])
def test_tags_and_skip_tags(lab_inventory: Inventory, baseline: Playbook, tags: list[str], skip_tags: list[str],
                            expected: set[str]) -> None:
    run = check(baseline, lab_inventory, tags=tags, skip_tags=skip_tags, lab=load_lab())
    for host in run.hosts:
        assert {o.control for o in host.outcomes} == expected
    assert len(run.hosts) == (4 if expected else 0)


def test_a_tag_that_selects_nothing_is_refused(lab_inventory: Inventory, baseline: Playbook) -> None:
    lab = load_lab()
    with pytest.raises(InputError, match=r"no control of .* has the tag, id or kind 'no-such-tag'"):
        check(baseline, lab_inventory, tags=["no-such-tag"], lab=lab)
    assert all(lab_host(lab, n).received == [] for n in LAB_HOSTS)


def test_options_select_like_the_api(lab_inventory: Inventory, baseline: Playbook) -> None:
    run = execute(Mode.CHECK, baseline, lab_inventory, Options(limit=("MAIL01", "MAIL04"), tags=("tls",),
                                                               skip_tags=("smtp-in-internet-offers-tls",)), load_lab())
    assert set(statuses(run)) == {("MAIL01", "smtp-in-client-require-tls"), ("MAIL04", "smtp-in-client-require-tls")}


# --- request counts -------------------------------------------------------------------------------------

MORE_CONTROLS = """\
    name: baseline and more
    include: [{baseline}]
    controls:
      - id: extra-pop3-certificate
        title: POP3 certificate
        pop_imap_login: {{protocol: pop3, x509_certificate_name: "{{{{ facts.computer_name | lower }}}}.contoso.com"}}
      - id: extra-imap4-gssapi
        title: IMAP4 offers NTLM/Kerberos
        pop_imap_login: {{protocol: imap4, enable_gssapi_and_ntlm: true}}
      - id: extra-hub-tls
        title: Hub connectors offer TLS
        receive_connector_tls: {{select: {{role: hub}}, auth_mechanism_include: [Tls]}}
      - id: extra-outbound-proxy
        title: Outbound proxy keeps BasicAuthRequireTLS
        receive_connector_tls: {{select: {{name: "Outbound Proxy*"}}, basic_auth_require_tls: true}}
    """


def _requests(run: Run) -> dict[str, int]:
    return {h.name: h.requests for h in run.hosts}


def test_request_counts_are_pinned_and_independent_of_control_count(tmp_path: Path, baseline: Playbook,
                                                                    lab_inventory: Inventory) -> None:
    # check: facts 1 + one bundle per channel (the Windows script, the Exchange cmdlets) = 3.
    assert _requests(check(baseline, lab_inventory, lab=load_lab())) == dict.fromkeys(LAB_HOSTS, 3)
    # apply on a drifted host: + the write bundle per channel (re-reads ride along) + one restart bundle = 6;
    # on the compliant MAIL04 apply costs what check costs.
    applied = {"MAIL01": 6, "MAIL02": 6, "MAIL03": 6, "MAIL04": 3}
    assert _requests(apply_run(baseline, lab_inventory, lab=load_lab())) == applied

    more = write_playbook(tmp_path, MORE_CONTROLS.format(baseline=Path(baseline.path).resolve()))
    assert len(more.controls) == len(baseline.controls) + 4
    assert _requests(check(more, lab_inventory, lab=load_lab())) == dict.fromkeys(LAB_HOSTS, 3)
    run = apply_run(more, lab_inventory, lab=load_lab())
    assert _requests(run) == applied
    assert "failed" not in statuses(run).values()


def test_one_channel_only_costs_one_bundle(tmp_path: Path, lab_inventory: Inventory) -> None:
    playbook = write_playbook(tmp_path, two_pop3_controls("deferred", "deferred"))
    assert _requests(check(playbook, lab_inventory, lab=load_lab())) == dict.fromkeys(LAB_HOSTS, 2)
    # apply: facts, read, write (no restart bundle: deferred)
    assert _requests(apply_run(playbook, lab_inventory, lab=load_lab()))["MAIL01"] == 3


# --- timeouts and unreachable hosts ---------------------------------------------------------------------


def test_per_host_timeout_with_an_injected_clock(lab: Lab, lab_inventory: Inventory, baseline: Playbook) -> None:
    # Time passes only while MAIL02 is being talked to: 1000 s per request it receives.
    mail02 = lab_host(lab, "MAIL02")
    options = Options(forks=1, timeout=10, clock=lambda: 1000.0 * len(mail02.received))
    run = execute(Mode.CHECK, baseline, lab_inventory, options, lab)
    by_host = {h.name: h for h in run.hosts}
    assert by_host["MAIL02"].reachable  # it answered the facts; then its time ran out
    assert by_host["MAIL02"].error == "per-host timeout of 10 s reached"
    assert by_host["MAIL02"].requests == 1  # the facts went out; the read bundle was never sent
    assert {o.message for o in by_host["MAIL02"].outcomes} == {
        "not done: per-host timeout of 10 s reached before its requests were sent"}
    assert {o.status for o in by_host["MAIL02"].outcomes} == {Status.FAILED}
    assert names(mail02.received) == ["facts.read"]
    for name in ("MAIL01", "MAIL03", "MAIL04"):
        assert by_host[name].reachable and by_host[name].requests == 3
        assert Status.FAILED not in {o.status for o in by_host[name].outcomes}
    assert run.exit_code == 2


def test_timeout_before_restart_keeps_verified_outcomes(lab: Lab, lab_inventory: Inventory,
                                                        baseline: Playbook) -> None:
    mail01 = lab_host(lab, "MAIL01")
    # The clock jumps once the write bundle has been answered, so only the restart round trip is late.
    options = Options(forks=1, timeout=10, limit=("MAIL01",),
                      clock=lambda: 1000.0 if "Set-PopSettings" in names(mail01.received) else 0.0)
    run = execute(Mode.APPLY, baseline, lab_inventory, options, lab)
    assert mail01.state["directories"][QUEUE]["protected"] is True  # the write did happen
    assert statuses(run)[("MAIL01", "ntfs-transport-queue")] == "fixed"


def test_inventory_host_without_a_lab_host_is_unreachable(tmp_path: Path, lab: Lab, baseline: Playbook) -> None:
    inventory = write_inventory(tmp_path, hosts=(*LAB_HOSTS, "MAIL09"))
    run = check(baseline, inventory, lab=lab)
    ghost = next(h for h in run.hosts if h.name == "MAIL09")
    assert not ghost.reachable and ghost.requests == 0
    assert ghost.error == "transport lab: no simulated host named MAIL09 in the built-in scenario"
    assert [o.status for o in ghost.outcomes] == [Status.FAILED] * 5
    assert all(o.message.startswith("host unreachable: transport lab: no simulated host named MAIL09")
               for o in ghost.outcomes)
    assert run.summary["unreachable"] == 1
    assert all(h.reachable for h in run.hosts if h.name != "MAIL09")
    assert run.exit_code == 2


# --- exit codes -----------------------------------------------------------------------------------------


def _run_of(*host_statuses: tuple[bool, tuple[Status, ...]]) -> Run:
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    hosts = tuple(
        HostResult(f"H{i}", reachable, None if reachable else "down", {}, 0,
                   tuple(Outcome(f"H{i}", f"c{j}", "t", "pop_imap_login", s, "m") for j, s in enumerate(sts)))
        for i, (reachable, sts) in enumerate(host_statuses))
    return Run("r", Mode.CHECK, now, now, "0", (), hosts)


S = Status


@pytest.mark.parametrize(("hosts", "code"), [
    ((), 0),
    (((True, ()),), 0),
    (((True, (S.COMPLIANT,)),), 0),
    (((True, (S.COMPLIANT, S.SKIPPED, S.NOT_APPLICABLE)),), 0),
    (((True, (S.COMPLIANT, S.DRIFTED)),), 3),
    (((True, (S.FIXED,)),), 3),
    (((True, (S.FIXED, S.DRIFTED, S.SKIPPED)),), 3),
    (((True, (S.FAILED,)),), 2),
    (((True, (S.DRIFTED, S.FIXED, S.FAILED)),), 2),
    (((True, (S.COMPLIANT,)), (False, ())), 2),
    (((True, (S.DRIFTED,)), (False, (S.FAILED,))), 2),
])
def test_exit_code_of_every_combination(hosts: tuple[tuple[bool, tuple[Status, ...]], ...], code: int) -> None:
    assert _run_of(*hosts).exit_code == code


def test_exit_codes_of_real_runs(tmp_path: Path, lab: Lab, lab_inventory: Inventory, baseline: Playbook) -> None:
    assert check(baseline, lab_inventory, lab=lab).exit_code == 3
    assert check(baseline, lab_inventory, limit=["MAIL04"], lab=lab).exit_code == 0
    assert apply_run(baseline, lab_inventory, lab=lab).exit_code == 3
    assert apply_run(baseline, lab_inventory, lab=lab).exit_code == 0
    assert check(baseline, lab_inventory, lab=lab).exit_code == 0
    assert plan(baseline, lab_inventory).exit_code == 0
    with_ghost = write_inventory(tmp_path, hosts=(*LAB_HOSTS, "MAIL09"))
    assert check(baseline, with_ghost, lab=lab).exit_code == 2
    assert HardeningError.exit_code == 1  # could not run: bad input, raised before any outcome


# --- reports --------------------------------------------------------------------------------------------

MIXED = """\
    name: mixed
    controls:
      - id: pop3-secure-login
        title: POP3 takes no clear-text credentials
        references: {{guide: Enforce SPA on POP3, stig: [EX19-MB-000001]}}
        exceptions:
          - {{hosts: MAIL03, reason: vendor scanner}}
        pop_imap_login: {{protocol: pop3, login_type: SecureLogin, restart: allowed}}
      - id: smtp-relay-require-tls
        title: Relay connectors require TLS
        receive_connector_tls: {{select: {{name: "Relay*"}}, require_tls: true}}
      - id: ntfs-queue
        title: Queue folder locked down
        ntfs_acl:
          path: "{queue}"
          mode: exact
          protected: true
          access:
            - {{principal: SYSTEM, rights: FullControl}}
            - {{principal: NETWORK SERVICE, rights: FullControl}}
            - {{principal: Administrators, rights: FullControl}}
    """


@pytest.fixture
def mixed_run(tmp_path: Path) -> Run:
    """An apply with every status: fixed, compliant, skipped, not_applicable, failed (fault), unreachable."""
    playbook = write_playbook(tmp_path, MIXED.format(queue=QUEUE.replace("\\", "\\\\")))
    inventory = write_inventory(tmp_path, hosts=(*LAB_HOSTS, "MAIL09"))
    lab = write_lab(tmp_path, _fault("MAIL02", "ntfs_acl.write", "Access to the path is denied."))
    return apply_run(playbook, inventory, lab=lab)


def test_json_report_of_a_mixed_run(mixed_run: Run) -> None:
    doc = run_to_json(mixed_run)
    assert json.loads(json.dumps(doc)) == doc
    assert doc["schema"] == JSON_SCHEMA_ID == "hardening.run/1"
    assert doc["mode"] == "apply" and doc["exit_code"] == 2
    assert dt.datetime.fromisoformat(doc["started_at"]) <= dt.datetime.fromisoformat(doc["finished_at"])
    assert [p["name"] for p in doc["playbooks"]] == ["mixed"]
    assert doc["playbooks"][0]["digest"].startswith("sha256:")
    assert doc["summary"] == {"hosts": 5, "unreachable": 1, "compliant": 2, "drifted": 0, "fixed": 4, "failed": 4,
                              "skipped": 1, "not_applicable": 4, "unsupported": 0}
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert {n: h["requests"] for n, h in hosts.items()} == {"MAIL01": 6, "MAIL02": 6, "MAIL03": 4, "MAIL04": 3,
                                                           "MAIL09": 0}
    assert hosts["MAIL09"]["reachable"] is False and "no simulated host named MAIL09" in hosts["MAIL09"]["error"]
    assert hosts["MAIL01"]["facts"]["exchange_release"] == "2019"
    by = {(h["name"], o["control"]): o for h in doc["hosts"] for o in h["outcomes"]}
    pop3 = by[("MAIL01", "pop3-secure-login")]
    assert set(pop3) == {"control", "title", "kind", "status", "message", "desired", "before", "after", "changes",
                         "references", "variant", "pending_restarts", "restarted", "params", "held"}
    assert pop3["held"] == []
    assert pop3["status"] == "fixed" and pop3["variant"] == "exchange-modern"
    assert pop3["changes"] == [{"path": "MAIL01\\POP3.LoginType", "from": "PlainTextLogin", "to": "SecureLogin"}]
    assert pop3["desired"] == {"MAIL01\\POP3": {"LoginType": "SecureLogin"}}
    assert pop3["after"]["MAIL01\\POP3"]["LoginType"] == "SecureLogin"
    assert pop3["restarted"] == ["MSExchangePOP3", "MSExchangePOP3BE"]
    assert pop3["references"] == {"guide": "Enforce SPA on POP3", "stig": ["EX19-MB-000001"]}
    assert by[("MAIL03", "pop3-secure-login")]["status"] == "skipped"
    assert by[("MAIL01", "smtp-relay-require-tls")]["status"] == "not_applicable"
    failed = by[("MAIL02", "ntfs-queue")]
    assert failed["status"] == "failed" and "Access to the path is denied." in failed["message"]
    ntfs = by[("MAIL01", "ntfs-queue")]
    assert ntfs["status"] == "fixed"
    # Kinds' bookkeeping (inherited entries, resolved names) stays out of reports.
    assert set(ntfs["before"][QUEUE]) == {"Owner", "Protected", "Access"}
    assert ntfs["changes"][0] == {"path": f"{QUEUE}.Protected", "from": False, "to": True}
    assert all(o["status"] == "failed" and o["message"].startswith("host unreachable")
               for o in hosts["MAIL09"]["outcomes"])


def test_junit_report_of_a_mixed_run(mixed_run: Run, tmp_path: Path) -> None:
    root = ET.parse(write_junit(mixed_run, tmp_path / "junit.xml")).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "15"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == [*LAB_HOSTS, "MAIL09"]
    counts = {n: (s.get("tests"), s.get("failures"), s.get("skipped"), s.get("errors")) for n, s in suites.items()}
    assert counts == {"MAIL01": ("3", "0", "1", "0"), "MAIL02": ("3", "1", "1", "0"), "MAIL03": ("3", "0", "2", "0"),
                      "MAIL04": ("3", "0", "1", "0"), "MAIL09": ("3", "3", "0", "0")}
    mail02 = {c.get("name"): c for c in suites["MAIL02"].findall("testcase")}
    failure = mail02["ntfs-queue: Queue folder locked down"].find("failure")
    assert failure is not None and failure.get("type") == "failed"
    assert "Access to the path is denied." in (failure.get("message") or "")
    assert f"{QUEUE}.Protected: False -> True" in (failure.text or "")
    assert mail02["pop3-secure-login: POP3 takes no clear-text credentials"].get("classname") == "MAIL02.pop_imap_login"
    skipped = suites["MAIL03"].find("testcase/skipped")
    assert skipped is not None and skipped.get("message") == "skipped: exception: vendor scanner"
    passed = suites["MAIL04"].find("testcase/system-out")
    assert passed is not None and (passed.text or "").startswith("compliant: ")
    prop = suites["MAIL09"].find("properties/property")
    assert prop is not None and prop.get("name") == "error" and "MAIL09" in (prop.get("value") or "")


# --- facts ----------------------------------------------------------------------------------------------

DECLARED = {"computer_name": "MAIL01", "os_version": "10.0.17763", "exchange_version": "15.2.1544.4",
            "exchange_install_path": "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\",
            "transport_queue_path": "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\TransportRoles\\data\\Queue"}


def test_declared_facts_skip_the_facts_round_trip(tmp_path: Path, lab: Lab, baseline: Playbook) -> None:
    inventory = write_inventory(tmp_path, host_specs={"MAIL01": {"facts": DECLARED}})
    run = check(baseline, inventory, lab=lab)
    requests = _requests(run)
    assert requests["MAIL01"] == 2 and requests["MAIL02"] == 3
    assert "facts.read" not in names(lab_host(lab, "MAIL01").received)
    assert names(lab_host(lab, "MAIL02").received).count("facts.read") == 1
    reference = check(baseline, write_inventory(tmp_path, name="plain.yml"), limit=["MAIL01"], lab=load_lab())
    assert {k: v for k, v in statuses(run).items() if k[0] == "MAIL01"} == statuses(reference)
    assert next(h for h in run.hosts if h.name == "MAIL01").facts["declared"] == DECLARED


def test_declared_facts_win_over_read_ones(tmp_path: Path, lab: Lab, baseline: Playbook) -> None:
    # No os_version declared: facts are read, then the declared key overrides the read one.
    inventory = write_inventory(tmp_path, host_specs={"MAIL02": {"facts": {"exchange_version": "6.5.7638.1"}}})
    run = check(baseline, inventory, limit=["MAIL02"], lab=lab)
    assert _requests(run) == {"MAIL02": 2}  # facts + the Windows bundle; no Exchange kind applies
    got = outcomes(run)
    for control in ("smtp-in-client-require-tls", "pop3-secure-login"):
        # No variant for this platform: not checked, which a scheduler must not read as compliant.
        assert got[("MAIL02", control)].status is Status.UNSUPPORTED
        assert got[("MAIL02", control)].message.startswith("not checked: ")
        assert "(Windows Server 2019, Exchange Server 2003)" in got[("MAIL02", control)].message
    assert got[("MAIL02", "ntfs-transport-queue")].status is Status.DRIFTED
    assert run.exit_code == 2


def test_partly_declared_facts_are_completed_by_reading_them(tmp_path: Path, lab: Lab, baseline: Playbook) -> None:
    # Without computer_name, os_version and exchange_version all declared, facts are read; declared ones win.
    inventory = write_inventory(tmp_path, host_specs={"MAIL01": {"facts": {"os_version": "10.0.17763",
                                                                           "exchange_version": "15.2.1544.4"}}})
    run = check(baseline, inventory, limit=["MAIL01"], lab=lab)
    assert "facts.read" in names(lab_host(lab, "MAIL01").received)
    assert statuses(run)[("MAIL01", "ntfs-transport-queue")] == "drifted"


def test_declared_facts_without_a_needed_path_make_the_control_not_applicable(tmp_path: Path, lab: Lab,
                                                                              baseline: Playbook) -> None:
    # Declared facts skip the read, so the transport queue folder stays unknown: the control that acts on
    # it says so, instead of guessing a path.
    declared = {"computer_name": "MAIL01", "os_version": "10.0.17763", "exchange_version": "15.2.1544.4"}
    inventory = write_inventory(tmp_path, host_specs={"MAIL01": {"facts": declared}})
    run = check(baseline, inventory, limit=["MAIL01"], lab=lab)
    ntfs = outcomes(run)[("MAIL01", "ntfs-transport-queue")]
    assert ntfs.status is Status.NOT_APPLICABLE
    assert ntfs.message == "MAIL01 has no transport queue folders in its facts"
    assert "facts.read" not in names(lab_host(lab, "MAIL01").received)
    assert statuses(run)[("MAIL01", "pop3-secure-login")] == "drifted"


def test_a_template_using_an_unknown_fact_fails_clearly_instead_of_rendering_none(tmp_path: Path, lab: Lab) -> None:
    declared = {"computer_name": "MAIL01", "os_version": "10.0.17763", "exchange_version": "15.2.1544.4"}
    inventory = write_inventory(tmp_path, host_specs={"MAIL01": {"facts": declared}})
    playbook = write_playbook(tmp_path, """\
        name: queue by template
        controls:
          - id: queue
            title: queue
            ntfs_acl:
              path: "{{ facts.exchange_install_path }}TransportRoles\\\\data\\\\Queue"
              access: [{principal: SYSTEM, rights: FullControl}]
        """)
    run = check(playbook, inventory, limit=["MAIL01"], lab=lab)
    ntfs = outcomes(run)[("MAIL01", "queue")]
    assert ntfs.status is Status.FAILED
    assert ntfs.message.startswith("bad parameters: ")
    assert "cannot render '{{ facts.exchange_install_path }}" in ntfs.message
    assert "has no value on this host" in ntfs.message


# --- templated parameters -------------------------------------------------------------------------------

VARS_PLAYBOOK = """\
    name: templated
    vars:
      pop_certificate: playbook.contoso.com
      pop_restart: allowed
    controls:
      - id: pop3-certificate
        title: POP3 certificate from variables
        pop_imap_login:
          protocol: pop3
          x509_certificate_name: "{{ pop_certificate }}"
          restart: "{{ pop_restart }}"
      - id: imap4-certificate
        title: IMAP4 certificate from facts
        pop_imap_login:
          protocol: imap4
          x509_certificate_name: "{{ facts.computer_name | lower }}.contoso.com"
      - id: hub-certificate
        title: Certificate name built from the host name
        receive_connector_tls:
          select: {name: "Default {{ host }}"}
          tls_certificate_name: "<I>CN=Contoso CA<S>CN={{ host | lower }}.contoso.com"
    """


def test_templated_parameters_vars_precedence_and_facts(tmp_path: Path, lab: Lab) -> None:
    playbook = write_playbook(tmp_path, VARS_PLAYBOOK)
    inventory = write_inventory(tmp_path, extra="""\
        vars: {pop_restart: deferred}
        groups:
          frontline: {hosts: [MAIL01, MAIL02], vars: {pop_certificate: group.contoso.com}}
        """, host_specs={"MAIL02": {"vars": {"pop_certificate": "host.contoso.com", "pop_restart": "allowed"}}})
    run = apply_run(playbook, inventory, lab=lab)
    got = outcomes(run)

    def wanted(host: str, control: str, prop: str) -> Any:
        return next(iter(got[(host, control)].desired.values()))[prop]

    # playbook vars < inventory vars < group vars < host vars
    assert wanted("MAIL03", "pop3-certificate", "X509CertificateName") == "playbook.contoso.com"
    assert wanted("MAIL01", "pop3-certificate", "X509CertificateName") == "group.contoso.com"
    assert wanted("MAIL02", "pop3-certificate", "X509CertificateName") == "host.contoso.com"
    assert got[("MAIL01", "pop3-certificate")].pending_restarts == POP3_SERVICES  # inventory vars: deferred
    assert got[("MAIL02", "pop3-certificate")].restarted == POP3_SERVICES  # host vars: allowed
    assert lab_host(lab, "MAIL02").state["pop3"]["X509CertificateName"] == "host.contoso.com"
    # facts: the lab's IMAP4 certificates are already mailNN.contoso.com
    assert all(got[(h, "imap4-certificate")].status is Status.COMPLIANT for h in LAB_HOSTS)
    hub = got[("MAIL04", "hub-certificate")]
    assert hub.status is Status.FIXED
    assert hub.desired == {"MAIL04\\Default MAIL04": {"TlsCertificateName": "<I>CN=Contoso CA<S>CN=mail04.contoso.com"}}


def test_a_parameter_that_cannot_render_is_refused_before_anything_is_sent(tmp_path: Path, lab: Lab,
                                                                          lab_inventory: Inventory) -> None:
    """Variables are known before any host is contacted: a template that cannot render is bad input."""
    playbook = write_playbook(tmp_path, """\
        name: undefined variable
        controls:
          - id: pop3-certificate
            title: POP3 certificate
            pop_imap_login: {protocol: pop3, x509_certificate_name: "{{ no_such_variable }}"}
        """)
    with pytest.raises(MissingVariablesError, match="no_such_variable: used by the playbook") as info:
        check(playbook, lab_inventory, limit=["MAIL01"], lab=lab)
    assert info.value.variables == ("no_such_variable",)
    assert f"needed by pop3-certificate ({playbook.path}:5:" in str(info.value)
    assert lab_host(lab, "MAIL01").received == []


def test_a_fact_template_that_cannot_render_fails_only_its_control(tmp_path: Path, lab: Lab,
                                                                   lab_inventory: Inventory) -> None:
    """Facts are known only after they are read, so such a parameter fails its control on that host."""
    playbook = write_playbook(tmp_path, """\
        name: undefined fact
        controls:
          - id: pop3-certificate
            title: POP3 certificate
            pop_imap_login: {protocol: pop3, x509_certificate_name: "{{ facts.no_such_fact }}"}
          - id: pop3-restart
            title: Restart value rendered to something invalid
            pop_imap_login: {protocol: pop3, login_type: SecureLogin, restart: "{{ facts.computer_name }}"}
          - id: imap4-login
            title: IMAP4 login
            pop_imap_login: {protocol: imap4, login_type: SecureLogin}
        """)
    run = check(playbook, lab_inventory, limit=["MAIL01"], lab=lab)
    got = outcomes(run)
    undefined = got[("MAIL01", "pop3-certificate")]
    assert undefined.status is Status.FAILED
    assert undefined.message.startswith(f"bad parameters: {playbook.path}:5:")
    assert "no_such_fact" in undefined.message
    invalid = got[("MAIL01", "pop3-restart")]
    assert invalid.status is Status.FAILED and "Input should be 'allowed' or 'deferred'" in invalid.message
    assert got[("MAIL01", "imap4-login")].status is Status.DRIFTED


# --- plan -----------------------------------------------------------------------------------------------


def test_plan_sends_nothing_and_describes_every_host(lab: Lab, lab_inventory: Inventory, baseline: Playbook) -> None:
    run = execute(Mode.PLAN, baseline, lab_inventory, Options(), lab)
    assert all(lab_host(lab, n).received == [] for n in LAB_HOSTS)
    assert set(run.plan_text) == set(LAB_HOSTS)
    assert [h.requests for h in run.hosts] == [0] * 4 and list(run.outcomes) == []
    for name in LAB_HOSTS:
        text = run.plan_text[name]
        assert text.startswith(f"# host {name}\n")
        for control in baseline.controls:
            assert f"## {control.id} ({control.kind}): {control.title}" in text
        assert f"Get-ReceiveConnector -Server '{name}'" in text
        assert f"Set-PopSettings -Server '{name}' -LoginType 'SecureLogin' -EnableGSSAPIAndNTLMAuth $true" in text
        assert "# hardening:call kind=ntfs_acl op=read" in text
    api = plan(baseline, lab_inventory)
    assert api.plan_text == run.plan_text
    assert run_to_json(api)["plan"] == dict(api.plan_text)


def test_plan_never_opens_a_target(tmp_path: Path, baseline: Playbook) -> None:
    inventory = write_inventory(tmp_path, hosts=("MAIL01", "MAIL09"))
    run = plan(baseline, inventory)
    assert set(run.plan_text) == {"MAIL01", "MAIL09"} and run.exit_code == 0


def test_plan_shows_assumed_facts_not_none(lab_inventory: Inventory, baseline: Playbook) -> None:
    # Regression: the plan once showed the queue path as 'NoneTransportRoles\\data\\Queue'.
    text = plan(baseline, lab_inventory, limit=["MAIL01"]).plan_text["MAIL01"]
    assert "None" not in text.replace("-AuthMechanism 'None'", "")
    assert "shown with assumed facts: Windows Server 2019, Exchange Server 2019" in text
    assert '"path":"C:\\\\Program Files\\\\Microsoft\\\\Exchange Server\\\\V15\\\\TransportRoles' in text


def test_an_exception_naming_an_unknown_host_is_refused(tmp_path: Path, lab_inventory: Inventory) -> None:
    """A misspelt exception would silently never apply: it is bad input, with its file and line."""
    playbook = write_playbook(tmp_path, """\
        name: exception typo
        controls:
          - id: pop3-login
            title: POP3 login
            exceptions:
              - {hosts: MAIL1, reason: legacy scanner}
            pop_imap_login: {protocol: pop3, login_type: SecureLogin}
        """)
    lab = load_lab()
    with pytest.raises(PlaybookError, match="unknown host or group 'MAIL1'") as info:
        check(playbook, lab_inventory, lab=lab)
    assert info.value.location.line == 6
    assert all(lab_host(lab, n).received == [] for n in LAB_HOSTS)


def test_a_change_budget_caps_the_writes_of_a_run(lab_inventory: Inventory, baseline: Playbook) -> None:
    lab = load_lab()
    run = execute(Mode.APPLY, baseline, lab_inventory, Options(forks=1, max_changes=3), lab)
    got = statuses(run)
    assert list(got.values()).count("fixed") == 3
    spent = [o for o in run.outcomes if o.status is Status.DRIFTED]
    assert spent and all(o.message.startswith("not changed: the run's change budget (3) is spent; ") for o in spent)
    assert sum(len(writes(lab_host(lab, n))) for n in LAB_HOSTS) >= 3
