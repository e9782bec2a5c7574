"""The HTML report of a run: one self-contained file an auditor can read, archive and print.

:func:`render_html` takes the ``hardening.run/1`` document (:func:`hardening.report.run_to_json`),
optionally the run history (:func:`history_from_store`) and the playbook's exceptions
(:func:`exceptions_from_playbook`), and returns one HTML page:

1. the summary: a verdict sentence, counts per status, the hosts;
2. a host × control heatmap of the run's statuses (colour, symbol and word, so it reads without
   colour and in print);
3. a timeline of the recorded runs (inline SVG, per run the count of each status; runs whose
   playbooks changed are marked), with the same numbers as a table;
4. before → desired → after tables of every failed, drifted and fixed outcome (lists as
   ``+ added`` / ``− removed``);
5. the documented exceptions and their expiry (expired, or expiring within
   :data:`EXPIRY_WARNING_DAYS` days of the run, highlighted);
6. pending service restarts, and every outcome's sentence as an appendix.

The page loads nothing: inline CSS and SVG, no script at all, and a Content-Security-Policy that
forbids every fetch and script, so a value that slipped through escaping still could not run or
call out. Every value from the run (messages, host names, settings, reasons) is data from hosts
and playbooks and is escaped; characters that HTML cannot carry (NUL, other C0 controls, lone
surrogates) are shown as U+FFFD.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .compare import display

if TYPE_CHECKING:
    from .history import HistoryStore
    from .playbook import Playbook

__all__ = ["EXPIRY_WARNING_DAYS", "exceptions_from_playbook", "history_from_store", "render_html"]

EXPIRY_WARNING_DAYS = 14
"""Exceptions that end within this many days of the run are highlighted."""

TIMELINE_MAX_RUNS = 60
"""The timeline shows at most this many runs (the newest)."""

# Display order: what needs attention first.
STATUSES: tuple[str, ...] = ("failed", "unsupported", "drifted", "fixed", "compliant", "skipped", "not_applicable")
FINDING_STATUSES: tuple[str, ...] = ("failed", "unsupported", "drifted", "fixed")


@dataclass(frozen=True)
class _Look:
    symbol: str
    short: str
    label: str
    fill: str  # timeline bars


LOOKS: dict[str, _Look] = {
    "failed": _Look("✗", "FAIL", "failed", "#b71c1c"),
    "drifted": _Look("!", "DRIFT", "drifted", "#e6a100"),
    "fixed": _Look("↻", "FIXED", "fixed", "#1565c0"),
    "compliant": _Look("✓", "OK", "compliant", "#2e7d32"),
    "skipped": _Look("–", "SKIP", "skipped", "#8d8d8d"),
    "not_applicable": _Look("∅", "N/A", "not applicable", "#c8ced3"),
    "unsupported": _Look("⊘", "UNSUP", "unsupported (not checked)", "#6a1b9a"),
}
_UNKNOWN_LOOK = _Look("?", "?", "unknown", "#5d4037")
CURRENT_ROW = ' class="current"'
NOTE_BR = '<br><span class="note">{}</span>'

_INVALID_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    """Text HTML can carry: NUL, C0 controls other than tab/newline, DEL and lone surrogates → U+FFFD."""
    return _INVALID_CHARS.sub("\ufffd", text)


def _e(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape(_clean(value if isinstance(value, str) else str(value)), quote=True)


def _look(status: str) -> _Look:
    return LOOKS.get(status, _UNKNOWN_LOOK)


def _status_class(status: str) -> str:
    return f"st-{status}" if status in LOOKS else "st-unknown"


def _anchor(*parts: str) -> str:
    """A stable, safe element id for host/control data (which may hold anything)."""
    return "o-" + hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _badge(status: str) -> str:
    look = _look(status)
    return (f'<span class="badge {_status_class(status)}"><span aria-hidden="true">{_e(look.symbol)}</span> '
            f"{_e(look.label)}</span>")


# ---------------------------------------------------------------------------------------------
# Public helpers for the CLI


def history_from_store(store: HistoryStore, *, limit: int = TIMELINE_MAX_RUNS) -> list[dict[str, Any]]:
    """The recorded runs as :func:`render_html` takes them (newest first, as the store lists them)."""
    return [dataclasses.asdict(record) for record in store.runs(limit=limit)]


def exceptions_from_playbook(playbook: Playbook) -> list[dict[str, Any]]:
    """Every documented exception of a loaded playbook, as :func:`render_html` takes them."""
    return [
        {"control": control.id, "title": control.title, "hosts": list(exc.hosts), "reason": exc.reason,
         "until": exc.until.isoformat() if exc.until is not None else None}
        for control in playbook.controls for exc in control.exceptions
    ]


# ---------------------------------------------------------------------------------------------
# Reading the run document


def _hosts(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [h for h in run.get("hosts") or [] if isinstance(h, Mapping)]


def _outcomes(host: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [o for o in host.get("outcomes") or [] if isinstance(o, Mapping)]


def _text(value: Any, default: str = "") -> str:
    return default if value is None else str(value)


def _controls(run: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """Every control of the run, in first-seen order: id, title, references."""
    seen: dict[str, tuple[str, str, Mapping[str, Any]]] = {}
    for host in _hosts(run):
        for o in _outcomes(host):
            control = _text(o.get("control"))
            if control not in seen:
                refs = o.get("references")
                seen[control] = (control, _text(o.get("title")), refs if isinstance(refs, Mapping) else {})
    return list(seen.values())


def _parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _fmt_time(text: Any) -> str:
    value = _parse_time(text)
    if value is None:
        return _text(text, "—")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _counts(run: Mapping[str, Any]) -> dict[str, int]:
    counts = {s: 0 for s in STATUSES}
    for host in _hosts(run):
        for o in _outcomes(host):
            status = _text(o.get("status"))
            counts[status] = counts.get(status, 0) + 1
    return counts


def _combined_digest(playbooks: Iterable[Any]) -> str:
    """The digest over all playbook digests, computed as the history store does."""
    digests = sorted(_text(p.get("digest")) for p in playbooks if isinstance(p, Mapping))
    return "sha256:" + hashlib.sha256("\n".join(digests).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Values


def _value_text(value: Any) -> str:
    """One value as an administrator reads it; access rules as ``Allow NAME Rights``."""
    if isinstance(value, Mapping) and ("principal" in value or "name" in value) and "rights" in value:
        who = value.get("name") or value.get("principal")
        text = f"{_text(value.get('type'), 'Allow')} {display(who)} {display(value.get('rights'))}"
        applies = value.get("applies_to")
        if applies and applies != "this_folder_subfolders_and_files":
            text += f" ({str(applies).replace('_', ' ')})"
        return text
    return display(value)


def _item_key(value: Any) -> str:
    if isinstance(value, Mapping):
        if "principal" in value and ("mask" in value or "rights" in value):
            return json.dumps([str(value.get("type", "")).casefold(), str(value.get("principal", "")).upper(),
                               value.get("mask", value.get("rights")), value.get("applies_to")], default=str)
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, str):
        return value.strip().casefold()
    return json.dumps(value, default=str)


def _as_items(value: Any) -> list[Any] | None:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return None


def _delta(before: Any, target: Any) -> tuple[list[str], list[str]] | None:
    """``(added, removed)`` when both sides are lists (a missing side is an empty list)."""
    if not isinstance(before, (list, tuple)) and not isinstance(target, (list, tuple)):
        return None
    old, new = _as_items(before), _as_items(target)
    if old is None or new is None:
        return None
    old_keys = {_item_key(v) for v in old}
    new_keys = {_item_key(v) for v in new}
    added = [_value_text(v) for v in new if _item_key(v) not in old_keys]
    removed = [_value_text(v) for v in old if _item_key(v) not in new_keys]
    return added, removed


def _value_html(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        if not value:
            return '<span class="muted">(empty)</span>'
        return '<ul class="vals">' + "".join(f"<li>{_e(_value_text(v))}</li>" for v in value) + "</ul>"
    if value is None:
        return '<span class="muted">(none)</span>'
    return f"<code>{_e(_value_text(value))}</code>"


_MISSING = object()


def _lookup(state: Any, obj: str, prop: str) -> Any:
    if not isinstance(state, Mapping) or obj not in state:
        return _MISSING
    props = state[obj]
    if prop == "":
        return props
    if not isinstance(props, Mapping) or prop not in props:
        return _MISSING
    return props[prop]


def _split_path(path: str, *states: Any) -> tuple[str, str]:
    """``object.property`` → (object, property); object names may themselves hold dots."""
    for state in states:
        if isinstance(state, Mapping):
            for obj in state:
                name = str(obj)
                if path == name:
                    return name, ""
                if path.startswith(name + ".") and "." not in path[len(name) + 1:]:
                    return name, path[len(name) + 1:]
    obj, _, prop = path.rpartition(".")
    return (obj, prop) if obj else (path, "")


# ---------------------------------------------------------------------------------------------
# Sections


CSS = """
:root { --ink:#1a1d21; --muted:#5b636b; --line:#d4d8dc; --bg:#ffffff; --panel:#f6f7f8; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0 auto; max-width: 1200px; padding: 24px 28px 48px; color: var(--ink); background: var(--bg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Liberation Sans", Arial, sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--ink); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p { margin: 6px 0; }
code, .mono { font-family: ui-monospace, "Cascadia Mono", "DejaVu Sans Mono", Consolas, monospace; font-size: 12.5px;
  overflow-wrap: break-word; }
.muted { color: var(--muted); }
.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 10px 0; }
.meta dt { color: var(--muted); }
.meta dd { margin: 0; overflow-wrap: anywhere; }
.verdict { font-size: 17px; font-weight: 600; padding: 12px 16px; border-left: 6px solid; background: var(--panel);
  margin: 16px 0; }
