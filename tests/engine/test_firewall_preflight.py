"""Anti-lockout and safety of the firewall and IPsec kinds, through the engine and the CLI.

- A playbook that would close the WinRM port a host is connected on (or Exchange's remote
  PowerShell port, or demand IPsec on it) is refused by ``apply`` before anything is sent: exit 1,
  one error listing each refused host × control with the control's file and line, and no request
  reaches the lab. ``check`` is never refused by the guard: it reads, and says on the outcome what
  ``apply`` would refuse.
- A listener the allow-list would cut fails the control before anything is written.
- A profile setting that Group Policy owns takes the local write but not the effect: the re-read
  says so (failed, never "fixed").
- The lab answers these kinds' blocks the way NetSecurity would: a second rule of one Name is
  refused, a Group Policy rule is not found in the PersistentStore, addresses are checked and
  IPv4 subnets read back with masks, a new IPsec rule needs its phase 1 set.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from hardening import apply as apply_run
from hardening import check, load_lab
from hardening.cli import main
from hardening.errors import InputErrors
from hardening.lab.models import SCRIPTS, LabScriptError

from .conftest import LAB_HOSTS, lab_host, outcomes, statuses, write_inventory, write_lab, write_playbook

ALLOWLIST_CLOSING_5985 = """\
name: allow-list without the WinRM HTTP port
hosts: all
controls:
  - id: firewall-https-management-only
    title: WinRM over HTTPS only
    firewall_allowlist:
      mode: exact
      management_ports: [5986]
      close_listeners: true
"""


def _cli(capsys: pytest.CaptureFixture[str], argv: list[Any]) -> tuple[int, str, list[str]]:
    """``hardening ARGV`` in process: exit code, stdout, the non-empty lines of stderr."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, [line for line in captured.err.splitlines() if line.strip()]


def _http_inventory(tmp_path: Path, **connection: Any) -> Any:
    """MAIL01..MAIL04 over the lab, connected with WinRM over HTTP (port 5985) unless told."""
    extra = {"scheme": "http", **connection}
    lines = "\n".join(f"  {k}: {v}" for k, v in extra.items())
    return write_inventory(tmp_path, extra=f"connection:\n  transport: lab\n{lines}\n")


def _refused_by_apply(playbook: Any, inventory: Any, fragment: str) -> InputErrors:
    """``apply`` refuses before anything reaches the lab; ``check`` reads and reports the refusal."""
    lab = load_lab()
    with pytest.raises(InputErrors) as info:
        apply_run(playbook, inventory, lab=lab)
    assert fragment in str(info.value)
    assert all(lab_host(lab, h).received == [] for h in LAB_HOSTS), "a request reached the lab"
    run = check(playbook, inventory, lab=load_lab())
    notes = [o.message for o in run.outcomes if "apply would refuse this control on this host: " in o.message]
    assert notes and all(fragment in n for n in notes), [o.message for o in run.outcomes]
    return info.value


def test_closing_the_connection_port_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path, ALLOWLIST_CLOSING_5985)
    inventory = _http_inventory(tmp_path)
    error = _refused_by_apply(playbook, inventory, "would close TCP 5985, the WinRM port")
    first = str(error.errors[0])
    assert "would close TCP 5985, the WinRM port MAIL01 is managed through" in first
    assert first.startswith(f"{tmp_path / 'playbook.yml'}:4:5: firewall_allowlist: ")  # the control
    assert "refused for host MAIL01" in first
    assert len(error.errors) == len(LAB_HOSTS)  # every host's refusal at once


def test_the_cli_refuses_with_exit_1_and_one_line_naming_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab_file = tmp_path / "lab.yml"
    write_lab(tmp_path, lambda hosts: None)
    playbook = tmp_path / "firewall.yml"
    playbook.write_text(ALLOWLIST_CLOSING_5985, encoding="utf-8")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(textwrap.dedent(f"""\
        lab: {lab_file}
        connection: {{transport: lab, scheme: http}}
        hosts: {{MAIL01: {{}}}}
        """), encoding="utf-8")
    code, out, err = _cli(capsys, ["apply", playbook, "-i", inventory])
    assert (code, out, len(err)) == (1, "", 2), err
    assert err[0] == "error: apply refused before anything was sent (1 problem):"
    assert err[1].startswith(f"  {playbook}:4:5: firewall_allowlist: refused for host MAIL01: ")
    assert "would close TCP 5985" in err[1]
    assert not (tmp_path / "lab.yml.state.json").exists(), "the lab was run"


def test_the_same_allow_list_runs_for_a_host_connected_on_5986(tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path, ALLOWLIST_CLOSING_5985)
    inventory = write_inventory(tmp_path)  # default scheme https: port 5986
    run = check(playbook, inventory, lab=load_lab())
    assert set(statuses(run).values()) == {"drifted"}


