"""Hostile values: a parameter value is data, and stays data, whatever characters it holds.

Every string slot of every kind's parameter model is found by walking the pydantic model
(nested models and list items too), and each hostile value below is put in it:

- an enum (Literal) or constrained slot must reject it with a clean pydantic ValidationError
  located at that slot;
- a free-text slot (paths, principals, certificate names, connector name globs) must accept it,
  and then:
  - script kinds: the bundle parses with no error node; compared with the same request carrying
    a harmless probe value, nothing outside string literals changed and the only literal that
    changed is the call's ``$Call`` JSON literal; PowerShell's quoting rule reads that literal
    back as JSON equal to the call's data; ``decode_bundle`` returns the data unchanged; and a
    real lab host (``load_lab()`` + ``LabTarget``) logs the value byte for byte;
  - Exchange kinds: the value travels as data (the CmdletCall parameter equals it exactly and the
    lab host receives it exactly, and stores it exactly when the write runs against MAIL01); its
    text form from ``cmdlet_text`` parses cleanly, with the value inside one string literal that
    PowerShell reads back exactly.

NUL: JSON carries it as the escape ``\\u0000`` inside the ``$Call`` literal, so a script never
holds a raw NUL, and the host's ConvertFrom-Json gives the character back. The cmdlet-line text
form writes a value holding control characters as a double-quoted literal with backtick escapes
(``"a`0b"``), in which nothing expands; the checker reads it back by PowerShell's rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest

from hardening.kinds import KINDS, Kind
from hardening.lab import load_lab
from hardening.lab.decode import decode_bundle
from hardening.model import Call, CmdletCall, ScriptCall, Section
from hardening.render import bundle_script, cmdlet_text
from hardening.targets.memory import LabTarget

from . import cases
from .checker import Script, StringLiteral
from .requests import bundle_structure_problems, cmdlet_text_problems, skeleton

QUOTES = {"apostrophe": "'", "left-single-quote": "\u2018", "right-single-quote": "\u2019",
          "low-single-quote": "\u201a", "reversed-single-quote": "\u201b"}
BASIC: dict[str, str] = {
    **QUOTES,
    **{f"{name}-breakout": f"x{q}; Remove-Item -LiteralPath C:\\ -Recurse -Force; {q}" for name, q in QUOTES.items()},
    "doubled-quotes": "''\u2018\u2018\u2019\u2019\u201a\u201a\u201b\u201b",
    "subexpression": "$(Remove-Item C:\\)",
    "backticks": "`$x `n `` `",
    "semicolon": ";",
    "double-quote": '"',
    "lf": "\n",
    "crlf": "\r\n",
    "unicode-newlines": "\u0085\u2028\u2029",
    "here-string-end-single": "x\n'@\nRemove-Item C:\\\n@'\n",
    "here-string-end-double": "x\n\"@\nRemove-Item C:\\\n@\"\n",
    "braces-and-comments": "} # <# #> { ",
    "json-escape-lookalikes": "\\u0027 \\\" \\\\ \\n \\u0000",
    "nul": "\x00",
    "nul-inside": "C:\\Data\x00\\Queue",
    "accented": "é",
    "cjk": "中文",
    "emoji": "😀",
    "non-ascii-path": "D:\\Données\\中文\\😀",
    "long-100k": "x" * 100_000,
    "long-100k-hostile": ("'\u2018\u2019\u201a\u201b`$(;)\"\r\n\x00é中😀" * 10_000)[:100_000],
}
HOSTILE: dict[str, str] = {
    **BASIC,
    "combined": "".join(v for k, v in BASIC.items() if "nul" not in k and not k.startswith("long")),
    "combined-with-nul": "".join(v for k, v in BASIC.items() if not k.startswith("long")),
}
PROBE = "hardening-probe-value"
# Free-text slots used only in Python, to choose objects, and never sent whole to a host.
SELECTION_ONLY = {"receive_connector_tls.select.name"}

# PowerShell kinds only: directory kinds' values travel as LDAP data (tests/directory/test_directory_hostile.py).
POWERSHELL_CHANNELS = {"script", "exchange"}
SLOTS = [(name, slot) for name, kind in sorted(KINDS.items()) if kind.channel in POWERSHELL_CHANNELS
         for slot in cases.string_slots(kind.params_model)]
ENUM_SLOTS = [(n, s) for n, s in SLOTS if not s.free_text]
FREE_SLOTS = [(n, s) for n, s in SLOTS if s.free_text]


def _params(name: str, slot: cases.Slot, value: str) -> dict[str, Any]:
    found = cases.base_for(name, slot.path, slot.choices or (PROBE,))
    assert found is not None, f"no sample of {name} can carry {slot.name}; add one to cases.SAMPLES"
    raw = cases.with_value(found[1], slot.path, value)
    assert raw is not None
    return raw


def _same(a: Any, b: Any) -> bool:
    """Equality without pytest's diff: on 100,000-character values the diff alone can take
    minutes and gigabytes, and the message next to each assert says what differed."""
    return bool(a == b)


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def _paths_of(data: Any, needle: str, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where ``needle`` sits, whole, in a JSON-like value (dict keys, list/tuple indexes)."""
    if data == needle:
        yield prefix
    elif isinstance(data, dict):
        for key, item in data.items():
            yield from _paths_of(item, needle, (*prefix, key))
    elif isinstance(data, (list, tuple)):
        for i, item in enumerate(data):
            yield from _paths_of(item, needle, (*prefix, i))


