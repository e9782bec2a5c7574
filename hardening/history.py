"""The history of runs: an embedded SQLite store of runs and their outcomes.

Safe under concurrent runs: WAL journal, a busy timeout, and every run written in one
``BEGIN IMMEDIATE`` transaction, so a run is recorded whole or not at all. The schema version is
SQLite's ``user_version``; :data:`MIGRATIONS` brings an older store up to date on open. A run
records the digests of its playbooks and the tool version, so "the host drifted" can be told
apart from "the playbook changed". Secrets never reach the store: outcomes hold settings, and
the inventory's credentials are references that are not recorded at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import HardeningError
from .model import Run, Status
from .report import outcome_to_json

__all__ = ["DriftEntry", "HistoryStore", "RunRecord", "default_history_path", "parse_since", "summary_line"]

MIGRATIONS: tuple[str, ...] = (
    # 1: runs, hosts and outcomes
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        tool_version TEXT NOT NULL,
        exit_code INTEGER NOT NULL,
        playbooks TEXT NOT NULL,      -- JSON: [{path, name, digest}]
        playbook_digest TEXT NOT NULL, -- one digest over all playbook digests, for "same playbook?"
        summary TEXT NOT NULL         -- JSON
    );
    CREATE INDEX runs_started ON runs (started_at);
    CREATE TABLE hosts (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        reachable INTEGER NOT NULL,
        error TEXT,
        facts TEXT NOT NULL,
        requests INTEGER NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    CREATE TABLE outcomes (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        host TEXT NOT NULL,
        control TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        message TEXT NOT NULL,
        detail TEXT NOT NULL,         -- JSON: the outcome as in the JSON report
        PRIMARY KEY (run_id, host, control)
    );
    CREATE INDEX outcomes_host_control ON outcomes (host, control);
    """,
)