def test_a_non_standard_exchange_endpoint_port_must_stay_open(tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path, """\
        name: allow-list
        hosts: all
        controls:
          - id: firewall-allowlist
            title: Only the needed ports
            firewall_allowlist: {mode: exact}
        """)
    inventory = write_inventory(tmp_path, extra="connection: {transport: lab, exchange_port: 8080}\n")
    _refused_by_apply(playbook, inventory, "would close TCP 8080, Exchange's remote PowerShell")
    opened = write_playbook(tmp_path, """\
        name: allow-list
        hosts: all
        controls:
          - id: firewall-allowlist
            title: Only the needed ports
            firewall_allowlist:
              mode: exact
              extra: [{name: exchange-ps, description: Exchange remote PowerShell, ports: [8080]}]
        """, name="opened.yml")
    assert check(opened, inventory, lab=load_lab()).hosts


@pytest.mark.parametrize(("kind", "params", "fragment"), [
    ("firewall_rule", "{name: block-inbound, action: Block, protocol: TCP, local_ports: [5985]}",
     "an inbound Block rule over TCP 5985 from Any would cut the WinRM port"),
    ("firewall_rule", "{name: block-all-tcp, action: Block, protocol: Any, remote_addresses: [LocalSubnet]}",
     "an inbound Block rule over TCP 5985 from LocalSubnet"),
    ("ipsec_rule", "{name: require-everything, remote_addresses: [Any], inbound_security: Require}",
     "inbound Require from Any over TCP 5985 would demand IPsec"),
])
def test_rules_that_would_cut_the_connection_are_refused(tmp_path: Path, kind: str, params: str,
                                                         fragment: str) -> None:
    playbook = write_playbook(tmp_path, f"""\
        name: lockout
        hosts: all
        controls:
          - id: lockout
            title: Would lock us out
            {kind}: {params}
        """)
    _refused_by_apply(playbook, _http_inventory(tmp_path), fragment)


@pytest.mark.parametrize(("kind", "params"), [
    ("firewall_rule", "{name: block-bad-subnet, action: Block, protocol: TCP, local_ports: [5985], "
                      "remote_addresses: [203.0.113.0/24]}"),
    ("firewall_rule", "{name: block-out, direction: Outbound, action: Block, protocol: TCP, remote_ports: [5985]}"),
    ("firewall_rule", "{name: disabled-block, enabled: false, action: Block, protocol: TCP, local_ports: [5985]}"),
    ("ipsec_rule", "{name: request-everything, remote_addresses: [Any], inbound_security: Request}"),
    ("ipsec_rule", "{name: require-backup, remote_addresses: [Any], inbound_security: Require, protocol: TCP, "
                   "local_ports: [10000]}"),
])
def test_rules_that_leave_the_connection_alone_are_not_refused(tmp_path: Path, kind: str, params: str) -> None:
    playbook = write_playbook(tmp_path, f"""\
        name: harmless
        hosts: all
        controls:
          - id: harmless
            title: Leaves WinRM alone
            {kind}: {params}
        """)
    assert check(playbook, _http_inventory(tmp_path), lab=load_lab()).hosts


def test_a_listener_the_allow_list_would_cut_fails_before_writing(tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path, """\
        name: allow-list
        hosts: all
        controls:
          - id: firewall-allowlist
            title: Only the needed ports
            firewall_allowlist: {mode: exact, pop3: tls}
        """)
    inventory = write_inventory(tmp_path)
    lab = load_lab()
    first = check(playbook, inventory, lab=lab)
    drift = outcomes(first)[("MAIL01", "firewall-allowlist")]
    assert drift.status.value == "drifted"
    assert drift.before["listeners"]["OutsideAllowList"][0]["port"] == 110
    run = apply_run(playbook, inventory, lab=lab)
    failed = outcomes(run)[("MAIL01", "firewall-allowlist")]
    assert failed.status.value == "failed"
    assert failed.message.startswith("the allow-list would cut what listens on TCP 110 (Microsoft.Exchange.Pop3: "
                                     "MSExchangePOP3); TCP 445 (System); TCP 3389 (svchost: TermService) on MAIL01")
    assert "close_listeners: [110, 445, 3389]" in failed.message
    assert [name for name, _ in lab_host(lab, "MAIL01").received if name.endswith(".write")] == []
    # The POP3 rule Exchange setup made is still there and enabled: nothing was changed.
    rules = {r["name"]: r for r in lab_host(lab, "MAIL01").state["firewall"]["rules"]}
    assert rules["MSExchangePOP3 (TCP-In)"]["enabled"] is True


