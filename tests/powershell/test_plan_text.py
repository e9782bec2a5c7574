"""The text of ``hardening plan``: each request on one line, each comment one line, whatever the
values hold.

Every hostile value of test_ps_hostile.py, between two markers, goes through ``plan`` of the
idempotency playbooks (tests/engine/playbooks, one or more per kind: every kind is covered) in
every free-text slot of every kind that one of their controls (or, failing that, a kind sample)
can carry, in every control's title (the ``## id (kind): title`` comment), in a documented
exception's reason (the ``# skipped`` comment) and in the shipped playbooks' variables (set in the
inventory). All controls of one value share one playbook, so a value costs one plan per channel.

The plan text must then have no line break but LF and no control character at all; every line
holding the start marker holds the end marker after it; for the PowerShell kinds, the whole text
parses with the real grammar (tree-sitter-powershell) with no error node, and each start marker
lies inside one string literal that reads back (by PowerShell's rules, then as JSON for a
bundle's ``$Call`` literal) with both markers, or inside one comment that holds both. For the
directory kinds (LDIF), every line is a comment or an LDIF line.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from hardening import load_inventory, load_playbook, plan
from hardening.errors import HardeningError
from hardening.kinds import KINDS

from . import cases
from .checker import SINGLE_QUOTES, Script, read_expandable, read_verbatim
from .test_ps_hostile import HOSTILE, PROBE

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "tests" / "engine" / "playbooks"
SHIPPED = ROOT / "playbooks"
START, END = "hq7start", "hq7end"  # lower case: a kind that folds case keeps them
BREAKS_AND_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f\x85\u2028\u2029]")
LDIF_LINE = re.compile(r"(?:[A-Za-z][A-Za-z0-9;.-]*::? .*|[A-Za-z][A-Za-z0-9;.-]*:|-| .+|)")
# A few values that break lines or quotes, for the shipped playbooks' variables.
SHIPPED_VALUES = ("lf", "crlf", "unicode-newlines", "combined-with-nul")


# The 100,000-character values are cut here: what they test (length) is tested per slot in
# test_ps_hostile.py, and their characters are all in the first 2,000.
VALUES = {key: value[:2000] for key, value in HOSTILE.items()}


def marked(value: str) -> str:
    return f"{START}{value}{END}"


@functools.cache
def _engine_controls(kind: str) -> list[dict[str, Any]]:
    """The raw parameters of every control of ``kind`` in its idempotency playbooks (read once:
    callers copy before they change anything, as cases.with_value does)."""
    out = []
    for path in sorted(ENGINE.glob(f"{kind}*.yml")):
        if path.stem != kind and not path.stem.startswith(kind + "-"):
            continue
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        out += [c[kind] for c in doc["controls"] if kind in c]
    assert out, f"no idempotency playbook for {kind}"
    return out


@functools.cache
def _carrier(kind: str, path: tuple[str | int, ...]) -> dict[str, Any] | None:
    """Raw parameters of ``kind`` that can carry a value at ``path``: an idempotency playbook's
    control if one can (templates are kept: plan renders them), else the kind's sample."""
    model = KINDS[kind].params_model
    for raw in _engine_controls(kind):
        probe = cases.with_value(raw, path, PROBE)
        if probe is None:
            continue
        try:
            model.model_validate(probe)
        except pydantic.ValidationError:
            continue
        return raw
    found = cases.base_for(kind, path, (PROBE,))
    return found[1] if found else None


def _controls(kind: str, value: str) -> list[dict[str, Any]]:
    """The controls of one kind for one value: one per free-text slot that accepts it, or the
    first idempotency control (with the value only in its title) when none does."""
    model = KINDS[kind].params_model
    controls = []
    for slot in cases.string_slots(model):
        if not slot.free_text:
            continue
        raw = _carrier(kind, slot.path)
        params = cases.with_value(raw, slot.path, value) if raw is not None else None
        if params is None:
            continue
        try:
            model.model_validate(params)
        except pydantic.ValidationError:
            continue  # refused at the slot: test_ps_hostile / test_directory_hostile check where
        controls.append({"slot": slot.name, kind: params})
    if not controls:
        controls.append({"slot": "title only", kind: copy.deepcopy(_engine_controls(kind)[0])})
    return [{"id": f"{kind}-{n}", "title": f"{kind} {c.pop('slot')}: {value}", **c} for n, c in enumerate(controls)]


def _write(folder: Path, name: str, document: Any) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _inventory(folder: Path, variables: dict[str, Any] | None = None) -> Path:
    return _write(folder, "inventory.yml", {"connection": {"transport": "lab"}, "hosts": {"MAIL01": {}},
                                            **({"vars": variables} if variables else {})})