def default_history_path() -> Path:
    """``$XDG_STATE_HOME/hardening/history.sqlite`` (default ``~/.local/state/...``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hardening" / "history.sqlite"


@dataclass(frozen=True)
class RunRecord:
    """A recorded run, as listed by ``hardening history``."""

    run_id: str
    mode: str
    started_at: str
    finished_at: str
    tool_version: str
    exit_code: int
    playbook_digest: str
    summary: dict[str, int]


@dataclass(frozen=True)
class DriftEntry:
    """How one host × control changed between two runs."""

    host: str
    control: str
    before: str | None
    after: str
    message: str


class HistoryStore:
    """A history database at ``path`` (created, and migrated, on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                self._migrate(db)
        except sqlite3.DatabaseError as exc:
            raise HardeningError(f"{self.path}: not a usable history store ({exc})") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
            db.row_factory = sqlite3.Row
            yield db

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > len(MIGRATIONS):
                raise HardeningError(f"the history store is from a newer hardening (schema {version}); upgrade")
            for number in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        with self._connect() as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])

    def record(self, run: Run) -> None:
        """Store a run whole, in one transaction. Plan runs are not recorded."""
        digests = sorted(p.digest for p in run.playbooks)
        combined = "sha256:" + hashlib.sha256("\n".join(digests).encode()).hexdigest()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run.run_id, run.mode.value, run.started_at.isoformat(), run.finished_at.isoformat(),
                     run.tool_version, run.exit_code,
                     json.dumps([{"path": p.path, "name": p.name, "digest": p.digest} for p in run.playbooks]),
                     combined, json.dumps(run.summary)))
                for host in run.hosts:
                    db.execute("INSERT INTO hosts VALUES (?, ?, ?, ?, ?, ?)",
                               (run.run_id, host.name, int(host.reachable), host.error,
                                json.dumps(host.facts, default=str), host.requests))
                    for outcome in host.outcomes:
                        db.execute("INSERT INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?)",
                                   (run.run_id, host.name, outcome.control, outcome.kind, outcome.status.value,
                                    outcome.message, json.dumps(outcome_to_json(outcome), default=str)))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def runs(self, *, since: dt.datetime | None = None, limit: int | None = None) -> list[RunRecord]:
        """Recorded runs, newest first."""
        query = "SELECT * FROM runs"
        args: list[Any] = []
        if since is not None:
            query += " WHERE started_at >= ?"
            args.append(since.isoformat())
        query += " ORDER BY started_at DESC, rowid DESC"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        with self._connect() as db:
            return [_record(row) for row in db.execute(query, args)]

    def outcomes(self, *, run_id: str | None = None, host: str | None = None, control: str | None = None,
                 since: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Outcomes with their run's time and mode, newest first, filtered."""
        query = ("SELECT o.*, r.started_at, r.mode FROM outcomes o JOIN runs r USING (run_id) WHERE 1 = 1")
        args: list[Any] = []
        for column, value in (("o.run_id", run_id), ("o.host", host), ("o.control", control)):
            if value is not None:
                query += f" AND {column} = ?"
                args.append(value)
        if since is not None:
            query += " AND r.started_at >= ?"
            args.append(since.isoformat())
        query += " ORDER BY r.started_at DESC, o.host, o.control"
        with self._connect() as db:
            return [{**dict(row), "detail": json.loads(row["detail"])} for row in db.execute(query, args)]

    def run_json(self, run_id: str) -> dict[str, Any]:
        """A recorded run as the ``hardening.run/1`` document (the JSON report it had)."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise HardeningError(f"no run {run_id} in {self.path}")
            hosts = db.execute("SELECT * FROM hosts WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
            outcomes = db.execute("SELECT host, detail FROM outcomes WHERE run_id = ? ORDER BY rowid",
                                  (run_id,)).fetchall()
        summary = json.loads(row["summary"])
        return {
            "schema": "hardening.run/1", "run_id": row["run_id"], "mode": row["mode"],
            "started_at": row["started_at"], "finished_at": row["finished_at"], "tool_version": row["tool_version"],
            "playbooks": json.loads(row["playbooks"]), "summary": summary, "exit_code": row["exit_code"],
            "hosts": [{"name": h["name"], "reachable": bool(h["reachable"]), "error": h["error"],
                       "facts": json.loads(h["facts"]), "requests": h["requests"],
                       "outcomes": [json.loads(o["detail"]) for o in outcomes if o["host"] == h["name"]]}
                      for h in hosts],
        }

    def previous(self, run_id: str) -> RunRecord | None:
        """The run recorded just before this one, if any."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE started_at < (SELECT started_at FROM runs WHERE run_id = ?) "
                             "ORDER BY started_at DESC LIMIT 1", (run_id,)).fetchone()
        return _record(row) if row is not None else None

    def drift(self, run: Run) -> list[DriftEntry]:
        """What changed since the previous recorded run: status changes per host × control.

        Becoming drifted (or failed) after being compliant is drift; becoming compliant or fixed
        is a correction. Call it after :meth:`record`.
        """
        previous = self.previous(run.run_id)
        before: dict[tuple[str, str], str] = {}
        if previous is not None:
            for row in self.outcomes(run_id=previous.run_id):
                before[(row["host"], row["control"])] = row["status"]
        out = []
        for outcome in run.outcomes:
            old = before.get((outcome.host, outcome.control))
            new = outcome.status.value
            settled = old in {Status.FIXED.value, Status.COMPLIANT.value} and new == Status.COMPLIANT.value
            if old != new and not settled:
                out.append(DriftEntry(outcome.host, outcome.control, old, new, outcome.message))
        return out


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(row["run_id"], row["mode"], row["started_at"], row["finished_at"], row["tool_version"],
                     int(row["exit_code"]), row["playbook_digest"], json.loads(row["summary"]))


def parse_since(text: str) -> dt.datetime:
    """``2026-11-30``, an ISO timestamp, or a relative ``7d`` / ``12h``."""
    text = text.strip()
    now = dt.datetime.now(dt.UTC)
    if text[:-1].isdigit() and text[-1:] in {"d", "h"}:
        amount = int(text[:-1])
        return now - (dt.timedelta(days=amount) if text.endswith("d") else dt.timedelta(hours=amount))
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise HardeningError(f"--since {text!r}: use a date (2026-11-30), a timestamp or 7d / 12h") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def summary_line(record: RunRecord) -> str:
    parts = [f"{record.summary.get(k, 0)} {k}" for k in ("compliant", "drifted", "fixed", "failed")
             if record.summary.get(k)]
    return ", ".join(parts) or "nothing"

