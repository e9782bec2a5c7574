"""A run as a DISA STIG Viewer checklist (``.ckl``): one checklist per asset, one VULN per STIG id.

STIG Viewer checklists describe one asset (``ASSET``) and hold one ``iSTIG`` per benchmark, each
with ``STIG_INFO`` (``SI_DATA`` name/value pairs) and one ``VULN`` per rule: ``STIG_DATA``
attribute/value pairs (``Vuln_Num``, ``Severity``, ``Rule_ID``, ``Rule_Ver`` — the STIG id such as
``EX19-ED-000235`` — ``Rule_Title`` …), then ``STATUS``, ``FINDING_DETAILS``, ``COMMENTS``,
``SEVERITY_OVERRIDE`` and ``SEVERITY_JUSTIFICATION``. So:

- :func:`render_ckls` gives one checklist per host (what STIG Viewer and eMASS expect);
  :func:`render_ckl` one checklist for one ``host``, or, without ``host``, one that aggregates
  every host of the run (each VULN then says which host found what).
- Only controls whose ``references.stig`` holds ids take part; a STIG id that several controls
  carry is one VULN, whose status is the worst of theirs.
- A STIG id belongs to a benchmark by its prefix (:data:`BENCHMARKS`: ``EX16-MB-`` → Exchange 2016
  Mailbox, ``EX16-ED-`` → 2016 Edge Transport, ``EX19-MB-`` → 2019 Mailbox, ``EX19-ED-`` → 2019
  Edge). ``stig`` picks one benchmark; ``None`` writes one ``iSTIG`` for every benchmark the
  hosts' ids belong to, keeping only those for the hosts' Exchange release (``exchange_release``
  fact) when any is. Ids of unknown prefix go only into a benchmark named explicitly that is not
  in the table.
- Status: ``compliant`` and ``fixed`` (written and verified by re-read) → ``NotAFinding``;
  ``drifted`` and ``failed`` → ``Open``; ``not_applicable`` → ``Not_Applicable``; ``skipped``
  (a documented exception, or not evaluated) → ``Not_Reviewed``. Across controls and hosts the
  VULN takes the worst: Open, then Not_Reviewed, then NotAFinding, then Not_Applicable.

The run knows the STIG id (``Rule_Ver``) and the control's title, not DISA's ``V-`` number, rule
id, severity or check text: ``Vuln_Num`` is the STIG id unless ``rules`` supplies the rest (per
STIG id, any ``STIG_DATA`` attribute, e.g. from the benchmark's XCCDF), and ``Severity`` is filled
only for the ids whose severity :data:`KNOWN_SEVERITY` records.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .compare import display

__all__ = ["BENCHMARKS", "DEFAULT_STIG", "KNOWN_SEVERITY", "Benchmark", "benchmark_of", "render_ckl", "render_ckls",
           "stig_ids"]


@dataclass(frozen=True)
class Benchmark:
    """A DISA benchmark: its id (``stigid``), title, the prefix of its rules' STIG ids, and the
    Exchange release it is for (the ``exchange_release`` fact)."""

    stigid: str
    title: str
    prefix: str
    release: str


BENCHMARKS: dict[str, Benchmark] = {b.stigid: b for b in (
    Benchmark("MS_Exchange_2016_Mailbox_Server_STIG",
              "Microsoft Exchange 2016 Mailbox Server Security Technical Implementation Guide", "EX16-MB-", "2016"),
    Benchmark("MS_Exchange_2016_Edge_Transport_Server_STIG",
              "Microsoft Exchange 2016 Edge Transport Server Security Technical Implementation Guide",
              "EX16-ED-", "2016"),
    Benchmark("MS_Exchange_2019_Mailbox_Server_STIG",
              "Microsoft Exchange 2019 Mailbox Server Security Technical Implementation Guide", "EX19-MB-", "2019"),
    Benchmark("MS_Exchange_2019_Edge_Server_STIG",
              "Microsoft Exchange 2019 Edge Server Security Technical Implementation Guide", "EX19-ED-", "2019"),
)}

DEFAULT_STIG = "MS_Exchange_2019_Mailbox_Server_STIG"

KNOWN_SEVERITY: dict[str, str] = {
    # From the DISA XCCDF (shared/reference/anchors.md §1c); others come from ``rules``.
    "EX16-MB-000220": "medium",
    "EX16-ED-000680": "high",
    "EX19-ED-000235": "high",
    "EX16-ED-000690": "high",
    "EX19-ED-000236": "high",
}

STATUS_OF: dict[str, str] = {
    "compliant": "NotAFinding",
    "fixed": "NotAFinding",
    "drifted": "Open",
    "failed": "Open",
    "not_applicable": "Not_Applicable",
    "skipped": "Not_Reviewed",
    "unsupported": "Not_Reviewed",
}
# Worst first: what a VULN says when its controls (or hosts) disagree.
PRECEDENCE: tuple[str, ...] = ("Open", "Not_Reviewed", "NotAFinding", "Not_Applicable")

ASSET_FIELDS: tuple[str, ...] = ("ROLE", "ASSET_TYPE", "HOST_NAME", "HOST_IP", "HOST_MAC", "HOST_FQDN",
                                 "TARGET_COMMENT", "TECH_AREA", "TARGET_KEY", "WEB_OR_DATABASE", "WEB_DB_SITE",
                                 "WEB_DB_INSTANCE")
SI_FIELDS: tuple[str, ...] = ("version", "classification", "customname", "stigid", "description", "filename",
                              "releaseinfo", "title", "uuid", "notice", "source")
VULN_ATTRIBUTES: tuple[str, ...] = (
    "Vuln_Num", "Severity", "Group_Title", "Rule_ID", "Rule_Ver", "Rule_Title", "Vuln_Discuss", "IA_Controls",
    "Check_Content", "Fix_Text", "False_Positives", "False_Negatives", "Documentable", "Mitigations",
    "Potential_Impact", "Third_Party_Tools", "Mitigation_Control", "Responsibility", "Security_Override_Guidance",
    "Check_Content_Ref", "Weight", "Class", "STIGRef", "TargetKey", "STIG_UUID",
)

_NAMESPACE = uuid.UUID("6f1d3c2a-52a4-4f0e-9a57-1f1d0c6b8e51")
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    """Text XML 1.0 can carry: NUL, C0 controls other than tab/newline/CR and lone surrogates → U+FFFD."""
    return _INVALID_XML.sub("\ufffd", text)


def _text(value: Any, default: str = "") -> str:
    return default if value is None else str(value)


def _hosts(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [h for h in run.get("hosts") or [] if isinstance(h, Mapping)]


def _outcomes(host: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [o for o in host.get("outcomes") or [] if isinstance(o, Mapping)]


def _ids_of(outcome: Mapping[str, Any]) -> list[str]:
    refs = outcome.get("references")
    ids = refs.get("stig") if isinstance(refs, Mapping) else None
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, (list, tuple)):
        return []
    return [str(i).strip() for i in ids if str(i).strip()]


def benchmark_of(stig_id: str) -> str | None:
    """The benchmark a STIG id belongs to, by its prefix; None when unknown."""
    for bench in BENCHMARKS.values():
        if stig_id.upper().startswith(bench.prefix):
            return bench.stigid
    return None


def stig_ids(run_json: Mapping[str, Any]) -> dict[str, list[str]]:
    """The run's STIG ids per benchmark (unknown prefixes under ``""``), in first-seen order."""
    found: dict[str, list[str]] = {}
    for host in _hosts(run_json):
        for o in _outcomes(host):
            for sid in _ids_of(o):
                bucket = found.setdefault(benchmark_of(sid) or "", [])
                if sid not in bucket:
                    bucket.append(sid)
    return found


