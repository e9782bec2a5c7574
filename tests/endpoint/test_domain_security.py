"""Domain Security through the real pypsrp: the transport configuration's lists are changed with
``@{Add=...}``, which crosses the wire as a Hashtable (not a list, which would replace the whole
property), and the lab receives it as an add that keeps the other entries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hardening import apply, check, load_inventory, load_lab
from hardening.lab import Lab
from hardening.lab.endpoint import PASSWORD, LabEndpoint, serve_lab
from hardening.model import AddRemove
from hardening.playbook import load_playbook

PASSWORD_ENV = "HARDENING_LAB_TEST_PASSWORD"
PLAYBOOK = """\
name: Domain Security with Fabrikam
hosts: all
controls:
  - id: receive-side
    title: The internet receive connector accepts mutual TLS
    receive_connector_tls:
      select: {usage: internet, role: frontend}
      domain_secure_enabled: true
  - id: partner-domain-security
    title: The partner connector uses Domain Security
    send_connector_tls:
      select: {name: Partner Fabrikam}
      tls_domain: fabrikam.com
      domain_secure_enabled: true
      domain_secure_domains: [fabrikam.com]
"""


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LabEndpoint, Lab]]:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    lab = load_lab()
    with serve_lab(lab) as endpoint:
        yield endpoint, lab


def test_the_lists_are_added_to_over_psrp_and_the_other_partner_is_kept(
        served: tuple[LabEndpoint, Lab], tmp_path: Path) -> None:
    endpoint, lab = served
    data = endpoint.inventory(f"env:{PASSWORD_ENV}")
    data["connection"]["transport"] = "psrp"
    data["hosts"] = {"MAIL01": data["hosts"]["MAIL01"]}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    (tmp_path / "playbook.yml").write_text(PLAYBOOK, encoding="utf-8")
    inventory = load_inventory(tmp_path / "inventory.yml")
    playbook = load_playbook(tmp_path / "playbook.yml")

    fixed = apply(playbook, inventory)
    assert {o.control: o.status.value for o in fixed.outcomes} == {
        "receive-side": "fixed", "partner-domain-security": "fixed"}, [o.message for o in fixed.outcomes]
    config = lab.hosts["MAIL01"].state["transport_config"]
    assert config["TLSSendDomainSecureList"] == ["tailspintoys.com", "fabrikam.com"]
    assert config["TLSReceiveDomainSecureList"] == ["tailspintoys.com", "fabrikam.com"]
    [sent] = [params for name, params in lab.hosts["MAIL01"].received if name == "Set-TransportConfig"]
    assert sent == (("TLSSendDomainSecureList", AddRemove(add=("fabrikam.com",))),
                    ("TLSReceiveDomainSecureList", AddRemove(add=("fabrikam.com",))))
    assert {o.status.value for o in check(playbook, inventory).outcomes} == {"compliant"}
