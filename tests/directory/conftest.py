"""The directory tests' fixtures: one real Samba AD DC per session on loopback (see samba.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .samba import SambaDC, running_dc


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDC]:
    """A running lab DC with the Exchange-like schema and org; skipped if Samba is missing (fails if CI=true).

    Shared by every test of the session: changes to the org outlive the test that made them.
    """
    with running_dc(tmp_path_factory.mktemp("samba-dc")) as dc:
        yield dc


@pytest.fixture
def ad_scratch(samba_dc: SambaDC, request: pytest.FixtureRequest) -> str:
    """A fresh, uniquely named container under the org, with `CN=Child` and `CN=Grandchild,CN=Child` below it.

    Each test gets its own, so SACL tests don't step on each other; `scratch_tree(dn)` lists all three DNs.
    """
    return samba_dc.make_scratch(request.node.name)