def _selected(run: Mapping[str, Any], stig: str | None) -> dict[str, list[str]]:
    found = stig_ids(run)
    if stig is None:
        chosen = {b: ids for b, ids in found.items() if b}
        if not chosen:
            raise ValueError("no control of this run carries a STIG id of a known benchmark "
                             f"({', '.join(BENCHMARKS)}); nothing to put in a checklist")
        releases = {_text(h.get("facts", {}).get("exchange_release")) for h in _hosts(run)
                    if isinstance(h.get("facts"), Mapping)}
        same_release = {b: ids for b, ids in chosen.items() if BENCHMARKS[b].release in releases}
        chosen = same_release or chosen
        order = list(BENCHMARKS)
        return dict(sorted(chosen.items(), key=lambda item: order.index(item[0])))
    ids = list(found.get(stig, []))
    if stig not in BENCHMARKS:
        ids += found.get("", [])
    if not ids:
        present = ", ".join(b for b in found if b) or "none"
        prefix = f" ({BENCHMARKS[stig].prefix}…)" if stig in BENCHMARKS else ""
        raise ValueError(f"no control of this run carries a STIG id of {stig}{prefix}; the run's STIG ids belong to: "
                         f"{present}")
    return {stig: ids}


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text:
        element.text = _clean(text)
    return element


