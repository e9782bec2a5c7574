"""The lab: simulated Windows/Exchange hosts for tests, demos and trying playbooks safely.

It models state as plain data and answers the requests hardening sends. It is not Windows and
not a PowerShell interpreter; see README, "The lab", for exactly what it simulates.
"""

from .host import LabError, LabHost
from .scenario import BUILTIN_SCENARIO, DEMO_INVENTORY, Lab, load_lab

__all__ = ["BUILTIN_SCENARIO", "DEMO_INVENTORY", "Lab", "LabError", "LabHost", "load_lab"]
