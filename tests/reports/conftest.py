"""Fixtures of the report tests: real runs of the demo lab, hostile data, and headless Chromium.

The Chromium tests need the ``chromium`` binary (Debian: ``apt-get install -y chromium``). Without
it they are skipped, except under ``CI=true``, where a missing browser is a failure: CI must run
them.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import hardening
from hardening import load_inventory, load_playbook
from hardening.history import HistoryStore
from hardening.report import run_to_json
from hardening.report_html import history_from_store

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "playbooks" / "baseline.yml"
DEMO_INVENTORY = ROOT / "hardening" / "lab" / "scenarios" / "demo-inventory.yml"

# Values a host or a playbook could hand us; none may become markup.
HOSTILE_HOST = 'MAIL"><img src=x onerror=alert(1)>'
HOSTILE_MESSAGE = "</style><script>alert('message')</script> & </td></tr></table><x-evil>\x00\x07 ]]>"
HOSTILE_TITLE = "Title with \"double\" and 'single' quotes <b>bold</b> </title><script>alert(2)</script>"
HOSTILE_VALUE = "<svg onload=alert(3)>"
HOSTILE_REASON = "</textarea><iframe src=javascript:alert(4)></iframe>"
HOSTILE_RUN_ID = '"><svg onload=alert(5)>'


@dataclass(frozen=True)
class Runs:
    """The demo lab checked, applied and checked again, as JSON documents, with their history."""

    check: dict[str, Any]
    apply: dict[str, Any]
    recheck: dict[str, Any]
    history: list[dict[str, Any]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    playbook = load_playbook(BASELINE)
    inventory = load_inventory(DEMO_INVENTORY)
    lab = hardening.load_lab()
    first = hardening.check(playbook, inventory, lab=lab)
    fixed = hardening.apply(playbook, inventory, lab=lab)
    again = hardening.check(playbook, inventory, lab=lab)
    store = HistoryStore(tmp_path_factory.mktemp("history") / "h.sqlite")
    for run in (first, fixed, again):
        store.record(run)
    return Runs(run_to_json(first), run_to_json(fixed), run_to_json(again), history_from_store(store))


def hostile(run_json: dict[str, Any]) -> dict[str, Any]:
    """A copy of a run whose first host, messages, titles and values are hostile strings."""
    doc = copy.deepcopy(run_json)
    doc["run_id"] = HOSTILE_RUN_ID
    host = doc["hosts"][0]
    host["name"] = HOSTILE_HOST
    host["facts"]["os_caption"] = HOSTILE_VALUE
    for o in host["outcomes"]:
        o["message"] = HOSTILE_MESSAGE
        o["title"] = HOSTILE_TITLE
        o["references"]["guide"] = HOSTILE_VALUE
        for change in o["changes"]:
            change["from"] = [HOSTILE_VALUE, "kept"] if isinstance(change["from"], list) else HOSTILE_VALUE
            change["to"] = HOSTILE_MESSAGE
        o["pending_restarts"] = [HOSTILE_VALUE]
    return doc


# --- a small DOM for the pages Chromium dumps --------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    """An element: its tag, attributes, and content (text and elements, in document order)."""

    tag: str
    attrs: dict[str, str]
    content: list[Node | str] = field(default_factory=list)

    @property
    def children(self) -> list[Node]:
        return [c for c in self.content if isinstance(c, Node)]

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.content)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> list[Node]:
        out = [self]
        for child in self.children:
            out += child.iter()
        return out

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        return [n for n in self.iter() if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].content.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].content.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].content.append(data)


def parse_html(text: str) -> Node:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


# --- headless Chromium ------------------------------------------------------------------------

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
                  "--enable-logging=stderr", "--v=0")


@dataclass(frozen=True)
class Browsed:
    """What Chromium made of a page: the DOM it serialised, and the console lines about the page."""

    dom: str
    console: list[str]
    stderr: str

    @property
    def tree(self) -> Node:
        return parse_html(self.dom)


def console_lines(stderr: str, page: Path) -> list[str]:
    """The console messages and uncaught errors Chromium logged for ``page``.

    Chromium logs every console message (errors, CSP violations, warnings) as ``…:CONSOLE…] "…",
    source: file:///…``; the page runs no script, so any such line is a problem.
    """
    uri = page.resolve().as_uri()
    return [line for line in stderr.splitlines()
            if ("CONSOLE" in line or "Uncaught" in line) and (uri in line or "source: " not in line)]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    binary = find_chromium()
    if binary is None:
        message = ("headless Chromium is not installed (apt-get install -y chromium); the report pages are not "
                   "rendered")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} — under CI=true this is an error: the CI set-up must install chromium")
        pytest.skip(message)
    return binary


@pytest.fixture
def chromium(chromium_binary: str, tmp_path: Path) -> Callable[..., Browsed]:
    """``chromium(page, "--dump-dom")`` runs headless Chromium on a local file, with a fresh profile."""

    def run(page: Path, *action: str) -> Browsed:
        profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
        command = [chromium_binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action, page.resolve().as_uri()]
        env = {**os.environ, "HOME": str(tmp_path)}
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env, check=False)
        assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
        return Browsed(done.stdout, console_lines(done.stderr, page), done.stderr)

    return run