def _plan_text(playbook: Path, inventory: Path) -> str:
    run = plan(load_playbook(playbook), load_inventory(inventory))
    (text,) = run.plan_text.values()
    return text


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for item in data.values():
            yield from _strings(item)
    elif isinstance(data, list):
        for item in data:
            yield from _strings(item)


def _unfold(text: str) -> str:
    """LDIF continuation lines (a leading space) joined to the line they continue (RFC 2849)."""
    return text.replace("\n ", "")


HEADER = re.compile(r"## \S+ \((\w+)\): ")


def _parts(text: str) -> tuple[str, str]:
    """The plan text split by control (at its ``## id (kind): title`` line): the PowerShell parts
    (comments, bundles, cmdlet lines) and the LDIF parts (directory kinds), each joined."""
    powershell: list[str] = []
    ldif: list[str] = []
    into = powershell
    for line in text.split("\n"):
        header = HEADER.match(line)
        if header:
            into = ldif if KINDS[header[1]].channel == "directory" else powershell
        into.append(line)
    return "\n".join(powershell), "\n".join(ldif)


def text_problems(text: str) -> list[str]:
    """Why a plan text does not keep each request and each comment on one line (empty if it does)."""
    problems = []
    stray = BREAKS_AND_CONTROLS.search(text)
    if stray:
        problems.append(f"a line break or control character {stray.group(0)!r} at {stray.start()}")
    powershell, ldif = _parts(text)
    for n, line in enumerate([*powershell.split("\n"), *_unfold(ldif).split("\n")], 1):
        if START in line and not re.search(f"{START}.*{END}", line):
            problems.append(f"line {n} holds the start marker but not the end after it: {line[:160]!r}")
    for n, line in enumerate(_unfold(ldif).split("\n"), 1):
        if not line.startswith("#") and not LDIF_LINE.fullmatch(line):
            problems.append(f"LDIF line {n} is neither a comment nor an LDIF line: {line[:160]!r}")
    return problems + _powershell_problems(powershell)


def _powershell_problems(text: str) -> list[str]:
    problems: list[str] = []
    if all(line.startswith("#") or not line for line in text.split("\n")):
        return []  # comments only (the grammar takes no script without a statement: an ERROR node)
    script = Script(text)
    # The grammar's own error flag (C, fast) rather than a walk of every node: a value cannot have
    # masked a parameter token (the checker's grammar gap 5), the templates' own tests cover those.
    if script.root.has_error:
        return [f"does not parse: {script.problem_report()}"]
    for start, end in script.occurrences(START):
        node = script.root.descendant_for_byte_range(start, end)
        while node is not None and node.type not in ("string_literal", "comment"):
            node = node.parent
        if node is None:
            problems.append(f"a start marker outside any literal or comment at byte {start}")
        elif node.type == "comment":
            if END.encode() not in script.data[start:node.end_byte]:
                problems.append(f"a comment holds the start marker but not the end: {script.text_of(node)[:160]!r}")
        elif not _holds_both(script.text_of(node)):
            problems.append(f"a literal does not read back with both markers: {script.text_of(node)[:160]!r}")
    return problems


def _holds_both(literal: str) -> bool:
    """The literal's value, as PowerShell reads it, holds START … END: as text (a cmdlet
    argument), or in a string of the JSON it holds (a bundle's $Call literal, JSON-escaped)."""
    if literal[:1] in SINGLE_QUOTES:
        value, end = read_verbatim(literal)
        if end != len(literal):
            return False
    else:
        value = read_expandable(literal)
    if value is None:
        return False
    if re.search(f"{START}.*{END}", value, re.DOTALL):
        return True
    try:
        data = json.loads(value)
    except ValueError:
        return False
    return any(re.search(f"{START}.*{END}", s, re.DOTALL) for s in _strings(data))


POWERSHELL_KINDS = sorted(n for n, k in KINDS.items() if k.channel != "directory")
DIRECTORY_KINDS = sorted(n for n, k in KINDS.items() if k.channel == "directory")


@pytest.mark.parametrize("key", list(VALUES))
@pytest.mark.parametrize("channel", ["powershell", "directory"])
def test_plan_of_every_kind_keeps_hostile_values_on_one_line(channel: str, key: str, tmp_path: Path) -> None:
    value = marked(VALUES[key])
    kinds = POWERSHELL_KINDS if channel == "powershell" else DIRECTORY_KINDS
    controls = [c for kind in kinds for c in _controls(kind, value)]
    # A documented exception: its reason is shown in the plan's "# skipped" comment.
    controls.append({**controls[0], "id": "excepted", "exceptions": [{"hosts": "MAIL01", "reason": value}]})
    playbook = _write(tmp_path, "playbook.yml", {"name": "hostile", "hosts": "all", "controls": controls})
    try:
        text = _plan_text(playbook, _inventory(tmp_path))
    except HardeningError as exc:  # a kind's preflight refused a value: one clear message, no traceback
        pytest.fail(f"plan refused the playbook: {exc}")
    headers = {line.split(" ")[1] for line in text.split("\n") if line.startswith("## ")}
    assert headers == {c["id"] for c in controls}, "a control is missing from the plan"
    assert "# skipped: exception: " in text
    problems = text_problems(text)
    assert not problems, "\n".join(p[:2000] for p in problems[:5])


