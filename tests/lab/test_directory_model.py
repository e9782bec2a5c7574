"""The lab's simulated directory: what a search and a modify over LDAP answer, as a real DC would."""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hardening.errors import InputError
from hardening.lab import LabError, LabHost, load_lab
from hardening.lab.models.directory import LabDirectory, dn_key, parent_dn, parse_filter, sid_bytes
from hardening.lab.scenario import LabHostModel, _initial_state
from hardening.model import LdapCall, ScriptCall, Section
from hardening.security_descriptor import (
    CONTAINER_INHERIT,
    INHERITED,
    NO_PROPAGATE_INHERIT,
    AuditAce,
    OtherAce,
    parse_sacl,
    sacl_descriptor,
)
from hardening.targets.memory import LabTarget

DOMAIN = "DC=lab,DC=example,DC=test"
CONFIG = f"CN=Configuration,{DOMAIN}"
SCHEMA = f"CN=Schema,{CONFIG}"
SERVICES = f"CN=Services,{CONFIG}"
EXCHANGE = f"CN=Microsoft Exchange,{SERVICES}"
ORG = f"CN=Lab Org,{EXCHANGE}"
SERVER = f"CN=MAIL01,CN=Servers,CN=Exchange Administrative Group (FYDIBOHF23SPDLT),CN=Administrative Groups,{ORG}"
DOMAIN_SID = "S-1-5-21-1004336348-1177238915-682003330"
EXCHANGE_SERVERS = f"{DOMAIN_SID}-1118"
SD = "nTSecurityDescriptor"

DIRECTORY: dict[str, Any] = {
    "naming_contexts": {"default": DOMAIN, "configuration": CONFIG, "schema": SCHEMA},
    "dns_host_name": "dc01.lab.example.test",
    "domain_sid": DOMAIN_SID,
    "principals": {"LAB\\Exchange Servers": EXCHANGE_SERVERS, "LAB\\MAIL01$": f"{DOMAIN_SID}-1105",
                   "alice@lab.example.test": f"{DOMAIN_SID}-1201"},
    "objects": {
        SERVICES: {"objectClass": ["top", "container"]},
        EXCHANGE: {"objectClass": ["top", "container"], "sacl": "(AU;SA;WP;;;WD)"},
        ORG: {"objectClass": ["top", "container", "msExchOrganizationContainer"],
              "attributes": {"msExchProductID": "15.2"}},
        SERVER: {"objectClass": ["top", "server", "msExchExchangeServer"],
                 "attributes": {"msExchCurrentServerRoles": 2, "serialNumber": ["Version 15.2 (Build 31544.4)"],
                                "description": "first mailbox server"}},
    },
}


def make_host(**changes: Any) -> LabHost:
    """A lab host built exactly as a lab file builds it, with ``directory`` changed by ``changes``."""
    directory = copy.deepcopy(DIRECTORY)
    for key, value in changes.items():
        directory[key] = value
    spec = LabHostModel.model_validate({"directory": directory})
    return LabHost("DC01", _initial_state("DC01", spec))


def search(host: LabHost, dn: str, **kwargs: Any) -> list[dict[str, Any]]:
    found = host.ldap(LdapCall("search", dn, **kwargs))
    assert isinstance(found, list)
    return found


def read_sacl(host: LabHost, dn: str) -> tuple[list[dict[str, Any]], Any]:
    found = search(host, dn, attributes=(SD, "uSNChanged"), binary=(SD,), sd_flags=0x8)
    return found, parse_sacl(found[0]["attributes"][SD][0]) if SD in found[0]["attributes"] else None


def usn(host: LabHost, dn: str) -> int:
    return int(search(host, dn, attributes=("uSNChanged",))[0]["attributes"]["uSNChanged"][0])


def write_sacl(host: LabHost, dn: str, aces: list[Any], *, protected: bool = False, sd_flags: int | None = 0x8) -> Any:
    return host.ldap(LdapCall("modify", dn, sd_flags=sd_flags,
                              changes=((SD, "replace", (sacl_descriptor(aces, protected=protected),)),)))


