"""The LDIF text of directory requests keeps every value inside its own line.

Comments carry values as JSON strings (one line, ASCII, decodable back to the value); modify
values with any control character are base64. An independent LDIF parser, Samba's
``ldbmodify`` (ldb-tools, installed with the test dependencies), reads the text of a search and a
modify carrying each hostile value: it applies exactly the one modify, stores the value exactly,
and no record a value smuggled in (a ``changetype: delete``) is applied.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from powershell.test_ps_hostile import HOSTILE

from hardening.ldif import comment_value, ldif_text
from hardening.model import LdapCall

from .test_directory_hostile import LDAP_VALUES

VALUES = {**HOSTILE, **LDAP_VALUES}
# Every character that some reader takes as the end of a line (str.splitlines, Unicode, LDIF).
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
SEARCH = re.compile(r'# search base (".*") scope (base|one|subtree) filter (".*")')


def search(value: str) -> LdapCall:
    return LdapCall("search", value, scope="subtree", filter=value, attributes=("description", "*"))


def _one_line_each(text: str) -> None:
    assert text.isascii(), "non-ASCII outside base64 and escapes"
    assert not set(text) & (set(LINE_BREAKS) - {"\n"}), "a line break other than LF"
    assert not [c for c in text if (ord(c) < 32 and c != "\n") or ord(c) == 127], "a control character"


@pytest.mark.parametrize("key", list(VALUES))
def test_search_comment_carries_the_values_on_one_line(key: str) -> None:
    value = VALUES[key]
    text = ldif_text(search(value))
    _one_line_each(text)
    first, attributes = text.split("\n")
    match = SEARCH.fullmatch(first)
    assert match is not None, first[:200]
    assert json.loads(match[1]) == value and json.loads(match[3]) == value
    assert attributes == "#   attributes description, *"


@pytest.mark.parametrize("char", list(LINE_BREAKS + "\x00\t\x1b\x7f\u200b"))
def test_comment_value_escapes_every_control_character_and_line_separator(char: str) -> None:
    written = comment_value(f"a{char}b")
    assert written.isascii() and written.isprintable() and json.loads(written) == f"a{char}b"
    assert len(f"# {written}".splitlines()) == 1


@pytest.mark.parametrize("char", list(LINE_BREAKS + "\x00\t\x1b\x7f"))
def test_modify_values_with_any_control_character_are_base64(char: str) -> None:
    call = LdapCall("modify", f"CN=a{char}b,DC=lab", changes=(("description", "replace", (f"x{char}y",)),))
    text = ldif_text(call)
    _one_line_each(text)
    lines = text.split("\n")
    assert lines[0].startswith("dn:: ") and base64.b64decode(lines[0][5:]).decode() == f"CN=a{char}b,DC=lab"
    assert lines[3].startswith("description:: ") and base64.b64decode(lines[3][14:]).decode() == f"x{char}y"


def test_plain_values_stay_plain() -> None:
    call = LdapCall("modify", "CN=a,DC=lab", changes=(("description", "replace", ("x y", "(a=b)")),))
    assert ldif_text(call) == "dn: CN=a,DC=lab\nchangetype: modify\nreplace: description\ndescription: x y\n" \
                              "description: (a=b)\n-"


@pytest.mark.parametrize("name", ["description\ndn: CN=evil", "descr iption", "", "1.2.", "a;b\n", "-x"])
def test_an_attribute_name_that_is_not_one_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not an LDAP attribute description"):
        ldif_text(LdapCall("modify", "CN=a,DC=lab", changes=((name, "replace", ("x",)),)))
    with pytest.raises(ValueError, match="not an LDAP attribute description"):
        ldif_text(LdapCall("search", "CN=a,DC=lab", attributes=("cn", name)))
    with pytest.raises(ValueError, match="not an LDAP attribute description"):
        ldif_text(LdapCall("modify", "CN=a,DC=lab", changes=(("*", "replace", ("x",)),)))
    assert ldif_text(LdapCall("modify", "CN=a", changes=(("1.2.840.113556.1.4.8;binary", "add", ("x",)),)))
    assert ldif_text(LdapCall("search", "CN=a", attributes=("*", "+", "1.1"))).endswith("attributes *, +, 1.1")


# -- an independent reader: Samba's ldbmodify ------------------------------------------------------

OBJECTS = "dn: CN=a,DC=lab\nobjectClass: top\ncn: a\n\ndn: CN=evil,DC=lab\nobjectClass: top\ncn: evil\n"


@pytest.fixture(scope="module")
def ldb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local ldb database (a file, no server) holding CN=a and CN=evil."""
    if shutil.which("ldbmodify") is None:
        hint = "ldbmodify not installed: apt-get install ldb-tools (or run make test as root)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{hint} (CI=true, so this fails instead of skipping)")
        pytest.skip(hint)
    folder = tmp_path_factory.mktemp("ldb")
    (folder / "objects.ldif").write_text(OBJECTS, encoding="ascii")
    subprocess.run(["ldbadd", "-H", f"tdb://{folder / 'base.ldb'}", str(folder / "objects.ldif")], check=True,
                   capture_output=True, timeout=60)
    return folder / "base.ldb"


def _entries(database: Path) -> dict[str, bytes | None]:
    """dn → description (bytes) of every object, read back with ldbsearch."""
    out = subprocess.run(["ldbsearch", "-H", f"tdb://{database}", "(objectClass=*)", "description"],
                         capture_output=True, check=True, timeout=60).stdout.decode("ascii")
    entries: dict[str, bytes | None] = {}
    dn = None
    for line in re.sub(r"\n ", "", out).split("\n"):
        if line.startswith("dn: "):
            dn = line[4:]
            entries[dn] = None
        elif line.startswith("description:: ") and dn:
            entries[dn] = base64.b64decode(line[14:])
        elif line.startswith("description: ") and dn:
            entries[dn] = line[13:].encode()
    return entries


@pytest.mark.parametrize("key", [k for k, v in VALUES.items() if v])  # replacing with "" deletes: not a value
def test_ldbmodify_applies_exactly_the_modify(ldb: Path, tmp_path: Path, key: str) -> None:
    value = VALUES[key]
    database = tmp_path / "t.ldb"
    shutil.copyfile(ldb, database)
    modify = LdapCall("modify", "CN=a,DC=lab", changes=(("description", "replace", (value,)),))
    plan = tmp_path / "plan.ldif"
    plan.write_text(f"{ldif_text(search(value))}\n\n{ldif_text(modify)}\n", encoding="ascii")
    done = subprocess.run(["ldbmodify", "-H", f"tdb://{database}", str(plan)], capture_output=True, timeout=60,
                          check=False)
    assert done.returncode == 0 and b"Modified 1 records successfully" in done.stdout, done.stderr[-500:]
    entries = _entries(database)
    assert set(entries) == {"CN=a,DC=lab", "CN=evil,DC=lab"}
    assert entries["CN=a,DC=lab"] == value.encode("utf-8") and entries["CN=evil,DC=lab"] is None
