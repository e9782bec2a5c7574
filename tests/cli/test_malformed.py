"""Malformed playbooks, inventories and lab files through ``hardening check PLAYBOOK -i INV``.

Each must give exit 1, nothing on stdout, and exactly one line on stderr:
``error: FILE:LINE[:COLUMN]: [KEY: ]problem`` with the exact file and line, the offending key, and
no traceback. Templated parameters are rendered per host, so their errors are failed outcomes
(exit 2); they are tested at the end.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from hardening.kinds import KINDS

from .helpers import Result, read_json

Cli = Callable[..., Result]

INVENTORY = """\
connection:
  transport: lab
hosts:
  MAIL01: {}
groups:
  exchange:
    hosts: [MAIL01]
"""

PLAYBOOK = """\
name: good
hosts: all
controls:
  - id: pop3
    title: POP3 SPA
    pop_imap_login:
      protocol: pop3
      login_type: SecureLogin
"""

POP3 = "pop_imap_login: {protocol: pop3, login_type: SecureLogin}"


def _alias_bomb() -> str:
    """"Billion laughs": nine levels of nine aliases, 9**9 strings once expanded."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
        previous = name
    lines.append("name: bomb")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Case:
    """One malformed input and the error it must give."""

    id: str
    files: dict[str, str | bytes]
    where: str  # the file the error must name
    line: int
    column: int | None  # None: the column is not checked (a line-only place is fine)
    key: str | None = None  # the dotted key the message must name right after the place
    says: tuple[str, ...] = ()  # more text the message must hold ({dir} is the test folder)
    never: tuple[str, ...] = ()  # text the message must not hold (secrets)
    playbook: str = "p.yml"
    inventory: str = "inv.yml"
    xfail: str | None = None


def playbook_case(id: str, text: str | bytes, line: int, column: int | None, key: str | None = None,
                  *says: str, where: str = "p.yml", extra: dict[str, str | bytes] | None = None,
                  xfail: str | None = None) -> Case:
    return Case(id, {"p.yml": text, **(extra or {})}, where, line, column, key, says, xfail=xfail)


def inventory_case(id: str, text: str | bytes, line: int, column: int | None, key: str | None = None,
                   *says: str, never: tuple[str, ...] = (), extra: dict[str, str | bytes] | None = None,
                   where: str = "inv.yml", xfail: str | None = None) -> Case:
    return Case(id, {"inv.yml": text, **(extra or {})}, where, line, column, key, says, never, xfail=xfail)


