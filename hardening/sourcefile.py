"""YAML documents that remember where every key and value came from.

Playbooks, inventories and lab files are all read through here, so that every later error
can name file, line and column. Duplicate keys, merge keys and documents that expand past a
node budget (an alias bomb) are refused here, once, for all three file types.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from .errors import InputError, SourceLocation

__all__ = ["Document", "dotted", "load_yaml", "parse_yaml", "validate", "validation_error"]

M = TypeVar("M", bound=pydantic.BaseModel)
_UNSET: Any = object()

Key = str | int
KeyPath = tuple[Key, ...]

# A playbook of a few hundred controls has a few thousand nodes; anything past this budget is
# an alias expansion gone wrong, not a real file.
NODE_BUDGET = 100_000


@dataclass(frozen=True)
class Document:
    """A parsed YAML file: plain data plus the source position of every key and value."""

    path: str
    data: Any
    key_marks: dict[KeyPath, SourceLocation] = field(default_factory=dict)
    value_marks: dict[KeyPath, SourceLocation] = field(default_factory=dict)

    def location(self, path: KeyPath, *, key: bool = False) -> SourceLocation:
        """The position of ``path``'s key (or value), else of its nearest known ancestor."""
        marks = self.key_marks if key else self.value_marks
        probe = tuple(path)
        while probe:
            if probe in marks:
                return marks[probe]
            if probe in self.value_marks:
                return self.value_marks[probe]
            probe = probe[:-1]
        return self.value_marks.get((), SourceLocation(self.path, 1, 1))

    def error(self, path: KeyPath, problem: str, *, key: bool = False, cls: type[InputError] = InputError,
              ) -> InputError:
        """An error at ``path``, with the dotted key named."""
        return cls(self.location(path, key=key), problem, key=dotted(path) or None)


def dotted(path: KeyPath) -> str:
    """``('controls', 2, 'ntfs_acl', 'path')`` → ``controls[2].ntfs_acl.path``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_yaml(path: str | Path, *, error: type[InputError] = InputError) -> Document:
    """Read and parse a YAML file; every problem is an ``error`` with file:line:column."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise error(SourceLocation(name), "file not found") from None
    except OSError as exc:
        raise error(SourceLocation(name), f"cannot read file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(SourceLocation(name, line, column), f"not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    return parse_yaml(text, name, error=error)


def parse_yaml(text: str, name: str, *, error: type[InputError] = InputError) -> Document:
    """Parse YAML text already in memory (see :func:`load_yaml`)."""
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        raise error(SourceLocation(name, line), "the file contains a NUL character")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        if "\t" in problem or "'\\t'" in problem:
            problem = "a tab character cannot indent YAML; use spaces"
        elif "another document" in problem:
            problem = "a file holds one YAML document; found a second one (a '---' line)"
        elif "<stream end>" in problem and exc.context and exc.context_mark is not None:
            # The file ended inside a bracket or quote: point at where it opened, not at the end.
            mark = exc.context_mark
            problem = f"{exc.context.removeprefix('while parsing ')} opened here is never closed ({problem})"
        elif exc.context:
            started = exc.context_mark
            where = f", started at {started.line + 1}:{started.column + 1}" if started is not None else ""
            problem = f"{problem} ({exc.context}{where})"
        raise error(_loc(name, mark), problem) from None
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML raises marked errors in practice
        raise error(SourceLocation(name), f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    if node is None:
        return Document(name, None, {}, {(): SourceLocation(name, 1, 1)})
    builder = _Builder(name, loader, error)
    data = builder.build(node, ())
    return Document(name, data, builder.key_marks, builder.value_marks)


def _loc(name: str, mark: Any) -> SourceLocation:
    if mark is None:
        return SourceLocation(name)
    return SourceLocation(name, mark.line + 1, mark.column + 1)


class _Builder:
    """Turns a composed node graph into plain data, recording marks and counting nodes."""

    def __init__(self, name: str, loader: yaml.SafeLoader, error: type[InputError]) -> None:
        self.name = name
        self.loader = loader
        self.error = error
        self.seen = 0
        self.key_marks: dict[KeyPath, SourceLocation] = {}
        self.value_marks: dict[KeyPath, SourceLocation] = {}

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.seen += 1
        if self.seen > NODE_BUDGET:
            raise self.error(
                _loc(self.name, node.start_mark),
                f"the document expands to more than {NODE_BUDGET} values (a YAML alias bomb?); refused",
            )
        self.value_marks.setdefault(path, _loc(self.name, node.start_mark))
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.error(_loc(self.name, key_node.start_mark),
                                     "YAML merge keys (<<) are not supported; write the keys out")
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.error(_loc(self.name, key_node.start_mark), "a mapping key must be a plain value")
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, bool)) or isinstance(key, bool):
                    key = str(key_node.value)
                if key in out:
                    raise self.error(_loc(self.name, key_node.start_mark), f"duplicate key {key!r}")
                child = (*path, key)
                self.key_marks[child] = _loc(self.name, key_node.start_mark)
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise self.error(_loc(self.name, exc.problem_mark or node.start_mark),
                             exc.problem or "cannot read this value") from None


def validate(doc: Document, model: type[M], path: KeyPath = (), data: Any = _UNSET,
             error: type[InputError] = InputError) -> M:
    """Validate ``doc``'s value at ``path`` (or ``data``) with a pydantic model.

    The first problem becomes one ``error`` naming file, line, column and the dotted key, with
    a did-you-mean for misspelt keys.
    """
    value = _at(doc.data, path) if data is _UNSET else data
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        raise validation_error(doc, exc, path, model, error) from None


def validation_error(doc: Document, exc: pydantic.ValidationError, path: KeyPath,
                     model: type[pydantic.BaseModel] | None, error: type[InputError] = InputError) -> InputError:
    """One clear :class:`InputError` from the first problem pydantic found."""
    first = exc.errors(include_url=False)[0]
    loc = tuple(p for p in first["loc"] if isinstance(p, (str, int)))
    kind = first["type"]
    full = (*path, *loc)
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        allowed = _fields_at(model, loc[:-1]) if model else []
        hint = difflib.get_close_matches(name, allowed, n=1)
        problem = f"unknown key {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else
                                              (f"; expected one of: {', '.join(allowed)}" if allowed else ""))
        return doc.error(full, problem, key=True, cls=error)
    if kind == "missing":
        return error(doc.location(full[:-1]), f"missing required key {full[-1]!r}", key=dotted(full[:-1]) or None)
    message = str(first["msg"])
    message = message.removeprefix("Value error, ")
    if kind in {"literal_error", "enum"}:
        message = f"{message}, got {first.get('input')!r}"
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        message = f"{message}, got {type(first.get('input')).__name__} {first.get('input')!r}"
    return doc.error(full, message, cls=error)


def _at(data: Any, path: KeyPath) -> Any:
    for part in path:
        data = data[part]
    return data


def _fields_at(model: type[pydantic.BaseModel] | None, loc: KeyPath) -> list[str]:
    """Field names of the (nested) model at ``loc``, best effort, for did-you-mean hints."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
            field_info = current.model_fields.get(str(part))
            if field_info is None:
                return []
            current = field_info.annotation
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]  # a dict key or list index: step into the value type
        else:
            return []
    current = _unwrap(current)
    return sorted(current.model_fields) if isinstance(current, type) and issubclass(current, pydantic.BaseModel) else []


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X``; anything else unchanged."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation
