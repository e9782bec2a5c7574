"""Site values have no defaults: required variables, the inventory's render variables, and hosts
without a variant (never a silent green).

- A playbook's ``required_vars`` have no default; a run whose inventory does not set one refuses
  before anything is sent, listing every missing variable, its description, the controls and
  their parameters' file:line that need it, the hosts, and where to set it.
- A value the inventory sets at the top level, for a group or for a host satisfies it, and so does
  an including playbook's ``vars`` (a site's own playbook); a required variable given a default in
  the same playbook is refused at load time.
- ``groups`` and ``hostvars`` come from the inventory, as in Ansible.
- A host for which a control's kind has no variant gets ``unsupported`` and exit code 2, unless the
  control says ``on_unsupported: not_applicable``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hardening import PlaybookError, Status, check, load_lab, plan
from hardening import apply as apply_run
from hardening.errors import MissingVariablesError

from .conftest import LAB_HOSTS, lab_host, outcomes, write_inventory, write_playbook

SITE = """\
    name: site values
    required_vars:
      site_certificate: The certificate name POP3 offers (e.g. mail.example.org).
      admin_note: A note no control uses here.
    controls:
      - id: pop3-certificate
        title: POP3 offers the site's certificate
        pop_imap_login:
          protocol: pop3
          x509_certificate_name: "{{ site_certificate }}"
      - id: imap4-certificate
        title: IMAP4 offers the site's certificate
        pop_imap_login:
          protocol: imap4
          x509_certificate_name: "{{ site_certificate }}{{ imap_suffix }}"
    """


def test_missing_site_values_are_all_listed_and_nothing_is_sent(tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path, SITE)
    inventory = write_inventory(tmp_path)
    lab = load_lab()
    for run in (check, apply_run, plan):
        with pytest.raises(MissingVariablesError) as info:
            run(playbook, inventory, lab=lab) if run is not plan else run(playbook, inventory)
        assert info.value.variables == ("site_certificate", "imap_suffix")  # admin_note is used by nothing
    text = str(info.value)
    assert text.startswith(f"{inventory.path}: 2 variables that the selected controls need are not set; "
                           "nothing was sent:")
    assert "  site_certificate: The certificate name POP3 offers (e.g. mail.example.org)." in text
    assert f"    needed by pop3-certificate ({playbook.path}:10:" in text
    assert f"    needed by imap4-certificate ({playbook.path}:15:" in text
    assert "on MAIL01, MAIL02, MAIL03, MAIL04" in text
    assert "  imap_suffix: used by the playbook, which neither gives it a default nor declares it in required_vars" \
        in text
    assert "set them in the inventory's vars" in text
    assert all(lab_host(lab, h).received == [] for h in LAB_HOSTS)


def test_the_inventory_sets_them_at_any_level(tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path, SITE)
    inventory = write_inventory(tmp_path, hosts=("MAIL01", "MAIL02"), extra="""\
        vars: {imap_suffix: ""}
        groups: {first: {hosts: [MAIL01], vars: {site_certificate: mail01.example.org}}}
        """, host_specs={"MAIL02": {"vars": {"site_certificate": "mail02.example.org"}}})
    run = check(playbook, inventory, lab=load_lab())
    got = outcomes(run)
    assert got[("MAIL01", "pop3-certificate")].desired == {"MAIL01\\POP3": {"X509CertificateName":
                                                                             "mail01.example.org"}}
    assert got[("MAIL02", "imap4-certificate")].desired == {"MAIL02\\IMAP4": {"X509CertificateName":
                                                                              "mail02.example.org"}}


def test_only_the_selected_hosts_need_them(tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path, SITE)
    inventory = write_inventory(tmp_path, hosts=("MAIL01", "MAIL02"), host_specs={
        "MAIL01": {"vars": {"site_certificate": "mail01.example.org", "imap_suffix": ""}}})
    assert check(playbook, inventory, limit=["MAIL01"], lab=load_lab()).hosts
    with pytest.raises(MissingVariablesError, match=r"on MAIL02\n"):
        check(playbook, inventory, lab=load_lab())


def test_an_including_playbook_may_set_them(tmp_path: Path) -> None:
    write_playbook(tmp_path, SITE, name="shipped.yml")
    site = write_playbook(tmp_path, """\
        name: our site
        vars: {site_certificate: mail.example.org, imap_suffix: ""}
        include: [shipped.yml]
        """, name="site.yml")
    run = check(site, write_inventory(tmp_path, hosts=("MAIL01",)), lab=load_lab())
    assert {o.status for o in run.outcomes} <= {Status.DRIFTED, Status.COMPLIANT}


def test_a_required_variable_with_a_default_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text("name: x\nrequired_vars:\n  net: where from\nvars:\n  net: 10.0.0.0/8\n", encoding="utf-8")
    with pytest.raises(PlaybookError) as info:
        write_playbook(tmp_path, path.read_text(encoding="utf-8"), name="p.yml")
    assert str(info.value).startswith(f"{path}:5:3: vars.net: 'net' is a required variable of this playbook")


def test_groups_and_hostvars_come_from_the_inventory(tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path, """\
        name: inventory variables
        controls:
          - id: pop3-certificate
            title: POP3 certificate names the first mailbox server's address
            pop_imap_login:
              protocol: pop3
              x509_certificate_name: "{{ hostvars[groups['mailbox'][0]].address }}-{{ groups['all'] | length }}"
        """)
    inventory = write_inventory(tmp_path, hosts=("MAIL01", "MAIL02"), extra="""\
        groups: {mailbox: {hosts: [MAIL02]}}
        """, host_specs={"MAIL02": {"address": "mail02.example.org"}})
    run = check(playbook, inventory, limit=["MAIL01"], lab=load_lab())
    (outcome,) = run.outcomes
    assert outcome.desired == {"MAIL01\\POP3": {"X509CertificateName": "mail02.example.org-2"}}


UNSUPPORTED = """\
    name: modern only
    controls:
      - id: pop3-secure-login
        title: POP3 without clear-text credentials
        pop_imap_login: {protocol: pop3, login_type: SecureLogin}
      - id: imap4-secure-login
        title: IMAP4 without clear-text credentials
        on_unsupported: not_applicable
        pop_imap_login: {protocol: imap4, login_type: SecureLogin}
    """


def test_a_host_without_a_variant_is_never_green(tmp_path: Path) -> None:
    playbook = write_playbook(tmp_path, UNSUPPORTED)
    legacy = {"facts": {"computer_name": "MAIL01", "os_version": "5.2.3790", "exchange_version": "6.5.7638.1"}}
    inventory = write_inventory(tmp_path, hosts=("MAIL01",), host_specs={"MAIL01": legacy})
    run = check(playbook, inventory, lab=load_lab())
    got = outcomes(run)
    unsupported = got[("MAIL01", "pop3-secure-login")]
    assert unsupported.status is Status.UNSUPPORTED
    assert unsupported.message.startswith("not checked: pop_imap_login has no variant for this host (Windows "
                                          "Server 2003, Exchange Server 2003)")
    wanted_not = got[("MAIL01", "imap4-secure-login")]
    assert wanted_not.status is Status.NOT_APPLICABLE
    assert wanted_not.message.endswith("(not wanted there: on_unsupported: not_applicable)")
    assert run.summary["unsupported"] == 1
    assert run.exit_code == 2
    only_not_wanted = check(playbook, inventory, tags=["imap4-secure-login"], lab=load_lab())
    assert only_not_wanted.exit_code == 0