# --- names and filters -----------------------------------------------------------------------

def test_dns_compare_without_case_or_spaces_and_parents_respect_escaped_commas() -> None:
    assert dn_key("CN=Foo, DC=Lab ,dc=example") == dn_key("cn=foo,dc=lab,DC=EXAMPLE")
    assert parent_dn("CN=Smith\\, John,OU=People,DC=lab") == "OU=People,DC=lab"
    assert dn_key("CN=Smith\\, John,DC=lab") == ("cn=smith\\, john", "dc=lab")
    with pytest.raises(ValueError, match="not a distinguished name"):
        dn_key("CN=ok,nonsense")


def test_sid_bytes_are_the_binary_sid() -> None:
    assert sid_bytes("S-1-1-0") == bytes.fromhex("010100000000000100000000")
    assert sid_bytes("S-1-5-21-1-2-3-500") == (bytes((1, 5)) + (5).to_bytes(6, "big") + b"".join(
        n.to_bytes(4, "little") for n in (21, 1, 2, 3, 500)))


def test_filters_parse_as_rfc_4515() -> None:
    parsed = parse_filter("(&(objectClass=user)(|(cn=a*b*c)(!(sn=*)))(uSNChanged>=12))")
    assert parsed.op == "and" and [p.op for p in parsed.parts] == ["equal", "or", "ge"]
    assert parsed.parts[1].parts[0].pieces == ("a", "b", "c")
    assert parse_filter("(cn=a\\2ab)").value == "a*b"
    for bad in ("objectClass=*", "(cn=a", "(cn=a)(cn=b)", "(!(a=1)(b=2))", "(cn=a\\zz)", "(x:1.2.3:=1)"):
        with pytest.raises(ValueError):
            parse_filter(bad)


# --- the rootDSE and searches ----------------------------------------------------------------

def test_the_rootdse_names_the_naming_contexts_and_the_sd_flags_control() -> None:
    host = make_host()
    names = ("defaultNamingContext", "configurationNamingContext", "schemaNamingContext", "rootDomainNamingContext",
             "dnsHostName", "supportedControl", "notThere")
    [root] = search(host, "", attributes=names)
    assert root["dn"] == ""
    attributes = root["attributes"]
    assert attributes["defaultNamingContext"] == [DOMAIN]
    assert attributes["configurationNamingContext"] == [CONFIG]
    assert attributes["schemaNamingContext"] == [SCHEMA]
    assert attributes["rootDomainNamingContext"] == [DOMAIN]
    assert attributes["dnsHostName"] == ["dc01.lab.example.test"]
    assert "1.2.840.113556.1.4.801" in attributes["supportedControl"]
    assert "notThere" not in attributes
    assert host.received == [("ldap.search", LdapCall("search", "", attributes=names))]
    with pytest.raises(LabError, match="scope base only"):
        search(host, "", scope="subtree")


def test_search_scopes() -> None:
    host = make_host()
    assert [e["dn"] for e in search(host, EXCHANGE.upper())] == [EXCHANGE]  # the stored spelling comes back
    assert [e["dn"] for e in search(host, EXCHANGE, scope="one")] == [ORG]
    subtree = [e["dn"] for e in search(host, EXCHANGE, scope="subtree")]
    assert subtree[0] == EXCHANGE and set(subtree) == {
        EXCHANGE, ORG, f"CN=Administrative Groups,{ORG}",
        f"CN=Exchange Administrative Group (FYDIBOHF23SPDLT),CN=Administrative Groups,{ORG}",
        f"CN=Servers,CN=Exchange Administrative Group (FYDIBOHF23SPDLT),CN=Administrative Groups,{ORG}", SERVER}
    # the containers between a declared object and its naming context exist, as plain containers
    [between] = search(host, f"CN=Servers,{parent_dn(parent_dn(SERVER))}", attributes=("objectClass",))
    assert between["attributes"]["objectClass"] == ["top", "container"]
    # a subtree search does not cross into another naming context
    domain = {e["dn"] for e in search(host, DOMAIN, scope="subtree")}
    assert DOMAIN in domain and not any(dn_key(dn)[-len(dn_key(CONFIG)):] == dn_key(CONFIG) for dn in domain)
    assert CONFIG not in {e["dn"] for e in search(host, DOMAIN, scope="one")}


