"""The checker itself: it must catch what it exists to catch, or every other test here is hollow.

Each test feeds a small script with a known defect (or a known-good form) and asserts the
checker's verdict, so a grammar or catalogue upgrade that blinds the checker fails here first.
"""

from __future__ import annotations

import pytest

from .checker import Catalogue, ParameterProblem, Script, read_verbatim

WS2019 = "Windows Server 2019"


@pytest.mark.parametrize(("source", "line", "col"), [
    ("Get-Item -LiteralPath 'C:\\x\n", 1, 23),                 # unbalanced '
    ("$a = 1\nif ($a) {\n  Get-Item -LiteralPath 'x'\n", 3, 28),  # unclosed { (MISSING } at the end)
    ("$a = 1\n}\n", 2, 1),                                      # stray }
    ("$x = \n", 1, 1),                                          # nothing assigned
    ("$h = @'\nbody\n  '@\n", 1, 5),                            # indented here-string end
    ("Get-Item -LiteralPath 'a\x00b'\n", 1, 25),                # raw NUL inside a literal
])
def test_syntax_errors_are_reported_with_line_and_column(source: str, line: int, col: int) -> None:
    """Broken PowerShell gives problems, one of them at the expected line:col."""
    script = Script(source)
    assert (line, col) in [(p.line, p.col) for p in script.problems], script.problem_report()


def test_valid_forms_the_templates_use_parse_cleanly() -> None:
    """The constructs the wrapper and templates rely on are accepted by the grammar."""
    source = (
        "$ErrorActionPreference = 'Stop'\n"
        "& {\n"
        "    $Call = ConvertFrom-Json -InputObject '{\"id\":\"a\",\"n\":0,\"data\":{\"p\":\"it''s\"}}'\n"
        "    try { $s = & { [pscustomobject]@{ a = @(1, 2) } } } catch { $e = $_.Exception.Message }\n"
        "    ConvertTo-Json -InputObject $s -Compress -Depth 16\n"
        "}\n"
        "Set-ReceiveConnector -Identity 'MAIL01\\Default' -AuthMechanism 'Tls','BasicAuth' -RequireTLS $true\n"
    )
    assert Script(source).problems == []


def test_typographic_quotes_end_literals_as_powershell_reads_them() -> None:
    """The grammar treats ’ as an ordinary character; PowerShell ends the string there.
    The checker re-reads single-quoted literals by PowerShell's rule and flags the mismatch."""
    (literal,) = Script("Get-Item -LiteralPath 'a\u2019b'\n").string_literals
    assert literal.value is None
    assert "elsewhere" in literal.form
    (doubled,) = Script("Get-Item -LiteralPath 'a\u2019\u2019b'\n").string_literals
    assert doubled.value == "a\u2019b"


@pytest.mark.parametrize(("text", "value"), [
    ("''", ""),
    ("'a''b'", "a'b"),
    ("'\u2018\u2018'", "\u2018"),
    ("'\u201b\u2019'", "\u2019"),         # any look-alike pair stands for its second character
    ("'$(x) `n \"'", "$(x) `n \""),       # nothing expands in a verbatim string
])
def test_read_verbatim_follows_powershell(text: str, value: str) -> None:
    assert read_verbatim(text) == (value, len(text))


def test_invocations_skip_the_scripts_own_functions_and_name_expressions() -> None:
    """Commands are listed with their named parameters; functions defined in the script and
    ``& { }`` blocks are not cmdlets and are left out (their bodies are still walked)."""
    script = Script(
        "function Get-Thing {\n    param($Name)\n    Get-Item -LiteralPath $Name\n}\n"
        "Get-Thing -Name 'x'\n"
        "& { Restart-Service -Name 'a' -Force }\n"
        "$v = [System.IO.Path]::GetFileName('x')\n"
    )
    assert [(i.name, i.parameters) for i in script.invocations] == [
        ("Get-Item", ("LiteralPath",)),
        ("Restart-Service", ("Name", "Force")),
    ]


def test_parameters_resolve_like_powershell(catalogue: Catalogue) -> None:
    """Exact, alias, common parameter, common alias and unique prefix resolve; ambiguous and
    unknown prefixes do not (the catalogue README's rules)."""
    labels = catalogue.labels(WS2019)
    assert catalogue.resolve("test-path", "literalpath", labels) == "LiteralPath"
    assert catalogue.resolve("Test-Path", "PSPath", labels) == "LiteralPath"          # alias
    assert catalogue.resolve("Test-Path", "Type", labels) == "PathType"                # alias
    assert catalogue.resolve("Test-Path", "ErrorAction", labels) == "ErrorAction"      # common
    assert catalogue.resolve("Test-Path", "ea", labels) == "ErrorAction"               # common alias
    assert catalogue.resolve("Test-Path", "LiteralP", labels) == "LiteralPath"         # prefix
    with pytest.raises(ParameterProblem, match="ambiguous"):
        catalogue.resolve("Get-Item", "F", labels)                                    # Filter, Force
    with pytest.raises(ParameterProblem, match="does not exist"):
        catalogue.resolve("Get-Item", "Recurse", labels)


