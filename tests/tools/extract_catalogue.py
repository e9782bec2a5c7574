"""Regenerate tests/data/powershell-cmdlets.json, the cmdlet catalogue subset the PowerShell tests use.

The full catalogue (../shared/powershell-cmdlets.json, about 7 MB) is not part of this repository.
This keeps its shape and every top-level key, but only the cmdlets of the modules our templates
and Exchange kinds use (see SELECTION below, and tests/data/README.md).

Usage, from the repository root:

    .venv/bin/python tests/tools/extract_catalogue.py ../shared            # a folder holding the file
    .venv/bin/python tests/tools/extract_catalogue.py ../shared/powershell-cmdlets.json
    .venv/bin/python tests/tools/extract_catalogue.py ../shared --check    # exit 1 if the subset is stale

The output is deterministic (cmdlets sorted by name, keys in the source's order), so running it
twice on the same source gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "tests" / "data" / "powershell-cmdlets.json"
SOURCE_NAME = "powershell-cmdlets.json"
TOP_LEVEL_KEYS = ("schema_version", "generated_from", "common_parameters", "common_parameter_aliases",
                  "risk_mitigation_parameters", "products", "cmdlets")
SIZE_LIMIT = 2_000_000

# Whole modules: the in-box Windows PowerShell modules templates may call, and the Windows
# Server modules of the script kinds (firewall and IPsec: NetSecurity; listeners: NetTCPIP;
# folder quotas: FileServerResourceManager; IIS: WebAdministration, IISAdministration).
WHOLE_MODULES = (
    "CimCmdlets",
    "FileServerResourceManager",
    "IISAdministration",
    "Microsoft.PowerShell.Core",
    "Microsoft.PowerShell.Management",
    "Microsoft.PowerShell.Security",
    "Microsoft.PowerShell.Utility",
    "NetSecurity",
    "NetTCPIP",
    "WebAdministration",
)
# ExchangePowerShell cmdlets of these nouns, every verb (Get-, Set-, New-, Enable- ...).
EXCHANGE_MODULE = "ExchangePowerShell"
EXCHANGE_NOUNS = (
    "ActiveSyncVirtualDirectory",
    "AdminAuditLogConfig",
    "AutodiscoverVirtualDirectory",
    "EcpVirtualDirectory",
    "ExchangeCertificate",
    "ExchangeServer",
    "FrontendTransportService",
    "ImapSettings",
    "Mailbox",
    "MailboxAuditBypassAssociation",
    "MailboxDatabase",
    "MailboxStatistics",
    "MapiVirtualDirectory",
    "OabVirtualDirectory",
    "OrganizationConfig",
    "OutlookAnywhere",
    "OwaVirtualDirectory",
    "PopSettings",
    "PowerShellVirtualDirectory",
    "ReceiveConnector",
    "SendConnector",
    "TransportConfig",
    "TransportService",
    "WebServicesVirtualDirectory",
)
SELECTION = (
    f"every cmdlet whose module (or one of its other_modules) is one of {', '.join(WHOLE_MODULES)}; "
    f"and every {EXCHANGE_MODULE} cmdlet whose noun is one of {', '.join(EXCHANGE_NOUNS)}"
)


def selected(name: str, entry: dict[str, Any]) -> bool:
    """Whether a cmdlet of the full catalogue belongs in the subset."""
    modules = {entry.get("module"), *entry.get("other_modules", ())}
    if modules & set(WHOLE_MODULES):
        return True
    noun = name.split("-", 1)[1] if "-" in name else ""
    return entry.get("module") == EXCHANGE_MODULE and noun in EXCHANGE_NOUNS


def extract(full: dict[str, Any]) -> dict[str, Any]:
    """The subset: every top-level key kept as is, ``cmdlets`` filtered and sorted by name."""
    missing = [key for key in TOP_LEVEL_KEYS if key not in full]
    if missing:
        raise SystemExit(f"the source catalogue lacks {missing}; has its shape changed?")
    subset = {key: full[key] for key in TOP_LEVEL_KEYS if key != "cmdlets"}
    subset["cmdlets"] = {name: full["cmdlets"][name] for name in sorted(full["cmdlets"], key=str.casefold)
                         if selected(name, full["cmdlets"][name])}
    absent_modules = sorted(set(WHOLE_MODULES) - {e["module"] for e in subset["cmdlets"].values()})
    absent_nouns = sorted(n for n in EXCHANGE_NOUNS
                          if not any(c.endswith("-" + n) for c in subset["cmdlets"]))
    if absent_modules or absent_nouns:
        raise SystemExit(f"the source has no cmdlets for modules {absent_modules} / nouns {absent_nouns}")
    return subset


def render(subset: dict[str, Any]) -> bytes:
    """Compact JSON with one cmdlet per line: small, and diffs stay readable."""
    head = {k: v for k, v in subset.items() if k != "cmdlets"}
    lines = ["{"]
    for key, value in head.items():
        lines.append(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False, separators=(',', ':'))},")
    lines.append('"cmdlets": {')
    items = list(subset["cmdlets"].items())
    for i, (name, entry) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        lines.append(f"{json.dumps(name)}: {json.dumps(entry, ensure_ascii=False, separators=(',', ':'))}{comma}")
    lines.append("}}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help=f"the shared folder, or the path of {SOURCE_NAME}")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare with the output file, write nothing")
    args = parser.parse_args(argv)
    source = args.source / SOURCE_NAME if args.source.is_dir() else args.source
    full = json.loads(source.read_text(encoding="utf-8"))
    data = render(extract(full))
    if len(data) > SIZE_LIMIT:
        raise SystemExit(f"the subset is {len(data):,} bytes, over the {SIZE_LIMIT:,} limit; narrow SELECTION")
    if args.check:
        same = args.output.is_file() and args.output.read_bytes() == data
        print(f"{args.output}: {'up to date' if same else 'STALE: run without --check to regenerate'}")
        return 0 if same else 1
    args.output.write_bytes(data)
    count = len(json.loads(data)["cmdlets"])
    print(f"wrote {args.output} ({count} cmdlets, {len(data):,} bytes) from {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