CASES = [
    # --- YAML itself -----------------------------------------------------------------------
    playbook_case("yaml-syntax", "name: x\ncontrols:\n  - id: a\n    title: t: u\n", 4, 13, None,
                  "mapping values are not allowed here"),
    playbook_case("tab-indentation", "name: x\ncontrols:\n\t- id: a\n", 3, 1, None, "tab", "spaces"),
    playbook_case("duplicate-top-level-key", "name: x\ndescription: d\nname: y\n", 3, 1, None,
                  "duplicate key 'name'"),
    playbook_case("duplicate-key-in-control",
                  f"name: x\ncontrols:\n  - id: a\n    title: t\n    title: u\n    {POP3}\n", 5, 5, None,
                  "duplicate key 'title'"),
    playbook_case("merge-key", f"name: x\ncontrols:\n  - id: a\n    title: t\n    {POP3}\n    <<: {{tags: [a]}}\n",
                  6, 5, None, "merge keys (<<)"),
    playbook_case("empty-file", "", 1, 1, None, "empty"),
    playbook_case("comments-only", "# nothing here yet\n", 1, 1, None, "empty"),
    playbook_case("alias-bomb", _alias_bomb(), 1, None, None, "alias bomb", "refused"),
    playbook_case("multiple-documents", "name: x\n---\nname: y\n", 2, 1, None, "document"),
    playbook_case("nul-byte", "name: x\ndescription: a\x00b\n", 2, None, None, "NUL"),
    playbook_case("not-utf8", b"name: x\ndescription: caf\xe9\n", 2, None, None, "UTF-8"),
    playbook_case("a-list-not-a-mapping", "- name: x\n- name: y\n", 1, 1, None, "mapping", "not a list"),
    # --- the playbook's top level ------------------------------------------------------------
    playbook_case("unknown-top-level-key", "name: x\ncolour: blue\n", 2, 1, "colour", "unknown key 'colour'",
                  "expected one of: controls, description, hosts, include, name, required_vars, vars"),
    playbook_case("misspelt-top-level-key", "name: x\ncontols: []\n", 2, 1, "contols",
                  "did you mean 'controls'?"),
    playbook_case("missing-name", "description: no name\n", 1, 1, None, "missing required key 'name'"),
    playbook_case("string-for-list", "name: x\ncontrols: hello\n", 2, 11, "controls", "valid list",
                  "str 'hello'"),
    playbook_case("list-for-mapping", "name: x\nvars: [a, b]\n", 2, 7, "vars", "valid dictionary"),
    playbook_case("unknown-host-group", f"name: x\nhosts: [webservers]\ncontrols:\n  - id: a\n    title: t\n"
                  f"    {POP3}\n", 2, 8, "hosts", "unknown host or group 'webservers'"),
    playbook_case("include-not-found", "name: x\ninclude: [nothere.yml]\n", 2, 11, "include[0]",
                  "'nothere.yml' not found"),
    playbook_case("include-cycle", "name: a\ninclude: [b.yml]\n", 2, 11, "include[0]", "include cycle",
                  where="b.yml", extra={"b.yml": "name: b\ninclude: [p.yml]\n"}),
    playbook_case("error-inside-an-include", "name: x\ninclude: [inc.yml]\n", 5, 5,
                  "controls[0].pop_imap_logn", "did you mean 'pop_imap_login'?", where="inc.yml",
                  extra={"inc.yml": "name: y\ncontrols:\n  - id: a\n    title: t\n    pop_imap_logn: {}\n"}),
    # --- controls --------------------------------------------------------------------------
    playbook_case("control-not-a-mapping", "name: x\ncontrols:\n  - hello\n", 3, 5, "controls[0]",
                  "valid dictionary"),
    playbook_case("unknown-kind-did-you-mean", "name: x\ncontrols:\n  - id: a\n    title: t\n"
                  "    pop_imap_lgin: {protocol: pop3}\n", 5, 5, "controls[0].pop_imap_lgin",
                  "unknown key 'pop_imap_lgin'; did you mean 'pop_imap_login'?"),
    playbook_case("unknown-kind-lists-kinds", "name: x\ncontrols:\n  - id: a\n    title: t\n"
                  "    quantum_flux_capacitor: {}\n", 5, 5, "controls[0].quantum_flux_capacitor",
                  "kinds are: " + ", ".join(sorted(KINDS))),
    playbook_case("two-kinds", f"name: x\ncontrols:\n  - id: a\n    title: t\n    {POP3}\n"
                  "    ntfs_acl: {path: 'C:\\x'}\n", 6, 5, "controls[0].ntfs_acl", "exactly one kind",
                  "pop_imap_login, ntfs_acl"),
    playbook_case("no-kind", "name: x\ncontrols:\n  - id: a\n    title: t\n", 3, 5, "controls[0]",
                  "has no kind", "ntfs_acl, pop_imap_login, receive_connector_tls"),
    playbook_case("kind-parameters-a-list", "name: x\ncontrols:\n  - id: a\n    title: t\n"
                  "    pop_imap_login: [pop3]\n", 5, 21, "controls[0].pop_imap_login", "a mapping, not a list"),
    playbook_case("missing-title", f"name: x\ncontrols:\n  - id: a\n    {POP3}\n", 3, 5, "controls[0]",
                  "missing required key 'title'"),
    playbook_case("missing-id", f"name: x\ncontrols:\n  - title: t\n    {POP3}\n", 3, 5, "controls[0]",
                  "missing required key 'id'"),
    playbook_case("empty-title", f"name: x\ncontrols:\n  - id: a\n    title: ''\n    {POP3}\n", 4, 12,
                  "controls[0].title", "at least 1 character"),
    playbook_case("invalid-id", f"name: x\ncontrols:\n  - id: 'bad id!'\n    title: t\n    {POP3}\n", 3, 9,
                  "controls[0].id", "not a valid id"),
    playbook_case("duplicate-control-id", f"name: x\ncontrols:\n  - id: a\n    title: t\n    {POP3}\n"
                  f"  - id: a\n    title: u\n    {POP3}\n", 6, 5, "id", "duplicate control id 'a'",
                  "first defined at {dir}/p.yml:3:5"),
    playbook_case("duplicate-control-id-across-include", f"name: x\ninclude: [inc.yml]\ncontrols:\n"
                  f"  - id: b\n    title: t\n    {POP3}\n  - id: a\n    title: u\n    {POP3}\n", 7, 5, "id",
                  "duplicate control id 'a'", "first defined at {dir}/inc.yml:3:5",
                  extra={"inc.yml": f"name: inc\ncontrols:\n  - id: a\n    title: t\n    {POP3}\n"}),
    playbook_case("policy-enforced", f"name: x\ncontrols:\n  - id: a\n    title: t\n    policy: enforced\n"
                  f"    {POP3}\n", 5, 13, "controls[0].policy", "'enforce' or 'monitor'", "got 'enforced'"),
    playbook_case("exception-until-not-a-date", f"name: x\ncontrols:\n  - id: a\n    title: t\n    exceptions:\n"
                  f"      - hosts: MAIL01\n        reason: r\n        until: next week\n    {POP3}\n", 8, 16,
                  "controls[0].exceptions[0].until", "valid date", "'next week'"),
    playbook_case("exception-without-reason", f"name: x\ncontrols:\n  - id: a\n    title: t\n    exceptions:\n"
                  f"      - hosts: MAIL01\n    {POP3}\n", 6, 9, "controls[0].exceptions[0]",
                  "missing required key 'reason'"),
    # --- kind parameters -----------------------------------------------------------------------
    playbook_case("mode-strict", "name: x\ncontrols:\n  - id: a\n    title: t\n    ntfs_acl:\n"
                  "      path: 'C:\\x'\n      mode: strict\n", 7, 13, "controls[0].ntfs_acl.mode",
                  "'exact' or 'at_least'", "got 'strict'"),
    playbook_case("ntfs-acl-without-path", "name: x\ncontrols:\n  - id: a\n    title: t\n    ntfs_acl:\n"
                  "      mode: exact\n", 6, 7, "controls[0].ntfs_acl", "give exactly one of path and paths_from"),
    playbook_case("unknown-parameter", "name: x\ncontrols:\n  - id: a\n    title: t\n    pop_imap_login:\n"
                  "      protocol: pop3\n      login_typ: SecureLogin\n", 7, 7, "controls[0].pop_imap_login.login_typ",
                  "did you mean 'login_type'?"),
    playbook_case("kind-rule-broken", "name: x\ncontrols:\n  - id: a\n    title: t\n"
                  "    pop_imap_login: {protocol: pop3}\n", 5, 21, "controls[0].pop_imap_login",
                  "set at least one of login_type"),
    playbook_case("bad-right-name", "name: x\ncontrols:\n  - id: a\n    title: t\n    ntfs_acl:\n"
                  "      path: 'C:\\x'\n      access:\n        - {principal: SYSTEM, rights: [FullControll]}\n",
                  8, 40, "controls[0].ntfs_acl.access[0].rights[0]", "'FullControll'"),
    # --- inventories ---------------------------------------------------------------------------
    inventory_case("literal-password", "hosts:\n  MAIL01:\n    connection:\n      password: hunter2\n", 4, 17,
                   "hosts.MAIL01.connection.password", "env:NAME", "keyring:SERVICE/USER", "file:PATH", "prompt",
                   never=("hunter2",)),
    inventory_case("literal-password-a-number", "hosts:\n  MAIL01:\n    connection:\n      password: 731953\n",
                   4, 17, "hosts.MAIL01.connection.password", "env:NAME", "keyring:SERVICE/USER", "file:PATH",
                   "prompt", never=("731953",)),
    inventory_case("bad-transport", "hosts:\n  MAIL01:\n    connection:\n      transport: ssh\n", 4, 18,
                   "hosts.MAIL01.connection.transport", "'psrp', 'winrm', 'lab' or 'ldap'", "got 'ssh'"),
    inventory_case("bad-auth", "connection:\n  auth: plaintext\nhosts:\n  MAIL01: {}\n", 2, 9, "connection.auth",
                   "'kerberos'", "got 'plaintext'"),
    inventory_case("port-out-of-range", "hosts:\n  MAIL01:\n    connection:\n      port: 70000\n", 4, 13,
                   "hosts.MAIL01.connection.port", "65535"),
    inventory_case("port-not-a-number", "hosts:\n  MAIL01:\n    connection:\n      port: https\n", 4, 13,
                   "hosts.MAIL01.connection.port", "valid integer"),
    inventory_case("unknown-host-in-group", "hosts:\n  MAIL01: {}\ngroups:\n  g:\n    hosts: [MAIL01, MAIL09]\n",
                   5, 21, "groups.g.hosts[1]", "unknown host 'MAIL09'"),
    inventory_case("unknown-child-group", "hosts:\n  MAIL01: {}\ngroups:\n  g:\n    children: [nope]\n", 5, 16,
                   "groups.g.children[0]", "unknown group 'nope'"),
    inventory_case("group-cycle", "hosts:\n  MAIL01: {}\ngroups:\n  a:\n    children: [b]\n  b:\n"
                   "    children: [a]\n", 4, 3, "groups.a", "group cycle: a → b → a"),
    inventory_case("host-and-group-same-name", "hosts:\n  MAIL01: {}\n  MAIL02: {}\ngroups:\n  MAIL02: {}\n",
                   5, 3, "groups.MAIL02", "both a host and a group"),
    inventory_case("empty-inventory", "", 1, 1, None, "empty"),
    inventory_case("no-hosts", "connection: {transport: lab}\nhosts: {}\n", 2, 8, "hosts", "no hosts"),
    inventory_case("hosts-a-list", "hosts: [MAIL01]\n", 1, 8, "hosts", "valid dictionary"),
    inventory_case("inventory-duplicate-key", "hosts:\n  MAIL01: {}\n  MAIL01: {}\n", 3, 3, None,
                   "duplicate key 'MAIL01'"),
    inventory_case("inventory-tab", "hosts:\n\tMAIL01: {}\n", 2, 1, None, "tab"),
    inventory_case("inventory-unknown-key", "hosts:\n  MAIL01:\n    conection: {transport: lab}\n", 3, 5,
                   "hosts.MAIL01.conection", "unknown key 'conection'; did you mean 'connection'?"),
    inventory_case("inventory-nul", "hosts:\n  MAIL01: {}\n  MAIL\x0002: {}\n", 3, None, None, "NUL"),
    inventory_case("inventory-alias-bomb", _alias_bomb().replace("name: bomb", "hosts: {MAIL01: {}}"), 1, None,
                   None, "alias bomb"),
    # --- the lab file an inventory names -----------------------------------------------------------
    inventory_case("lab-file-unknown-key", "lab: lab.yml\nconnection: {transport: lab}\nhosts:\n  MAIL01: {}\n",
                   3, 5, "hosts.MAIL01.bogus", "unknown key 'bogus'", where="lab.yml",
                   extra={"lab.yml": "hosts:\n  MAIL01:\n    bogus: 1\n"}),
    inventory_case("lab-file-missing", "lab: missing.yml\nconnection: {transport: lab}\nhosts:\n  MAIL01: {}\n",
                   1, 6, "lab", "missing.yml", "not found"),
]


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.id,
                 marks=[pytest.mark.xfail(strict=True, raises=AssertionError, reason=c.xfail)] if c.xfail else [])
    for c in CASES
])
def test_malformed_input_is_one_clear_error(cli: Cli, tmp_path: Path, case: Case) -> None:
    files: dict[str, str | bytes] = {"p.yml": PLAYBOOK, "inv.yml": INVENTORY, **case.files}
    for name, content in files.items():
        target = tmp_path / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")

    result = cli("check", tmp_path / case.playbook, "-i", tmp_path / case.inventory)

    assert result.code == 1, result.out + result.err
    assert result.out == ""
    assert "Traceback" not in result.err
    assert len(result.err_lines) == 1, result.err
    message = result.err_lines[0]
    column = rf":{case.column}" if case.column is not None else r"(?::\d+)?"
    place = re.match(rf"error: {re.escape(str(tmp_path / case.where))}:{case.line}{column}: ", message)
    assert place, f"expected {case.where}:{case.line}{'' if case.column is None else f':{case.column}'} in {message!r}"
    rest = message[place.end():]
    if case.key is not None:
        assert rest.startswith(f"{case.key}: "), f"expected key {case.key!r} first in {rest!r}"
    for text in case.says:
        assert text.format(dir=tmp_path) in rest, f"expected {text!r} in {rest!r}"
    for text in case.never:
        assert text not in result.err + result.out


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


