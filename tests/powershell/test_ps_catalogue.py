"""Every cmdlet and named parameter a request uses exists for every product its variant targets.

The oracle is Microsoft's documentation, as the cmdlet catalogue (tests/data/, a subset of
../shared/powershell-cmdlets.json). Products are checked one by one, so a parameter that only
a newer Exchange or PowerShell has fails for the older product the variant also claims.

Windows products and shells: the catalogue labels the in-box PowerShell cmdlets (Get-Acl,
Get-Item, Get-CimInstance ...) by shell ("Windows PowerShell 5.1") and Windows Server modules
(NetSecurity ...) by OS ("Windows Server 2019"). A script for Windows Server 2016-2025 runs in
the Windows PowerShell 5.1 those releases ship with, so for each Windows Server product a
cmdlet must be documented for that product or for its in-box shell (checker.INBOX_SHELL) —
and a 7.x-only cmdlet or parameter fails, as it would on the host.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from hardening.model import CmdletCall, Section, Switch
from hardening.render import bundle_script, cmdlet_text

from . import cases
from .checker import CATALOGUE_PATH, INBOX_SHELL, Catalogue, Script

ROOT = Path(__file__).resolve().parents[2]
SHARED_CATALOGUE = ROOT.parent / "shared" / "powershell-cmdlets.json"
# The catalogue speaks for PowerShell only: directory kinds (LDAP) are checked in tests/directory/.
CASES = [c for c in cases.cases() if c.kind.channel in {"script", "exchange"}]
SCRIPT_CASES = [c for c in CASES if c.kind.channel == "script"]
EXCHANGE_CASES = [c for c in CASES if c.kind.channel == "exchange"]
BOOLEAN_TYPES = {"Boolean", "System.Boolean", "System.Nullable`1[System.Boolean]"}


def ids(items: list[cases.Case]) -> list[str]:
    return [c.id for c in items]


def _extractor() -> Any:
    path = ROOT / "tests" / "tools" / "extract_catalogue.py"
    spec = importlib.util.spec_from_file_location("extract_catalogue", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the catalogue subset itself -------------------------------------------------------------


def test_catalogue_subset_keeps_the_shape_and_stays_small(catalogue: Catalogue) -> None:
    """Same top-level keys as the full catalogue, well under 2 MB, and it holds what the
    selection promises: the whole modules and the Exchange nouns."""
    extract = _extractor()
    assert list(catalogue.data) == list(extract.TOP_LEVEL_KEYS)
    assert catalogue.data["schema_version"] == 1
    assert CATALOGUE_PATH.stat().st_size < extract.SIZE_LIMIT
    modules = {e["module"] for e in catalogue.data["cmdlets"].values()}
    assert set(extract.WHOLE_MODULES) <= modules
    assert modules <= {*extract.WHOLE_MODULES, extract.EXCHANGE_MODULE}
    for noun in extract.EXCHANGE_NOUNS:
        assert catalogue.cmdlet(f"Get-{noun}") is not None, noun
    for noun in ("ReceiveConnector", "SendConnector", "PopSettings", "ImapSettings", "AdminAuditLogConfig",
                 "MailboxDatabase", "OwaVirtualDirectory", "EcpVirtualDirectory", "TransportService",
                 "ExchangeServer"):
        assert catalogue.cmdlet(f"Set-{noun}") is not None, noun
    assert catalogue.cmdlet("Enable-ExchangeCertificate") is not None


def test_catalogue_readme_names_its_source_commits(catalogue: Catalogue) -> None:
    """tests/data/README.md records every commit the subset was generated from."""
    readme = (CATALOGUE_PATH.parent / "README.md").read_text(encoding="utf-8")
    for source in catalogue.data["generated_from"]:
        assert source["commit"] in readme, source


@pytest.mark.skipif(not SHARED_CATALOGUE.is_file(), reason=f"{SHARED_CATALOGUE} is not here")
def test_catalogue_subset_is_what_the_tool_extracts() -> None:
    """Regenerating from ../shared gives the committed file byte for byte (nothing hand-edited,
    nothing stale)."""
    extract = _extractor()
    full = json.loads(SHARED_CATALOGUE.read_text(encoding="utf-8"))
    assert extract.render(extract.extract(full)) == CATALOGUE_PATH.read_bytes()


def test_every_windows_product_maps_to_a_catalogue_label(catalogue: Catalogue) -> None:
    """The Windows products variants name, and their in-box shells, are catalogue labels."""
    for product, shell in INBOX_SHELL.items():
        assert product in catalogue.products and shell in catalogue.products
    for case in CASES:
        assert set(case.products) <= set(catalogue.products), case.id


# --- the requests ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(cases.framework_sections()))
def test_framework_requests_exist_in_catalogue(catalogue: Catalogue, name: str) -> None:
    """What the engine sends on its own exists where it sends it: the facts and restart scripts
    on every Windows Server release it manages (2016-2025, Windows PowerShell 5.1), the Exchange
    facts cmdlets on Exchange 2016, 2019 and SE."""
    section = cases.framework_sections()[name]
    products = cases.framework_products(section)
    if section.is_script:
        script = Script(bundle_script([section]))
        assert script.invocations, "no cmdlets found: the check would be vacuous"
        assert catalogue.problems(script, products) == []
    else:
        for call in section.calls:
            assert isinstance(call, CmdletCall)
            assert _call_problems(catalogue, call, products) == [], call
            assert catalogue.problems(Script(cmdlet_text(call)), products) == [], call


@pytest.mark.parametrize("case", SCRIPT_CASES, ids=ids(SCRIPT_CASES))
def test_script_kind_cmdlets_exist_for_every_product(catalogue: Catalogue, case: cases.Case) -> None:
    """Every cmdlet and parameter of a script kind's bundles (wrapper included) exists for each
    product of the variant (or that product's in-box shell); no aliases, no positional arguments,
    and documented enum values only."""
    for phase, calls in cases.requests(case).items():
        script = Script(bundle_script([Section(case.sample, calls)]))
        assert script.invocations, f"{phase}: no cmdlets found: the check would be vacuous"
        assert catalogue.problems(script, case.products) == [], phase


def _call_problems(catalogue: Catalogue, call: CmdletCall, products: tuple[str, ...]) -> list[str]:
    problems = []
    for product in products:
        labels = catalogue.labels(product)
        if not catalogue.available(call.cmdlet, labels):
            problems.append(f"{call.cmdlet} is not available for {product}")
            continue
        for name, _ in call.parameters:
            resolved = catalogue.resolve(call.cmdlet, name, labels)
            if resolved != name:
                problems.append(f"{call.cmdlet} -{name} is written as {resolved}'s prefix or alias ({product})")
    entry = catalogue.cmdlet(call.cmdlet) or {"parameters": {}}
    for name, value in call.parameters:
        param = entry["parameters"].get(name, {})
        if isinstance(value, Switch) != bool(param.get("switch")):
            problems.append(f"{call.cmdlet} -{name}: switch mismatch (value {value!r}, catalogue {param})")
        if isinstance(value, bool) and param.get("type") not in BOOLEAN_TYPES:
            problems.append(f"{call.cmdlet} -{name}: a boolean for a {param.get('type')} parameter")
        given = [value] if isinstance(value, str) else list(value) if isinstance(value, tuple) else []
        if "values" in param:
            problems += [f"{call.cmdlet} -{name} {v!r}: not one of {param['values']}"
                         for v in given if v.casefold() not in {x.casefold() for x in param["values"]}]
        elif "doc_values" in param:
            for v in given:
                if v.casefold() not in {x.casefold() for x in param["doc_values"]}:
                    warnings.warn(f"{call.cmdlet} -{name} {v!r} is not among the documented values "
                                  f"{param['doc_values']} (heuristic; not a failure)", stacklevel=2)
    return problems


@pytest.mark.parametrize("case", EXCHANGE_CASES, ids=ids(EXCHANGE_CASES))
def test_exchange_calls_exist_for_every_product(catalogue: Catalogue, case: cases.Case) -> None:
    """Every Exchange call names a cmdlet and full parameter names that exist for each product
    of the variant, passes booleans only to Boolean parameters and switches only to switches,
    and names its object explicitly (-Identity, -Server or -Database, DESIGN §5) unless the kind
    declares the cmdlet organisation-wide (one object per organisation, nothing to name). Its text
    form passes the same catalogue check as a script would."""
    org_wide = {c.casefold() for c in case.kind.org_wide_cmdlets}
    for phase, calls in cases.requests(case).items():
        for call in calls:
            assert isinstance(call, CmdletCall)
            named = {n.casefold() for n, _ in call.parameters} & {"identity", "server", "database"}
            assert named or call.cmdlet.casefold() in org_wide, f"{phase}: {call} names no object"
            assert _call_problems(catalogue, call, case.products) == [], f"{phase}: {call}"
            assert catalogue.problems(Script(cmdlet_text(call)), case.products) == [], f"{phase}: {call}"




@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in EXCHANGE_CASES])
def test_exchange_calls_pass_no_empty_arrays(case: cases.Case) -> None:
    """No Exchange call passes an empty array: PowerShell cannot turn @() into a flags enum or a
    value, so such a write fails on the server (and in a plan it misleads the reviewer)."""
    for phase, calls in cases.requests(case).items():
        for call in calls:
            assert isinstance(call, CmdletCall)
            empty = [n for n, v in call.parameters if isinstance(v, tuple) and not v]
            assert empty == [], f"{phase}: {cmdlet_text(call)}"