@pytest.mark.parametrize(("query", "expected"), [
    ("(objectClass=msExchExchangeServer)", {SERVER}),
    ("(OBJECTCLASS=MSEXCHEXCHANGESERVER)", {SERVER}),
    ("(objectCategory=msExchExchangeServer)", {SERVER}),
    (f"(objectCategory=CN=ms-Exch-Exchange-Server,{SCHEMA})", {SERVER}),
    ("(&(objectClass=container)(cn=Microsoft*))", {EXCHANGE}),
    ("(cn=*Org)", {ORG}),
    ("(cn=M*crosoft*Exch*ge)", {EXCHANGE}),
    ("(msExchCurrentServerRoles=2)", {SERVER}),
    ("(msExchCurrentServerRoles:1.2.840.113556.1.4.803:=2)", {SERVER}),
    ("(msExchCurrentServerRoles:1.2.840.113556.1.4.803:=3)", set()),
    ("(msExchCurrentServerRoles:1.2.840.113556.1.4.804:=3)", {SERVER}),
    ("(description=FIRST MAILBOX SERVER)", {SERVER}),
    ("(description=*)", {SERVER}),
    ("(&(objectClass=msExchExchangeServer)(!(description=*)))", set()),
    ("(|(msExchProductID=15.2)(serialNumber=Version 15.2*))", {ORG, SERVER}),
    (f"(distinguishedName={ORG.lower()})", {ORG}),
    ("(name=Lab Org)", {ORG}),
    ("(uSNChanged>=1)", None),  # everything
    ("(&)", None),
    ("(|)", set()),
])
def test_search_filters(query: str, expected: set[str] | None) -> None:
    host = make_host()
    everything = {e["dn"] for e in search(host, CONFIG, scope="subtree")}
    found = {e["dn"] for e in search(host, CONFIG, scope="subtree", filter=query)}
    assert found == (everything if expected is None else expected)


def test_a_missing_attribute_is_false_and_its_negation_true() -> None:
    host = make_host()
    found = {e["dn"] for e in search(host, EXCHANGE, scope="one", filter="(!(description=*))")}
    assert found == {ORG}


def test_an_unknown_base_and_a_bad_filter_are_the_calls_errors() -> None:
    host = make_host()
    with pytest.raises(LabError) as info:
        search(host, f"CN=Nowhere,{CONFIG}")
    assert str(info.value) == f"no such object: CN=Nowhere,{CONFIG}"
    with pytest.raises(LabError, match=r"^search .*: invalid filter 'objectClass=\*'"):
        search(host, CONFIG, filter="objectClass=*")
    with pytest.raises(LabError, match=r"^search CN=x,nonsense: invalidDNSyntax"):
        search(host, "CN=x,nonsense")
    assert {e["dn"] for e in search(host, EXCHANGE, scope="subtree", filter="(objectCategory=*)")} == {
        e["dn"] for e in search(host, EXCHANGE, scope="subtree")}


def test_attributes_are_the_requested_names_in_the_requested_spelling() -> None:
    host = make_host()
    [server] = search(host, SERVER, attributes=("MSEXCHCURRENTSERVERROLES", "serialNumber", "objectclass",
                                                "distinguishedName", "cn", "name", "missing", "*"))
    assert server == {"dn": SERVER, "attributes": {
        "MSEXCHCURRENTSERVERROLES": ["2"], "serialNumber": ["Version 15.2 (Build 31544.4)"],
        "objectclass": ["top", "server", "msExchExchangeServer"], "distinguishedName": [SERVER],
        "cn": ["MAIL01"], "name": ["MAIL01"]}}
    # binary attributes come back as bytes, as the directory target gives them
    [raw] = search(host, SERVER, attributes=("serialNumber",), binary=("serialNumber",))
    assert raw["attributes"]["serialNumber"] == [b"Version 15.2 (Build 31544.4)"]
    # no attributes asked: none returned (ldap3's 1.1)
    assert search(host, SERVER) == [{"dn": SERVER, "attributes": {}}]


