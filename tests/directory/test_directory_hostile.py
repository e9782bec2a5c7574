"""Hostile values in the directory kinds' parameters: a value is data, and stays data, over LDAP too.

The counterpart of tests/powershell/test_ps_hostile.py for the kinds whose requests are
:class:`~hardening.model.LdapCall` (channel ``directory``). Every string slot of their parameter
models (found by walking the models, as there) and the GUID slots, times the hostile values of
the PowerShell tests plus a few that matter to LDAP and LDIF:

- the model refuses the value with a clean pydantic ValidationError located at that slot; or
- it accepts it, and then:
  - a DN (``dn``, ``search.base``) reaches the search and the modify whole, as the DN;
  - an attribute value reaches the modify whole, as the value, and the lab directory stores it
    exactly (the re-read returns it);
  - a search filter the playbook gives reaches the search whole (it is a filter by design);
  - a principal named by account reaches the lookup only RFC 4515-escaped: the filter is one
    equality assertion on sAMAccountName (the part after ``DOMAIN\\``) or userPrincipalName,
    whose unescaped value is exactly the name, and the lab's own filter parser takes it;
  - ``ldif_text`` of every modify is ASCII LDIF that a small reader here (``::`` base64, line
    folding, controls) reads back to the same DN, control and values; and the text of every
    search is comment lines only, so a plan or snapshot fed to ``ldapmodify`` can never carry
    a record the value smuggled in.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
import pytest
from powershell import cases
from powershell.test_ps_hostile import HOSTILE, PROBE

from hardening.kinds import KINDS, Context, ControlFailed, Kind, NotApplicable
from hardening.kinds.directory import known_sid
from hardening.lab.models.directory import parse_filter
from hardening.ldif import SD_FLAGS_OID
from hardening.model import Call, LdapCall, Section
from hardening.targets.memory import LabTarget

DIRECTORY_KINDS = sorted(name for name, kind in KINDS.items() if kind.channel == "directory")
# Values that matter to LDAP filters, DNs and LDIF, on top of the PowerShell ones.
LDAP_VALUES: dict[str, str] = {
    "ldif-record-injection": "CN=x,DC=lab\n-\n\ndn: CN=evil,DC=lab,DC=example,DC=test\nchangetype: delete\n",
    "filter-metacharacters": "*)(objectClass=*))(|(cn=*",
    "filter-escape-lookalikes": "\\2a\\28\\29\\5c\\00 \\",
    "dn-specials": "CN=a\\,b+OU=c;DC=\"d\"<e>#f=g",
    "leading-colon": ":x",
    "leading-less-than": "<file:///etc/passwd",
    "leading-and-trailing-space": " x ",
    "base64-lookalike": ": Og==",
    "domain-and-name": "LAB\\x)(sAMAccountName=*",
    "upn": "x*)(|(objectClass=*@lab.example.test",
    "parenthesised-filter-with-records": "(cn=x\ndn: CN=evil,DC=lab,DC=example,DC=test\nchangetype: delete\n)",
    "parenthesised-filter-tab": "(cn=\tx)",
}
VALUES: dict[str, str] = {**HOSTILE, **LDAP_VALUES}
# A value each slot accepts, so the sample that carries the hostile one is found (base_for).
VALID: dict[str, tuple[str, ...]] = {
    "ad_audit_rule.entries[].rights[]": ("WriteProperty",),
    "ad_audit_rule.entries[].object_type": ("bf967a86-0de6-11d0-a285-00aa003049e2",),
    "ad_audit_rule.entries[].inherited_object_type": ("bf967aba-0de6-11d0-a285-00aa003049e2",),
    "ad_attribute.search.filter": ("(objectClass=hardeningProbe)",),
    "ad_attribute.attribute": ("description",),
}
GUID_SLOTS = ("object_type", "inherited_object_type")


@dataclass(frozen=True)
class DirSlot:
    """A string place of a directory kind's parameters (``path`` uses 0 for list items)."""

    kind: str
    path: tuple[str | int, ...]
    choices: tuple[str, ...] | None

    @property
    def name(self) -> str:
        return f"{self.kind}." + ".".join("[]" if isinstance(p, int) else p for p in self.path).replace(".[]", "[]")

    @property
    def valid(self) -> tuple[str, ...]:
        return self.choices or VALID.get(self.name, (PROBE,))