def test_products_filter_parameters(catalogue: Catalogue) -> None:
    """7.x-only parameters fail for Windows Server (shell 5.1); 5.1-only ones fail for 7.4;
    ProgressAction is common only from 7.4 on."""
    assert catalogue.labels(WS2019) == {WS2019, "Windows PowerShell 5.1"}
    with pytest.raises(ParameterProblem):
        catalogue.resolve("ConvertFrom-Json", "AsHashtable", catalogue.labels(WS2019))
    assert catalogue.resolve("ConvertFrom-Json", "AsHashtable", {"PowerShell 7.4"}) == "AsHashtable"
    with pytest.raises(ParameterProblem):
        catalogue.resolve("Test-Path", "UseTransaction", {"PowerShell 7.4"})
    with pytest.raises(ParameterProblem):
        catalogue.resolve("Get-Service", "ProgressAction", catalogue.labels(WS2019))
    assert catalogue.resolve("Get-Service", "ProgressAction", {"PowerShell 7.4"}) == "ProgressAction"
    assert catalogue.available("Get-NetFirewallRule", catalogue.labels(WS2019))
    assert not catalogue.available("Get-NetFirewallRule", {"Windows PowerShell 5.1"})
    assert not catalogue.available("Set-ReceiveConnector", catalogue.labels(WS2019))
    assert catalogue.available("Set-ReceiveConnector", {"Exchange Server SE"})


def test_catalogue_problems_name_every_defect(catalogue: Catalogue) -> None:
    """One script, one defect per line: each is reported with its line and what is wrong."""
    script = Script(
        "Get-Service -Name 'a' -ProgressAction 'SilentlyContinue'\n"  # 7.4+ only
        "gci -LiteralPath 'C:\\'\n"                                    # alias
        "Test-Path -LiteralPath 'x' -PathType 'Folder'\n"              # not an accepted value
        "Select-Object 'Name'\n"                                       # positional argument
        "Get-ReceiveConnector -Server 'MAIL01'\n"                      # Exchange, not Windows
        "ConvertTo-Json -InputObject $x -EnumsAsStrings\n"             # 7.x only
        "auditpol.exe /get /category:*\n"                              # native: skipped
        "Restart-Service -Name 'a' -Force\n"                           # fine: -Force is a switch
    )
    problems = catalogue.problems(script, [WS2019])
    assert [p.split(" ", 1)[0] for p in problems] == ["1:1", "2:1", "3:1", "4:1", "5:1", "6:1"], problems
    assert "ProgressAction" in problems[0]
    assert "not in the catalogue" in problems[1]
    assert "'Folder'" in problems[2]
    assert "positional" in problems[3]
    assert "not available for Windows Server 2019" in problems[4]
    assert "EnumsAsStrings" in problems[5]
    # "sc" is PowerShell's alias of Set-Content, not the service tool: not skipped as native.
    assert "not in the catalogue" in catalogue.problems(Script("sc -Path 'x' -Value 'y'\n"), [WS2019])[0]


def test_arguments_bind_to_parameters_like_powershell(catalogue: Catalogue) -> None:
    """A switch takes no argument unless written ``-Switch:value``; anything else unbound is
    positional."""
    (call,) = Script("Restart-Service -Name 'a' -Force:$false\n").invocations
    assert [(a.parameter, a.text) for a in call.arguments(catalogue)] == [("Name", "'a'"), ("Force", "$false")]
    (call,) = Script("Get-ChildItem -LiteralPath 'x' -Recurse 'y'\n").invocations
    assert [(a.parameter, a.text) for a in call.arguments(catalogue)] == [("LiteralPath", "'x'"), (None, "'y'")]


def test_literal_spans_locate_text_inside_quotes() -> None:
    """``outside_literals`` finds text that escaped its string, ``literals_holding`` the one
    literal that holds it."""
    script = Script("Get-Item -LiteralPath 'Remove-Item'\nRemove-Item -LiteralPath 'x'\n")
    assert len(script.outside_literals("Remove-Item")) == 1
    (holder,) = script.literals_holding("Remove-Item")
    assert holder.value == "Remove-Item"


def test_parameter_names_with_digits_are_read_whole() -> None:
    """Grammar gap 5: tree-sitter splits ``-X509CertificateName`` at the digit. The checker masks
    the digits for the grammar only, so the parameter parses and is reported by its real name."""
    script = Script("Set-PopSettings -Server 'MAIL01' -X509CertificateName 'mail.contoso.com'\n")
    assert script.problems == []
    (call,) = script.invocations
    assert call.parameters == ("Server", "X509CertificateName")
    assert [lit.value for lit in script.string_literals] == ["MAIL01", "mail.contoso.com"]


@pytest.mark.parametrize("source", [
    "Set-PopSettings -X509CertificateName 'mail\n",   # a real error next to a masked parameter
    "$a = '{0}' -f1\n",                                # a masked token that is not a parameter
])
def test_digit_masking_hides_no_error(source: str) -> None:
    """Masking never turns broken PowerShell into clean: errors elsewhere still show, and a
    masked token that did not become a parameter is itself reported."""
    assert Script(source).problems != []


def test_masked_digits_do_not_change_literal_values() -> None:
    """Text that merely looks like a digit parameter inside a string keeps its digits."""
    (literal,) = Script("Get-Item -LiteralPath 'x -X509 y'\n").string_literals
    assert literal.value == "x -X509 y"
