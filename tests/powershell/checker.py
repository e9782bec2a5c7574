"""A PowerShell checker for rendered requests: the real grammar plus the cmdlet catalogue.

- :class:`Script` parses text with tree-sitter-powershell and reports error and missing nodes
  with ``line:col``; lists every command invocation (name, named parameters, positional
  arguments) except functions the script defines; and lists string literal nodes with their
  values as PowerShell reads them.
- :class:`Catalogue` loads ``tests/data/powershell-cmdlets.json`` (a subset of
  ``../shared/powershell-cmdlets.json``) and resolves cmdlets and parameters for a product label
  the way the catalogue's README says PowerShell does: exact name or alias, then a common
  parameter or its alias, then a unique prefix.

Two places where the grammar and PowerShell disagree, and what the checker does about them:

- The grammar does not know that PowerShell ends a single-quoted string at any of ' ‘ ’ ‚ ‛;
  it only knows '. So :attr:`Script.string_literals` re-reads every single-quoted literal by
  PowerShell's own rule and reports any literal whose text PowerShell would end elsewhere.
- The grammar splits a parameter name at its first digit (``-X509CertificateName`` becomes
  ``-X`` and an ERROR; also ``-Ipv6``), though PowerShell allows digits in parameter names and
  Exchange documents such parameters. There is no other way to write the parameter, so before
  parsing, the digits of such ``-Name`` tokens are replaced by letters of the same length (the
  byte offsets do not move), and after parsing every replaced token must have landed in a
  parameter, a string or a comment, or it is reported as a problem. All text the checker
  reports (names, literal values) is read from the original script, never the masked one.
  This is grammar gap 5, beside the four of ``reference/winrm-endpoint.md`` §5.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import tree_sitter_powershell as tsp
from tree_sitter import Language, Node, Parser

__all__ = [
    "CATALOGUE_PATH",
    "INBOX_SHELL",
    "Catalogue",
    "Invocation",
    "ParameterProblem",
    "Script",
    "StringLiteral",
    "SyntaxProblem",
    "parse",
    "read_expandable",
    "read_verbatim",
]

CATALOGUE_PATH = Path(__file__).resolve().parents[1] / "data" / "powershell-cmdlets.json"
PARSER = Parser(Language(tsp.language()))

# PowerShell's tokenizer treats each of these as a single quote (and two in a row as one).
SINGLE_QUOTES = frozenset("'\u2018\u2019\u201a\u201b")
# The catalogue labels in-box cmdlets by their shell, Windows Server modules by the OS: a
# Windows Server release runs the cmdlets of its own label and of the shell it ships with.
INBOX_SHELL = {
    "Windows Server 2012": "Windows PowerShell 3.0",
    "Windows Server 2012 R2": "Windows PowerShell 4.0",
    "Windows Server 2016": "Windows PowerShell 5.1",
    "Windows Server 2019": "Windows PowerShell 5.1",
    "Windows Server 2022": "Windows PowerShell 5.1",
    "Windows Server 2025": "Windows PowerShell 5.1",
}
# A "-Name" token with a digit in it (grammar gap 5): not after a word character, $, quote or dash.
DIGIT_PARAMETER = re.compile(r"(?<![\w$`'\"-])-[A-Za-z][A-Za-z0-9_]*[0-9][A-Za-z0-9_]*")
DIGIT_MASK = str.maketrans("0123456789", "QQQQQQQQQQ")
# Programs that are not cmdlets (the catalogue README: native programs are skipped). Not "sc":
# in PowerShell that is the alias of Set-Content; the service tool must be written sc.exe.
NATIVE_PROGRAMS = frozenset({"auditpol", "icacls", "netsh", "secedit", "wevtutil"})
NATIVE_SUFFIXES = (".exe", ".com", ".cmd", ".bat")
STRING_NODE_TYPES = {
    "verbatim_string_characters": "verbatim",
    "expandable_string_literal": "expandable",
    "verbatim_here_string_characters": "verbatim_here",
    "expandable_here_string_literal": "expandable_here",
}


def read_verbatim(text: str, start: int = 0) -> tuple[str, int]:
    """The value of the single-quoted literal opening at ``text[start]`` and the index after it,
    by PowerShell's rule (any of ' ‘ ’ ‚ ‛ ends it; two in a row stand for the second).

    Written here independently of ``hardening.lab.decode`` so the tests do not grade the package's
    encoder with the package's own decoder.
    """
    if start >= len(text) or text[start] not in SINGLE_QUOTES:
        raise ValueError(f"no single quote at offset {start}")
    out: list[str] = []
    i = start + 1
    while i < len(text):
        if text[i] in SINGLE_QUOTES:
            if i + 1 < len(text) and text[i + 1] in SINGLE_QUOTES:
                out.append(text[i + 1])
                i += 2
                continue
            return "".join(out), i + 1
        out.append(text[i])
        i += 1
    raise ValueError("unterminated single-quoted string")


BACKTICK_ESCAPES = {"0": "\x00", "a": "\x07", "b": "\x08", "f": "\x0c", "n": "\n", "r": "\r", "t": "\t", "v": "\x0b"}
DOUBLE_QUOTES = frozenset('"\u201c\u201d\u201e')
CHAR_EXPRESSION = re.compile(r"\$\(\[char\]0x([0-9A-Fa-f]{1,4})\)")


def read_expandable(text: str) -> str | None:
    """The value of a double-quoted literal that expands nothing, by PowerShell 5.1's rules
    (backtick escapes, doubled quotes, and ``$([char]0xNN)``); None if anything in it would expand
    or the literal ends early. Independent of ``hardening.render``."""
    if len(text) < 2 or text[0] not in DOUBLE_QUOTES or text[-1] not in DOUBLE_QUOTES:
        return None
    out: list[str] = []
    i, end = 1, len(text) - 1
    while i < end:
        ch = text[i]
        if ch == "`" and i + 1 < end:
            nxt = text[i + 1]
            out.append(BACKTICK_ESCAPES.get(nxt, nxt))
            i += 2
        elif ch == "$":
            match = CHAR_EXPRESSION.match(text, i)
            if match is None:
                return None  # a variable or subexpression: the value depends on the host
            out.append(chr(int(match.group(1), 16)))
            i = match.end()
        elif ch in DOUBLE_QUOTES:
            if i + 1 < end and text[i + 1] in DOUBLE_QUOTES:
                out.append(text[i + 1])
                i += 2
            else:
                return None  # PowerShell would end the string here
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class SyntaxProblem:
    """An ERROR or MISSING node of the parse tree."""

    line: int
    col: int
    what: str
    text: str

    def __str__(self) -> str:
        return f"{self.line}:{self.col}: {self.what} {self.text!r}"


@dataclass(frozen=True)
class StringLiteral:
    """A string literal node: its byte span in the UTF-8 script, its source text and, for
    single-quoted ones, its value as PowerShell reads it (None for expandable strings)."""

    start: int
    end: int
    line: int
    col: int
    form: str
    text: str
    value: str | None

    def covers(self, start: int, end: int) -> bool:
        """Whether the byte span [start, end) lies inside this literal's quotes."""
        return self.start < start and end < self.end