def _slots() -> list[DirSlot]:
    out = []
    for name in DIRECTORY_KINDS:
        model = KINDS[name].params_model
        out += [DirSlot(name, s.path, s.choices) for s in cases.string_slots(model)]
        # GUIDs are uuid.UUID fields that take strings from a playbook: refused unless a GUID.
        out += [DirSlot(name, p, None) for p in cases.field_paths(model) if p[-1] in GUID_SLOTS]
    return out


SLOTS = _slots()


def _raw(slot: DirSlot, value: Any) -> dict[str, Any]:
    found = cases.base_for(slot.kind, slot.path, slot.valid)
    assert found is not None, f"no sample of {slot.kind} can carry {slot.name}; add one to its samples.yml"
    raw = cases.with_value(found[1], slot.path, value)
    assert raw is not None
    return raw


def _accepted(slot: DirSlot, value: str) -> Any | None:
    try:
        return KINDS[slot.kind].params_model.model_validate(_raw(slot, value))
    except pydantic.ValidationError:
        return None


def _plan(kind: Kind[Any], params: Any) -> tuple[tuple[Call, ...], tuple[Call, ...]]:
    """The read, and the plan-mode write (none when the kind needs the read to decide it)."""
    ctx = cases.plan_context(kind.variants[0])
    reads = kind.read(params, ctx)
    try:
        writes = kind.write(params, ctx, None, kind.desire(params, ctx, None))
    except NotApplicable:
        writes = ()
    return reads, writes


def _ldap(calls: Sequence[Call]) -> list[LdapCall]:
    assert all(isinstance(c, LdapCall) for c in calls), calls
    return [c for c in calls if isinstance(c, LdapCall)]


def _points_at(location: tuple[Any, ...], path: tuple[str | int, ...]) -> bool:
    """Whether an error location names the slot: the slot itself (or a union branch below it), or,
    for a list item, the list (a validator of the whole list refuses one bad item there)."""
    field = path
    while field and isinstance(field[-1], int):
        field = field[:-1]
    return location[:len(path)] == path or location == field


def _matrix() -> list[Any]:
    return [pytest.param(slot, value, id=f"{slot.name}-{key}") for slot in SLOTS for key, value in VALUES.items()]


def _same(a: Any, b: Any) -> bool:
    """Equality without pytest's diff (100,000-character values)."""
    return bool(a == b)


# --- a tiny LDIF reader (RFC 2849) -------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    dn: str
    controls: tuple[tuple[str, bool, bytes | None], ...]
    changes: tuple[tuple[str, str, tuple[bytes, ...]], ...]


def _unfold(text: str) -> list[str]:
    lines: list[str] = []
    for line in text.split("\n"):
        if line.startswith(" ") and lines:
            lines[-1] += line[1:]
        else:
            lines.append(line)
    return lines


def _value(line: str) -> tuple[str, bytes]:
    """``name: text`` or ``name:: base64`` as the name and the value's bytes."""
    name, sep, rest = line.partition(":")
    assert sep, f"not an attribute line: {line[:200]!r}"
    if rest.startswith(":"):
        return name, base64.b64decode(rest[1:].strip(), validate=True)
    assert not rest.startswith("<"), "a URL value: the reader would fetch a file"
    assert rest[:1] in ("", " "), line[:200]
    return name, rest[1:].encode("utf-8")