def _data(call: Call) -> Any:
    return call.data if isinstance(call, ScriptCall) else call.parameters


def _requests(kind: Kind[Any], raw: dict[str, Any]) -> dict[str, dict[str, tuple[Call, ...]]]:
    """Per variant, the plan-mode read and write requests for these raw parameters."""
    params = kind.params_model.model_validate(raw)
    return {v.name: cases.plan_requests(kind, params, cases.plan_context(v)) for v in kind.variants}


def _travels(name: str, slot: cases.Slot) -> bool:
    """Whether the slot's value reaches some request whole (found with a harmless probe)."""
    kind = KINDS[name]
    probe = _requests(kind, _params(name, slot, PROBE))
    return any(list(_paths_of(_data(c), PROBE)) for phases in probe.values() for calls in phases.values()
               for c in calls)


def _slot_ids(slots: list[tuple[str, cases.Slot]]) -> list[str]:
    return [f"{name}.{slot.name}" for name, slot in slots]


def _matrix(slots: list[tuple[str, cases.Slot]]) -> list[Any]:
    return [pytest.param(name, slot, value, id=f"{name}.{slot.name}-{key}")
            for name, slot in slots for key, value in HOSTILE.items()]


# --- every slot is covered --------------------------------------------------------------------


def test_every_kind_has_string_slots_covered() -> None:
    """Every script and Exchange kind's string slots were found, and every free-text slot has a
    sample that can carry a value there (else its hostile tests could not run)."""
    assert {name for name, _ in SLOTS} <= {n for n, k in KINDS.items() if k.channel in POWERSHELL_CHANNELS}
    for name, slot in FREE_SLOTS:
        assert cases.base_for(name, slot.path, (PROBE,)) is not None, f"{name}.{slot.name}"
    # The free-text slots that exist today are among them (paths, principals, certificate
    # names, connector name globs): the walk over the models is not missing any.
    names = set(_slot_ids(FREE_SLOTS))
    for expected in ("ntfs_acl.path", "ntfs_acl.access[].principal", "ntfs_acl.owner",
                     "receive_connector_tls.select.name", "receive_connector_tls.tls_certificate_name",
                     "pop_imap_login.x509_certificate_name"):
        if expected.split(".")[0] in KINDS:
            assert expected in names, expected
    assert names >= SELECTION_ONLY, "SELECTION_ONLY names a slot that no longer exists"


# --- enum slots reject ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "slot", "value"), _matrix(ENUM_SLOTS))
def test_enum_slots_reject_hostile_values_cleanly(name: str, slot: cases.Slot, value: str) -> None:
    """A Literal or constrained slot refuses the value with a pydantic ValidationError that
    points at the slot (so the playbook error names the right key), and nothing else."""
    raw = _params(name, slot, value)
    with pytest.raises(pydantic.ValidationError) as caught:
        KINDS[name].params_model.model_validate(raw)
    locations = [tuple(e["loc"]) for e in caught.value.errors()]
    assert slot.path in locations, locations


# --- script kinds -----------------------------------------------------------------------------


def _call_literals(script: Script) -> list[StringLiteral]:
    return [lit for lit in script.string_literals
            if script.data[:lit.start].endswith(b"$Call = ConvertFrom-Json -InputObject ")]


def _json_form(value: str) -> str:
    """How ``value`` appears inside a single-quoted JSON literal: JSON-escaped (ASCII only),
    then with each ' doubled (the look-alikes are \\u escapes by then)."""
    return json.dumps(value, ensure_ascii=True)[1:-1].replace("'", "''")


