"""PowerShell checks of every rendered request: grammar, cmdlet catalogue, snapshots, hostile values.

``checker`` wraps tree-sitter-powershell and the catalogue; ``cases`` builds the requests of every
kind from samples; ``requests`` compares a rendered request with the data it came from.
"""
