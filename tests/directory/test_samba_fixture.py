"""The lab DC fixture itself: TLS with our CA, the Exchange-like schema and org, users, scratch trees."""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

import pytest
from ldap3 import BASE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPSocketOpenError
from ldap3.protocol.microsoft import security_descriptor_control

from .samba import SCHEMA_DN, SCHEMA_LDIF, SambaDC, parse_ldif, scratch_tree

SACL_ONLY = 0x08  # SD flags: SACL_SECURITY_INFORMATION
SE_SACL_PRESENT = 0x0010


def entries(conn: Connection) -> list[dict]:
    """Search results without the continuation references AD adds (e.g. to the schema NC)."""
    return [e for e in conn.response if e["type"] == "searchResEntry"]


def test_the_rootdse_answers_over_ldaps_with_our_ca(samba_dc: SambaDC) -> None:
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(samba_dc.ca_file), valid_names=[samba_dc.server_name])
    with Connection(Server(samba_dc.ldaps_url, tls=tls, get_info="NO_INFO"), auto_bind=True) as conn:  # anonymous
        assert conn.search("", "(objectClass=*)", BASE, attributes=["dnsHostName", "configurationNamingContext"])
        rootdse = conn.response[0]["attributes"]
    assert [name.lower() for name in rootdse["dnsHostName"]] == [samba_dc.server_name]
    assert rootdse["configurationNamingContext"] == [samba_dc.config_dn]


def test_the_certificate_names_the_dc_and_the_ip_and_the_key_is_private(samba_dc: SambaDC) -> None:
    context = ssl.create_default_context(cafile=str(samba_dc.ca_file))
    context.check_hostname = False  # checked by hand below: the DNS name and the IP are both in the SAN
    with socket.create_connection((samba_dc.ip, 636), timeout=5) as raw, context.wrap_socket(raw) as tls:
        san = tls.getpeercert()["subjectAltName"]
    assert ("DNS", samba_dc.server_name) in san
    assert ("DNS", "localhost") in san
    assert ("IP Address", samba_dc.ip) in san
    key = samba_dc.targetdir / "private" / "tls" / "key.pem"
    assert key.stat().st_mode & 0o777 == 0o600


def test_a_certificate_from_an_unknown_ca_is_refused(samba_dc: SambaDC) -> None:
    context = ssl.create_default_context(cafile=str(samba_dc.rogue_ca_file))
    with socket.create_connection((samba_dc.ip, 636), timeout=5) as raw, pytest.raises(ssl.SSLCertVerificationError):
        context.wrap_socket(raw, server_hostname=samba_dc.server_name)
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(samba_dc.rogue_ca_file), valid_names=[samba_dc.server_name])
    server = Server(samba_dc.ldaps_url, tls=tls, get_info="NO_INFO", connect_timeout=5)
    with pytest.raises(LDAPSocketOpenError):
        Connection(server, samba_dc.admin_user, samba_dc.admin_password, auto_bind=True)


def test_the_schema_classes_exist_and_four_exchange_servers_are_found(samba_dc: SambaDC) -> None:
    conn = samba_dc.admin_connection()
    try:
        conn.search(
            samba_dc.config_dn, "(objectCategory=msExchExchangeServer)", SUBTREE,
            attributes=["cn", "serialNumber", "versionNumber", "msExchCurrentServerRoles", "msExchServerSite"],
        )
        found = {e["attributes"]["cn"]: e for e in entries(conn)}
        assert set(found) == {"MAIL01", "MAIL02", "EDGE01", "EX2003"}
        assert {name: e["dn"] for name, e in found.items()} == dict(samba_dc.servers)
        mail02 = found["MAIL02"]["attributes"]
        assert mail02["serialNumber"] == ["Version 15.1 (Build 2507.6)"]
        assert mail02["msExchCurrentServerRoles"] == 2
        assert mail02["msExchServerSite"] == samba_dc.sites["Branch"]
        assert found["EDGE01"]["attributes"]["msExchCurrentServerRoles"] == 64
        assert not found["EX2003"]["raw_attributes"].get("msExchCurrentServerRoles")

        # the bitwise-AND matching rule works on our attribute as it does in AD
        conn.search(samba_dc.config_dn, "(msExchCurrentServerRoles:1.2.840.113556.1.4.803:=2)", attributes=["cn"])
        assert {e["attributes"]["cn"] for e in entries(conn)} == {"MAIL01", "MAIL02"}

        # other tests harden EX2003's virtual servers (the session's DC is shared), so no exact values here
        conn.search(samba_dc.smtp_vs_dn, "(objectClass=protocolCfgSMTPServer)", BASE,
                    attributes=["msExchAccessSSLFlags", "msExchAuthenticationFlags", "msExchServerBindings"])
        smtp = entries(conn)[0]["attributes"]
        assert isinstance(smtp["msExchAccessSSLFlags"], int) and isinstance(smtp["msExchAuthenticationFlags"], int)
        assert smtp["msExchServerBindings"] == [":25:"]
        conn.search(samba_dc.pop_vs_dn, "(objectClass=protocolCfgPOPServer)", BASE, attributes=["cn"])
        assert len(entries(conn)) == 1

        conn.search(SCHEMA_DN, "(lDAPDisplayName=msExchServerSite)", attributes=["attributeSyntax", "oMSyntax"])
        assert entries(conn)[0]["attributes"]["attributeSyntax"] == "2.5.5.1"
    finally:
        conn.unbind()