def _change_line(change: Mapping[str, Any]) -> str:
    before, after = change.get("from"), change.get("to")
    path = _text(change.get("path"))
    if isinstance(before, (list, tuple)) or isinstance(after, (list, tuple)):
        old = [display(v) for v in (before or [])] if isinstance(before, (list, tuple)) or before is None else None
        new = [display(v) for v in (after or [])] if isinstance(after, (list, tuple)) or after is None else None
        if old is not None and new is not None:
            added = [a for a in new if a not in old]
            removed = [b for b in old if b not in new]
            parts = ([f"+ {', '.join(added)}"] if added else []) + ([f"- {', '.join(removed)}"] if removed else [])
            if parts:
                return f"{path}: {'; '.join(parts)}"
    return f"{path}: {display(before)} -> {display(after)}"


@dataclass
class _Vuln:
    stig_id: str
    titles: list[str]
    controls: list[str]
    guides: list[str]
    statuses: list[str]
    details: list[str]


def _collect(hosts: Sequence[Mapping[str, Any]], ids: Sequence[str], many_hosts: bool) -> list[_Vuln]:
    vulns = {sid: _Vuln(sid, [], [], [], [], []) for sid in ids}
    for host in hosts:
        name = _text(host.get("name"))
        for o in _outcomes(host):
            status = _text(o.get("status"))
            for sid in _ids_of(o):
                vuln = vulns.get(sid)
                if vuln is None:
                    continue
                control, title = _text(o.get("control")), _text(o.get("title"))
                if control not in vuln.controls:
                    vuln.controls.append(control)
                    if title:
                        vuln.titles.append(title)
                refs = o.get("references")
                guide = _text(refs.get("guide")) if isinstance(refs, Mapping) else ""
                if guide and guide not in vuln.guides:
                    vuln.guides.append(guide)
                vuln.statuses.append(STATUS_OF.get(status, "Not_Reviewed"))
                who = f"{name}: " if many_hosts else ""
                lines = [f"{who}{control} ({status}): {_text(o.get('message'))}"]
                lines += [f"    {_change_line(c)}" for c in o.get("changes") or [] if isinstance(c, Mapping)]
                if o.get("pending_restarts"):
                    lines.append(f"    pending restart: {display(o.get('pending_restarts'))} (not live until then)")
                vuln.details.append("\n".join(lines))
    return [vulns[sid] for sid in ids]


def _worst(statuses: Sequence[str]) -> str:
    for status in PRECEDENCE:
        if status in statuses:
            return status
    return "Not_Reviewed"


def _checklist(run: Mapping[str, Any], hosts: Sequence[Mapping[str, Any]], asset: str, stig: str | None,
               rules: Mapping[str, Mapping[str, str]], stig_info: Mapping[str, Mapping[str, str]]) -> str:
    selected = _selected({**run, "hosts": list(hosts)}, stig)
    run_id, mode = _text(run.get("run_id")), _text(run.get("mode"))
    version = _text(run.get("tool_version"), "?")
    when = _text(run.get("started_at"))
    many = len(hosts) > 1
    root = ET.Element("CHECKLIST")
    asset_el = _sub(root, "ASSET")
    facts = hosts[0].get("facts") if len(hosts) == 1 and isinstance(hosts[0].get("facts"), Mapping) else {}
    assert isinstance(facts, Mapping)
    target_comment = f"hardening {version} {mode} run {run_id} at {when}"
    if many:
        target_comment += "; aggregates hosts " + ", ".join(_text(h.get("name")) for h in hosts)
    values = {
        "ROLE": "Member Server",
        "ASSET_TYPE": "Computing",
        "HOST_NAME": asset,
        "HOST_FQDN": asset if "." in asset else "",
        "TARGET_COMMENT": target_comment,
        "TECH_AREA": "Exchange Server",
        "WEB_OR_DATABASE": "false",
    }
    for name in ASSET_FIELDS:
        _sub(asset_el, name, values.get(name, ""))
    stigs = _sub(root, "STIGS")
    for stigid, ids in selected.items():
        bench = BENCHMARKS.get(stigid)
        istig_uuid = str(uuid.uuid5(_NAMESPACE, f"{run_id}\x00{asset}\x00{stigid}"))
        info = {"classification": "UNCLASSIFIED", "stigid": stigid, "title": bench.title if bench else stigid,
                "uuid": istig_uuid, "notice": "terms-of-use", **stig_info.get(stigid, {})}
        istig = _sub(stigs, "iSTIG")
        info_el = _sub(istig, "STIG_INFO")
        for name in SI_FIELDS:
            si = _sub(info_el, "SI_DATA")
            _sub(si, "SID_NAME", name)
            if info.get(name):
                _sub(si, "SID_DATA", info[name])
        ref = info["title"] + (f" :: Version {info['version']}" if info.get("version") else "")
        ref += f", {info['releaseinfo']}" if info.get("releaseinfo") else ""
        for vuln in _collect(hosts, ids, many):
            extra = dict(rules.get(vuln.stig_id, {}))
            data = {
                "Vuln_Num": vuln.stig_id,
                "Severity": KNOWN_SEVERITY.get(vuln.stig_id.upper(), ""),
                "Rule_Ver": vuln.stig_id,
                "Rule_Title": "; ".join(vuln.titles),
                "Documentable": "false",
                "Weight": "10.0",
                "Class": "Unclass",
                "STIGRef": ref,
                "STIG_UUID": istig_uuid,
                **{k: v for k, v in extra.items() if k != "CCI_REF"},
            }
            vuln_el = _sub(istig, "VULN")
            names = list(VULN_ATTRIBUTES) + [k for k in data if k not in VULN_ATTRIBUTES]
            for name in names:
                sd = _sub(vuln_el, "STIG_DATA")
                _sub(sd, "VULN_ATTRIBUTE", name)
                _sub(sd, "ATTRIBUTE_DATA", data.get(name, ""))
            for cci in [c.strip() for c in _text(extra.get("CCI_REF")).split(",") if c.strip()]:
                sd = _sub(vuln_el, "STIG_DATA")
                _sub(sd, "VULN_ATTRIBUTE", "CCI_REF")
                _sub(sd, "ATTRIBUTE_DATA", cci)
            status = _worst(vuln.statuses)
            _sub(vuln_el, "STATUS", status)
            _sub(vuln_el, "FINDING_DETAILS", "\n".join(vuln.details))
            comments = (f"Evaluated by hardening {version} ({mode} run {run_id}, {when}) through control"
                        f"{'s' if len(vuln.controls) != 1 else ''} {', '.join(vuln.controls)}.")
            if vuln.guides:
                comments += f" Guide: {'; '.join(vuln.guides)}."
            comments += (" NotAFinding = compliant, or fixed and verified by re-read; Open = drifted or failed; "
                         "Not_Reviewed = skipped (documented exception) or not evaluated.")
            _sub(vuln_el, "COMMENTS", comments)
            _sub(vuln_el, "SEVERITY_OVERRIDE")
            _sub(vuln_el, "SEVERITY_JUSTIFICATION")
    ET.indent(root, space="\t")
    safe_version = re.sub(r"[^0-9A-Za-z.+_]", "", version) or "?"
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<!-- hardening {safe_version}: STIG Viewer checklist -->\n"
            + ET.tostring(root, encoding="unicode") + "\n")