def test_an_unclosed_bracket_points_where_it_opened(cli: Cli, tmp_path: Path) -> None:
    """PyYAML finds the problem at the end of the file; the message still has to say line 4."""
    playbook = tmp_path / "p.yml"
    playbook.write_text("name: x\ncontrols:\n  - id: a\n    title: [unclosed\n", encoding="utf-8")
    (tmp_path / "inv.yml").write_text(INVENTORY, encoding="utf-8")
    result = cli("check", playbook, "-i", tmp_path / "inv.yml")
    assert result.code == 1
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith(f"error: {playbook}:")
    assert "flow sequence" in result.err_lines[0]


def test_an_unclosed_bracket_names_its_opening_line(cli: Cli, tmp_path: Path) -> None:
    playbook = tmp_path / "p.yml"
    playbook.write_text("name: x\ncontrols:\n  - id: a\n    title: [unclosed\n", encoding="utf-8")
    (tmp_path / "inv.yml").write_text(INVENTORY, encoding="utf-8")
    result = cli("check", playbook, "-i", tmp_path / "inv.yml")
    assert re.search(r"(:4:12\b|line 4)", result.err), result.err


# --- templated parameters: rendered per host, so a failed outcome (exit 2), not exit 1 -------------

def _templated(tmp_path: Path, body: str) -> tuple[Path, Path, Path]:
    playbook, inventory, report = tmp_path / "p.yml", tmp_path / "inv.yml", tmp_path / "r.json"
    playbook.write_text(body, encoding="utf-8")
    inventory.write_text(INVENTORY, encoding="utf-8")
    return playbook, inventory, report


