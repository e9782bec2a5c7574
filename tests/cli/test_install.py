"""The package as a user gets it: built and installed (not editable) into a fresh venv, then run
from a folder outside the checkout, so shipped playbooks and templates must come from the wheel."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT


def _unlisted_packages() -> list[str]:
    """Packages under hardening/ that setup.cfg's explicit ``packages`` list leaves out of the wheel."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    listed = set(config["options"]["packages"].split())
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "hardening").rglob("__init__.py")}
    return sorted(found - listed)


pytestmark = [pytest.mark.slow]

def test_setup_cfg_lists_every_package() -> None:
    """An unlisted package is missing from the wheel: ``import hardening`` fails once installed."""
    assert _unlisted_packages() == []


# Left out of the copy: environments, VCS data, caches and earlier build output.
IGNORED = shutil.ignore_patterns(".venv", "venv", ".git", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache",
                                 ".mypy_cache", "*.egg-info", "build", "dist", ".tox", ".nox")


def _run(argv: list[str | Path], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env["COLUMNS"] = "200"
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with hardening installed from a copy of this checkout; returns the venv."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=IGNORED)
    assert (source / "setup.cfg").is_file() and (source / "playbooks" / "baseline.yml").is_file()
    venv = base / "venv"
    made = _run([sys.executable, "-m", "venv", venv], base, 120)
    assert made.returncode == 0, made.stderr
    pip = _run([_bin(venv, "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                "--quiet", source], base, 300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return venv


def test_installed_not_editable_and_not_from_the_checkout(installed: Path, tmp_path: Path) -> None:
    probe = ("import json, hardening, hardening.resources as r; print(json.dumps({'module': hardening.__file__, "
             "'playbooks': str(r.data_dir('playbooks')), 'templates': str(r.data_dir('templates')), "
             "'version': hardening.__version__}))")
    done = _run([_bin(installed, "python"), "-c", probe], tmp_path, 60)
    assert done.returncode == 0, done.stderr
    where = json.loads(done.stdout)
    venv = installed.resolve()
    for key in ("module", "playbooks", "templates"):
        path = Path(where[key]).resolve()
        assert venv in path.parents, f"{key} comes from {path}, not the installed package"
        assert ROOT not in path.parents
    shipped = Path(where["playbooks"])
    assert sorted(p.name for p in shipped.glob("*.yml")) == sorted(p.name for p in (ROOT / "playbooks").glob("*.yml"))
    templates = Path(where["templates"])
    assert sorted(p.name for p in templates.glob("*.j2")) == sorted(p.name for p in (ROOT / "templates").glob("*.j2"))
    scenarios = Path(where["module"]).parent / "lab" / "scenarios"
    assert (scenarios / "demo" / "base.yml").is_file() and (scenarios / "demo-inventory.yml").is_file()


def test_installed_demo_check_apply(installed: Path, tmp_path: Path) -> None:
    hardening = _bin(installed, "hardening")
    assert hardening.is_file(), "the console script was not installed"

    version = _run([hardening, "--version"], tmp_path, 60)
    assert version.returncode == 0 and version.stdout.startswith("hardening ")

    demo = _run([hardening, "demo", "--report-dir", tmp_path / "reports"], tmp_path, 120)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert len(list((tmp_path / "reports").glob("*.json"))) == 3
    assert len(list((tmp_path / "reports").glob("*.junit.xml"))) == 3
    first = json.loads((tmp_path / "reports" / "1-check.json").read_text(encoding="utf-8"))
    assert all(installed.resolve() in Path(p["path"]).resolve().parents for p in first["playbooks"])
    assert first["summary"]["drifted"] > 0

    init = _run([hardening, "lab", "init", tmp_path / "lab"], tmp_path, 60)
    assert init.returncode == 0, init.stderr
    inventory = tmp_path / "lab" / "inventory.yml"
    check = _run([hardening, "check", "baseline", "-i", inventory], tmp_path, 120)
    assert check.returncode == 3, check.stdout + check.stderr
    # ntfs_acl is a script kind: its PowerShell comes from the shipped templates
    assert "ntfs-transport-queue" in check.stdout
    plan = _run([hardening, "plan", "ntfs", "-i", inventory, "--limit", "MAIL01"], tmp_path, 60)
    assert plan.returncode == 0, plan.stderr
    assert "Get-Acl -LiteralPath" in plan.stdout
    apply = _run([hardening, "apply", "baseline", "-i", inventory], tmp_path, 120)
    assert apply.returncode == 3, apply.stdout + apply.stderr
    again = _run([_bin(installed, "python"), "-m", "hardening", "check", "baseline", "-i", inventory,
                  "--report-json", tmp_path / "again.json"], tmp_path, 120)
    # still 3: the quota guard holds MAIL01's DB01 (mailboxes above the proposed limits); all else compliant
    assert again.returncode == 3, again.stdout + again.stderr
    doc = json.loads((tmp_path / "again.json").read_text(encoding="utf-8"))
    left = {(h["name"], o["control"]) for h in doc["hosts"] for o in h["outcomes"] if o["status"] != "compliant"}
    assert left == {("MAIL01", "mailbox-database-quotas")}
