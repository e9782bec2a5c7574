"""The POP3/IMAP4 family's consequences: which protocols accept credentials in clear text, from the
lab state, with the lab's own model of LoginType (not the kind's code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hardening import apply, load_lab, load_playbook
from hardening.inventory import Inventory
from hardening.lab.models.pop_imap import clear_text_logins

ROOT = Path(__file__).resolve().parents[2]


def _problems(hosts: dict[str, dict[str, Any]]) -> list[str]:
    return [p for name, state in hosts.items() for p in clear_text_logins(name, state)]


def test_the_demo_as_shipped_takes_clear_text_logins_where_the_service_runs() -> None:
    hosts = {name: host.state for name, host in load_lab().hosts.items()}
    # MAIL01's IMAP4 is PlainTextLogin too, but its service is stopped; MAIL02's POP3 is
    # PlainTextAuthentication, which takes Basic only inside TLS.
    assert _problems(hosts) == [
        "MAIL01: POP3 accepts user names and passwords in clear text on [::]:110, 0.0.0.0:110 (LoginType "
        "PlainTextLogin, MSExchangePOP3 running): a client that does not start TLS sends its credentials readable "
        "on the network",
        "MAIL03: IMAP4 accepts user names and passwords in clear text on [::]:143, 0.0.0.0:143 (LoginType "
        "PlainTextLogin, MSExchangeIMAP4 running): a client that does not start TLS sends its credentials readable "
        "on the network"]


def test_no_unencrypted_binding_or_secure_login_exposes_nothing() -> None:
    hosts = {name: host.state for name, host in load_lab().hosts.items()}
    hosts["MAIL01"]["pop3"]["UnencryptedOrTLSBindings"] = []
    hosts["MAIL03"]["imap4"]["LoginType"] = "SecureLogin"
    assert _problems(hosts) == []


def test_the_shipped_spa_playbook_leaves_no_clear_text_login(demo_inventory: Inventory) -> None:
    lab = load_lab()
    run = apply(load_playbook(ROOT / "playbooks" / "pop3-spa.yml"), demo_inventory, lab=lab)
    assert {o.status.value for o in run.outcomes} <= {"fixed", "compliant"}
    assert _problems({name: host.state for name, host in lab.hosts.items()}) == []
