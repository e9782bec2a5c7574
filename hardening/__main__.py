"""``python -m hardening``: the same as the ``hardening`` command."""

from .cli import main

raise SystemExit(main())
