"""Per-kind JSON cases: ``tests/kinds/<kind>/<case>.json``. Adding a case is adding a file.

Each case gives a kind's parameters and what each read request returned (the list passed to
``Kind.observe``), and expects a status, the changes (``path``/``from``/``to``) and the text of
every write request: ``cmdlet_text`` for cmdlet calls, the call's data for script calls, the LDIF
text for directory requests.

Case keys:
  description     what the case shows (required)
  host            inventory name of the host (default MAIL01)
  facts           facts overriding the default modern host (Exchange 2019 on Windows Server 2019)
  management_ports  the TCP ports the run manages the host through (Context.management_ports; default
                  WinRM's 5985 and 5986)
  params          the kind's parameters, as a playbook gives them (required)
  values          one value per read request (required unless the case expects invalid params); binary
                  directory values (a security descriptor, a SID) are written {"$base64": "..."}
  expect          {"status", "changes", "writes"} and optionally "restarts" (services the changes need
                  restarted, from Kind.restarts) and "caveats" (what the kind says of the changes, each
                  {"object", "properties", "held", "sentence"}; default none), or {"invalid": "message
                  fragment"}. Held changes stay in "changes" (the status is drifted) but are not written.
  error_contains  a fragment of the sentence of a not_applicable or failed result
  xfail           a known bug: the case shows the right behaviour and fails until it is fixed
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import pytest

from hardening.compare import diff
from hardening.facts import Facts
from hardening.kinds import KINDS, Context, ControlFailed, NotApplicable, caveats_for, without_held
from hardening.ldif import ldif_text
from hardening.model import CmdletCall, LdapCall, ScriptCall
from hardening.render import cmdlet_text

HERE = Path(__file__).resolve().parent
MIN_CASES_PER_KIND = 5
CASE_KEYS = {"description", "host", "facts", "management_ports", "params", "values", "expect", "error_contains",
             "xfail"}
EXPECT_KEYS = {"status", "changes", "writes", "restarts", "caveats"}
STATUSES = {"compliant", "drifted", "not_applicable", "failed"}

# A modern host: Exchange 2019 CU14 on Windows Server 2019 with Windows PowerShell 5.1.
DEFAULT_FACTS: dict[str, Any] = {
    "computer_name": "MAIL01",
    "os_caption": "Microsoft Windows Server 2019 Datacenter",
    "os_version": "10.0.17763",
    "powershell_version": "5.1.17763.1",
    "exchange_version": "15.2.1544.4",
    "exchange_roles": ["Mailbox"],
    "exchange_install_path": "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\",
}


def _case_files() -> list[Path]:
    return sorted(HERE.glob("*/*.json"))


def _params() -> list[Any]:
    out = []
    for path in _case_files():
        case = json.loads(path.read_text(encoding="utf-8"))
        marks = [pytest.mark.xfail(strict=True, reason=case["xfail"])] if case.get("xfail") else []
        out.append(pytest.param(path, id=f"{path.parent.name}/{path.stem}", marks=marks))
    return out


def _jsonable(value: Any) -> Any:
    """Tuples as lists, the way the case file spells them."""
    return json.loads(json.dumps(value))


def binary_values(value: Any) -> Any:
    """``{"$base64": "..."}`` anywhere in a case's values as the bytes it stands for."""
    if isinstance(value, dict):
        if set(value) == {"$base64"}:
            return base64.b64decode(value["$base64"])
        return {k: binary_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [binary_values(v) for v in value]
    return value


def _write_text(call: Any) -> Any:
    if isinstance(call, CmdletCall):
        return cmdlet_text(call)
    if isinstance(call, LdapCall):
        return ldif_text(call)
    assert isinstance(call, ScriptCall)
    return _jsonable(dict(call.data))


@dataclass
class Result:
    status: str
    changes: list[dict[str, Any]]
    writes: list[Any]
    error: str = ""
    restarts: list[str] | None = None
    caveats: list[dict[str, Any]] = field(default_factory=list)


def evaluate(kind_name: str, case: Mapping[str, Any]) -> Result:
    """observe → desire → diff → write, the way the engine runs one control on one host."""
    kind = KINDS[kind_name]
    params = kind.params_model.model_validate(case["params"])
    facts = Facts.from_mapping({**DEFAULT_FACTS, **case.get("facts", {})})
    variant = kind.variant_for(facts)
    if isinstance(variant, str):
        return Result("not_applicable", [], [], variant)
    ctx = Context(case.get("host", "MAIL01"), facts, variant)
    if "management_ports" in case:
        ctx = dataclasses.replace(ctx, management_ports=tuple(case["management_ports"]))
    try:
        observed = kind.observe(params, ctx, binary_values(case["values"]))
        desired = kind.desire(params, ctx, observed)
        changes = diff(desired, observed, kind.comparers)
        caveats = caveats_for(kind.caveats(params, ctx, observed, desired), changes) if changes else ()
        # Computed for compliant cases too: a kind must never write what already matches.
        writes = kind.write(params, ctx, observed, without_held(desired, caveats))
        held = {c.path for c in changes if any(k.held and k.covers(c) for k in caveats)}
        restarts = list(kind.restarts(params, ctx, tuple(c for c in changes if c.path not in held)))
    except NotApplicable as exc:
        return Result("not_applicable", [], [], str(exc))
    except ControlFailed as exc:
        return Result("failed", [], [], str(exc))
    return Result("drifted" if changes else "compliant", _jsonable([c.to_json() for c in changes]),
                  [_write_text(c) for c in writes], restarts=restarts,
                  caveats=[{"object": k.object, "properties": list(k.properties), "held": k.held,
                            "sentence": k.sentence} for k in caveats])


@pytest.mark.parametrize("path", _params())
def test_case(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    kind_name = path.parent.name
    expect = case["expect"]
    if "invalid" in expect:
        with pytest.raises(pydantic.ValidationError) as info:
            KINDS[kind_name].params_model.model_validate(case["params"])
        assert expect["invalid"] in str(info.value)
        return
    result = evaluate(kind_name, case)
    assert result.status == expect["status"], result.error or result.changes
    if "error_contains" in case:
        assert case["error_contains"] in result.error
    assert result.changes == expect.get("changes", [])
    assert result.writes == expect.get("writes", [])
    if "restarts" in expect:
        assert result.restarts == expect["restarts"]
    assert result.caveats == expect.get("caveats", [])


def test_every_kind_has_enough_cases() -> None:
    counts = {name: len(list((HERE / name).glob("*.json"))) for name in KINDS}
    missing = [name for name, n in counts.items() if not (HERE / name).is_dir()]
    assert not missing, f"kinds without a case folder tests/kinds/<kind>/: {missing}"
    few = {name: n for name, n in counts.items() if n < MIN_CASES_PER_KIND}
    assert not few, f"kinds with fewer than {MIN_CASES_PER_KIND} cases: {few}"


def test_case_folders_name_kinds() -> None:
    folders = {p.name for p in HERE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= set(KINDS), f"case folders that name no kind: {sorted(folders - set(KINDS))}"


@pytest.mark.parametrize("path", [pytest.param(p, id=f"{p.parent.name}/{p.stem}") for p in _case_files()])
def test_case_file_is_well_formed(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(case, dict)
    assert set(case) <= CASE_KEYS, f"unknown keys {sorted(set(case) - CASE_KEYS)}"
    assert case.get("description"), "every case says what it shows"
    assert "params" in case and "expect" in case
    expect = case["expect"]
    if "invalid" in expect:
        assert set(expect) == {"invalid"} and "values" not in case
        return
    assert set(expect) <= EXPECT_KEYS and expect["status"] in STATUSES
    assert isinstance(case.get("values"), list), "values: one entry per read request"
    if expect["status"] in {"not_applicable", "failed"}:
        assert case.get("error_contains"), "a not_applicable or failed case names a fragment of its sentence"
        assert not expect.get("changes") and not expect.get("writes")
