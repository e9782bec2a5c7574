"""Lab files and folders: a folder's files merge host by host; a key set twice is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardening.errors import InputError
from hardening.lab import BUILTIN_SCENARIO, load_lab
from hardening.lab.scenario import merged_lab_text


def test_a_folder_merges_its_files_by_host(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("description: two files\nhosts:\n  H1:\n    services: {POP3SVC: Running}\n",
                                    encoding="utf-8")
    (tmp_path / "b.yml").write_text("hosts:\n  H1:\n    pop3: {LoginType: SecureLogin}\n  H2: {}\n",
                                    encoding="utf-8")
    lab = load_lab(tmp_path)
    assert lab.description == "two files"
    assert sorted(lab.hosts) == ["H1", "H2"]
    h1 = lab.hosts["H1"].state
    assert h1["services"] == {"POP3SVC": {"status": "Running", "restarts": 0}}
    assert h1["pop3"] == {"LoginType": "SecureLogin"}


def test_a_key_set_in_two_files_names_both_places(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("hosts:\n  H1:\n    pop3: {LoginType: SecureLogin}\n", encoding="utf-8")
    (tmp_path / "b.yml").write_text("hosts:\n  H1:\n    pop3: {LoginType: PlainTextLogin}\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_lab(tmp_path)
    assert str(info.value) == (f"{tmp_path / 'b.yml'}:3:5: hosts.H1.pop3: pop3 of H1 is set twice "
                               f"(also at {tmp_path / 'a.yml'}:3:5)")


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"holds no \.yml files"):
        load_lab(tmp_path)


def test_the_builtin_folder_and_its_single_file_form_hold_the_same_hosts(tmp_path: Path) -> None:
    single = tmp_path / "lab.yml"
    single.write_text(merged_lab_text(BUILTIN_SCENARIO), encoding="utf-8")
    folder, file = load_lab(), load_lab(single)
    assert {n: h.state for n, h in folder.hosts.items()} == {n: h.state for n, h in file.hosts.items()}
