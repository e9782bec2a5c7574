"""Reports of a run: the terminal table, JSON (``hardening.run/1``) and JUnit XML.

The JSON format is a contract (README, "JSON report"): later versions add fields, never rename.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .compare import display
from .model import Change, Outcome, Run, Status

__all__ = ["JSON_SCHEMA_ID", "print_run", "run_to_json", "write_json", "write_junit", "write_junit_json"]

JSON_SCHEMA_ID = "hardening.run/1"

STYLES = {
    Status.COMPLIANT: "green",
    Status.DRIFTED: "yellow",
    Status.FIXED: "cyan",
    Status.FAILED: "bold red",
    Status.SKIPPED: "dim",
    Status.NOT_APPLICABLE: "dim",
    Status.UNSUPPORTED: "bold magenta",
}


def outcome_to_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "control": outcome.control,
        "title": outcome.title,
        "kind": outcome.kind,
        "status": outcome.status.value,
        "message": outcome.message,
        "desired": _jsonable(outcome.desired),
        "before": _jsonable(outcome.before),
        "after": _jsonable(outcome.after),
        "changes": [_jsonable(c.to_json()) for c in outcome.changes],
        "references": _jsonable(outcome.references),
        "variant": outcome.variant,
        "pending_restarts": list(outcome.pending_restarts),
        "restarted": list(outcome.restarted),
        "params": _jsonable(outcome.params),
        "held": [_jsonable(c.to_json()) for c in outcome.held],
    }


def run_to_json(run: Run) -> dict[str, Any]:
    """The run as the ``hardening.run/1`` document."""
    doc: dict[str, Any] = {
        "schema": JSON_SCHEMA_ID,
        "run_id": run.run_id,
        "mode": run.mode.value,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat(),
        "tool_version": run.tool_version,
        "playbooks": [{"path": p.path, "name": p.name, "digest": p.digest} for p in run.playbooks],
        "summary": run.summary,
        "exit_code": run.exit_code,
        "hosts": [
            {"name": h.name, "reachable": h.reachable, "error": h.error, "facts": _jsonable(h.facts),
             "requests": h.requests, "outcomes": [outcome_to_json(o) for o in h.outcomes]}
            for h in run.hosts
        ],
    }
    if run.plan_text:
        doc["plan"] = dict(run.plan_text)
    return doc


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def write_json(run: Run, path: str | Path) -> Path:
    """Write the JSON report; returns the path written."""
    target = Path(path)
    target.write_text(json.dumps(run_to_json(run), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def write_junit(run: Run, path: str | Path) -> Path:
    """One test case per host × control; drifted, failed and unsupported are failures, skipped and N/A
    skipped."""
    return write_junit_json(run_to_json(run), path)


def write_junit_json(doc: Mapping[str, Any], path: str | Path) -> Path:
    """JUnit XML from a ``hardening.run/1`` document (a run's JSON report, or one from the history)."""
    failing, skipping = {"drifted", "failed", "unsupported"}, {"skipped", "not_applicable"}
    suites = ET.Element("testsuites", name=f"hardening {doc['mode']}",
                        tests=str(sum(len(h["outcomes"]) for h in doc["hosts"])))
    for host in doc["hosts"]:
        outcomes = host["outcomes"]
        suite = ET.SubElement(suites, "testsuite", name=host["name"], tests=str(len(outcomes)),
                              failures=str(sum(o["status"] in failing for o in outcomes)), errors="0",
                              skipped=str(sum(o["status"] in skipping for o in outcomes)),
                              timestamp=str(doc["started_at"]))
        if not host["reachable"]:
            ET.SubElement(suite, "properties").append(ET.Element("property", name="error", value=host["error"] or ""))
        for o in outcomes:
            case = ET.SubElement(suite, "testcase", classname=f"{host['name']}.{o['kind']}",
                                 name=f"{o['control']}: {o['title']}")
            if o["status"] in failing:
                failure = ET.SubElement(case, "failure", message=o["message"], type=o["status"])
                failure.text = "\n".join(f"{c['path']}: {display(c['from'])} -> {display(c['to'])}"
                                         for c in o["changes"])
            elif o["status"] in skipping:
                ET.SubElement(case, "skipped", message=f"{o['status']}: {o['message']}")
            else:
                ET.SubElement(case, "system-out").text = f"{o['status']}: {o['message']}"
    target = Path(path)
    ET.ElementTree(suites).write(target, encoding="utf-8", xml_declaration=True)
    return target


def _change_text(change: Change) -> str:
    """One property's before → after; set-like values as what was added and removed."""
    if isinstance(change.before, list) and isinstance(change.after, list):
        before, after = [display(v) for v in change.before], [display(v) for v in change.after]
        added = [a for a in after if a not in before]
        removed = [b for b in before if b not in after]
        if added or removed:
            return f"{change.path}: " + "; ".join(([f"+ {', '.join(added)}"] if added else [])
                                                   + ([f"- {', '.join(removed)}"] if removed else []))
    return f"{change.path}: {display(change.before)} → {display(change.after)}"


def print_run(run: Run, console: Console, *, diff: bool = False, title: str | None = None) -> None:
    """The terminal table: host, control, status, sentence; with ``diff``, before → after per property."""
    if run.plan_text:
        for text in run.plan_text.values():
            console.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=title or f"hardening {run.mode.value}", show_lines=False, expand=False)
    table.add_column("host", no_wrap=True)
    table.add_column("control", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("what happened")
    for host in run.hosts:
        for o in host.outcomes:
            sentence = Text(o.message)
            if diff and o.changes:
                for c in o.changes:
                    sentence.append(f"\n  {_change_text(c)}", style="dim")
            table.add_row(host.name, o.control, Text(o.status.value, style=STYLES[o.status]), sentence)
    console.print(table)
    summary = run.summary
    parts = [f"{summary['hosts']} hosts"]
    if summary["unreachable"]:
        parts.append(f"{summary['unreachable']} unreachable")
    parts += [f"{summary[s.value]} {s.value}" for s in Status if summary[s.value]]
    requests = sum(h.requests for h in run.hosts)
    console.print(", ".join(parts) + f"; {requests} requests", highlight=False)