def test_only_the_administrator_reads_the_sacl(samba_dc: SambaDC) -> None:
    dn = samba_dc.servers["MAIL01"]
    controls = security_descriptor_control(sdflags=SACL_ONLY)
    reader = samba_dc.reader_connection()
    try:
        assert reader.search(dn, "(objectClass=*)", BASE, attributes=["nTSecurityDescriptor", "serialNumber"],
                             controls=controls)
        assert len(reader.response) == 1  # the entry comes back, without the attribute (no error)
        assert reader.response[0]["raw_attributes"]["serialNumber"] == [b"Version 15.2 (Build 1544.4)"]
        assert not reader.response[0]["raw_attributes"].get("nTSecurityDescriptor")
    finally:
        reader.unbind()
    admin = samba_dc.admin_connection()
    try:
        admin.search(dn, "(objectClass=*)", BASE, attributes=["nTSecurityDescriptor"], controls=controls)
        raw = admin.response[0]["raw_attributes"]["nTSecurityDescriptor"][0]
    finally:
        admin.unbind()
    assert raw[0] == 1  # a self-relative SECURITY_DESCRIPTOR, revision 1
    assert int.from_bytes(raw[2:4], "little") & SE_SACL_PRESENT or len(raw) == 20  # SACL-only (maybe empty) SD


def test_the_dc_runs_on_loopback_for_the_whole_session(samba_dc: SambaDC) -> None:
    assert samba_dc.is_running()
    os.kill(samba_dc.pid, 0)
    assert b"samba" in Path(f"/proc/{samba_dc.pid}/cmdline").read_bytes()
    assert samba_dc.ip.startswith("127.")
    assert samba_dc.ldaps_url == f"ldaps://{samba_dc.ip}"


def test_the_scratch_container_is_fresh_and_has_a_child_and_a_grandchild(samba_dc: SambaDC, ad_scratch: str) -> None:
    assert ad_scratch.endswith(f",{samba_dc.org_dn}")
    conn = samba_dc.admin_connection()
    try:
        conn.search(ad_scratch, "(objectClass=container)", SUBTREE, attributes=["cn"])
        assert sorted(e["dn"] for e in entries(conn)) == sorted(scratch_tree(ad_scratch))
    finally:
        conn.unbind()
    assert samba_dc.make_scratch("another") != ad_scratch


def test_usn_changed_and_samba_tool_are_oracles(samba_dc: SambaDC, ad_scratch: str) -> None:
    before = samba_dc.usn_changed(ad_scratch)
    conn = samba_dc.admin_connection()
    try:
        assert conn.modify(ad_scratch, {"description": [("MODIFY_REPLACE", ["touched"])]}), conn.result
    finally:
        conn.unbind()
    assert samba_dc.usn_changed(ad_scratch) > before
    sddl = samba_dc.samba_tool("dsacl", "get", f"--objectdn={ad_scratch}")
    assert "O:" in sddl and "D:" in sddl


def test_the_schema_ldif_parses_with_lab_oids_only() -> None:
    records = parse_ldif(SCHEMA_LDIF.read_text(encoding="utf-8"), {"<SchemaContainerDN>": SCHEMA_DN})
    adds = [r for r in records if r.changetype == "add"]
    names = {str(r.attributes["lDAPDisplayName"][0]) for r in adds}
    assert {"msExchCurrentServerRoles", "msExchServerSite", "msExchExchangeServer", "protocolCfgSMTPServer"} <= names
    for record in adds:
        assert record.dn.endswith(f",{SCHEMA_DN}")
        oid = record.attributes.get("attributeID") or record.attributes.get("governsID")
        assert oid and str(oid[0]).startswith("1.2.840.113556.1.8000.2554.999.4242."), record.dn
    site = next(r for r in adds if r.attributes["lDAPDisplayName"] == ["msExchServerSite"])
    # BER of 1.3.12.2.1011.28.0.714 (the DS-DN object class)
    assert site.attributes["oMObjectClass"] == [bytes.fromhex("2b0c0287731c00854a")]
    assert records[-1].changetype == "modify" and records[-1].dn == ""