UNDEFINED = """\
name: x
controls:
  - id: a
    title: t
    ntfs_acl:
      path: "{{ undefined_var }}"
"""


def _only_outcome(report: Path) -> dict[str, str]:
    doc = read_json(report)
    (host,) = doc["hosts"]
    (outcome,) = host["outcomes"]
    assert isinstance(outcome, dict)
    return outcome


def test_an_undefined_variable_is_bad_input_naming_the_parameter(cli: Cli, tmp_path: Path) -> None:
    """Variables are known before any host is contacted: a variable nothing sets is refused with one
    error naming the variable and the parameter's file and line (exit 1), and nothing is sent."""
    playbook, inventory, report = _templated(tmp_path, UNDEFINED)
    result = cli("check", playbook, "-i", inventory, "--report-json", report)
    assert result.code == 1
    assert result.out == ""
    assert result.err_lines == [
        f"error: {inventory}: 1 variable that the selected controls need is not set; nothing was sent:",
        "  undefined_var: used by the playbook, which neither gives it a default nor declares it in required_vars",
        f"    needed by a ({playbook}:6:13) on MAIL01",
        "set them in the inventory's vars: at the top level (every host), under a group, or under a host, e.g.",
        "  vars:",
        "    undefined_var: ...",
    ]
    assert not report.exists()


