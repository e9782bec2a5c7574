"""hardening: harden Windows mail servers with declarative YAML playbooks.

The CLI, scheduled runs and Python callers all use these functions::

    from hardening import load_playbook, load_inventory, check, apply
    run = check(load_playbook("baseline.yml"), load_inventory("inventory.yml"))
    print(run.summary, run.exit_code)

The library configures no logging handler. A caller that configures logging itself attaches the
filter the CLI uses, which keeps passwords, authentication messages and host payloads out of the
clients' debug logs: ``install_log_redaction()`` after ``logging.basicConfig(...)``.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import HardeningError, InputError, InventoryError, PlaybookError, SecretError, TargetError
from .inventory import Inventory, load_inventory
from .lab import Lab, load_lab
from .logredact import LogRedaction, install_log_redaction
from .model import Mode, Outcome, Run, Status
from .playbook import Playbook, load_playbook
from .run import Options, execute
from .version import __version__

__all__ = [
    "HardeningError",
    "InputError",
    "Inventory",
    "InventoryError",
    "Lab",
    "LogRedaction",
    "Options",
    "Outcome",
    "Playbook",
    "PlaybookError",
    "Run",
    "SecretError",
    "Status",
    "TargetError",
    "__version__",
    "apply",
    "check",
    "install_log_redaction",
    "load_inventory",
    "load_lab",
    "load_playbook",
    "plan",
]


def _options(limit: Iterable[str], tags: Iterable[str], skip_tags: Iterable[str], forks: int,
             timeout: float) -> Options:
    return Options(tuple(limit), tuple(tags), tuple(skip_tags), forks, timeout)


def plan(playbook: Playbook, inventory: Inventory, *, limit: Iterable[str] = (), tags: Iterable[str] = (),
         skip_tags: Iterable[str] = ()) -> Run:
    """What would be read and written on each host, as text; sends nothing (0 round trips)."""
    return execute(Mode.PLAN, playbook, inventory, _options(limit, tags, skip_tags, 1, 0))


def check(playbook: Playbook, inventory: Inventory, *, limit: Iterable[str] = (), tags: Iterable[str] = (),
          skip_tags: Iterable[str] = (), forks: int = 16, timeout: float = 900.0, lab: Lab | None = None,
          options: Options | None = None) -> Run:
    """Audit: read every control on every host and compare; changes nothing.

    ``options`` (an :class:`Options`) replaces the selection and tuning keywords when given.
    """
    return execute(Mode.CHECK, playbook, inventory, options or _options(limit, tags, skip_tags, forks, timeout), lab)


def apply(playbook: Playbook, inventory: Inventory, *, limit: Iterable[str] = (), tags: Iterable[str] = (),
          skip_tags: Iterable[str] = (), forks: int = 16, timeout: float = 900.0, lab: Lab | None = None,
          options: Options | None = None) -> Run:
    """Remediate: read, write what differs (enforced controls), re-read to verify.

    ``options`` (an :class:`Options`) replaces the selection and tuning keywords when given.
    """
    return execute(Mode.APPLY, playbook, inventory, options or _options(limit, tags, skip_tags, forks, timeout), lab)