SCRIPT_FREE = [(n, s) for n, s in FREE_SLOTS if KINDS[n].channel == "script"]
EXCHANGE_FREE = [(n, s) for n, s in FREE_SLOTS if KINDS[n].channel == "exchange"]


@pytest.mark.parametrize(("name", "slot", "value"), _matrix(SCRIPT_FREE))
def test_script_kind_carries_hostile_value_as_data(name: str, slot: cases.Slot, value: str) -> None:
    """Accepted, rendered, parsed, confined to the $Call literal, decoded and received by the lab
    host exactly (see the module docstring)."""
    kind = KINDS[name]
    params = kind.params_model.model_validate(_params(name, slot, value))
    assert _same(_at(params.model_dump(), slot.path), value), "the model altered the value"
    hostile = _requests(kind, _params(name, slot, value))
    probe = _requests(kind, _params(name, slot, PROBE))
    travelled = False
    for variant, phases in hostile.items():
        for phase, calls in phases.items():
            where = f"{variant} {phase}"
            probe_calls = probe[variant][phase]
            assert len(calls) == len(probe_calls), where
            # The value sits, whole and unchanged, at least as often as the probe does (lists may
            # sort it elsewhere, so places are matched by count, then checked where the value is;
            # a value with no letters also survives the plan's upper-casing of unresolved names).
            slots = [list(_paths_of(_data(c), value)) for c in calls]
            for paths, probe_call in zip(slots, probe_calls, strict=True):
                expected = len(list(_paths_of(_data(probe_call), PROBE)))
                assert len(paths) >= expected, f"{where}: the value is whole in {len(paths)} places, not {expected}"
                travelled = travelled or bool(paths)
            script_calls = [c for c in calls if isinstance(c, ScriptCall)]
            section = Section("hostile", tuple(script_calls))
            text = bundle_script([section])
            script = Script(text)
            assert not script.problems, f"{where}:\n{script.problem_report()}"
            assert "\x00" not in text, f"{where}: a raw NUL reached the script"
            # Only the $Call literals differ from the probe's script; the code is identical.
            probe_script = Script(bundle_script([Section("hostile", probe_calls)]))
            assert _same(skeleton(script), skeleton(probe_script)), f"{where}: the value changed code"
            changed = [a for a, b in zip(script.string_literals, probe_script.string_literals, strict=True)
                       if a.text != b.text]
            call_literals = _call_literals(script)
            assert len(call_literals) == len(script_calls)
            assert all(lit in call_literals for lit in changed), f"{where}: a non-$Call literal changed"
            if any(slots):
                assert len(changed) == sum(1 for p in slots if p), f"{where}: {len(changed)} literals changed"
            needle = _json_form(value)
            if any(slots) and needle not in probe_script.text:
                assert script.outside_literals(needle) == [], f"{where}: the value escaped its literal"
                holders = script.literals_holding(needle)
                assert holders and all(h in call_literals for h in holders), where
            # PowerShell's rule reads each $Call literal back as the call's JSON record.
            assert not bundle_structure_problems(script, script_calls), where
            decoded = decode_bundle(text)
            assert _same([d.data for d in decoded], [c.data for c in script_calls]), f"{where}: decode_bundle"
            # A real lab host receives exactly what was sent.
            host = load_lab().host(cases.LAB_HOST)
            assert host is not None
            LabTarget(cases.LAB_HOST, host).run((section,))
            assert _same(host.received, [(f"{c.kind}.{c.op}", c.data) for c in script_calls]), where
            for (_, data), paths in zip(host.received, slots, strict=True):
                for path in paths:
                    assert _same(_at(data, path).encode("utf-8"), value.encode("utf-8")), where
    assert travelled, f"{name}.{slot.name}: the probe reached no request, so nothing was proved"


def test_nul_travels_as_a_json_escape_and_comes_back() -> None:
    """The NUL decision, shown on one call: the script holds the six characters \\u0000 inside the
    $Call literal and no raw NUL anywhere; PowerShell's quoting rule gives back JSON whose
    string holds the NUL character again, and so do decode_bundle and the lab host."""
    data = {"path": "C:\\a\x00b", "principals": []}
    text = bundle_script([Section("nul", (ScriptCall("ntfs_acl", "read", data),))])
    script = Script(text)
    assert script.problems == [] and "\x00" not in text
    (literal,) = _call_literals(script)
    assert "\\u0000" in literal.text
    assert literal.value is not None and json.loads(literal.value)["data"] == data
    assert decode_bundle(text)[0].data == data
    host = load_lab().host(cases.LAB_HOST)
    assert host is not None
    LabTarget(cases.LAB_HOST, host).run((Section("nul", (ScriptCall("ntfs_acl", "read", data),)),))
    assert host.received == [("ntfs_acl.read", data)]


