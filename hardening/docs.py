"""Reference pages for the kinds, generated from their declarations (``hardening docs``).

Each page is made from what the kind declares — summary, docstring, parameter model (types,
defaults, descriptions), variants and the products they target, how properties compare, its
template — plus the shipped playbooks' controls of that kind (guide sections, STIG ids) and the
requests one of them renders to. Nothing on a page is written by hand.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .facts import Facts
from .inventory import Host
from .kinds import KINDS, Kind
from .plan import HostPlan, describe
from .playbook import Control, load_playbook
from .resources import data_dir

__all__ = ["kind_page", "write_docs"]


def _shipped_controls() -> dict[str, list[Control]]:
    by_kind: dict[str, list[Control]] = {}
    seen: set[str] = set()
    for path in sorted(data_dir("playbooks").glob("*.yml")):
        for control in load_playbook(path).controls:
            if control.id not in seen:
                seen.add(control.id)
                by_kind.setdefault(control.kind, []).append(control)
    return by_kind


def _type_text(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    if "$ref" in schema:
        return str(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}).get("title", "object"))
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if "anyOf" in schema:
        parts = [_type_text(s, defs) for s in schema["anyOf"] if s.get("type") != "null"]
        return " or ".join(parts)
    if schema.get("type") == "array":
        return f"list of {_type_text(schema.get('items', {}), defs)}"
    return str(schema.get("type", "any"))


def _parameters(schema: Mapping[str, Any], defs: Mapping[str, Any], prefix: str = "") -> list[str]:
    rows = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        default = "required" if name in required else (
            f"`{prop['default']}`" if prop.get("default") not in (None, [], {}) else "")
        description = str(prop.get("description", "")).replace("\n", " ").replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | {_type_text(prop, defs)} | {default} | {description} |")
        nested = [s for s in [prop, *prop.get("anyOf", []), prop.get("items", {})] if "$ref" in s]
        for ref in nested:
            sub = defs.get(ref["$ref"].rsplit("/", 1)[-1], {})
            rows += _parameters(sub, defs, f"{prefix}{name}{'[]' if prop.get('type') == 'array' else ''}.")
    return rows


def kind_page(kind: Kind[Any], controls: list[Control] | None = None) -> str:
    """The Markdown reference page of one kind."""
    schema = kind.params_model.model_json_schema()
    defs = schema.get("$defs", {})
    lines = [f"# `{kind.name}`", "", kind.summary + ".", "", inspect.cleandoc(kind.__doc__ or ""), ""]
    lines += ["## Parameters", "", "| parameter | type | default | meaning |", "| --- | --- | --- | --- |"]
    lines += _parameters(schema, defs)
    lines += ["", "## Platforms", ""]
    for variant in kind.variants:
        lines.append(f"- **{variant.name}**: {variant.description}. Requests checked against the cmdlet "
                     f"catalogue for: {', '.join(variant.products)}.")
    lines += ["", "A host no variant applies to gets `unsupported` (not checked; exit code 2), with a sentence "
              "naming its platform, unless the control says `on_unsupported: not_applicable`.", ""]
    channel = ("cmdlet invocations on the Exchange endpoint" if kind.channel == "exchange"
               else "a section of the Windows script bundle")
    lines += ["## How it reads, writes and compares", "",
              f"- Reaches the host as: {channel}"
              + (f" (template `templates/{kind.template}`)." if kind.template else "."),
              "- Compared properties: " + (", ".join(f"`{p}` ({c.name})" for p, c in kind.comparers.items()) or "—")
              + ".",
              "- Writes only the properties that differ, then re-reads them; `fixed` only when the re-read matches.",
              ""]
    controls = controls or []
    if controls:
        lines += ["## In the shipped playbooks", "", "| control | title | guide | STIG |", "| --- | --- | --- | --- |"]
        for c in controls:
            refs = c.references
            lines.append(f"| `{c.id}` | {c.title} | {refs.get('guide', '')} | {', '.join(refs.get('stig', []))} |")
        example = controls[0]
        host = Host("MAIL01", "MAIL01", _lab_connection())
        text = describe(HostPlan(host, (example,)), Facts(), dt.date.today())
        lines += ["", f"## Example: the requests of `{example.id}`", "", "```powershell", text.rstrip(), "```"]
    return "\n".join(lines).rstrip() + "\n"


def _lab_connection() -> Any:
    from .inventory import Connection

    return Connection(transport="lab")


def write_docs(directory: str | Path) -> list[Path]:
    """One page per kind plus an index; returns the files written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    controls = _shipped_controls()
    written = []
    index = ["# Kinds", "", "| kind | summary | platforms |", "| --- | --- | --- |"]
    for name, kind in KINDS.items():
        page = out / f"{name}.md"
        page.write_text(kind_page(kind, controls.get(name)), encoding="utf-8")
        written.append(page)
        platforms = "; ".join(v.description for v in kind.variants)
        index.append(f"| [`{name}`]({name}.md) | {kind.summary} | {platforms} |")
    (out / "index.md").write_text("\n".join(index) + "\n", encoding="utf-8")
    written.append(out / "index.md")
    return written