@dataclass(frozen=True)
class Argument:
    """One command argument: the parameter it is bound to by name (or None), its node and text."""

    parameter: str | None
    node: Node
    text: str

    @property
    def literals(self) -> list[Node]:
        """The string literal nodes that make up this argument (one, or one per array element)."""
        return [n for n in _walk(self.node) if n.type == "string_literal"]


@dataclass(frozen=True)
class Invocation:
    """A command in command position: its name, named parameters (as written, without the
    dash) in order, and its arguments with the parameter each follows."""

    name: str
    line: int
    col: int
    parameters: tuple[str, ...]
    elements: tuple[Node, ...] = field(repr=False)
    script: Script = field(repr=False, compare=False)

    @property
    def is_native(self) -> bool:
        lower = self.name.casefold()
        return lower.endswith(NATIVE_SUFFIXES) or lower in NATIVE_PROGRAMS or "\\" in lower or "/" in lower

    def arguments(self, catalogue: Catalogue | None = None) -> list[Argument]:
        """Arguments, each bound to the parameter before it unless that parameter is a switch
        (per the catalogue) or written ``-Name:value``. Unbound arguments are positional."""
        out: list[Argument] = []
        pending: str | None = None
        last: str | None = None  # the parameter just seen, for a following ":" (-Force:$false)
        for node in self.elements:
            if node.type == "command_argument_sep":
                if last is not None and self.script.text_of(node) == ":":
                    pending = last
                continue
            last = None
            if node.type == "command_parameter":
                name = self.script.text_of(node).lstrip("-")
                colon = name.endswith(":")
                name = name.rstrip(":")
                switch = catalogue is not None and catalogue.is_switch(self.name, name)
                pending = name if (colon or not switch) else None
                last = name
                continue
            out.append(Argument(pending, node, self.script.text_of(node)))
            pending = None
        return out


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


