"""Every rendered request is valid PowerShell to tree-sitter-powershell (DESIGN §9).

Covered: what the engine sends on its own (the facts and service_restart scripts, the Exchange
facts cmdlet lines); every script kind's read and write blocks inside the bundle wrapper; every
cmdlet line of every Exchange kind — for the samples of every kind in ``hardening.kinds.KINDS``,
per variant, in the three phases of ``cases.PHASES``. Kinds are enumerated, not listed: a kind
with no sample fails here.
"""

from __future__ import annotations

import jinja2
import jinja2.nodes
import pytest

from hardening.kinds import KINDS
from hardening.lab.decode import decode_bundle
from hardening.model import CmdletCall, ScriptCall, Section
from hardening.render import bundle_script
from hardening.resources import data_dir

from . import cases
from .checker import Script
from .requests import bundle_structure_problems, cmdlet_text_problems

CASES = cases.cases()
SCRIPT_CASES = [c for c in CASES if c.kind.channel == "script"]
EXCHANGE_CASES = [c for c in CASES if c.kind.channel == "exchange"]


def ids(items: list[cases.Case]) -> list[str]:
    return [c.id for c in items]


def test_every_kind_has_samples() -> None:
    """A kind added to KINDS without samples in cases.SAMPLES would escape every PowerShell
    check; so would a sample for a kind that no longer exists."""
    assert cases.kinds_without_samples() == [], "add samples to tests/powershell/cases.py SAMPLES"
    assert sorted(cases.SAMPLES) == sorted(KINDS), "cases.SAMPLES names a kind that KINDS does not have"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_samples_are_valid_and_set_every_field(name: str) -> None:
    """Each sample passes its kind's params_model, and together they set every field of it
    (nested models and list items included), so each parameter reaches a rendered request."""
    kind = KINDS[name]
    covered = set()
    for raw in cases.SAMPLES.get(name, {}).values():
        kind.params_model.model_validate(raw)
        covered.update(cases.set_paths(raw))
    unset = [".".join(map(str, p)) for p in cases.field_paths(kind.params_model) if p not in covered]
    assert unset == [], f"no sample of {name} sets {unset}"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_variant_has_a_platform_to_plan_on(name: str) -> None:
    """Each variant of each kind is selected by one of the candidate platforms (else its
    requests could not be rendered here), and its products are catalogue labels."""
    for variant in KINDS[name].variants:
        assert cases.plan_context(variant).variant is variant
        if KINDS[name].channel == "directory":  # LDAP only: no cmdlet of any product is sent
            assert not variant.products, f"{name} variant {variant.name} names products it never uses"
        else:
            assert variant.products, f"{name} variant {variant.name} names no products"


@pytest.mark.parametrize("name", sorted(cases.framework_sections()))
def test_framework_requests_parse(name: str) -> None:
    """What the engine sends on its own parses: the facts read and the service restart inside
    the wrapper (no error node, one scope and try/catch per call), and the Exchange facts
    cmdlet lines (each exactly its CmdletCall)."""
    section = cases.framework_sections()[name]
    if section.is_script:
        script = Script(bundle_script([section]))
        assert script.problems == [], script.problem_report()
        calls = [c for c in section.calls if isinstance(c, ScriptCall)]
        assert bundle_structure_problems(script, calls) == []
    else:
        for call in section.calls:
            assert isinstance(call, CmdletCall)
            assert cmdlet_text_problems(call) == [], call


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_every_phase_has_requests(case: cases.Case) -> None:
    """Each sample reads something and, planned from nothing, writes something: a sample that
    renders nothing would make the parse and catalogue checks vacuous."""
    phases = cases.requests(case)
    assert phases["read"], f"{case.id}: no read requests"
    assert phases["write-plan"], f"{case.id}: no write requests in plan mode"


def test_every_kind_has_a_known_channel() -> None:
    """Each kind reaches a host as a script, as Exchange cmdlets, or as directory requests (whose
    text form, LDIF, is read back by tests/directory/test_directory_hostile.py); a new channel
    needs its own text-form check before it can be trusted."""
    assert {k.channel for k in KINDS.values()} <= {"script", "exchange", "directory"}


@pytest.mark.parametrize("case", SCRIPT_CASES, ids=ids(SCRIPT_CASES))
def test_script_kind_bundles_parse(case: cases.Case) -> None:
    """A script kind's read and write blocks, each inside the bundle wrapper, parse with no
    error node, keep each call in its own scope and try/catch, and carry the call's data in
    the one ``$Call`` literal (read back by PowerShell's quoting rule, then as JSON)."""
    for phase, calls in cases.requests(case).items():
        script_calls = [c for c in calls if isinstance(c, ScriptCall)]
        assert len(script_calls) == len(calls), f"{phase}: a script kind returned cmdlet calls"
        script = Script(bundle_script([Section(case.sample, tuple(script_calls))]))
        assert script.problems == [], f"{phase}:\n{script.problem_report()}"
        assert bundle_structure_problems(script, script_calls) == [], phase


@pytest.mark.parametrize("case", EXCHANGE_CASES, ids=ids(EXCHANGE_CASES))
def test_exchange_cmdlet_lines_parse(case: cases.Case) -> None:
    """Every cmdlet line of an Exchange kind parses with no error node and is exactly its
    CmdletCall: one invocation, the same parameters in order, each value read back whole."""
    for phase, calls in cases.requests(case).items():
        assert all(isinstance(c, CmdletCall) for c in calls), f"{phase}: an Exchange kind returned script calls"
        for call in calls:
            assert isinstance(call, CmdletCall)
            assert cmdlet_text_problems(call) == [], f"{phase}: {call}"


def test_every_template_block_is_rendered_here() -> None:
    """Every read/write block of every template under templates/ is rendered by some sample or
    engine section, so no block escapes the parse, catalogue and snapshot checks."""
    env = jinja2.Environment()
    blocks = set()
    for path in sorted(data_dir("templates").glob("*.ps1.j2")):
        if path.name == "bundle.ps1.j2":
            continue
        tree = env.parse(path.read_text(encoding="utf-8"))
        blocks |= {(path.name.removesuffix(".ps1.j2"), macro.name) for macro in tree.find_all(jinja2.nodes.Macro)}
    rendered = {(c.kind, c.op) for s in cases.framework_sections().values() for c in s.calls
                if isinstance(c, ScriptCall)}
    rendered |= {(c.kind, c.op) for case in SCRIPT_CASES for calls in cases.requests(case).values()
                 for c in calls if isinstance(c, ScriptCall)}
    assert sorted(blocks - rendered) == [], "template blocks no sample renders; add samples to cases.SAMPLES"
    assert sorted(rendered - blocks) == []


def test_one_bundle_of_many_controls_parses_and_decodes_in_order() -> None:
    """Many controls make one bundle: the facts read plus every script sample's read and write
    in a single script still parse, and the lab reads every call back, in order, unchanged."""
    sections = [cases.framework_sections()["facts/read"]]
    for case in CASES:
        if case.kind.channel == "script":
            for phase, calls in cases.requests(case).items():
                sections.append(Section(f"{case.sample}.{phase}", calls))
    script_text = bundle_script(sections)
    script = Script(script_text)
    assert script.problems == [], script.problem_report()
    flat = [(s.id, n, c) for s in sections for n, c in enumerate(s.calls) if isinstance(c, ScriptCall)]
    assert bundle_structure_problems(script, [c for _, _, c in flat]) == []
    decoded = decode_bundle(script_text)
    assert [(d.id, d.n, d.kind, d.op, d.data) for d in decoded] == [
        (sid, n, c.kind, c.op, c.data) for sid, n, c in flat]