def test_a_name_resolves_to_its_sid_by_sam_account_name_under_the_domain() -> None:
    host = make_host()
    found = search(host, DOMAIN, scope="subtree", filter="(sAMAccountName=Exchange Servers)",
                   attributes=("objectSid", "sAMAccountName"), binary=("objectSid",))
    assert found == [{"dn": f"CN=Exchange Servers,CN=Users,{DOMAIN}", "attributes": {
        "objectSid": [sid_bytes(EXCHANGE_SERVERS)], "sAMAccountName": ["Exchange Servers"]}}]
    [computer] = search(host, DOMAIN, scope="subtree", filter="(&(objectClass=computer)(sAMAccountName=mail01$))",
                        attributes=("objectSid",), binary=("objectSid",))
    assert computer["dn"] == f"CN=MAIL01,CN=Users,{DOMAIN}"
    [alice] = search(host, DOMAIN, scope="subtree", filter="(userPrincipalName=alice@lab.example.test)",
                     attributes=("objectSid",), binary=("objectSid",))
    assert alice["attributes"]["objectSid"] == [sid_bytes(f"{DOMAIN_SID}-1201")]
    [domain] = search(host, DOMAIN, attributes=("objectSid", "objectClass"), binary=("objectSid",))
    assert domain["attributes"] == {"objectSid": [sid_bytes(DOMAIN_SID)], "objectClass": ["top", "domain", "domainDNS"]}
    assert search(host, CONFIG, scope="subtree", filter="(sAMAccountName=Exchange Servers)") == []


# --- SACLs -----------------------------------------------------------------------------------

def test_the_sacl_reads_as_a_sacl_only_descriptor() -> None:
    host = make_host()
    [entry], sacl = read_sacl(host, EXCHANGE)
    raw = entry["attributes"][SD][0]
    assert isinstance(raw, bytes)
    assert raw[:4] == bytes((1, 0)) + (0x8000 | 0x0800 | 0x10).to_bytes(2, "little")  # self-relative, SACL present
    assert raw[4:12] == bytes(8)  # no owner, no group
    assert raw[12:16] == (20).to_bytes(4, "little")  # the SACL right after the header
    assert raw[16:20] == bytes(4)  # no DACL
    assert sacl.present and not sacl.protected
    assert [a.to_sddl() for a in sacl.aces] == ["(AU;SA;WP;;;WD)"]
    assert entry["attributes"]["uSNChanged"] == [str(usn(host, EXCHANGE))]
    # not asked as binary: the bytes decoded, as ldap3 and the directory target would
    [text] = search(host, EXCHANGE, attributes=(SD,), sd_flags=0x8)
    assert isinstance(text["attributes"][SD][0], str)


def test_a_sacl_written_reads_back_and_moves_usn_changed_once() -> None:
    host = make_host()
    before = usn(host, ORG)
    aces = [AuditAce(EXCHANGE_SERVERS, 0x20, 0x40 | 0x80), AuditAce("S-1-1-0", 0x10000, 0x40 | CONTAINER_INHERIT,
                                                                    object_type="bf967a86-0de6-11d0-a285-00aa003049e2")]
    assert write_sacl(host, ORG, aces) is None
    _, sacl = read_sacl(host, ORG)
    assert list(sacl.explicit) == aces
    after = usn(host, ORG)
    assert after > before
    assert host.state["directory"]["objects"][ORG]["sacl"] == [a.to_sddl() for a in aces]
    root = search(host, "", attributes=("highestCommittedUSN",))[0]["attributes"]
    assert root["highestCommittedUSN"] == [str(after)]
    # the same SACL again: nothing changes, uSNChanged stays (as AD and Samba do)
    write_sacl(host, ORG, aces)
    assert usn(host, ORG) == after
    # the inherited entries a reader sends back are dropped: the directory recomputes them
    _, seen = read_sacl(host, ORG)
    host.ldap(LdapCall("modify", ORG, sd_flags=0x8, changes=((SD, "replace", (_descriptor_with(seen.aces),)),)))
    assert usn(host, ORG) == after
    _, again = read_sacl(host, ORG)
    assert again == seen
    # protection is part of the SACL: setting it is a change
    write_sacl(host, ORG, aces, protected=True)
    _, protected = read_sacl(host, ORG)
    assert protected.protected and protected.inherited == () and usn(host, ORG) > after