def render_ckl(run_json: dict[str, Any], stig: str | None = None, *, host: str | None = None,
               rules: Mapping[str, Mapping[str, str]] | None = None,
               stig_info: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """A STIG Viewer checklist (``.ckl`` XML) of the run's controls that carry STIG ids.

    ``stig`` is a benchmark id (e.g. :data:`DEFAULT_STIG`, ``MS_Exchange_2019_Edge_Server_STIG``)
    or None for every benchmark the run's ids belong to (one ``iSTIG`` each). ``host`` names the
    asset; without it the checklist aggregates every host of the run (one VULN per STIG id, the
    worst status, each host's finding in the details). ``rules`` adds ``STIG_DATA`` per STIG id
    (``Vuln_Num``, ``Rule_ID``, ``Severity``, ``Check_Content``, ``CCI_REF`` comma-separated …);
    ``stig_info`` adds ``SI_DATA`` per benchmark (``version``, ``releaseinfo``, ``filename`` …).

    Raises ValueError when ``host`` is not in the run, or no control carries an id of the
    chosen benchmark(s) (a checklist without rules is of no use).
    """
    hosts = _hosts(run_json)
    if host is not None:
        hosts = [h for h in hosts if _text(h.get("name")) == host]
        if not hosts:
            raise ValueError(f"host {host!r} is not in run {_text(run_json.get('run_id'))}")
        asset = host
    elif len(hosts) == 1:
        asset = _text(hosts[0].get("name"))
    else:
        asset = ""
    return _checklist(run_json, hosts, asset, stig, rules or {}, stig_info or {})


def render_ckls(run_json: dict[str, Any], stig: str | None = None, *,
                rules: Mapping[str, Mapping[str, str]] | None = None,
                stig_info: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, str]:
    """One checklist per host (host name → ``.ckl`` text), for hosts with controls of the benchmark(s).

    Hosts with no such control get no checklist; ValueError when no host has any.
    """
    out: dict[str, str] = {}
    for h in _hosts(run_json):
        name = _text(h.get("name"))
        try:
            out[name] = render_ckl(run_json, stig, host=name, rules=rules, stig_info=stig_info)
        except ValueError:
            continue
    if not out:
        _selected(run_json, stig)  # raises with the reason
        raise ValueError("no host of this run has a control with a STIG id")
    return out