def _shipped_variables(playbook: Path) -> tuple[list[str], dict[str, Any]]:
    """The variables a shipped playbook (and what it includes) renders, and their values in the
    playbooks' own ``vars`` and the demo inventory's (the lab's example values)."""
    from hardening.lab.scenario import DEMO_INVENTORY

    names: set[str] = set()
    values: dict[str, Any] = dict(yaml.safe_load(DEMO_INVENTORY.read_text(encoding="utf-8")).get("vars") or {})
    for path in [playbook, *(SHIPPED / p for p in yaml.safe_load(playbook.read_text(encoding="utf-8"))
                             .get("include") or ())]:
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"\{\{\s*(\w+)\s*[|}]", text)) - {"facts", "host", "groups", "hostvars"}
        values = {**(yaml.safe_load(text).get("vars") or {}), **values}
    return sorted(names), values


@pytest.mark.parametrize("key", SHIPPED_VALUES)
@pytest.mark.parametrize("playbook", sorted(p.name for p in SHIPPED.glob("*.yml")))
def test_shipped_playbooks_keep_hostile_variables_on_one_line(playbook: str, key: str, tmp_path: Path) -> None:
    """Each variable a shipped playbook uses, set to the value in the inventory: the plan keeps
    it on one line, or refuses the playbook with one message (a variable the kind validates)."""
    names, values = _shipped_variables(SHIPPED / playbook)
    planned = 0
    for name in names or [None]:
        variables = {**values, **({name: marked(VALUES[key])} if name else {})}
        inventory = _write(tmp_path, "inventory.yml", {
            "connection": {"transport": "lab"}, "hosts": {"MAIL01": {}},
            "groups": {"domain_controllers": {"hosts": ["MAIL01"]}}, "vars": variables})
        try:
            text = _plan_text(SHIPPED / playbook, inventory)
        except HardeningError as exc:  # the kind refuses the value at its slot: one message
            assert name is not None and "\n" not in str(exc), str(exc)[:500]
            continue
        planned += 1
        problems = text_problems(text)
        assert not problems, f"{name}: " + "\n".join(p[:2000] for p in problems[:5])
        if name is not None:
            assert START in text, f"{name} does not reach the plan"
    assert planned or names, f"{playbook} planned nothing"


@pytest.mark.parametrize("key", ["unicode-newlines", "combined-with-nul"])
def test_host_name_and_declared_facts_stay_in_their_comments(key: str, tmp_path: Path) -> None:
    """The inventory's host name (``# host``) and declared facts (``# facts … assumed``), through
    the ``hardening plan`` command itself (its JSON report holds the text it prints)."""
    from hardening.cli import main

    value = marked(VALUES[key])
    inventory = _write(tmp_path, "inventory.yml", {"connection": {"transport": "lab"}, "hosts": {
        f"MAIL01{value}": {"facts": {"exchange_install_path": f"C:\\{value}\\"}}}})
    out = tmp_path / "plan.json"
    assert main(["--no-color", "plan", str(SHIPPED / "ntfs.yml"), "-i", str(inventory), "--report-json", str(out)]) == 0
    (text,) = json.loads(out.read_text(encoding="utf-8"))["plan"].values()
    assert text.startswith(f"# host MAIL01{START}") and text.count(START) >= 2
    assert not text_problems(text), text_problems(text)[:3]


def test_cmdlet_line_with_line_breaks_is_one_line() -> None:
    """The regression itself: a value with LF, CR, TAB and U+2028 is one escaped literal."""
    from hardening.model import CmdletCall
    from hardening.render import cmdlet_text

    text = cmdlet_text(CmdletCall("Set-AdminAuditLogConfig", (("Identity", "a\nb\r\tc\u2028d\x85"),)))
    assert text == 'Set-AdminAuditLogConfig -Identity "a`nb`r`tc$([char]0x2028)d$([char]0x85)"'
    (literal,) = Script(text).string_literals
    assert literal.value == "a\nb\r\tc\u2028d\x85"


def test_comment_escapes() -> None:
    from hardening.render import ps_comment

    assert ps_comment("org_host 'x\ny'\u2028\x00 C:\\Data") == "# org_host 'x\\ny'\\u2028\\u0000 C:\\Data"
    assert ps_comment("") == "#"