def _descriptor_with(aces: Any) -> bytes:
    """A SACL-only descriptor carrying inherited entries too (as a read returns it)."""
    explicit = [a for a in aces if not a.inherited]
    sd = bytearray(sacl_descriptor(explicit))
    body = b"".join(a.to_bytes() for a in aces if a.inherited)
    size = int.from_bytes(sd[22:24], "little") + len(body)
    sd[22:24] = size.to_bytes(2, "little")
    sd[24:26] = len(aces).to_bytes(2, "little")
    return bytes(sd) + body


def test_other_ace_types_are_kept_byte_for_byte() -> None:
    host = make_host()
    label = OtherAce(bytes.fromhex("11001400010000000101000000000010" + "00100000"))  # mandatory label, low
    write_sacl(host, ORG, [label, AuditAce("S-1-1-0", 0x20, 0x40)])
    _, sacl = read_sacl(host, ORG)
    assert sacl.explicit == (label, AuditAce("S-1-1-0", 0x20, 0x40))
    assert json.loads(json.dumps(host.snapshot())) == host.snapshot()  # the sidecar keeps it as plain data


def test_inheritance_reaches_child_and_grandchild_and_no_propagate_only_the_child() -> None:
    host = make_host()
    everyone_ci = AuditAce("S-1-1-0", 0x20, 0x40 | CONTAINER_INHERIT)
    np_io = AuditAce(EXCHANGE_SERVERS, 0x10, 0x80 | CONTAINER_INHERIT | NO_PROPAGATE_INHERIT | 0x8)
    here_only = AuditAce("S-1-5-11", 0x20, 0x40)
    write_sacl(host, EXCHANGE, [everyone_ci, np_io, here_only])
    _, own = read_sacl(host, EXCHANGE)
    assert list(own.explicit) == [everyone_ci, np_io, here_only]  # an inherit-only entry stays listed where set
    _, child = read_sacl(host, ORG)
    assert child.explicit == ()
    assert list(child.inherited) == [AuditAce("S-1-1-0", 0x20, 0x40 | CONTAINER_INHERIT | INHERITED),
                                     AuditAce(EXCHANGE_SERVERS, 0x10, 0x80 | INHERITED)]
    grandchild_dn = f"CN=Administrative Groups,{ORG}"
    _, grandchild = read_sacl(host, grandchild_dn)
    assert list(grandchild.inherited) == [AuditAce("S-1-1-0", 0x20, 0x40 | CONTAINER_INHERIT | INHERITED)]
    # a child's own entries come first, then the inherited ones, nearest ancestor first
    mine = AuditAce("S-1-5-18", 0x20, 0x40 | CONTAINER_INHERIT)
    write_sacl(host, ORG, [mine])
    _, child = read_sacl(host, ORG)
    assert [a.sid for a in child.aces] == ["S-1-5-18", "S-1-1-0", EXCHANGE_SERVERS]
    _, grandchild = read_sacl(host, grandchild_dn)
    assert [(a.sid, a.inherited) for a in grandchild.aces] == [("S-1-5-18", True), ("S-1-1-0", True)]
    # inherited entries change nothing stored below: the grandchild's uSNChanged does not move
    assert host.state["directory"]["objects"][grandchild_dn]["sacl"] == []


