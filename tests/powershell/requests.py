"""Checks of one rendered request against the data it was rendered from (used by several tests)."""

from __future__ import annotations

import json
from typing import Any

from tree_sitter import Node

from hardening.model import AddRemove, CmdletCall, ScriptCall, Switch
from hardening.render import cmdlet_text

from .checker import Script, read_expandable, read_verbatim


def cmdlet_text_problems(call: CmdletCall) -> list[str]:
    """Why ``cmdlet_text(call)`` is not a faithful PowerShell form of ``call`` (empty if it is).

    Faithful: it parses with no error node; it is exactly one invocation of ``call.cmdlet`` with
    ``call``'s parameters in order; every argument is one literal PowerShell reads back as the
    value (strings as one verbatim literal, tuples as one literal per element, booleans as
    ``$true``/``$false``, switches with no argument, an :class:`AddRemove` as one hashtable
    ``@{Add=...; Remove=...}`` whose entries read back as its values).
    """
    text = cmdlet_text(call)
    script = Script(text)
    if script.problems:
        return [f"does not parse: {script.problem_report()}"]
    if len(script.invocations) != 1:
        return [f"expected one invocation, found {[i.name for i in script.invocations]}"]
    (invocation,) = script.invocations
    problems = []
    if invocation.name != call.cmdlet:
        problems.append(f"invokes {invocation.name!r}, not {call.cmdlet!r}")
    names = tuple(name for name, _ in call.parameters)
    if invocation.parameters != names:
        problems.append(f"parameters {invocation.parameters} != {names}")
        return problems
    bound: dict[str, list[Node]] = {}
    for argument in invocation.arguments():
        if argument.parameter is None:
            problems.append(f"positional argument {argument.text!r}")
            continue
        bound.setdefault(argument.parameter, []).append(argument.node)
    for name, value in call.parameters:
        nodes = bound.get(name, [])
        if isinstance(value, Switch):
            if nodes:
                problems.append(f"switch -{name} took an argument")
            continue
        if len(nodes) != 1:
            problems.append(f"-{name} has {len(nodes)} arguments")
            continue
        problems += [f"-{name}: {p}" for p in argument_problems(script, nodes[0], value)]
    return problems


def argument_problems(script: Script, node: Node, value: Any) -> list[str]:
    """Why an argument node does not read back as ``value``."""
    text = script.text_of(node)
    if value is None:
        return [] if text == "$null" else [f"{text!r} is not $null"]
    if isinstance(value, bool):
        want = "$true" if value else "$false"
        return [] if text == want else [f"{text!r} is not {want}"]
    if isinstance(value, int):
        return [] if text == str(value) else [f"{text!r} is not {value}"]
    if isinstance(value, AddRemove):
        return _hashtable_problems(script, node, value)
    values = [value] if isinstance(value, str) else list(value)
    if not values:
        return [] if text == "@()" else [f"{text!r} is not an empty array"]
    literals = [n for n in _walk(node) if n.type == "string_literal"]
    problems = _literal_problems(script, literals, values)
    if isinstance(value, str) and not problems and text != script.text_of(literals[0]):
        problems.append(f"the argument {text[:40]!r} is more than its literal")
    return problems


def _hashtable_problems(script: Script, node: Node, value: AddRemove) -> list[str]:
    """Why a ``@{Add=...; Remove=...}`` argument does not read back as ``value``: one hashtable
    literal, its keys Add then Remove (each only when it has values), each entry's literals the values."""
    tables = [n for n in _walk(node) if n.type == "hash_literal_expression"]
    if len(tables) != 1 or script.text_of(node) != script.text_of(tables[0]):
        return [f"{script.text_of(node)[:40]!r} is not one hashtable literal"]
    entries = [n for n in _walk(tables[0]) if n.type == "hash_entry"]
    wanted = [(key, list(items)) for key, items in (("Add", value.add), ("Remove", value.remove)) if items]
    keys = [script.text_of(next(c for c in e.children if c.type == "key_expression")) for e in entries]
    if keys != [key for key, _ in wanted]:
        return [f"hashtable keys {keys} != {[key for key, _ in wanted]}"]
    problems = []
    for entry, (key, items) in zip(entries, wanted, strict=True):
        literals = [n for n in _walk(entry) if n.type == "string_literal"]
        problems += [f"{key}: {p}" for p in _literal_problems(script, literals, items)]
    return problems


def _literal_problems(script: Script, literals: list[Node], values: list[str]) -> list[str]:
    """Why string literal nodes do not read back, one each, as ``values``."""
    if len(literals) != len(values):
        return [f"{len(literals)} string literals for {len(values)} values"]
    problems = []
    for literal, want in zip(literals, values, strict=True):
        source = script.text_of(literal)
        if source.startswith('"'):  # values with control characters: escapes, nothing expands
            expanded = read_expandable(source)
            if expanded != want:
                problems.append(f"{source[:40]!r} does not read back as {want[:40]!r} (or would expand)")
            continue
        try:
            got, end = read_verbatim(source)
        except ValueError as exc:
            problems.append(f"{source[:40]!r} is not a single-quoted string: {exc}")
            continue
        if end != len(source):
            problems.append(f"PowerShell ends {source[:40]!r} at offset {end}, before the node ends")
        elif got != want:
            problems.append(f"reads back as {got[:40]!r}, not {want[:40]!r}")
    return problems


def _walk(node: Node) -> Any:
    yield node
    for child in node.children:
        yield from _walk(child)


def bundle_structure_problems(script: Script, calls: list[ScriptCall]) -> list[str]:
    """Why a bundle is not ``calls`` each in its own ``& { }`` scope with its own try/catch and
    one ``$Call`` literal that PowerShell reads back as the call's JSON record."""
    top = [n for n in script.root.children[0].children if n.type == "pipeline"] if script.root.children else []
    blocks = [n for n in top if n.text and n.text.startswith(b"& {")]
    problems = []
    if len(blocks) != len(calls):
        return [f"{len(blocks)} top-level '& {{ }}' blocks for {len(calls)} calls"]
    call_literals = [lit for lit in script.string_literals
                     if script.data[:lit.start].endswith(b"$Call = ConvertFrom-Json -InputObject ")]
    if len(call_literals) != len(calls):
        return [f"{len(call_literals)} $Call literals for {len(calls)} calls"]
    for n, (block, call, literal) in enumerate(zip(blocks, calls, call_literals, strict=True)):
        tries = [t for t in _walk(block) if t.type == "try_statement"]
        if not tries or not any(c.type == "catch_clauses" for c in tries[0].children):
            problems.append(f"call {n} ({call.kind}.{call.op}) has no try/catch")
        if not block.start_byte < literal.start < block.end_byte:
            problems.append(f"call {n}'s $Call literal is outside its block")
        if literal.value is None:
            problems.append(f"call {n}'s $Call literal is not a verbatim string PowerShell reads whole")
            continue
        record = json.loads(literal.value)
        if record.get("data") != call.data:
            problems.append(f"call {n}'s $Call literal does not read back as its data")
    return problems


def skeleton(script: Script) -> bytes:
    """The script with every string literal replaced by a placeholder: what is code, not data."""
    out, last = [], 0
    for literal in sorted(script.string_literals, key=lambda lit: lit.start):
        if literal.start < last:
            continue  # nested in a literal already replaced (expandable strings)
        out += [script.data[last:literal.start], b"<string>"]
        last = literal.end
    out.append(script.data[last:])
    return b"".join(out)