class Script:
    """A parsed PowerShell script."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text.encode("utf-8")
        self.masked = [(m.start(), m.end()) for m in DIGIT_PARAMETER.finditer(text)]
        parsed = DIGIT_PARAMETER.sub(lambda m: m.group(0).translate(DIGIT_MASK), text)
        self.tree = PARSER.parse(parsed.encode("utf-8"))
        self.root = self.tree.root_node

    def text_of(self, node: Node) -> str:
        """A node's text in the original script (never the digit-masked one the grammar saw)."""
        return self.data[node.start_byte:node.end_byte].decode("utf-8")

    def _position(self, node: Node) -> tuple[int, int]:
        row, byte_col = node.start_point
        line_start = node.start_byte - byte_col
        col = len(self.data[line_start:node.start_byte].decode("utf-8", errors="replace"))
        return row + 1, col + 1

    @cached_property
    def problems(self) -> list[SyntaxProblem]:
        """Every ERROR and MISSING node, outermost first; empty means the grammar accepts it."""
        found = []
        for node in _walk(self.root):
            if node.is_error or node.is_missing:
                line, col = self._position(node)
                what = "MISSING" if node.is_missing else "ERROR"
                found.append(SyntaxProblem(line, col, what if not node.is_missing else f"{what} {node.type}",
                                           self.text_of(node)[:60]))
        found += self._masking_problems()
        if self.root.has_error and not found:
            found.append(SyntaxProblem(1, 1, "ERROR", "(the tree has an error but no error node)"))
        return found

    def _masking_problems(self) -> list[SyntaxProblem]:
        """A digit-masked token must have become a parameter (or sat in a string or comment)."""
        if not self.masked:
            return []
        prefix = self.text
        safe = [(n.start_byte, n.end_byte) for n in _walk(self.root)
                if n.type in ("command_parameter", "string_literal", "comment")]
        found = []
        for start, end in self.masked:
            b_start, b_end = len(prefix[:start].encode("utf-8")), len(prefix[:end].encode("utf-8"))
            if not any(s <= b_start and b_end <= e for s, e in safe):
                line = prefix.count("\n", 0, start) + 1
                col = start - (prefix.rfind("\n", 0, start) + 1) + 1
                found.append(SyntaxProblem(line, col, "ERROR (digit-masked token is not a parameter)",
                                           prefix[start:end]))
        return found

    def problem_report(self, limit: int = 5) -> str:
        """The first problems with the source line around each (long lines are cut)."""
        lines = self.text.splitlines()
        out = []
        for p in self.problems[:limit]:
            source = lines[p.line - 1] if 0 < p.line <= len(lines) else ""
            start = max(0, p.col - 1 - 60)
            out.append(f"{p}\n    {source[start:start + 120]!r}\n     {' ' * (p.col - 1 - start)}^")
        if len(self.problems) > limit:
            out.append(f"... and {len(self.problems) - limit} more")
        return "\n".join(out)

    @cached_property
    def functions(self) -> frozenset[str]:
        """Names of the functions and filters the script defines (case-folded)."""
        return frozenset(self.text_of(n).casefold() for n in _walk(self.root) if n.type == "function_name")

    @cached_property
    def invocations(self) -> list[Invocation]:
        """Every command called by name, in source order, except the script's own functions.

        Commands invoked through ``&``/``.`` with a script block or a variable have no name to
        check and are left out; their bodies are still walked.
        """
        found = []
        for node in _walk(self.root):
            if node.type != "command":
                continue
            name_node = node.child_by_field_name("command_name")
            if name_node is None or name_node.type != "command_name":
                continue
            name = self.text_of(name_node)
            if name.casefold() in self.functions:
                continue
            elements_node = node.child_by_field_name("command_elements")
            elements = tuple(elements_node.children) if elements_node is not None else ()
            parameters = tuple(self.text_of(e).lstrip("-").rstrip(":")
                               for e in elements if e.type == "command_parameter")
            line, col = self._position(node)
            found.append(Invocation(name, line, col, parameters, elements, self))
        return found

    @cached_property
    def string_literals(self) -> list[StringLiteral]:
        """Every string literal node. A single-quoted literal's value is read by PowerShell's rule;
        if PowerShell would end it before the node ends, ``value`` is None and ``form`` says so."""
        found = []
        for node in _walk(self.root):
            if node.type != "string_literal":
                continue
            inner = node.children[0] if node.children else node
            form = STRING_NODE_TYPES.get(inner.type, inner.type)
            text = self.text_of(node)
            value: str | None = None
            if form == "verbatim":
                try:
                    value, end = read_verbatim(text)
                except ValueError:
                    end = -1
                if end != len(text):
                    form, value = "verbatim, but PowerShell ends it elsewhere", None
            elif form == "expandable":
                value = read_expandable(text)
            line, col = self._position(node)
            found.append(StringLiteral(node.start_byte, node.end_byte, line, col, form, text, value))
        return found

    def literals_holding(self, needle: str) -> list[StringLiteral]:
        """The string literals containing ``needle`` (as it appears in the source text)."""
        spans = list(self.occurrences(needle))
        return [lit for lit in self.string_literals if any(lit.covers(s, e) for s, e in spans)]

    def occurrences(self, needle: str) -> Iterator[tuple[int, int]]:
        """Byte spans of ``needle`` in the script."""
        raw = needle.encode("utf-8")
        if not raw:
            return
        start = self.data.find(raw)
        while start != -1:
            yield start, start + len(raw)
            start = self.data.find(raw, start + 1)

    def outside_literals(self, needle: str) -> list[tuple[int, int]]:
        """Occurrences of ``needle`` not entirely inside one string literal's quotes."""
        return [(s, e) for s, e in self.occurrences(needle)
                if not any(lit.covers(s, e) for lit in self.string_literals)]