def test_a_protected_object_inherits_nothing() -> None:
    objects = copy.deepcopy(DIRECTORY["objects"])
    objects[EXCHANGE]["sacl"] = "(AU;CISA;WP;;;WD)"
    objects[ORG]["sacl_protected"] = True
    host = make_host(objects=objects)
    _, org = read_sacl(host, ORG)
    assert org.protected and org.aces == ()
    _, below = read_sacl(host, f"CN=Administrative Groups,{ORG}")
    assert below.aces == ()


def test_without_security_privilege_the_sacl_is_absent_and_a_write_refused() -> None:
    host = make_host(can_read_sacl=False)
    [entry], sacl = read_sacl(host, EXCHANGE)
    assert sacl is None and SD not in entry["attributes"] and "uSNChanged" in entry["attributes"]
    with pytest.raises(LabError, match=f"^modify {EXCHANGE}: insufficient access rights"):
        write_sacl(host, EXCHANGE, [])
    assert host.state["directory"]["objects"][EXCHANGE]["sacl"] == ["(AU;SA;WP;;;WD)"]


@pytest.mark.parametrize("flags", [None, 0x4, 0xC, 0xF])
def test_a_dacl_or_whole_descriptor_write_is_refused(flags: int | None) -> None:
    host = make_host()
    before = copy.deepcopy(host.state["directory"])
    with pytest.raises(LabError, match=r"simulates only SACL-only writes .*never writes an owner, group or DACL"):
        write_sacl(host, EXCHANGE, [AuditAce("S-1-1-0", 0x20, 0x40)], sd_flags=flags)
    assert host.state["directory"] == before
    with pytest.raises(LabError, match="only the SACL of nTSecurityDescriptor"):
        search(host, EXCHANGE, attributes=(SD,), binary=(SD,), sd_flags=flags)


def test_a_bad_descriptor_and_unwritable_attributes_are_refused() -> None:
    host = make_host()
    with pytest.raises(LabError, match="constraintViolation: not a security descriptor"):
        host.ldap(LdapCall("modify", ORG, sd_flags=0x8, changes=((SD, "replace", (b"\x01\x00",)),)))
    with pytest.raises(LabError, match="does not simulate writing objectClass"):
        host.ldap(LdapCall("modify", ORG, changes=(("objectClass", "replace", ("user",)),)))
    with pytest.raises(LabError, match=r"^no such object: CN=Gone"):
        write_sacl(host, f"CN=Gone,{CONFIG}", [])


# --- plain attributes ------------------------------------------------------------------------

def test_plain_attribute_writes_change_values_and_usn_changed() -> None:
    host = make_host()
    start = usn(host, SERVER)
    host.ldap(LdapCall("modify", SERVER, changes=(("description", "replace", ("hardened",)),
                                                   ("otherWellKnownObjects", "add", ("a", "b")))))
    [entry] = search(host, SERVER, attributes=("description", "otherWellKnownObjects", "uSNChanged"))
    assert entry["attributes"]["description"] == ["hardened"]
    assert entry["attributes"]["otherWellKnownObjects"] == ["a", "b"]
    once = int(entry["attributes"]["uSNChanged"][0])
    assert once > start
    assert once == host.state["directory"]["highest_usn"]  # one new USN for the whole modify
    host.ldap(LdapCall("modify", SERVER, changes=(("description", "replace", ("hardened",)),)))
    assert usn(host, SERVER) == once  # same value: no change
    host.ldap(LdapCall("modify", SERVER, changes=(("otherWellKnownObjects", "delete", ("A",)),)))
    assert search(host, SERVER, attributes=("otherWellKnownObjects",))[0]["attributes"] == {
        "otherWellKnownObjects": ["b"]}
    host.ldap(LdapCall("modify", SERVER, changes=(("description", "delete", ()),)))
    assert "description" not in search(host, SERVER, attributes=("description",))[0]["attributes"]
    assert usn(host, SERVER) > once


