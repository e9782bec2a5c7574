"""`hardening docs`: one generated page per kind, plus an index, from the kinds' declarations."""

from __future__ import annotations

from pathlib import Path

from hardening.cli import main
from hardening.docs import write_docs
from hardening.kinds import KINDS


def test_one_page_per_kind_and_an_index(tmp_path: Path) -> None:
    written = write_docs(tmp_path)
    assert {p.name for p in written} == {f"{name}.md" for name in KINDS} | {"index.md"}
    index = (tmp_path / "index.md").read_text(encoding="utf-8")
    for name, kind in KINDS.items():
        assert f"[`{name}`]({name}.md)" in index and kind.summary in index


def test_a_page_documents_parameters_platforms_and_shipped_controls(tmp_path: Path) -> None:
    write_docs(tmp_path)
    for name, kind in KINDS.items():
        page = (tmp_path / f"{name}.md").read_text(encoding="utf-8")
        assert page.startswith(f"# `{name}`\n")
        for field in kind.params_model.model_fields:
            assert f"| `{field}` |" in page, f"{name}: parameter {field} undocumented"
        for variant in kind.variants:
            assert variant.description in page
            assert all(product in page for product in variant.products)
    pop = (tmp_path / "pop_imap_login.md").read_text(encoding="utf-8")
    assert "| `pop3-secure-login` |" in pop
    assert "Set-PopSettings -Server 'MAIL01' -LoginType 'SecureLogin'" in pop
    ntfs = (tmp_path / "ntfs_acl.md").read_text(encoding="utf-8")
    assert "| `access[].principal` |" in ntfs  # nested models are documented too
    assert "EX16-MB-000570" in ntfs  # the STIG id of the shipped control


def test_the_cli_writes_the_pages(tmp_path: Path) -> None:
    assert main(["docs", "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "index.md").is_file()