def read_ldif(text: str) -> list[Record]:
    """Change records of ``text``: dn, controls, then ``changetype: modify`` and its groups."""
    records: list[Record] = []
    lines = [line for line in _unfold(text) if not line.startswith("#")]
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line == "":
            blocks.append([])
        else:
            blocks[-1].append(line)
    for block in (b for b in blocks if b):
        name, dn = _value(block[0])
        assert name == "dn", block[0][:200]
        at = 1
        controls = []
        while at < len(block) and block[at].startswith("control:"):
            spec = block[at][len("control:"):].strip()
            oid, _, rest = spec.partition(" ")
            critical = rest.startswith("true")
            payload = rest.removeprefix("true").removeprefix("false")
            value = base64.b64decode(payload[2:].strip()) if payload.startswith("::") else (
                payload[1:].strip().encode() if payload.startswith(":") else None)
            controls.append((oid, critical, value))
            at += 1
        assert block[at] == "changetype: modify", block[at][:200]
        at += 1
        changes = []
        while at < len(block):
            action, attribute = _value(block[at])
            at += 1
            values = []
            while block[at] != "-":
                name, data = _value(block[at])
                assert name == attribute.decode(), f"{name} in the group of {attribute!r}"
                values.append(data)
                at += 1
            at += 1
            changes.append((action, attribute.decode(), tuple(values)))
        records.append(Record(dn.decode("utf-8"), tuple(controls), tuple(changes)))
    return records


def _as_record(call: LdapCall) -> Record:
    controls = ((SD_FLAGS_OID, True, bytes((0x30, 0x03, 0x02, 0x01, call.sd_flags))),) if call.sd_flags else ()
    return Record(call.dn, controls, tuple(
        (action, attribute, tuple(v.encode("utf-8") if isinstance(v, str) else v for v in values))
        for attribute, action, values in call.changes))


def ldif_problems(call: LdapCall) -> list[str]:
    """What is wrong with the LDIF text of one modify: not ASCII, a stray line, or not read back."""
    from hardening.ldif import ldif_text

    text = ldif_text(call)
    problems = []
    if not text.isascii() or "\r" in text or "\0" in text:
        problems.append("the LDIF holds non-ASCII, CR or NUL characters outside base64")
    if any(len(line) > 76 for line in text.split("\n")):
        problems.append("a line is longer than 76 characters (not folded)")
    try:
        records = read_ldif(text)
    except (AssertionError, IndexError, ValueError) as exc:
        return [*problems, f"unreadable LDIF: {str(exc)[:300]}"]
    if len(records) != 1 or not _same(records[0], _as_record(call)):
        problems.append("the LDIF does not read back as the call (dn, control, changes)")
    return problems


def search_text_problems(call: LdapCall) -> list[str]:
    """A search's text form must be comment lines only: nothing in it may be read as LDIF."""
    from hardening.ldif import ldif_text

    lines = ldif_text(call).split("\n")
    return [f"line {n} is not a comment: {line[:120]!r}" for n, line in enumerate(lines) if not line.startswith("#")]


# --- RFC 4515: one equality assertion ----------------------------------------------------------

EQUALITY = re.compile(r"\(([A-Za-z][A-Za-z0-9-]*)=((?:[^()*\\\x00]|\\[0-9a-fA-F]{2})*)\)", re.DOTALL)


def equality_assertion(text: str) -> tuple[str, str]:
    """``(attr=value)`` with ``value`` RFC 4515-escaped, as the attribute and the unescaped value;
    AssertionError for anything else (a presence or substring filter, a second assertion …)."""
    match = EQUALITY.fullmatch(text)
    assert match is not None, f"not one equality assertion: {text[:300]!r}"
    data = re.sub(rb"\\([0-9a-fA-F]{2})", lambda m: bytes((int(m[1], 16),)), match[2].encode("utf-8"))
    return match[1], data.decode("utf-8")


def _lookup_of(principal: str) -> tuple[str, str]:
    """The attribute and account name a principal is looked up by (DOMAIN\\name: the name)."""
    if "\\" in principal:
        return "sAMAccountName", principal.split("\\", 1)[1]
    if "@" in principal:
        return "userPrincipalName", principal
    return "sAMAccountName", principal


def _paths(call: LdapCall, needle: str) -> Iterator[str]:
    """Where ``needle`` sits whole in a call: the DN, the filter, a change's value."""
    if call.dn == needle:
        yield "dn"
    if call.filter == needle:
        yield "filter"
    for attribute, _, values in call.changes:
        for v in values:
            if v == needle:
                yield f"changes.{attribute}"


# --- the tests -----------------------------------------------------------------------------------


