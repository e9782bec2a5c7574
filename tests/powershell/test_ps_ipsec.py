"""The IPsec rule is never broader than desired, read from the PowerShell itself (the grammar's
view of ``ipsec_rule.ps1.j2``'s write block, as it crosses to a host).

- Every ``New-NetIPsecRule`` names every filter (protocol, ports, addresses, profile), both
  security levels, mode, Enabled and the phase 1 set; one of them also the quick mode set.
- No ``Set-NetIPsecRule`` can run after a ``New-NetIPsecRule``: each sits in another branch of an
  ``if`` than the creating call, so nothing narrows a rule after it exists (the way the rule used
  to be made: created with no filter, then narrowed call by call).

The check is shown to fail on that older form (``OLD_WRITE_BLOCK``), so it is not one that cannot.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tree_sitter import Node

from hardening.kinds import KINDS
from hardening.model import ScriptCall

from . import cases
from .checker import Catalogue, ParameterProblem, Script

CREATE = "New-NetIPsecRule"
CHANGE = "Set-NetIPsecRule"
# What a creating call must name so that the rule exists only as desired from its first moment.
WHOLE_RULE = ("Protocol", "LocalPort", "RemotePort", "LocalAddress", "RemoteAddress", "Profile", "InboundSecurity",
              "OutboundSecurity", "Mode", "Enabled", "KeyModule", "Phase1AuthSet")
BRANCHES = ("statement_block", "elseif_clause", "else_clause")

# The write block's rule part as it was before issue 10 (abridged from git history): the rule was
# created with no protocol, port or quick mode set, and later calls narrowed it.
OLD_CREATE = " ".join((
    "$null = New-NetIPsecRule -IPsecRuleName $name -DisplayName ([string]$new.display_name) -Mode 'Transport'",
    "-InboundSecurity ([string]$new.inbound_security) -OutboundSecurity ([string]$new.outbound_security)",
    "-KeyModule ([string]$new.key_module) -Profile ([string]$new.profile) -LocalAddress @($new.local_addresses)",
    "-RemoteAddress @($new.remote_addresses) -Phase1AuthSet ([string]$new.phase1_auth_set)",
    "-Enabled ([string]$new.enabled) -PolicyStore 'PersistentStore'"))
OLD_WRITE_BLOCK = f"""
$new = $Desired.create
if ($null -ne $new) {{
    {OLD_CREATE}
}}
foreach ($step in @($Desired.steps)) {{
    $property = [string]$step.property
    $value = $step.value
    if ($property -eq 'Protocol') {{
        Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -Protocol ([string]$value)
    }} elseif ($property -eq 'RemotePort') {{
        Set-NetIPsecRule -IPsecRuleName $name -PolicyStore 'PersistentStore' -RemotePort @($value)
    }} else {{
        throw "ipsec_rule: unknown property $property"
    }}
}}
"""


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _commands(script: Script, name: str) -> list[Node]:
    found = []
    for node in _walk(script.root):
        if node.type != "command":
            continue
        name_node = node.child_by_field_name("command_name")
        if name_node is not None and script.text_of(name_node).casefold() == name.casefold():
            found.append(node)
    return found


def _branch(node: Node, statement: Node) -> Node | None:
    """The branch of an ``if`` statement (its then block, one elseif, its else) holding ``node``."""
    child = node
    while child.parent is not None and child.parent != statement:
        child = child.parent
    if child.parent is None:
        return None
    if child.type == "elseif_clauses":
        child = next(c for c in child.children if c.start_byte <= node.start_byte < c.end_byte)
    return child if child.type in BRANCHES else None


def _exclusive(a: Node, b: Node) -> bool:
    """Whether no run of the script executes both: some ``if`` holds them in different branches."""
    statement = a.parent
    while statement is not None:
        if statement.type == "if_statement":
            branch_a, branch_b = _branch(a, statement), _branch(b, statement)
            if branch_a is not None and branch_b is not None and branch_a != branch_b:
                return True
        statement = statement.parent
    return False


def _parameters(script: Script, command: Node, catalogue: Catalogue, product: str) -> set[str]:
    elements = command.child_by_field_name("command_elements")
    tokens = [script.text_of(e).lstrip("-").rstrip(":") for e in (elements.children if elements else ())
              if e.type == "command_parameter"]
    out = set()
    for token in tokens:
        try:
            out.add(catalogue.resolve(CREATE, token, catalogue.labels(product)))
        except ParameterProblem:
            out.add(token)
    return out


def creation_problems(script: Script, catalogue: Catalogue, product: str = "Windows Server 2019") -> list[str]:
    """Why a write block could leave a rule broader than desired, even for a moment (empty: it cannot)."""
    creates = _commands(script, CREATE)
    if not creates:
        return [f"no {CREATE} in the write block"]
    problems = []
    named = [_parameters(script, node, catalogue, product) for node in creates]
    for node, parameters in zip(creates, named, strict=True):
        missing = [p for p in WHOLE_RULE if p not in parameters]
        if missing:
            problems.append(f"line {node.start_point[0] + 1}: {CREATE} without -{', -'.join(missing)}: the rule "
                            "exists broader than desired until later calls narrow it")
    if not any("QuickModeCryptoSet" in parameters for parameters in named):
        problems.append(f"no {CREATE} names -QuickModeCryptoSet: a rule's crypto set is bound after it exists")
    for change in _commands(script, CHANGE):
        for create in creates:
            if not _exclusive(create, change):
                problems.append(f"line {change.start_point[0] + 1}: {CHANGE} can run after the {CREATE} of line "
                                f"{create.start_point[0] + 1}: a rule is changed after it was created")
    return problems


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def _rendered_write(sample: str) -> Script:
    """The write bundle the kind renders for a sample on a host without the rule (plan mode)."""
    kind = KINDS["ipsec_rule"]
    (variant,) = kind.variants
    case = cases.Case(kind, variant, sample, cases.SAMPLES["ipsec_rule"][sample])
    calls = cases.plan_requests(kind, case.params, cases.plan_context(variant))["write-plan"]
    assert calls and all(isinstance(c, ScriptCall) for c in calls)
    return Script(cases.render(sample, calls))


@pytest.mark.parametrize("sample", sorted(cases.SAMPLES["ipsec_rule"]))
def test_the_rule_is_created_whole_and_never_narrowed_after(sample: str, catalogue: Catalogue) -> None:
    script = _rendered_write(sample)
    assert script.problems == [], script.problem_report()
    assert creation_problems(script, catalogue) == []


def test_the_check_fails_on_the_old_create_then_narrow_block(catalogue: Catalogue) -> None:
    script = Script(OLD_WRITE_BLOCK)
    assert script.problems == [], script.problem_report()
    problems = creation_problems(script, catalogue)
    assert any("without -Protocol, -LocalPort, -RemotePort" in p for p in problems), problems
    assert any("no New-NetIPsecRule names -QuickModeCryptoSet" in p for p in problems), problems
    assert sum("can run after the New-NetIPsecRule" in p for p in problems) == 2, problems


def test_the_check_sees_branches_not_text_order(catalogue: Catalogue) -> None:
    """A Set- in the else branch of the creating if is fine; the same Set- after the if is not."""
    whole = " ".join(f"-{p} 'x'" for p in (*WHOLE_RULE, "QuickModeCryptoSet"))
    fine = Script(f"if ($a) {{ New-NetIPsecRule {whole} }} else {{ Set-NetIPsecRule -Protocol 'TCP' }}")
    after = Script(f"if ($a) {{ New-NetIPsecRule {whole} }}\nSet-NetIPsecRule -Protocol 'TCP'")
    assert creation_problems(fine, catalogue) == []
    assert creation_problems(after, catalogue) == [
        "line 2: Set-NetIPsecRule can run after the New-NetIPsecRule of line 1: a rule is changed after it was created"]

