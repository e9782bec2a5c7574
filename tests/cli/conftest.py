"""Fixtures of the CLI tests (helpers are in helpers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hardening.lab.host import LabHost

from .helpers import LabDir, Result, Traffic, invoke


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``cli("check", "baseline", "-i", inv)`` → :class:`Result`. The table is printed wide so that
    assertions on its text do not depend on where rich would wrap a cell."""
    monkeypatch.setenv("COLUMNS", "250")

    def run(*argv: Any) -> Result:
        return invoke(capsys, argv)

    return run


@pytest.fixture
def lab_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> LabDir:
    """``hardening lab init`` into a fresh folder: MAIL01-03 drifted, MAIL04 compliant."""
    root = tmp_path / "lab"
    result = invoke(capsys, ["lab", "init", root])
    assert result.code == 0, result.err
    return LabDir(root)


@pytest.fixture
def traffic(monkeypatch: pytest.MonkeyPatch) -> Iterator[Traffic]:
    """Records what crosses into any simulated host, whichever way the engine reaches it."""
    record = Traffic([])
    run_script, invoke_cmdlet = LabHost.run_script, LabHost.invoke

    def recording_script(self: LabHost, script: str) -> list[str]:
        before = len(self.received)
        try:
            return run_script(self, script)
        finally:
            record.calls.extend((self.name, what) for what, _ in self.received[before:])
            if len(self.received) == before:
                record.calls.append((self.name, "<script>"))

    def recording_invoke(self: LabHost, call: Any) -> Any:
        record.calls.append((self.name, call.cmdlet))
        return invoke_cmdlet(self, call)

    monkeypatch.setattr(LabHost, "run_script", recording_script)
    monkeypatch.setattr(LabHost, "invoke", recording_invoke)
    yield record