def test_every_directory_slot_is_covered() -> None:
    """The walk found the free-text slots of both directory kinds, and each slot has a sample that
    carries a valid value there (else its hostile tests could not run)."""
    names = {s.name for s in SLOTS}
    assert set(DIRECTORY_KINDS) == {"ad_audit_rule", "ad_attribute"}
    for expected in ("ad_audit_rule.dn", "ad_audit_rule.entries[].principal", "ad_audit_rule.entries[].rights[]",
                     "ad_audit_rule.entries[].object_type", "ad_attribute.dn", "ad_attribute.search.base",
                     "ad_attribute.search.filter", "ad_attribute.value", "ad_attribute.value[]"):
        assert expected in names, expected
    assert set(VALID) <= names, "VALID names a slot that no longer exists"
    for slot in SLOTS:
        assert cases.base_for(slot.kind, slot.path, slot.valid) is not None, slot.name


@pytest.mark.parametrize(("slot", "value"), _matrix())
def test_directory_kind_refuses_or_carries_hostile_value(slot: DirSlot, value: str) -> None:
    """Refused cleanly at the slot, or carried as data (see the module docstring)."""
    kind = KINDS[slot.kind]
    raw = _raw(slot, value)
    try:
        params = kind.params_model.model_validate(raw)
    except pydantic.ValidationError as caught:
        locations = [tuple(e["loc"]) for e in caught.errors()]
        assert any(_points_at(loc, slot.path) for loc in locations), locations
        return
    assert slot.choices is None, "a Literal slot accepted a value that is not one of its choices"
    assert slot.path[-1] not in GUID_SLOTS, "a GUID slot accepted something that is not a GUID"
    kept = params.model_dump()
    for key in slot.path:
        kept = kept[key]
    assert _same(kept, value), "the model altered the value"

    reads, writes = (_ldap(c) for c in _plan(kind, params))
    probe_reads, probe_writes = (_ldap(c) for c in _plan(kind, kind.params_model.model_validate(
        _raw(slot, slot.valid[0]))))
    assert [c.op for c in reads] == [c.op for c in probe_reads]
    for call in [*writes, *(c for c in reads if c.op == "modify")]:
        assert ldif_problems(call) == [], ldif_problems(call)
    # Whole, as data, wherever the harmless value went (a principal goes escaped: below).
    if slot.path[-1] != "principal":
        for calls, probe_calls in ((reads, probe_reads), (writes, probe_writes)):
            for call, probe_call in zip(calls, probe_calls, strict=True):
                expected = list(_paths(probe_call, slot.valid[0]))
                assert list(_paths(call, value)) == expected, f"{call.op}: the value is not where {expected} say"
    else:
        lookups = [c for c in reads[1:] if c.op == "search"]
        if known_sid(value) is None:
            assert len(lookups) == 1, "an account principal is looked up once"
            (lookup,) = lookups
            attribute, name = _lookup_of(value)
            assert equality_assertion(lookup.filter) == (attribute, name)
            parsed = parse_filter(lookup.filter)
            assert (parsed.op, parsed.attribute, _same(parsed.value, name)) == ("equal", attribute, True)
            assert lookup.scope == "subtree" and lookup.attributes == ("objectSid",)


LAB_ROOT_DSE_BUG = ("the lab directory takes a DN of whitespace only (str.strip() removes LF, CR and the Unicode "
                    "line separators) for the rootDSE, where a DC answers invalidDNSyntax")


@pytest.mark.parametrize(("slot", "value"), [
    pytest.param(*p.values, id=p.id, marks=[pytest.mark.xfail(strict=True, reason=LAB_ROOT_DSE_BUG)]
                 if p.values[0].path[-1] == "dn" and p.values[1].strip() == ""
                 and _accepted(*p.values) is not None else [])
    for p in _matrix() if p.values[0].path[-1] in ("dn", "base", "principal", "value", 0)])