.verdict.bad { border-color: #b71c1c; } .verdict.warn { border-color: #e6a100; }
.verdict.good { border-color: #2e7d32; }
.alert { font-weight: 600; padding: 8px 12px; border-left: 6px solid #e6a100; background: #fff8e1; margin: 10px 0; }
.tiles { display: flex; flex-wrap: wrap; gap: 8px; margin: 10px 0; padding: 0; list-style: none; }
.tiles li { min-width: 112px; padding: 8px 12px; border-radius: 6px; border: 1px solid var(--line); }
.tiles .n { display: block; font-size: 22px; font-weight: 700; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
thead th { background: var(--panel); }
table.wide { width: 100%; }
.st-failed { background: #fde0e0; color: #7f1010; }
.st-drifted { background: #fff0c2; color: #5f4100; }
.st-fixed { background: #dce9fb; color: #0d3c78; }
.st-compliant { background: #dcf1e0; color: #164d1c; }
.st-skipped { background: #ececec; color: #3d3d3d; }
.st-not_applicable { background: #f5f6f7; color: #555c63; }
.st-unsupported { background: #f3e5f5; color: #4a148c; }
.st-unknown, .st-none { background: #ffffff; color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; font-size: 12px;
  border: 1px solid rgba(0,0,0,.15); white-space: nowrap; }
.heatmap { font-size: 12px; }
.heatmap th.col { vertical-align: bottom; padding: 6px 4px; }
.heatmap th.col span { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; max-height: 260px;
  overflow: hidden; text-overflow: ellipsis; display: inline-block; }
.heatmap th.row { white-space: nowrap; }
.heatmap td.cell { text-align: center; white-space: nowrap; font-weight: 600; min-width: 56px; padding: 3px 4px; }
.heatmap td.cell a { color: inherit; text-decoration: none; display: block; }
.heatmap td.st-failed { outline: 2px solid #b71c1c; outline-offset: -2px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 14px; margin: 6px 0; padding: 0; list-style: none; font-size: 12px; }
.swatch { display: inline-block; width: 12px; height: 12px; border: 1px solid rgba(0,0,0,.3); vertical-align: -1px;
  margin-right: 4px; }
figure { margin: 8px 0; }
figcaption { color: var(--muted); font-size: 12px; }
svg.timeline { width: 100%; max-width: 900px; height: auto; border: 1px solid var(--line); background: #fff; }
svg.timeline text { font: 11px system-ui, Arial, sans-serif; fill: #333; }
.finding { border: 1px solid var(--line); border-left: 6px solid var(--line); border-radius: 4px; padding: 8px 12px;
  margin: 10px 0; break-inside: avoid; page-break-inside: avoid; }
.finding.st-failed { border-left-color: #b71c1c; } .finding.st-drifted { border-left-color: #e6a100; }
.finding.st-fixed { border-left-color: #1565c0; }
.finding { background: #fff; color: var(--ink); }
.finding h4 { margin: 0 0 4px; font-size: 14px; }
.finding table { font-size: 12.5px; width: 100%; }
.finding th.obj { background: var(--panel); font-weight: normal; }
.finding:target { box-shadow: 0 0 0 3px #1565c0; }
ul.vals, ul.delta { margin: 0; padding-left: 16px; }
ul.delta { list-style: none; padding-left: 0; }
.add { color: #14532d; } .rem { color: #7f1010; }
ul.delta li { padding-left: 1.1em; text-indent: -1.1em; }
.add::before { content: "+ "; font-weight: 700; } .rem::before { content: "\\2212  "; font-weight: 700; }
tr.expiring td { background: #fff0c2; } tr.expired td { background: #fde0e0; }
.note { font-size: 12px; color: var(--muted); }
footer { margin-top: 40px; padding-top: 8px; border-top: 1px solid var(--line); color: var(--muted); font-size: 12px; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
details > summary { cursor: pointer; color: var(--muted); }
@page { margin: 14mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  tr, .tiles li { break-inside: avoid; page-break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
  details > summary { display: none; }
  details > * { display: block; }
}
"""


def _summary_section(run: Mapping[str, Any], counts: Mapping[str, int]) -> str:
    hosts = _hosts(run)
    summary = run.get("summary") if isinstance(run.get("summary"), Mapping) else {}
    assert isinstance(summary, Mapping)
    unreachable = [h for h in hosts if h.get("reachable") is False]
    total = sum(counts.values())
    open_findings = counts.get("drifted", 0) + counts.get("failed", 0)
    affected = sum(1 for h in hosts if any(o.get("status") in {"drifted", "failed"} for o in _outcomes(h)))
    mode = _text(run.get("mode"), "run")
    if counts.get("failed", 0) or unreachable or counts.get("unsupported", 0):
        tone = "bad"
        parts = []
        if counts.get("failed", 0):
            parts.append(f"{counts['failed']} control{'s' if counts['failed'] != 1 else ''} failed")
        if counts.get("unsupported", 0):
            parts.append(f"{counts['unsupported']} control{'s' if counts['unsupported'] != 1 else ''} not checked "
                         "(no variant for the host's platform)")
        if unreachable:
            parts.append(f"{len(unreachable)} host{'s' if len(unreachable) != 1 else ''} unreachable")
        sentence = "Action needed: " + " and ".join(parts)
        if counts.get("drifted", 0):
            sentence += f"; {counts['drifted']} more finding{'s' if counts['drifted'] != 1 else ''} open"
        sentence += "."
    elif counts.get("drifted", 0):
        tone = "warn"
        sentence = (f"{open_findings} finding{'s' if open_findings != 1 else ''} open on {affected} of {len(hosts)} "
                    f"host{'s' if len(hosts) != 1 else ''}: settings differ from the playbook.")
    elif counts.get("fixed", 0):
        tone = "good"
        sentence = (f"Every finding was fixed in this run: {counts['fixed']} control"
                    f"{'s' if counts['fixed'] != 1 else ''} changed and verified by re-reading the host.")
    elif total:
        tone = "good"
        sentence = f"All {total} checks on {len(hosts)} host{'s' if len(hosts) != 1 else ''} are compliant."
    else:
        tone = "warn"
        sentence = "This run has no outcomes."
    assessed = total - counts.get("skipped", 0) - counts.get("not_applicable", 0) - counts.get("unsupported", 0)
    rate = ""
    if assessed:
        good = counts.get("compliant", 0) + counts.get("fixed", 0)
        rate = (f"<p>{good} of {assessed} assessed host × control pairs are compliant after this {_e(mode)} "
                f"({math.floor(100 * good / assessed)}%); {counts.get('skipped', 0)} skipped, "
                f"{counts.get('not_applicable', 0)} not applicable.</p>")
    tiles = "".join(
        f'<li class="{_status_class(s)}"><span class="n">{counts.get(s, 0)}</span>'
        f'<span aria-hidden="true">{_e(_look(s).symbol)}</span> {_e(_look(s).label)}</li>'
        for s in STATUSES)
    tiles += (f'<li class="{"st-failed" if unreachable else "st-none"}"><span class="n">{len(unreachable)}</span>'
              f"unreachable host{'s' if len(unreachable) != 1 else ''}</li>")
    rows = []
    for h in hosts:
        facts = h.get("facts") if isinstance(h.get("facts"), Mapping) else {}
        assert isinstance(facts, Mapping)
        os_text = " ".join(_text(facts.get(k)) for k in ("os_caption", "os_version") if facts.get(k))
        exch = _text(facts.get("exchange_version"))
        if facts.get("exchange_roles"):
            exch += f" ({display(facts.get('exchange_roles'))})"
        hc = {s: 0 for s in STATUSES}
        for o in _outcomes(h):
            hc[_text(o.get("status"))] = hc.get(_text(o.get("status")), 0) + 1
        reach = ("reachable" if h.get("reachable") is not False
                 else f'<strong class="st-failed">unreachable</strong>: {_e(_text(h.get("error")))}')
        cells = "".join(f'<td class="num {_status_class(s) if hc.get(s) else ""}">{hc.get(s, 0)}</td>'
                        for s in STATUSES)
        rows.append(f'<tr><th scope="row">{_e(_text(h.get("name")))}</th><td>{reach}</td>'
                    f"<td>{_e(os_text) or '—'}</td><td>{_e(exch) or '—'}</td>"
                    f"<td>{_e(_text(h.get('requests'), '0'))}</td>{cells}</tr>")
    head = "".join(f'<th scope="col">{_e(_look(s).label)}</th>' for s in STATUSES)
    return (
        '<section id="summary" aria-labelledby="h-summary"><h2 id="h-summary">Summary</h2>'
        f'<p class="verdict {tone}" role="status">{_e(sentence)}</p>{rate}'
        f'<ul class="tiles" aria-label="Outcomes per status">{tiles}</ul>'
        '<h3>Hosts</h3><table class="wide hosts"><thead><tr><th scope="col">Host</th><th scope="col">Reached</th>'
        f'<th scope="col">Windows</th><th scope="col">Exchange</th><th scope="col">Requests</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _legend() -> str:
    items = "".join(
        f'<li><span class="badge {_status_class(s)}"><span aria-hidden="true">{_e(_look(s).symbol)}</span> '
        f"{_e(_look(s).short)}</span> {_e(_look(s).label)}</li>" for s in STATUSES)
    return (f'<ul class="legend" aria-label="Legend">{items}'
            '<li><span class="badge st-none">—</span> not in this run</li></ul>')


def _heatmap_section(run: Mapping[str, Any], with_detail: set[tuple[str, str]]) -> str:
    controls = _controls(run)
    hosts = _hosts(run)
    if not controls:
        return ('<section id="heatmap" aria-labelledby="h-heatmap"><h2 id="h-heatmap">Hosts × controls</h2>'
                '<p class="muted">No outcomes.</p></section>')
    head = "".join(f'<th scope="col" class="col" title="{_e(title)}"><span>{_e(cid)}</span></th>'
                   for cid, title, _ in controls)
    body = []
    for h in hosts:
        name = _text(h.get("name"))
        by_control = {_text(o.get("control")): o for o in _outcomes(h)}
        cells = []
        for cid, _title, _refs in controls:
            o = by_control.get(cid)
            if o is None:
                cells.append(f'<td class="cell st-none" data-host="{_e(name)}" data-control="{_e(cid)}" '
                             f'data-status="none"><span aria-hidden="true">—</span>'
                             f'<span class="sr-only">not in this run</span></td>')
                continue
            status = _text(o.get("status"))
            look = _look(status)
            content = (f'<span aria-hidden="true">{_e(look.symbol)} {_e(look.short)}</span>'
                       f'<span class="sr-only">{_e(look.label)}</span>')
            if (name, cid) in with_detail:
                content = f'<a href="#{_anchor(name, cid)}">{content}</a>'
            tip = f"{name} · {cid}: {look.label} — {_text(o.get('message'))}"
            cells.append(f'<td class="cell {_status_class(status)}" data-host="{_e(name)}" data-control="{_e(cid)}" '
                         f'data-status="{_e(status)}" title="{_e(tip)}">{content}</td>')
        body.append(f'<tr><th scope="row" class="row">{_e(name)}</th>{"".join(cells)}</tr>')
    ctl_rows = []
    for cid, title, refs in controls:
        per = {s: 0 for s in STATUSES}
        for h in hosts:
            for o in _outcomes(h):
                if _text(o.get("control")) == cid:
                    per[_text(o.get("status"))] = per.get(_text(o.get("status")), 0) + 1
        counts = ", ".join(f"{n} {_look(s).label}" for s, n in per.items() if n)
        ctl_rows.append(f"<tr><th scope=\"row\"><code>{_e(cid)}</code></th><td>{_e(title)}</td>"
                        f"<td>{_refs_html(refs)}</td><td>{_e(counts)}</td></tr>")
    return (
        '<section id="heatmap" aria-labelledby="h-heatmap"><h2 id="h-heatmap">Hosts × controls</h2>'
        f"{_legend()}"
        '<div class="scroll"><table class="heatmap" aria-describedby="heatmap-note"><thead><tr>'
        f'<th scope="col">Host</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
        '<p class="note" id="heatmap-note">Each cell is the status of one control on one host in this run; '
        "failed, drifted and fixed cells link to their details below.</p>"
        '<h3>Controls</h3><table class="wide controls"><thead><tr><th scope="col">Control</th>'
        '<th scope="col">Title</th><th scope="col">References</th><th scope="col">Outcomes</th></tr></thead>'
        f"<tbody>{''.join(ctl_rows)}</tbody></table></section>"
    )


def _refs_html(refs: Mapping[str, Any]) -> str:
    parts = []
    if refs.get("guide"):
        parts.append(f"Guide: {_e(_text(refs.get('guide')))}")
    for key, label in (("stig", "STIG"), ("cis", "CIS")):
        ids = refs.get(key)
        if isinstance(ids, (list, tuple)) and ids:
            parts.append(f"{label}: " + ", ".join(f"<code>{_e(_text(i))}</code>" for i in ids))
    return "<br>".join(parts) or '<span class="muted">—</span>'


@dataclass
class _Point:
    run_id: str
    started_at: str
    mode: str
    counts: dict[str, int] = field(default_factory=dict)
    digest: str | None = None
    current: bool = False


def _timeline_points(run: Mapping[str, Any], history: Sequence[Mapping[str, Any]] | None) -> list[_Point]:
    points: dict[str, _Point] = {}
    from_rows: set[str] = set()
    for item in history or []:
        if not isinstance(item, Mapping):
            continue
        run_id = _text(item.get("run_id"))
        summary = item.get("summary")
        if isinstance(summary, str):
            try:
                summary = json.loads(summary)
            except ValueError:
                summary = None
        if isinstance(summary, Mapping):
            counts = {s: int(summary.get(s, 0) or 0) for s in STATUSES}
            digest = item.get("playbook_digest")
            points[run_id] = _Point(run_id, _text(item.get("started_at")), _text(item.get("mode")), counts,
                                    digest if isinstance(digest, str) else None)
            from_rows.discard(run_id)
        elif "status" in item and (run_id not in points or run_id in from_rows):
            point = points.setdefault(run_id, _Point(run_id, _text(item.get("started_at")), _text(item.get("mode")),
                                                     {s: 0 for s in STATUSES}))
            from_rows.add(run_id)
            status = _text(item.get("status"))
            point.counts[status] = point.counts.get(status, 0) + 1
    current_id = _text(run.get("run_id"))
    if current_id not in points:
        points[current_id] = _Point(current_id, _text(run.get("started_at")), _text(run.get("mode")), _counts(run),
                                    _combined_digest(run.get("playbooks") or []))
    points[current_id].current = True
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    ordered = sorted(points.values(), key=lambda p: (_parse_time(p.started_at) or epoch, p.run_id))
    return ordered[-TIMELINE_MAX_RUNS:]


def _nice_max(value: int) -> int:
    if value <= 4:
        return max(value, 1)
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = int(math.ceil(value / (step * magnitude)) * step * magnitude)
        if top >= value and top / value < 1.6:
            return top
    return value


def _short_time(text: str) -> str:
    value = _parse_time(text)
    return value.astimezone(dt.UTC).strftime("%m-%d %H:%M") if value else text[:16]


def _timeline_section(run: Mapping[str, Any], history: Sequence[Mapping[str, Any]] | None) -> str:
    points = _timeline_points(run, history)
    width, height = 900, 260
    left, right, top, bottom = 44, 12, 14, 58
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(p.counts.get(s, 0) for s in STATUSES) for p in points]
    ymax = _nice_max(max(totals, default=1) or 1)
    slot = plot_w / max(len(points), 1)
    bar_w = max(4.0, min(40.0, slot * 0.7))
    stack = ("failed", "unsupported", "drifted", "fixed", "compliant", "skipped", "not_applicable")
    out = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           'role="img" aria-labelledby="tl-title tl-desc">',
           '<title id="tl-title">Outcomes per run</title>',
           f'<desc id="tl-desc">Stacked bars, one per recorded run, oldest on the left: the number of host × control '
           f"outcomes per status. {len(points)} run{'s' if len(points) != 1 else ''} shown.</desc>"]
    for i in range(5):
        value = ymax * i / 4
        y = top + plot_h - plot_h * i / 4
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e3e6e8"/>')
        label = f"{value:.0f}" if value == int(value) else f"{value:.1f}"
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    label_every = max(1, math.ceil(len(points) / 12))
    previous_digest: str | None = None
    for i, p in enumerate(points):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        total = totals[i]
        parts = ", ".join(f"{p.counts.get(s, 0)} {_look(s).label}" for s in stack if p.counts.get(s, 0))
        this = " (this run)" if p.current else ""
        out.append(f'<g class="run" data-run="{_e(p.run_id)}"><title>{_e(_fmt_time(p.started_at))} · '
                   f"{_e(p.mode)} · run {_e(p.run_id)}{this}: {_e(parts or 'no outcomes')}</title>")
        for s in stack:
            n = p.counts.get(s, 0)
            if not n:
                continue
            h = plot_h * n / ymax
            y -= h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{_look(s).fill}" '
                       f'data-status="{s}" data-count="{n}"/>')
        if p.current:
            out.append(f'<rect x="{x - 2:.1f}" y="{top + plot_h - plot_h * total / ymax - 2:.1f}" '
                       f'width="{bar_w + 4:.1f}" height="{plot_h * total / ymax + 2:.1f}" fill="none" '
                       'stroke="#111" stroke-width="1.5" stroke-dasharray="3 2"/>')
        out.append("</g>")
        if p.digest and previous_digest and p.digest != previous_digest:
            cx = x + bar_w / 2
            out.append(f'<g class="playbook-changed"><title>the playbooks changed before this run</title>'
                       f'<path d="M{cx - 5:.1f} {top + plot_h + 12:.1f} L{cx + 5:.1f} {top + plot_h + 12:.1f} '
                       f'L{cx:.1f} {top + plot_h + 4:.1f} Z" fill="#6a1b9a"/></g>')
        previous_digest = p.digest or previous_digest
        if i % label_every == 0 or p.current:
            cx = x + bar_w / 2
            label = "this run" if p.current else _short_time(p.started_at)
            out.append(f'<text x="{cx:.1f}" y="{top + plot_h + 26:.1f}" text-anchor="middle">{_e(label)}</text>')
            if p.mode:
                out.append(f'<text x="{cx:.1f}" y="{top + plot_h + 40:.1f}" text-anchor="middle" fill="#666">'
                           f"{_e(p.mode)}</text>")
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#555"/>')
    out.append("</svg>")
    legend = "".join(f'<li><span class="swatch" style="background:{_look(s).fill}"></span>{_e(_look(s).label)}</li>'
                     for s in stack)
    legend += ('<li><svg width="12" height="10" aria-hidden="true"><path d="M1 9 L11 9 L6 1 Z" fill="#6a1b9a"/></svg>'
               " playbooks changed since the previous run</li>")
    rows = "".join(
        f"<tr{CURRENT_ROW if p.current else ''}><td>{_e(_fmt_time(p.started_at))}</td><td>{_e(p.mode)}</td>"
        f"<td><code>{_e(p.run_id)}</code>{' (this run)' if p.current else ''}</td>"
        + "".join(f'<td class="num">{p.counts.get(s, 0)}</td>' for s in STATUSES) + "</tr>"
        for p in points)
    head = "".join(f'<th scope="col">{_e(_look(s).label)}</th>' for s in STATUSES)
    note = ("" if history else
            '<p class="note">No run history was given: only this run is shown.</p>')
    return (
        '<section id="timeline" aria-labelledby="h-timeline"><h2 id="h-timeline">Drift over time</h2>'
        f'{note}<figure>{"".join(out)}<figcaption><ul class="legend">{legend}</ul></figcaption></figure>'
        '<details><summary>The same numbers as a table</summary><table class="wide timeline-data"><thead><tr>'
        f'<th scope="col">Started</th><th scope="col">Mode</th><th scope="col">Run</th>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></details></section>"
    )


def _change_rows(o: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Per changed property: its object, and the row's other cells."""
    status = _text(o.get("status"))
    desired, before, after = o.get("desired"), o.get("before"), o.get("after")
    rows = []
    for change in o.get("changes") or []:
        if not isinstance(change, Mapping):
            continue
        path = _text(change.get("path"))
        obj, prop = _split_path(path, desired, before, after)
        was = change.get("from")
        want = change.get("to")
        if status in {"fixed", "failed"}:
            got = _lookup(after, obj, prop) if isinstance(after, Mapping) and after else _MISSING
            after_html = ('<span class="muted">unknown (not re-read)</span>' if got is _MISSING
                          else _value_html(got))
        else:
            after_html = '<span class="muted">not written</span>'
        delta = _delta(was, want)
        if delta is not None:
            added, removed = delta
            items = [f'<li class="add">{_e(a)}</li>' for a in added]
            items += [f'<li class="rem">{_e(r)}</li>' for r in removed]
            change_html = (f'<ul class="delta">{"".join(items)}</ul>' if items
                           else '<span class="muted">same entries, other order</span>')
        else:
            change_html = f"<code>{_e(_value_text(was))}</code> → <code>{_e(_value_text(want))}</code>"
        rows.append((obj, f"<td><code>{_e(prop) or '—'}</code></td><td>{_value_html(was)}</td>"
                          f"<td>{_value_html(want)}</td><td>{after_html}</td><td>{change_html}</td>"))
    return rows


def _change_table(rows: list[tuple[str, str]]) -> str:
    """The rows of one outcome, each object named once (spanning its properties' rows)."""
    body = []
    i = 0
    while i < len(rows):
        obj = rows[i][0]
        j = i
        while j < len(rows) and rows[j][0] == obj:
            j += 1
        span = f' rowspan="{j - i}"' if j - i > 1 else ""
        for k in range(i, j):
            head = f'<th scope="rowgroup" class="obj"{span}><code>{_e(obj)}</code></th>' if k == i else ""
            body.append(f"<tr>{head}{rows[k][1]}</tr>")
        i = j
    return ('<table><thead><tr><th scope="col">Object</th><th scope="col">Property</th>'
            '<th scope="col">Before</th><th scope="col">Desired</th><th scope="col">After (re-read)</th>'
            f'<th scope="col">Change</th></tr></thead><tbody>{"".join(body)}</tbody></table>')


def _findings_section(run: Mapping[str, Any]) -> tuple[str, set[tuple[str, str]]]:
    groups: dict[str, list[str]] = {s: [] for s in FINDING_STATUSES}
    anchors: set[tuple[str, str]] = set()
    for h in _hosts(run):
        name = _text(h.get("name"))
        for o in _outcomes(h):
            status = _text(o.get("status"))
            if status not in groups:
                continue
            cid = _text(o.get("control"))
            anchors.add((name, cid))
            refs = o.get("references") if isinstance(o.get("references"), Mapping) else {}
            assert isinstance(refs, Mapping)
            rows = _change_rows(o)
            table = _change_table(rows) if rows else ""
            extra = ""
            if o.get("pending_restarts"):
                extra += (f"<p><strong>Pending restart:</strong> {_e(display(o.get('pending_restarts')))}"
                          " — the setting is not live until then.</p>")
            if o.get("restarted"):
                extra += f"<p>Restarted: {_e(display(o.get('restarted')))}</p>"
            groups[status].append(
                f'<article class="finding {_status_class(status)}" id="{_anchor(name, cid)}" '
                f'data-host="{_e(name)}" data-control="{_e(cid)}">'
                f"<h4>{_badge(status)} {_e(name)} · <code>{_e(cid)}</code> — {_e(_text(o.get('title')))}</h4>"
                f'<p class="message">{_e(_text(o.get("message")))}</p>'
                f'<p class="note">{_refs_html(refs)}</p>{extra}{table}</article>')
    titles = {"failed": "Failed", "drifted": "Drifted: open findings", "fixed": "Fixed in this run"}
    blurbs = {
        "failed": "The control could not be checked or set, or the re-read after writing did not match.",
        "drifted": ("The host differs from the playbook; what differs was not written (check mode, policy monitor, or "
                    "a change the control holds back until the playbook allows it)."),
        "fixed": "Written and verified by re-reading the host.",
    }
    body = []
    for status in FINDING_STATUSES:
        if groups[status]:
            body.append(f'<h3>{_badge(status)} {_e(titles[status])} ({len(groups[status])})</h3>'
                        f'<p class="note">{_e(blurbs[status])}</p>{"".join(groups[status])}')
    if not body:
        body.append('<p class="muted">Nothing failed, drifted or was changed in this run.</p>')
    return ('<section id="findings" aria-labelledby="h-findings"><h2 id="h-findings">Findings and changes</h2>'
            '<p class="note">Lists are compared as sets: <span class="add">added</span> and '
            '<span class="rem">removed</span> entries are what it takes to go from before to desired.</p>'
            f'{"".join(body)}</section>'), anchors


def _parse_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def _exceptions_section(exceptions: Sequence[Mapping[str, Any]] | None, today: dt.date,
                        run: Mapping[str, Any]) -> str:
    skipped = [(h, o) for h in _hosts(run) for o in _outcomes(h)
               if o.get("status") == "skipped" and _text(o.get("message")).startswith("exception")]
    if not exceptions:
        text = ("No exceptions were given to this report." if exceptions is None
                else "The playbook documents no exceptions.")
        extra = (f" {len(skipped)} outcome{'s were' if len(skipped) != 1 else ' was'} skipped by an exception."
                 if skipped else "")
        return ('<section id="exceptions" aria-labelledby="h-exceptions"><h2 id="h-exceptions">Exceptions</h2>'
                f'<p class="muted">{_e(text + extra)}</p></section>')
    far = dt.date.max

    def order(item: Mapping[str, Any]) -> tuple[dt.date, str]:
        return (_parse_date(item.get("until")) or far, _text(item.get("control")))

    rows = []
    expiring = 0
    for item in sorted((x for x in exceptions if isinstance(x, Mapping)), key=order):
        until = _parse_date(item.get("until"))
        hosts = item.get("hosts")
        host_text = display(list(hosts)) if isinstance(hosts, (list, tuple)) else _text(hosts)
        if until is None:
            state, cls = "open-ended", ""
        else:
            days = (until - today).days
            if days < 0:
                state, cls = f"expired {-days} day{'s' if -days != 1 else ''} ago: a finding again", "expired"
                expiring += 1
            elif days <= EXPIRY_WARNING_DAYS:
                state = "expires today" if days == 0 else f"expires in {days} day{'s' if days != 1 else ''}"
                cls = "expiring"
                expiring += 1
            else:
                state, cls = f"{days} days left", ""
        title = _text(item.get("title"))
        rows.append(f'<tr class="{cls}"><td><code>{_e(_text(item.get("control")))}</code>'
                    f"{NOTE_BR.format(_e(title)) if title else ''}</td>"
                    f"<td>{_e(host_text)}</td><td>{_e(_text(item.get('reason')))}</td>"
                    f"<td>{_e(until.isoformat() if until else '—')}</td><td>{_e(state)}</td></tr>")
    warn = (f'<p class="alert">{expiring} exception{"s" if expiring != 1 else ""} expired or '
            f"expire{'s' if expiring == 1 else ''} within {EXPIRY_WARNING_DAYS} days: "
            f"renew {'them' if expiring != 1 else 'it'} with a new reason and date, "
            "or fix the hosts.</p>") if expiring else ""
    used = (f'<p class="note">{len(skipped)} outcome{"s were" if len(skipped) != 1 else " was"} skipped by an '
            "exception in this run.</p>") if skipped else ""
    return (
        '<section id="exceptions" aria-labelledby="h-exceptions"><h2 id="h-exceptions">Exceptions</h2>'
        f'<p class="note">Documented exceptions skip a control on some hosts until a date, as of '
        f"{_e(today.isoformat())} (the run's date).</p>{warn}"
        '<table class="wide exceptions"><thead><tr><th scope="col">Control</th><th scope="col">Hosts</th>'
        '<th scope="col">Reason</th><th scope="col">Until</th><th scope="col">Status</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{used}</section>"
    )


def _restarts_section(run: Mapping[str, Any]) -> str:
    pending, done = [], []
    for h in _hosts(run):
        name = _text(h.get("name"))
        for o in _outcomes(h):
            cid = _text(o.get("control"))
            if o.get("pending_restarts"):
                pending.append(f"<tr><td>{_e(name)}</td><td><code>{_e(cid)}</code></td>"
                               f"<td>{_e(display(o.get('pending_restarts')))}</td><td>{_badge(_text(o.get('status')))}"
                               "</td></tr>")
            if o.get("restarted"):
                done.append(f"<tr><td>{_e(name)}</td><td><code>{_e(cid)}</code></td>"
                            f"<td>{_e(display(o.get('restarted')))}</td></tr>")
    body = []
    if pending:
        body.append('<p class="alert">Settings written but not live until these services restart.</p>'
                    '<table class="wide pending"><thead><tr><th scope="col">Host</th><th scope="col">Control</th>'
                    f'<th scope="col">Services to restart</th><th scope="col">Status</th></tr></thead><tbody>'
                    f"{''.join(pending)}</tbody></table>")
    else:
        body.append('<p class="muted">No restarts pending.</p>')
    if done:
        body.append('<h3>Restarted in this run</h3><table class="wide restarted"><thead><tr><th scope="col">Host</th>'
                    f'<th scope="col">Control</th><th scope="col">Services</th></tr></thead><tbody>{"".join(done)}'
                    "</tbody></table>")
    return ('<section id="restarts" aria-labelledby="h-restarts"><h2 id="h-restarts">Pending restarts</h2>'
            f'{"".join(body)}</section>')


def _all_outcomes_section(run: Mapping[str, Any]) -> str:
    rows = []
    for h in _hosts(run):
        name = _text(h.get("name"))
        for o in _outcomes(h):
            status = _text(o.get("status"))
            rows.append(f"<tr><td>{_e(name)}</td><td><code>{_e(_text(o.get('control')))}</code></td>"
                        f"<td>{_badge(status)}</td><td>{_e(_text(o.get('message')))}</td></tr>")
    return ('<section id="outcomes" aria-labelledby="h-outcomes"><h2 id="h-outcomes">Every outcome</h2>'
            '<table class="wide all-outcomes"><thead><tr><th scope="col">Host</th><th scope="col">Control</th>'
            f'<th scope="col">Status</th><th scope="col">What happened</th></tr></thead><tbody>{"".join(rows)}'
            "</tbody></table></section>")


def render_html(run_json: dict[str, Any], history: list[dict[str, Any]] | None = None,
                exceptions: list[dict[str, Any]] | None = None, *, today: dt.date | None = None) -> str:
    """The run as one self-contained HTML page (no external assets, no script).

    ``run_json`` is the ``hardening.run/1`` document. ``history`` is a list of recorded runs,
    each a dict with ``run_id``, ``started_at``, ``mode`` and ``summary`` (the status counts),
    as :func:`history_from_store` returns them; rows of :meth:`HistoryStore.outcomes
    <hardening.history.HistoryStore.outcomes>` (with ``run_id``, ``started_at``, ``status``) are
    counted per run instead. The current run is added when the history does not hold it.
    ``exceptions`` is a list of dicts with ``control``, ``hosts``, ``reason``, ``until``
    (ISO date or None) and optionally ``title``, as :func:`exceptions_from_playbook` returns them.
    Expiry is judged as of ``today``, by default the date the run started (so the same run
    always renders the same page).
    """
    run: Mapping[str, Any] = run_json
    started = _parse_time(run.get("started_at"))
    as_of = today or (started.astimezone(dt.UTC).date() if started else dt.datetime.now(dt.UTC).date())
    counts = _counts(run)
    findings, anchors = _findings_section(run)
    mode = _text(run.get("mode"), "run")
    run_id = _text(run.get("run_id"))
    playbooks = [p for p in run.get("playbooks") or [] if isinstance(p, Mapping)]
    playbook_rows = "".join(
        f"<li>{_e(_text(p.get('name')))} <span class=\"muted mono\">{_e(_text(p.get('path')))}</span> "
        f"<code title=\"{_e(_text(p.get('digest')))}\">{_e(_text(p.get('digest'))[:19])}…</code></li>"
        for p in playbooks)
    exit_code = run.get("exit_code")
    exit_meaning = {0: "all compliant, nothing changed", 1: "could not run",
                    2: "a control failed or a host was unreachable",
                    3: "drift found (check) or fixed (apply), nothing failed"}.get(
        exit_code if isinstance(exit_code, int) else -1, "")
    title = f"hardening {mode} report — {run_id}"
    header = (
        f"<header><h1>Mail server hardening: {_e(mode)} report</h1>"
        '<dl class="meta">'
        f"<dt>Run</dt><dd><code>{_e(run_id)}</code></dd>"
        f"<dt>Mode</dt><dd>{_e(mode)}</dd>"
        f"<dt>Started</dt><dd>{_e(_fmt_time(run.get('started_at')))}</dd>"
        f"<dt>Finished</dt><dd>{_e(_fmt_time(run.get('finished_at')))}</dd>"
        f"<dt>Exit code</dt><dd>{_e(_text(exit_code, '—'))}{' — ' + _e(exit_meaning) if exit_meaning else ''}</dd>"
        f"<dt>Tool</dt><dd>hardening {_e(_text(run.get('tool_version'), '?'))}</dd>"
        f'<dt>Playbooks</dt><dd><ul class="vals">{playbook_rows or "<li>—</li>"}</ul></dd>'
        "</dl>"
        '<nav class="no-print" aria-label="Contents"><a href="#summary">Summary</a> · <a href="#heatmap">Heatmap</a> · '
        '<a href="#timeline">Drift over time</a> · <a href="#findings">Findings</a> · '
        '<a href="#exceptions">Exceptions</a> · <a href="#restarts">Restarts</a> · '
        '<a href="#outcomes">Every outcome</a>'
        "</nav></header>"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
        "img-src data:; base-uri 'none'; form-action 'none'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="hardening">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        header,
        "<main>",
        _summary_section(run, counts),
        _heatmap_section(run, anchors),
        _timeline_section(run, history),
        findings,
        _exceptions_section(exceptions, as_of, run),
        _restarts_section(run),
        _all_outcomes_section(run),
        "</main>",
        f"<footer>Generated by hardening {_e(_text(run.get('tool_version'), '?'))} from the "
        f"{_e(_text(run.get('schema'), 'hardening.run/1'))} report of run <code>{_e(run_id)}</code>. "
        "This file is self-contained: it loads nothing and runs no script.</footer>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