def test_a_failed_change_leaves_the_whole_modify_undone() -> None:
    host = make_host()
    before = copy.deepcopy(host.state["directory"]["objects"][SERVER])
    with pytest.raises(LabError, match="attributeOrValueExists"):
        host.ldap(LdapCall("modify", SERVER, changes=(("description", "replace", ("new",)),
                                                       ("msExchCurrentServerRoles", "add", ("2",)))))
    with pytest.raises(LabError, match="noSuchAttribute"):
        host.ldap(LdapCall("modify", SERVER, changes=(("neverSet", "delete", ()),)))
    assert host.state["directory"]["objects"][SERVER] == before


# --- the host, faults and the lab target -----------------------------------------------------

def test_a_host_without_a_directory_says_so() -> None:
    host = LabHost("MAIL01", _initial_state("MAIL01", LabHostModel.model_validate({})))
    with pytest.raises(LabError, match="MAIL01 is not a directory"):
        search(host, "")


def test_faults_on_ldap_modify_are_honoured() -> None:
    host = make_host()
    host.state["faults"] = [
        {"call": "ldap.modify", "effect": "error", "error": "busy: the DC is shutting down", "after": 1, "times": 1},
    ]
    aces = [AuditAce("S-1-1-0", 0x20, 0x40)]
    write_sacl(host, ORG, aces)  # let through (after: 1)
    assert read_sacl(host, ORG)[1].explicit == tuple(aces)
    with pytest.raises(LabError, match=r"^busy: the DC is shutting down$"):
        write_sacl(host, ORG, [])
    host.state["faults"].append({"call": "LDAP.MODIFY", "effect": "ignore", "error": None, "after": 0, "times": 1})
    before = usn(host, ORG)
    assert write_sacl(host, ORG, []) is None  # ignored: answered as done, nothing written
    assert read_sacl(host, ORG)[1].explicit == tuple(aces) and usn(host, ORG) == before
    write_sacl(host, ORG, [])  # both faults spent
    assert read_sacl(host, ORG)[1].explicit == ()
    assert [name for name, _ in host.received].count("ldap.modify") == 4


def test_lab_target_counts_one_round_trip_for_the_directory_requests() -> None:
    host = make_host()
    target = LabTarget("DC01", host)
    bundle = (Section("a", (LdapCall("search", "", attributes=("dnsHostName",)),
                            LdapCall("search", f"CN=Nowhere,{CONFIG}"))),
              Section("b", (LdapCall("search", EXCHANGE, attributes=(SD,), binary=(SD,), sd_flags=0x8),)))
    results = target.run(bundle)
    assert target.requests == 1
    assert [r.id for r in results] == ["a", "b"]
    assert results[0].values[0] == [{"dn": "", "attributes": {"dnsHostName": ["dc01.lab.example.test"]}}]
    assert results[0].values[1] is None and results[0].errors == (None, f"no such object: CN=Nowhere,{CONFIG}")
    assert results[1].ok and parse_sacl(results[1].values[0][0]["attributes"][SD][0]).aces


def test_lab_target_routes_a_mixed_bundle_in_order() -> None:
    lab_state = _initial_state("DC01", LabHostModel.model_validate({"directory": DIRECTORY,
                                                                    "services": {"NTDS": "Running"}}))
    host = LabHost("DC01", lab_state)
    target = LabTarget("DC01", host)
    bundle = (Section("dir1", (LdapCall("search", "", attributes=("defaultNamingContext",)),)),
              Section("svc", (ScriptCall("windows_service", "read", {"names": ["NTDS"]}),)),
              Section("dir2", (LdapCall("modify", ORG, sd_flags=0x8,
                                        changes=((SD, "replace", (sacl_descriptor([]),)),)),)))
    results = target.run(bundle)
    assert [r.id for r in results] == ["dir1", "svc", "dir2"]
    assert target.requests == 2
    assert results[0].values[0][0]["attributes"]["defaultNamingContext"] == [DOMAIN]
    assert results[1].ok and results[1].values[0]["services"][0]["status"] == "Running"
    assert results[2].values == (None,) and results[2].ok
    # the Windows bundle goes first, then the directory requests in bundle order
    assert [name for name, _ in host.received] == ["windows_service.read", "ldap.search", "ldap.modify"]


