"""Fixtures of the PowerShell tests: the cmdlet catalogue subset, loaded once."""

from __future__ import annotations

import pytest

from .checker import Catalogue


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return Catalogue.load()
