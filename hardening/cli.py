"""The ``hardening`` command: parses arguments, calls the public API, prints. Nothing else.

Exit codes (for schedulers): 0 all compliant and nothing changed; 1 could not run (bad input,
configuration); 2 a control failed or a host was unreachable; 3 drift found (check) or fixed
(apply) and nothing failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import apply, check, load_inventory, load_lab, load_playbook, plan
from .docs import write_docs
from .doctor import diagnose
from .errors import HardeningError, InventoryError
from .history import HistoryStore, default_history_path, parse_since, summary_line
from .inventory import Inventory
from .kinds import KINDS
from .lab import Lab
from .lab.endpoint import PASSWORD as ENDPOINT_PASSWORD
from .lab.endpoint import LabEndpoint, serve_lab
from .lab.scenario import BUILTIN_SCENARIO, DEMO_INVENTORY, merged_lab_text
from .logredact import LogRedaction, install_log_redaction
from .model import Mode, Run, Status
from .notify import Notifier, load_notify_settings
from .playbook import Playbook, playbook_schema
from .report import print_run, run_to_json, write_json, write_junit, write_junit_json
from .report_ckl import render_ckls
from .report_html import exceptions_from_playbook, history_from_store, render_html
from .resources import data_dir
from .rollback import rollback
from .run import Options, execute
from .schedule import cron_line, systemd_units, windows_task_xml
from .sourcefile import load_yaml
from .version import __version__
from .watch import MaintenanceWindow, stop_on_signals, watch

__all__ = ["main"]

log = logging.getLogger(__name__)
EXIT_ERROR = 1


def _split(values: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(p.strip() for v in values or () for p in v.split(",") if p.strip())


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; 2 means "a control failed" to a scheduler, so exit 1."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"error: {message}\n")


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _history_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--history", metavar="PATH", help="history store (default $XDG_STATE_HOME/hardening/"
                   "history.sqlite)")
    p.add_argument("--no-history", action="store_true", help="do not record this run")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hardening", description="Harden Windows mail servers (Exchange, "
                                     "POP3) with declarative YAML playbooks over PowerShell remoting.")
    parser.add_argument("--version", action="version", version=f"hardening {__version__}")
    parser.add_argument("--no-color", action="store_true", help="plain output")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def run_command(name: str, helptext: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("playbook", help="playbook file, or the name of a shipped one (e.g. baseline)")
        p.add_argument("-i", "--inventory", required=True, help="inventory file")
        p.add_argument("--limit", action="append", metavar="PATTERN", help="only these hosts or groups (globs; "
                       "repeat or comma-separate)")
        p.add_argument("--tags", action="append", metavar="TAG", help="only controls with these tags (or ids, "
                       "or kinds)")
        p.add_argument("--skip-tags", action="append", metavar="TAG", help="leave out controls with these tags")
        if name != "plan":
            p.add_argument("--forks", type=int, default=16, help="hosts in parallel (default 16)")
            p.add_argument("--timeout", type=_positive, default=900.0, help="seconds per host (default 900)")
            p.add_argument("--diff", action="store_true", help="show before → after per property")
            p.add_argument("--max-changes", type=int, metavar="N", help="change at most N controls in this run "
                           "(the others stay drifted and say so)")
        p.add_argument("--report-json", metavar="PATH", help="write the JSON report (hardening.run/1)")
        p.add_argument("--report-junit", metavar="PATH", help="write a JUnit XML report")
        if name != "plan":
            p.add_argument("--report-html", metavar="PATH", help="write the HTML report (one self-contained file)")
            _history_options(p)
        return p

    run_command("check", "Audit: read and compare, change nothing (exit 3 if drift is found).")
    run_command("apply", "Remediate: write what differs, re-read to verify (exit 3 if something was fixed).")
    run_command("plan", "Show the requests check and apply would send, as PowerShell; send nothing.")
    run_command("drift", "One scheduled pass: enforce controls are applied, monitor controls only checked; the "
                "run is recorded and what changed since the previous run is listed.")

    watch_cmd = sub.add_parser("watch", help="drift passes on a schedule in one long-running process (stop with "
                               "SIGTERM or Ctrl-C; a pass in progress finishes)")
    watch_cmd.add_argument("playbook")
    watch_cmd.add_argument("-i", "--inventory", required=True)
    watch_cmd.add_argument("--cron", required=True, help='when, as a crontab schedule ("*/15 * * * *")')
    watch_cmd.add_argument("--jitter", type=int, default=60, help="seconds of random delay per pass (default 60)")
    watch_cmd.add_argument("--window", action="append", metavar="SPEC", help='maintenance window where enforce '
                           'controls are applied ("Sat 22:00-Sun 04:00", "01:00-03:00 UTC"); outside, passes only '
                           'check; repeat for several; none: every pass only checks')
    watch_cmd.add_argument("--max-changes", type=int, metavar="N", help="change at most N controls per pass")
    watch_cmd.add_argument("--canary", metavar="HOST", help="apply on this host first, the rest only if it succeeded")
    watch_cmd.add_argument("--notify", metavar="FILE", help="notification settings (mail over STARTTLS, webhook)")
    watch_cmd.add_argument("--timezone", help="the schedule's time zone (default: local)")
    watch_cmd.add_argument("--run-now", action="store_true", help="also run one pass at once")
    watch_cmd.add_argument("--limit", action="append", metavar="PATTERN")
    watch_cmd.add_argument("--tags", action="append", metavar="TAG")
    watch_cmd.add_argument("--skip-tags", action="append", metavar="TAG")
    watch_cmd.add_argument("--forks", type=int, default=16)
    watch_cmd.add_argument("--timeout", type=_positive, default=900.0)
    watch_cmd.add_argument("--history", metavar="PATH")

    schedule = sub.add_parser("schedule", help="print systemd units, a crontab line or Task Scheduler XML that run "
                              "hardening drift")
    kind = schedule.add_mutually_exclusive_group(required=True)
    kind.add_argument("--systemd", action="store_true")
    kind.add_argument("--cron", action="store_true")
    kind.add_argument("--windows-task", action="store_true")
    schedule.add_argument("playbook")
    schedule.add_argument("-i", "--inventory", required=True)
    schedule.add_argument("--every", type=int, default=15, metavar="MINUTES", help="interval (default 15)")

    demo = sub.add_parser("demo", help="check → apply → check against the built-in lab (simulated servers)")
    demo.add_argument("--report-dir", metavar="DIR", help="where to write reports (default: a new temp folder)")
    demo.add_argument("--diff", action="store_true", help="show before → after per property")
    demo.add_argument("--history", metavar="PATH", help="record the demo's runs in this history store")
    demo.add_argument("--in-process", action="store_true", help="talk to the simulated hosts in process instead "
                      "of through the loopback WinRM endpoint and the real clients")

    history = sub.add_parser("history", help="recorded runs, or the outcomes of a host or control over time")
    history.add_argument("--host", help="only this host's outcomes")
    history.add_argument("--control", help="only this control's outcomes")
    history.add_argument("--since", help="from this date (2026-11-30), timestamp, or 7d / 12h ago")
    history.add_argument("--run", metavar="RUN_ID", help="the outcomes of one run")
    history.add_argument("--history", metavar="PATH", help="the history store (default under $XDG_STATE_HOME)")

    report = sub.add_parser("report", help="a recorded run's report: html, json, junit or ckl (STIG Viewer)")
    report.add_argument("--run", required=True, metavar="RUN_ID")
    report.add_argument("--format", required=True, choices=["html", "json", "junit", "ckl"])
    report.add_argument("-o", "--output", metavar="PATH", help="file (html, json, junit) or folder (ckl: one "
                        "checklist per host); default: standard output (html, json)")
    report.add_argument("--history", metavar="PATH", help="the history store (default under $XDG_STATE_HOME)")

    back = sub.add_parser("rollback", help="write back the before-state a recorded run captured for what it fixed")
    back.add_argument("run_id")
    back.add_argument("-i", "--inventory", required=True, help="inventory file")
    back.add_argument("--host", help="only this host")
    back.add_argument("--control", help="only this control")
    _history_options(back)

    schema = sub.add_parser("schema", help="print the JSON Schema of playbooks (for editors)")
    schema.add_argument("-o", "--output", metavar="PATH", help="write it to a file instead")

    sub.add_parser("kinds", help="list every kind with a one-line summary")
    doctor = sub.add_parser("doctor", help="check that a host can be reached and managed, and say what to fix")
    doctor.add_argument("host", help="an inventory host name")
    doctor.add_argument("-i", "--inventory", required=True, help="inventory file")
    docs = sub.add_parser("docs", help="write a reference page per kind (Markdown), generated from the kinds")
    docs.add_argument("-o", "--output", metavar="DIR", default="hardening-docs", help="folder (default hardening-docs)")

    inventory_cmd = sub.add_parser("inventory", help="build an inventory from Active Directory")
    inventory_sub = inventory_cmd.add_subparsers(dest="inventory_command", metavar="INVCOMMAND", required=True)
    from_ad = inventory_sub.add_parser(
        "from-ad", help="find the Exchange servers in AD's configuration partition (version, roles, site) and "
        "write them as an inventory with declared facts and groups")
    from_ad.add_argument("--ldap-url", required=True, help="ldaps://DC or ldap://DC (StartTLS); TLS always")
    from_ad.add_argument("--user", help="bind name: user@domain, DOMAIN\\user or a DN")
    from_ad.add_argument("--password", metavar="REF", help="a reference: env:NAME, keyring:SERVICE/USER, "
                         "file:PATH (mode 0600) or prompt")
    from_ad.add_argument("--auth", choices=["simple", "ntlm", "kerberos"], default="simple",
                         help="bind (default simple, over TLS)")
    from_ad.add_argument("--ca-bundle", help="CA certificates (PEM) that issued the DC's certificate")
    from_ad.add_argument("--server-name", help="the name the DC's certificate carries, if --ldap-url names an address")
    from_ad.add_argument("--site", action="append", default=[], help="only servers of this AD site (repeatable)")
    from_ad.add_argument("--version", dest="release", action="append", default=[],
                         choices=["2003", "2016", "2019", "SE"], help="only this Exchange release (repeatable)")
    from_ad.add_argument("--role", action="append", default=[], choices=["Mailbox", "ClientAccess", "HubTransport",
                                                                         "UnifiedMessaging", "Edge"],
                         help="only servers with this role (repeatable)")
    from_ad.add_argument("--format", choices=["yaml", "json"], default="yaml", help="yaml (default) or json")
    from_ad.add_argument("-o", "--output", metavar="FILE", help="write here (default: standard output)")

    lab = sub.add_parser("lab", help="the built-in lab of simulated servers")
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="LABCOMMAND", required=True)
    init = lab_sub.add_parser("init", help="write the built-in scenario and a matching inventory into DIR")
    init.add_argument("directory")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    serve = lab_sub.add_parser("serve", help="serve the lab's hosts over real WinRM/PSRP on loopback addresses")
    serve.add_argument("--hosts", metavar="FILE", help="lab file or folder (default: the built-in scenario)")
    serve.add_argument("--port", type=int, help="port on every host's address (default: WinRM's, 5985 or 5986 "
                       "with --https; 0 picks a free one)")
    serve.add_argument("--https", action="store_true", help="HTTPS with a generated CA (default: HTTP + NTLM "
                       "message encryption)")
    serve.add_argument("--inventory-out", required=True, metavar="PATH", help="write an inventory for the served "
                       "hosts here (the password goes to PATH.password, mode 0600)")
    serve.add_argument("--site-inventory", metavar="PATH", help="an inventory whose vars and groups (the site "
                       "values playbooks require) the written inventory keeps (default: the demo inventory for the "
                       "built-in scenario, else inventory.yml beside the lab file, as lab init writes it)")
    reset = lab_sub.add_parser("reset", help="forget a lab file's saved state (back to the file's contents)")
    reset.add_argument("lab_file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hardening`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    _configure_logging(args.verbose)
    # Piped or redirected output (schedulers, CI logs) is not squeezed into 80 columns.
    console = Console(no_color=args.no_color, highlight=False, width=None if sys.stdout.isatty() else 160)
    errors = Console(stderr=True, no_color=args.no_color, highlight=False, soft_wrap=True)
    try:
        return int(COMMANDS[args.command](args, console))
    except HardeningError as exc:
        errors.print(f"error: {exc}", markup=False)
        return EXIT_ERROR
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        errors.print(f"error: {where}{exc.strerror or exc}", markup=False)
        return EXIT_ERROR
    except KeyboardInterrupt:
        errors.print("interrupted", markup=False)
        return EXIT_ERROR


# pypsrp and pyspnego load a logging configuration of their own (dictConfig) from these variables
# when they are imported, which can add handlers of theirs.
_CLIENT_LOG_CONFIGS = (("PYPSRP_LOG_CFG", "pypsrp"), ("PYSPNEGO_LOG_CFG", "spnego"))


def _configure_logging(verbose: int) -> LogRedaction:
    """stderr logging (-v info, -vv debug), every handler filtered by one :class:`LogRedaction`.

    The clients whose own logging configuration a variable names are imported first, so that the
    handlers they add exist when the filter is attached to every handler.
    """
    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    for variable, module in _CLIENT_LOG_CONFIGS:
        if os.environ.get(variable):
            importlib.import_module(module)
    return install_log_redaction()


def _writable(path: str | None) -> None:
    """Refuse a report path that cannot be written before anything is sent to a host."""
    if path is None:
        return
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise HardeningError(f"{path}: cannot write the report: folder {parent} does not exist")
    if Path(path).is_dir():
        raise HardeningError(f"{path}: cannot write the report: it is a folder")
    if not os.access(parent, os.W_OK):
        raise HardeningError(f"{path}: cannot write the report: folder {parent} is not writable")


def _run(args: argparse.Namespace, console: Console) -> int:
    _writable(args.report_json)
    _writable(args.report_junit)
    _writable(getattr(args, "report_html", None))
    playbook = load_playbook(args.playbook)
    inventory = load_inventory(args.inventory)
    limit, tags, skip_tags = _split(args.limit), _split(args.tags), _split(args.skip_tags)
    if args.command == "plan":
        run = plan(playbook, inventory, limit=limit, tags=tags, skip_tags=skip_tags)
    else:
        # drift is apply: enforce controls are written, monitor controls (policy) only checked.
        mode = Mode.CHECK if args.command == "check" else Mode.APPLY
        run = execute(mode, playbook, inventory, Options(limit, tags, skip_tags, max(1, args.forks), args.timeout,
                                                         max_changes=args.max_changes))
    print_run(run, console, diff=getattr(args, "diff", False))
    _write_reports(run, args.report_json, args.report_junit, console)
    if args.command == "plan":
        return 0
    _expiring(playbook, console)
    store = None if args.no_history else HistoryStore(args.history or default_history_path())
    if store is not None:
        store.record(run)
    if args.report_html:  # after recording: the drift timeline ends with this run
        history = history_from_store(store) if store is not None else None
        Path(args.report_html).write_text(render_html(run_to_json(run), history, exceptions_from_playbook(playbook)),
                                          encoding="utf-8")
        console.print(f"HTML report: {args.report_html}", markup=False)
    if store is not None:
        drift = store.drift(run)
        if args.command == "drift":
            console.print(f"since the previous run: {len(drift) or 'no'} changes", markup=False)
            for entry in drift:
                console.print(f"  {entry.host} {entry.control}: {entry.before or 'new'} → {entry.after}: "
                              f"{entry.message}", markup=False, soft_wrap=True)
        elif drift:
            console.print(f"since the previous run: {len(drift)} changes (hardening history --run {run.run_id})",
                          markup=False)
    return run.exit_code


EXPIRY_NOTICE_DAYS = 14


def _expiring(playbook: Playbook, console: Console) -> None:
    """Say which documented exceptions end within two weeks (they become findings again then)."""
    today = dt.date.today()
    for control in playbook.controls:
        for exception in control.exceptions:
            if exception.until is not None and today <= exception.until <= today + dt.timedelta(EXPIRY_NOTICE_DAYS):
                console.print(f"exception of {control.id} for {', '.join(exception.hosts)} ends on "
                              f"{exception.until.isoformat()}: {exception.reason}", markup=False, soft_wrap=True)


def _write_reports(run: Run, json_path: str | None, junit_path: str | None, console: Console) -> None:
    if json_path:
        console.print(f"JSON report: {write_json(run, json_path)}", markup=False)
    if junit_path:
        console.print(f"JUnit report: {write_junit(run, junit_path)}", markup=False)


def _site_inventory(lab_file: str | None) -> Path | None:
    """The inventory whose site values a served lab keeps: the demo's, or the one lab init wrote."""
    if lab_file is None:
        return DEMO_INVENTORY
    beside = Path(lab_file).resolve().parent / "inventory.yml"
    return beside if beside.is_file() else None