# --- the lab file ----------------------------------------------------------------------------

def test_the_directory_section_loads_from_a_lab_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.yml"
    path.write_text(textwrap.dedent(f"""\
        hosts:
          DC01:
            directory:
              naming_contexts: {{default: "{DOMAIN}"}}
              dns_host_name: dc01.lab.example.test
              domain_sid: {DOMAIN_SID}
              principals: {{"LAB\\\\Exchange Servers": "{EXCHANGE_SERVERS}"}}
              objects:
                "{EXCHANGE}":
                  sacl: "(AU;CISA;WP;;;WD)(AU;FA;0x100;;;{EXCHANGE_SERVERS})"
                  usn_changed: 41000
                  attributes: {{showInAdvancedViewOnly: true}}
          MAIL01: {{}}
        """), encoding="utf-8")
    lab = load_lab(path, fresh=True)
    dc = lab.hosts["DC01"]
    assert lab.hosts["MAIL01"].state["directory"] is None
    state = dc.state["directory"]
    assert state["naming_contexts"] == {"default": DOMAIN, "configuration": CONFIG, "schema": SCHEMA}
    assert state["can_read_sacl"] is True
    assert state["objects"][EXCHANGE] == {"objectClass": ["top", "container"],
                                          "sacl": ["(AU;CISA;WP;;;WD)", f"(AU;FA;CR;;;{EXCHANGE_SERVERS})"],
                                          "sacl_protected": False, "usn_changed": 41000,
                                          "attributes": {"showInAdvancedViewOnly": ["TRUE"]}}
    assert usn(dc, EXCHANGE) == 41000 and usn(dc, SERVICES) < 41000
    _, sacl = read_sacl(dc, EXCHANGE)
    assert [a.to_sddl() for a in sacl.explicit] == state["objects"][EXCHANGE]["sacl"]
    # state survives the sidecar: apply, then a later load sees the write
    write_sacl(dc, EXCHANGE, [AuditAce("S-1-1-0", 0x20, 0x40)])
    lab.save()
    again = load_lab(path)
    assert again.hosts["DC01"].state["directory"]["objects"][EXCHANGE]["sacl"] == ["(AU;SA;WP;;;WD)"]
    assert usn(again.hosts["DC01"], EXCHANGE) == 41001


@pytest.mark.parametrize(("change", "message"), [
    ({"objects": {"CN=Elsewhere,DC=other,DC=test": {}}}, "is in none of the naming contexts"),
    ({"objects": {EXCHANGE: {"sacl": "(A;;GA;;;WD)"}}}, "not a list of audit entries in SDDL"),
    ({"objects": {EXCHANGE: {"sacl": "(AU;SA;WP;;;DA)"}}}, "relative to a domain SID"),
    ({"objects": {EXCHANGE: {"attributes": {"uSNChanged": "1"}}}}, "computed by the lab"),
    ({"objects": {EXCHANGE: {}, EXCHANGE.upper(): {}}}, "are the same DN"),
    ({"domain_sid": "S-1-5-21-x"}, "is not a SID"),
    ({"naming_contexts": {"configuration": CONFIG}}, "needs default"),
])
def test_a_bad_directory_section_is_refused(change: dict[str, Any], message: str) -> None:
    directory = copy.deepcopy(DIRECTORY)
    directory.update(change)
    with pytest.raises(ValidationError, match=message):
        LabDirectory.model_validate(directory)


def test_a_bad_directory_in_a_lab_file_names_the_place(tmp_path: Path) -> None:
    path = tmp_path / "lab.yml"
    path.write_text("hosts:\n  DC01:\n    directory:\n      naming_contexts: {default: 'DC=lab'}\n"
                    "      dns_host_name: dc01\n      domain_sid: nope\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"lab\.yml"):
        load_lab(path, fresh=True)