def test_disabled_rules_are_kept_and_named_for_rollback(tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path, """\
        name: allow-list
        hosts: all
        controls:
          - id: firewall-allowlist
            title: Only the needed ports
            firewall_allowlist: {mode: exact, pop3: tls, close_listeners: true}
        """)
    inventory = write_inventory(tmp_path, hosts=["MAIL01"])
    lab = load_lab()
    before = {r["name"] for r in lab_host(lab, "MAIL01").state["firewall"]["rules"]}
    run = apply_run(playbook, inventory, lab=lab)
    fixed = outcomes(run)[("MAIL01", "firewall-allowlist")]
    assert fixed.status.value == "fixed"
    rules = {r["name"]: r for r in lab_host(lab, "MAIL01").state["firewall"]["rules"]}
    assert before <= set(rules), "a rule was deleted"
    disabled = [e["name"] for e in fixed.before["inbound allow rules"]["Others"]]
    assert "Allow all TCP" in disabled and "RemoteDesktop-UserMode-In-TCP" in disabled
    assert all(rules[name]["enabled"] is False for name in disabled)
    assert rules["WINRM-HTTP-In-TCP"]["enabled"] is True  # kept by the default keep patterns
    assert [e["name"] for e in fixed.after["inbound allow rules"]["Others"]] == []


def test_a_profile_group_policy_owns_is_failed_not_fixed(tmp_path: Path) -> None:
    def gpo_public_profile(hosts: dict[str, Any]) -> None:
        hosts["MAIL01"]["firewall"]["profiles"]["Public"] = {"enabled": True, "default_inbound_action": "Allow",
                                                             "source": "GroupPolicy"}

    lab = write_lab(tmp_path, gpo_public_profile)
    playbook = write_playbook(tmp_path, """\
        name: allow-list
        hosts: all
        controls:
          - id: firewall-allowlist
            title: Only the needed ports
            firewall_allowlist: {mode: at_least, pop3: tls, close_listeners: true}
        """)
    run = apply_run(playbook, write_inventory(tmp_path, hosts=["MAIL01"]), lab=lab)
    outcome = outcomes(run)[("MAIL01", "firewall-allowlist")]
    assert outcome.status.value == "failed"
    assert outcome.message.startswith("written, but the re-read does not match: profile Public.DefaultInboundAction "
                                      "is Allow, should be Block")


def _lab_state(host: str = "MAIL01") -> dict[str, Any]:
    state: dict[str, Any] = lab_host(load_lab(), host).state
    return state


def test_lab_refuses_a_second_rule_of_one_name_and_finds_no_group_policy_rule() -> None:
    state = _lab_state()
    write = SCRIPTS[("firewall_rule", "write")]
    spec = {"display_name": "x", "description": "", "enabled": "True", "direction": "Inbound", "action": "Allow",
            "protocol": "TCP", "local_ports": ["25"], "remote_ports": ["Any"], "remote_addresses": ["Any"],
            "profile": "Any"}
    with pytest.raises(LabScriptError, match="already exists"):
        write(state, {"name": "WINRM-HTTP-In-TCP", "create": spec, "steps": []})
    state["firewall"]["rules"][0]["source"] = "GroupPolicy"
    name = state["firewall"]["rules"][0]["name"]
    with pytest.raises(LabScriptError, match="No MSFT_NetFirewallRule objects found"):
        write(state, {"name": name, "create": None, "steps": [{"property": "Enabled", "value": "False"}]})


def test_lab_checks_addresses_and_ports_and_prints_masks() -> None:
    state = _lab_state()
    write = SCRIPTS[("firewall_rule", "write")]
    base = {"display_name": "x", "description": "", "enabled": "True", "direction": "Inbound", "action": "Allow",
            "protocol": "TCP", "local_ports": ["25"], "remote_ports": ["Any"], "profile": "Any"}
    with pytest.raises(LabScriptError, match="The address is invalid"):
        write(state, {"name": "bad", "create": {**base, "remote_addresses": ["mail01.contoso.com"]}, "steps": []})
    write(state, {"name": "good", "create": {**base, "remote_addresses": ["10.0.0.0/24"]}, "steps": []})
    with pytest.raises(LabScriptError, match="only valid with the TCP or UDP protocol"):
        write(state, {"name": "good", "create": None, "steps": [{"property": "Protocol", "value": "Any"}]})
    (rule,) = SCRIPTS[("firewall_rule", "read")](state, {"name": "good", "resolve": []})["rules"]
    assert rule["remote_addresses"] == ["10.0.0.0/255.255.255.0"] and rule["protocol"] == "TCP"


def test_lab_new_ipsec_rule_needs_its_phase1_set() -> None:
    state = _lab_state()
    new = {"display_name": "x", "inbound_security": "Request", "outbound_security": "Request", "key_module": "Default",
           "profile": "Any", "local_addresses": ["Any"], "remote_addresses": ["10.0.0.10"],
           "phase1_auth_set": "nowhere-phase1", "enabled": "True"}
    with pytest.raises(LabScriptError, match="The Phase1AuthSet 'nowhere-phase1' was not found"):
        SCRIPTS[("ipsec_rule", "write")](state, {"name": "x", "phase1": None, "quickmode": None, "create": new,
                                                 "steps": []})