# --- Exchange kinds ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "slot", "value"), _matrix(EXCHANGE_FREE))
def test_exchange_kind_carries_hostile_value_as_data(name: str, slot: cases.Slot, value: str) -> None:
    """The value reaches the CmdletCall parameters whole, the lab host receives the parameters
    exactly, and a write against MAIL01 stores the value exactly (the re-read returns it)."""
    kind = KINDS[name]
    params = kind.params_model.model_validate(_params(name, slot, value))
    assert _same(_at(params.model_dump(), slot.path), value), "the model altered the value"
    hostile = _requests(kind, _params(name, slot, value))
    probe = _requests(kind, _params(name, slot, PROBE))
    travels = False
    for variant, phases in hostile.items():
        sent: list[CmdletCall] = []
        for phase, calls in phases.items():
            probe_calls = probe[variant][phase]
            assert [c.cmdlet for c in calls if isinstance(c, CmdletCall)] == [
                c.cmdlet for c in probe_calls if isinstance(c, CmdletCall)], phase
            for call, probe_call in zip(calls, probe_calls, strict=True):
                assert isinstance(call, CmdletCall) and isinstance(probe_call, CmdletCall)
                assert [n for n, _ in call.parameters] == [n for n, _ in probe_call.parameters], phase
                paths = list(_paths_of(call.parameters, value))
                expected = len(list(_paths_of(probe_call.parameters, PROBE)))
                assert len(paths) >= expected, f"{phase}: the value is whole in {len(paths)} places, not {expected}"
                travels = travels or bool(paths)
                sent.append(call)
        host = load_lab().host(cases.LAB_HOST)
        assert host is not None
        LabTarget(cases.LAB_HOST, host).run((Section("hostile", tuple(sent)),))
        assert _same(host.received, [(c.cmdlet, c.parameters) for c in sent]), variant
    # Against MAIL01: the writes the kind decides after a real read, then a re-read.
    for variant in kind.variants:
        seen = cases.observe_on_lab(kind, params, variant)
        if seen is None:
            continue
        before = len(seen.target.host.received)
        seen.target.run((Section("write", seen.writes),))
        assert _same(seen.target.host.received[before:], [(c.cmdlet, c.parameters) for c in seen.writes])
        written = any(list(_paths_of(c.parameters, value)) for c in seen.writes if isinstance(c, CmdletCall))
        assert written == travels, f"{variant}: the value {'never reached' if travels else 'reached'} the writes"
        if written:
            (reread,) = seen.target.run((Section("reread", kind.read(params, seen.ctx)),))
            after = kind.observe(params, seen.ctx, reread.values)
            assert any(list(_paths_of(dict(props or {}), value)) for props in after.values()), \
                "the lab did not store the value exactly"
    selection_only = f"{name}.{slot.name}" in SELECTION_ONLY
    assert travels != selection_only, (f"{name}.{slot.name}: " + (
        "listed in SELECTION_ONLY but sent to the host" if selection_only
        else "reaches no request whole; if it only selects objects, add it to SELECTION_ONLY"))


@pytest.mark.parametrize(("name", "slot", "value"), _matrix(EXCHANGE_FREE))
def test_exchange_cmdlet_text_keeps_hostile_value_in_one_literal(name: str, slot: cases.Slot, value: str) -> None:
    """The text form of every call (plan, snapshots, review) parses with no error node, is one
    invocation with the same parameters as the probe's, differs from it only inside string
    literals, and holds the value inside one literal that PowerShell reads back exactly."""
    kind = KINDS[name]
    hostile = _requests(kind, _params(name, slot, value))
    probe = _requests(kind, _params(name, slot, PROBE))
    for variant, phases in hostile.items():
        for phase, calls in phases.items():
            for call, probe_call in zip(calls, probe[variant][phase], strict=True):
                assert isinstance(call, CmdletCall) and isinstance(probe_call, CmdletCall)
                problems = cmdlet_text_problems(call)
                assert not problems, f"{variant} {phase}: {problems[0][:2000]}"
                script, probe_script = Script(cmdlet_text(call)), Script(cmdlet_text(probe_call))
                assert _same(skeleton(script), skeleton(probe_script)), f"{variant} {phase}: the value changed code"
                expected = len(list(_paths_of(probe_call.parameters, PROBE)))
                holders = [lit for lit in script.string_literals if lit.value == value]
                assert len(holders) >= expected, f"{variant} {phase}: {len(holders)} literals read back as the value"
