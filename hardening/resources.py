"""Where the shipped templates and playbooks are, installed or in a checkout.

A wheel carries them as ``hardening/_data/{templates,playbooks}`` (setup.cfg maps the top-level
folders there); a source checkout or an editable install finds them beside the package.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["data_dir"]


def data_dir(name: str) -> Path:
    """The folder of shipped ``templates`` or ``playbooks``."""
    package = Path(__file__).resolve().parent
    installed = package / "_data" / name
    if installed.is_dir():
        return installed
    return package.parent / name