def test_directory_lab_receives_hostile_value_exactly(slot: DirSlot, value: str) -> None:
    """Against DC01 of the directory lab: the read carries the value exactly (an unknown DN is
    'no such object', an unknown account 'not found'; nothing else breaks), and a written
    attribute value is stored exactly (the re-read returns it)."""
    kind = KINDS[slot.kind]
    params = _accepted(slot, value)
    if params is None:
        return  # refused: the other test checks where
    facts = cases.lab_facts("directory")
    variant = kind.variant_for(facts)
    assert not isinstance(variant, str), variant
    ctx = Context(cases.DIRECTORY_HOST, facts, variant)
    target = LabTarget(cases.DIRECTORY_HOST, cases.lab_host("directory"))
    reads = kind.read(params, ctx)
    (result,) = target.run((Section("hostile", reads),))
    assert _same([c for _, c in target.host.received], list(reads)), "the lab did not receive the calls as sent"
    if slot.path[-1] == "principal":
        if known_sid(value) is None:
            assert result.errors[1:] == (None,), f"the lab refused the lookup filter: {result.errors[1:]}"
            assert result.values[1] == [], "a hostile account name matched an object"
            with pytest.raises(ControlFailed, match="not found in the directory"):
                kind.observe(params, ctx, result.values)
        return
    if slot.path[-1] in ("dn", "base"):
        assert result.values[0] is None and result.error is not None
        assert result.error.startswith(("no such object", "search ")), result.error
        return
    observed = kind.observe(params, ctx, result.values)
    writes = kind.write(params, ctx, observed, kind.desire(params, ctx, observed))
    assert writes, "the hostile value matches what the lab holds"
    (written,) = target.run((Section("write", writes),))
    assert written.ok, written.error
    (reread,) = target.run((Section("reread", kind.read(params, ctx)),))
    after = kind.observe(params, ctx, reread.values)
    stored = [v for props in after.values() for v in (props or {}).values()]
    assert any(_same(v, value) or (isinstance(v, list) and value in v) for v in stored), \
        "the lab did not store the value exactly"


@pytest.mark.parametrize(("slot", "value"), [
    p for p in _matrix() if p.values[0].path[-1] in ("dn", "base", "filter", "principal")])
def test_search_text_is_comments_only(slot: DirSlot, value: str) -> None:
    """A search has no LDIF form: its text is comment lines, whatever the DN or filter holds."""
    params = _accepted(slot, value)
    if params is None:
        return
    reads, _ = _plan(KINDS[slot.kind], params)
    for call in _ldap(reads):
        assert search_text_problems(call) == [], search_text_problems(call)[:3]


# --- the checks themselves ------------------------------------------------------------------------


def test_reader_reads_folded_base64_and_controls() -> None:
    """The reader unfolds lines, decodes ``::`` values and the control line, and refuses a stray line."""
    text = ("dn: CN=a,DC=\n x\n# comment\ncontrol: 1.2.840.113556.1.4.801 true:: MAMCAQg=\nchangetype: modify\n"
            "replace: description\ndescription:: " + base64.b64encode("é\n".encode()).decode() + "\n"
            "description: plain\n-\n")
    (record,) = read_ldif(text)
    assert record == Record("CN=a,DC=x", ((SD_FLAGS_OID, True, b"\x30\x03\x02\x01\x08"),),
                            (("replace", "description", ("é\n".encode(), b"plain")),))
    with pytest.raises(AssertionError):
        read_ldif("dn: CN=a\nchangetype: modify\nreplace: description\ndescription: x\nchangetype: delete\n-\n")
    assert ldif_problems(LdapCall("modify", "CN=a\n", changes=(("description", "replace", ("x",)),))) == []


def test_equality_assertion_rejects_what_is_not_one() -> None:
    assert equality_assertion("(sAMAccountName=a\\2a\\28b\\29\\5c\\00)") == ("sAMAccountName", "a*(b)\\\0")
    for bad in ("(sAMAccountName=*)", "(sAMAccountName=a)(cn=b)", "(|(cn=a)(cn=b))", "(cn=a\\2)", "(cn=a\\)"):
        with pytest.raises(AssertionError):
            equality_assertion(bad)


def test_guid_slots_take_guids() -> None:
    """The GUID slots are real slots: a GUID in any spelling is accepted there."""
    for slot in (s for s in SLOTS if s.path[-1] in GUID_SLOTS):
        params = _accepted(slot, "{" + str(uuid.UUID(slot.valid[0])).upper() + "}")
        assert params is not None, slot.name