def parse(text: str) -> Script:
    return Script(text)


class ParameterProblem(LookupError):
    """A parameter PowerShell would reject: unknown or ambiguous for the products checked."""


class Catalogue:
    """The cmdlet catalogue, with lookups by product label (names compared case-insensitively)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.cmdlets = {name.casefold(): entry for name, entry in data["cmdlets"].items()}
        self.names = {name.casefold(): name for name in data["cmdlets"]}
        self.products = tuple(data["products"])
        self.common = tuple(data["common_parameters"])
        self.common_aliases = {alias.casefold(): name for name, aliases in data["common_parameter_aliases"].items()
                               for alias in aliases}

    @classmethod
    def load(cls, path: Path = CATALOGUE_PATH) -> Catalogue:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    @staticmethod
    def labels(product: str) -> frozenset[str]:
        """The catalogue labels whose cmdlets run on ``product``: itself, and its in-box shell."""
        shell = INBOX_SHELL.get(product)
        return frozenset({product, shell} if shell else {product})

    def cmdlet(self, name: str) -> dict[str, Any] | None:
        return self.cmdlets.get(name.casefold())

    def available(self, name: str, labels: Iterable[str]) -> bool:
        entry = self.cmdlet(name)
        return entry is not None and bool(set(entry["products"]) & set(labels))

    def _parameters(self, cmdlet: str, labels: frozenset[str]) -> dict[str, dict[str, Any]]:
        entry = self.cmdlets[cmdlet.casefold()]
        return {n: p for n, p in entry["parameters"].items()
                if set(p.get("products", entry["products"])) & labels}

    def _common(self, labels: frozenset[str]) -> list[str]:
        # ProgressAction exists only in PowerShell 7.4 and later (catalogue README, Limits).
        seven = any(label.startswith("PowerShell 7") for label in labels)
        return [c for c in self.common if c != "ProgressAction" or seven]

    def resolve(self, cmdlet: str, token: str, labels: Iterable[str]) -> str:
        """The parameter ``-token`` binds to on ``cmdlet`` for these labels; raises
        :class:`ParameterProblem` when it is unknown or ambiguous."""
        labels = frozenset(labels)
        params = self._parameters(cmdlet, labels)
        wanted = token.casefold()
        for name, entry in params.items():
            if name.casefold() == wanted or wanted in (a.casefold() for a in entry.get("aliases", ())):
                return name
        common = self._common(labels)
        for name in common:
            if name.casefold() == wanted:
                return name
        if wanted in self.common_aliases and self.common_aliases[wanted] in common:
            return self.common_aliases[wanted]
        hits = [n for n in [*params, *common] if n.casefold().startswith(wanted)]
        if len(hits) == 1:
            return hits[0]
        where = ", ".join(sorted(labels))
        if hits:
            raise ParameterProblem(f"{cmdlet} -{token} is ambiguous for {where}: {hits}")
        raise ParameterProblem(f"{cmdlet} -{token} does not exist for {where}")

    def is_switch(self, cmdlet: str, token: str) -> bool:
        """Whether ``-token`` is a switch of ``cmdlet`` (any product); False when unknown."""
        entry = self.cmdlet(cmdlet)
        if entry is None:
            return False
        try:
            name = self.resolve(cmdlet, token, self.products)
        except ParameterProblem:
            return False
        param = entry["parameters"].get(name)
        # Common parameters that take no argument.
        return bool(param["switch"]) if param is not None else name in {"Debug", "Verbose"}

    def accepted_values(self, cmdlet: str, parameter: str) -> list[str] | None:
        """The authoritative ``values`` of a parameter (never the heuristic ``doc_values``)."""
        entry = self.cmdlet(cmdlet)
        param = entry["parameters"].get(parameter) if entry else None
        return list(param["values"]) if param and "values" in param else None

    def problems(self, script: Script, products: Iterable[str]) -> list[str]:
        """Everything in ``script`` that does not exist for each product, as sentences.

        Per invocation: a native program is skipped; a name not in the catalogue is an error
        (no aliases, full cmdlet names); the cmdlet must exist for every product; every named
        parameter must resolve; a single-quoted literal passed to a parameter with documented
        ``values`` must be one of them; and no argument may be positional (DESIGN §10).
        """
        found: list[str] = []
        for call in script.invocations:
            where = f"{call.line}:{call.col} {call.name}"
            if call.is_native:
                continue
            if self.cmdlet(call.name) is None:
                found.append(f"{where}: not in the catalogue (unknown cmdlet, alias, or a module "
                             "tests/tools/extract_catalogue.py does not select)")
                continue
            for product in products:
                labels = self.labels(product)
                if not self.available(call.name, labels):
                    found.append(f"{where}: not available for {product}")
                    continue
                for token in call.parameters:
                    try:
                        self.resolve(call.name, token, labels)
                    except ParameterProblem as exc:
                        found.append(f"{where}: {exc}")
            for argument in call.arguments(self):
                if argument.parameter is None:
                    found.append(f"{where}: positional argument {argument.text[:40]!r}")
                    continue
                try:
                    name = self.resolve(call.name, argument.parameter, self.products)
                except ParameterProblem:
                    continue  # reported above, per product
                values = self.accepted_values(call.name, name)
                literals = argument.literals
                source = script.text_of(literals[0]) if len(literals) == 1 else ""
                if values and source.startswith("'"):
                    value, _ = read_verbatim(source)
                    if value.casefold() not in {v.casefold() for v in values}:
                        found.append(f"{where} -{argument.parameter} {value!r}: not one of {values}")
        return found