def test_a_template_that_renders_an_invalid_value(cli: Cli, tmp_path: Path) -> None:
    playbook, inventory, report = _templated(tmp_path, """\
name: x
vars: {how: sometimes}
controls:
  - id: a
    title: t
    pop_imap_login:
      protocol: pop3
      login_type: SecureLogin
      restart: "{{ how }}"
""")
    result = cli("check", playbook, "-i", inventory, "--report-json", report)
    assert result.code == 1
    assert result.err_lines == [f"error: {playbook}:9:16: controls[0].pop_imap_login.restart: "
                                "Input should be 'allowed' or 'deferred', got 'sometimes'"]


def test_a_fact_that_cannot_render_fails_the_control_with_file_and_line(cli: Cli, tmp_path: Path) -> None:
    """Facts are known only once read from the host: such a parameter fails its control on that host
    (exit 2) with a sentence naming the file, line and key."""
    playbook, inventory, report = _templated(tmp_path, """\
name: x
controls:
  - id: a
    title: t
    ntfs_acl:
      path: "{{ facts.no_such_fact }}"
""")
    result = cli("check", playbook, "-i", inventory, "--report-json", report)
    assert result.code == 2
    assert result.err == ""
    outcome = _only_outcome(report)
    assert outcome["status"] == "failed"
    assert outcome["message"].startswith(f"bad parameters: {playbook}:6:13: controls[0].ntfs_acl.path: cannot render")
    assert "no_such_fact" in outcome["message"]
    assert outcome["changes"] == []


def test_a_template_fed_by_an_inventory_variable_renders(cli: Cli, tmp_path: Path) -> None:
    """The same template is fine where the inventory defines the variable: per-host rendering."""
    playbook, inventory, report = _templated(tmp_path, """\
name: x
controls:
  - id: a
    title: t
    pop_imap_login:
      protocol: pop3
      login_type: SecureLogin
      restart: "{{ how }}"
""")
    inventory.write_text(INVENTORY.replace("  MAIL01: {}", "  MAIL01: {vars: {how: deferred}}"), encoding="utf-8")
    result = cli("check", playbook, "-i", inventory, "--report-json", report)
    assert result.code == 3
    assert _only_outcome(report)["status"] == "drifted"