def _serve(lab: Lab, https: bool, port: int | None, inventory_out: Path, site: Path | None) -> LabEndpoint:
    """Start the loopback endpoint and write an inventory for it; the password file is 0600.

    WinRM's own port by default, so that playbooks which protect the management port (the firewall
    allow-list keeps 5985/5986 open) apply to the lab as they would to a server.
    """
    endpoint = serve_lab(lab, https=https, port=(5986 if https else 5985) if port is None else port)
    password_file = inventory_out.with_name(inventory_out.name + ".password")
    password_file.touch(mode=0o600, exist_ok=True)
    password_file.chmod(0o600)
    password_file.write_text(ENDPOINT_PASSWORD, encoding="utf-8")
    site_data = load_yaml(site, error=InventoryError).data if site is not None else None
    endpoint.write_inventory(inventory_out, f"file:{password_file}", site_data if isinstance(site_data, dict) else None)
    return endpoint


def _demo(args: argparse.Namespace, console: Console) -> int:
    lab = load_lab()  # the built-in scenario, fresh, in memory
    playbook = load_playbook(data_dir("playbooks") / "baseline.yml")
    out = Path(args.report_dir) if args.report_dir else Path(tempfile.mkdtemp(prefix="hardening-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.in_process:
        return _demo_runs(args, console, lab, playbook, load_inventory(DEMO_INVENTORY), out, "in process")
    # The endpoint's inventory and password file live only as long as the demo does.
    with tempfile.TemporaryDirectory(prefix="hardening-demo-endpoint-") as private, \
            _serve(lab, False, None, Path(private) / "inventory.yml", DEMO_INVENTORY) as endpoint:
        inventory = load_inventory(Path(private) / "inventory.yml")
        where = ", ".join(f"{h.name} {h.address}:{h.port}" for h in endpoint.hosts.values())
        return _demo_runs(args, console, lab, playbook, inventory, out,
                          f"through pypsrp over HTTP with NTLM and message encryption to {where}")


def _demo_runs(args: argparse.Namespace, console: Console, lab: Lab, playbook: Playbook, inventory: Inventory,
               out: Path, how: str) -> int:
    console.print(f"[bold]hardening demo[/bold]: {lab.description}\nplaybook {playbook.path}\n"
                  f"simulated hosts, reached {how}\n", soft_wrap=True)
    runs = []
    store = HistoryStore(args.history) if args.history else None
    for step, action in (("1-check", check), ("2-apply", apply), ("3-check", check)):
        run = action(playbook, inventory, lab=lab)
        runs.append(run)
        if store is not None:
            store.record(run)
        print_run(run, console, diff=args.diff or step == "2-apply", title=f"step {step[0]}: {run.mode.value}")
        write_json(run, out / f"{step}.json")
        write_junit(run, out / f"{step}.junit.xml")
        console.print()
    console.print(f"reports written to {out}", markup=False)
    # What a guard holds stays drifted by design: every one of its changes is held.
    held = [o for o in runs[-1].outcomes if o.status is Status.DRIFTED and len(o.held) == len(o.changes) > 0]
    rest = [o for o in runs[-1].outcomes if o.status is not Status.COMPLIANT and o not in held]
    expected = ([r.exit_code for r in runs[:2]] == [3, 3] and not rest
                and all(h.reachable for h in runs[-1].hosts))
    for outcome in held:
        console.print(f"held by a guard, as on a production server: {outcome.host} {outcome.control} stays drifted "
                      "until the playbook allows the change (see its sentence above)", markup=False, soft_wrap=True)
    if not expected:
        console.print("the demo did not end compliant (apart from what a guard holds): see the tables above",
                      markup=False)
    return 0 if expected else 2


def _history(args: argparse.Namespace, console: Console) -> int:
    store = HistoryStore(args.history or default_history_path())
    since = parse_since(args.since) if args.since else None
    if args.host or args.control or args.run:
        rows = store.outcomes(run_id=args.run, host=args.host, control=args.control, since=since)
        table = Table(title="outcomes")
        for column in ("when", "mode", "host", "control", "status", "what happened"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["started_at"][:19], row["mode"], row["host"], row["control"], row["status"],
                          row["message"])
        console.print(table)
        return 0
    table = Table(title=f"runs in {store.path}")
    for column in ("run", "mode", "started", "exit", "outcomes", "playbook"):
        table.add_column(column)
    for record in store.runs(since=since):
        table.add_row(record.run_id, record.mode, record.started_at[:19], str(record.exit_code),
                      summary_line(record), record.playbook_digest[:19])
    console.print(table)
    return 0


def _report(args: argparse.Namespace, console: Console) -> int:
    store = HistoryStore(args.history or default_history_path())
    doc = store.run_json(args.run)
    if args.format == "ckl":
        try:
            checklists = render_ckls(doc)
        except ValueError as exc:
            raise HardeningError(f"no checklist for run {args.run}: {exc}") from None
        folder = Path(args.output or ".")
        folder.mkdir(parents=True, exist_ok=True)
        for host, text in checklists.items():
            (folder / f"{host}.ckl").write_text(text, encoding="utf-8")
        console.print(f"wrote {len(checklists)} checklists to {folder}", markup=False)
        return 0
    if args.format == "html":
        text = render_html(doc, history_from_store(store))
    elif args.format == "json":
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    else:
        if not args.output:
            raise HardeningError("--format junit needs --output PATH")
        write_junit_json(doc, args.output)
        console.print(f"JUnit report: {args.output}", markup=False)
        return 0
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        console.print(f"{args.format} report: {args.output}", markup=False)
    else:
        sys.stdout.write(text)
    return 0


def _rollback(args: argparse.Namespace, console: Console) -> int:
    store = HistoryStore(args.history or default_history_path())
    inventory = load_inventory(args.inventory)
    run, refusals = rollback(store, args.run_id, inventory, host=args.host, control=args.control)
    for refusal in refusals:
        console.print(f"refused: {refusal.host} {refusal.control}: {refusal.reason}", markup=False)
    if run is None:
        console.print("nothing to roll back", markup=False)
        return 2 if refusals else 0
    print_run(run, console, diff=True, title=f"rollback of {args.run_id}")
    if not args.no_history:
        store.record(run)
    return 2 if refusals else run.exit_code


def _watch(args: argparse.Namespace, console: Console) -> int:
    windows = [MaintenanceWindow.parse(w) for w in args.window or ()]
    notifier = Notifier(load_notify_settings(args.notify)) if args.notify else None
    stop = threading.Event()
    options = Options(_split(args.limit), _split(args.tags), _split(args.skip_tags), max(1, args.forks), args.timeout)
    with stop_on_signals(stop):
        watch(args.playbook, args.inventory, cron=args.cron, jitter=args.jitter, windows=windows,
              max_changes=args.max_changes, canary=args.canary,
              history=HistoryStore(args.history or default_history_path()), notify=notifier, stop=stop,
              options=options, html=render_html if notifier else None, timezone=args.timezone,
              run_now=args.run_now, on_pass=lambda result: print_run(result.run, console))
    console.print("watch stopped", markup=False)
    return 0


def _schedule(args: argparse.Namespace, console: Console) -> int:
    if args.every < 1:
        raise HardeningError("--every must be at least 1 minute")
    if args.systemd:
        for name, text in systemd_units(args.playbook, args.inventory, f"*:0/{args.every}").items():
            sys.stdout.write(f"# --- {name} (install in /etc/systemd/system, then systemctl enable --now "
                             f"hardening-drift.timer)\n{text}\n")
    elif args.cron:
        schedule = f"*/{args.every} * * * *" if args.every < 60 else f"0 */{max(1, args.every // 60)} * * *"
        sys.stdout.write(cron_line(args.playbook, args.inventory, schedule))
    else:
        sys.stdout.write(windows_task_xml(args.playbook, args.inventory, args.every))
    return 0


def _schema(args: argparse.Namespace, console: Console) -> int:
    text = json.dumps(playbook_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        console.print(f"JSON Schema written to {args.output}", markup=False)
    else:
        sys.stdout.write(text)
    return 0


def _kinds(args: argparse.Namespace, console: Console) -> int:
    width = max(len(name) for name in KINDS)
    for name, kind in sorted(KINDS.items()):
        console.print(f"{name:<{width}}  {kind.summary}", markup=False, soft_wrap=True)
    return 0


def _doctor(args: argparse.Namespace, console: Console) -> int:
    inventory = load_inventory(args.inventory)
    host = next((h for h in inventory.hosts.values() if h.name.casefold() == args.host.casefold()), None)
    if host is None:
        raise HardeningError(f"{args.host}: no such host in {args.inventory}")
    lab = load_lab(inventory.lab) if host.connection.transport == "lab" else None
    checks = diagnose(host, lab)
    table = Table(title=f"hardening doctor {host.name} ({host.address})")
    for column in ("check", "result", "detail", "what to do"):
        table.add_column(column)
    styles = {"ok": "green", "warn": "yellow", "fail": "bold red", "skipped": "dim"}
    for item in checks:
        table.add_row(item.name, Text(item.status, style=styles[item.status]), item.detail, item.fix)
    console.print(table)
    return 2 if any(c.status == "fail" for c in checks) else 0


def _docs(args: argparse.Namespace, console: Console) -> int:
    written = write_docs(args.output)
    console.print(f"wrote {len(written)} pages to {args.output}", markup=False)
    return 0


def _lab(args: argparse.Namespace, console: Console) -> int:
    if args.lab_command == "serve":
        lab = load_lab(args.hosts) if args.hosts else load_lab()
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        site = Path(args.site_inventory) if args.site_inventory else _site_inventory(args.hosts)
        with _serve(lab, args.https, args.port, Path(args.inventory_out), site) as endpoint:
            for host in endpoint.hosts.values():
                console.print(f"{host.name}: {host.url}", markup=False)
            console.print(f"inventory: {args.inventory_out}; stop with Ctrl-C or SIGTERM", markup=False)
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
        lab.save()
        console.print("stopped", markup=False)
        return 0
    if args.lab_command == "reset":
        if not Path(args.lab_file).exists():
            raise HardeningError(f"{args.lab_file}: no such lab file or folder")
        state = Path(args.lab_file).with_name(Path(args.lab_file).name + ".state.json")
        if state.exists():
            state.unlink()
            console.print(f"forgot the saved state {state}", markup=False)
        else:
            console.print(f"no saved state for {args.lab_file}", markup=False)
        return 0
    directory = Path(args.directory)
    directory.mkdir(parents=True, exist_ok=True)
    lab_file, inventory_file = directory / "lab.yml", directory / "inventory.yml"
    for path in (lab_file, inventory_file):
        if path.exists() and not args.force:
            raise HardeningError(f"{path} exists; use --force to overwrite it")
    lab_file.write_text(merged_lab_text(BUILTIN_SCENARIO), encoding="utf-8")
    lab_file.with_name(lab_file.name + ".state.json").unlink(missing_ok=True)  # a fresh lab, not the old state
    inventory_file.write_text(DEMO_INVENTORY.read_text(encoding="utf-8").replace("lab: demo\n", "lab: lab.yml\n"),
                              encoding="utf-8")
    console.print(f"wrote {lab_file} and {inventory_file}\ntry:  hardening check baseline -i {inventory_file}",
                  markup=False)
    return 0


def _inventory(args: argparse.Namespace, console: Console) -> int:
    from .discovery import discover, inventory_document
    from .inventory import directory_host

    settings = {"ldap_url": args.ldap_url, "ldap_auth": args.auth, "ldap_username": args.user,
                "ldap_password": args.password, "ldap_ca_bundle": args.ca_bundle,
                "ldap_server_name": args.server_name}
    dc = directory_host({k: v for k, v in settings.items() if v is not None}, "--ldap-url")
    if args.output:
        _writable(args.output)
    servers = discover(dc, sites=args.site, releases=args.release, roles=args.role)
    document = inventory_document(servers)
    if args.format == "json":
        text = json.dumps(document, indent=2) + "\n"
    else:
        import yaml

        filters = ", ".join(f"{k} {', '.join(v)}" for k, v in (("site", args.site), ("version", args.release),
                                                                  ("role", args.role)) if v)
        header = (f"# Exchange servers found in {args.ldap_url} by hardening inventory from-ad "
                  f"({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC){'; ' + filters if filters else ''}.\n"
                  "# Add connection settings (transport, auth, username, password reference) before use.\n")
        text = header + yaml.safe_dump(document, sort_keys=False)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        console.print(f"{len(servers)} Exchange server(s) written to {args.output}", markup=False)
    else:
        sys.stdout.write(text)
    if not servers:
        print("no Exchange server found", file=sys.stderr)
    return 0


COMMANDS = {
    "check": _run, "apply": _run, "plan": _run, "drift": _run, "schedule": _schedule, "demo": _demo,
    "schema": _schema, "kinds": _kinds, "docs": _docs, "doctor": _doctor, "history": _history, "lab": _lab,
    "rollback": _rollback, "report": _report, "watch": _watch, "inventory": _inventory,
}
