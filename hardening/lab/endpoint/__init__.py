"""A loopback WinRM endpoint for the lab: real HTTP(S), WinRS and PSRP, for the real clients.

:func:`serve_lab` starts one listener per simulated host of a :class:`~hardening.lab.Lab`, each
on its own loopback address, so that pywinrm and pypsrp run unmodified against it: Basic and
NTLM/Negotiate authentication, WinRM message encryption over HTTP, HTTPS with a generated CA,
WinRS shells (the one ``powershell.exe … -EncodedCommand`` bootstrap hardening runs, script on stdin)
and PSRP runspace pools for ``Microsoft.PowerShell`` (a script per pipeline) and
``Microsoft.Exchange`` (NoLanguage: cmdlet invocations only).

What answers is the lab host (:meth:`LabHost.run_script`, :meth:`LabHost.invoke`): this is not
Windows and not a PowerShell interpreter. It understands the requests hardening sends and
answers anything else with an error. Test helpers: request counting, the raw bodies received,
whether each was encrypted, :meth:`EndpointHost.plaintext_seen`, and fault injection
(:meth:`EndpointHost.inject`: ``drop``, ``http500``, ``timeout``, ``auth``).

Never listens on anything but loopback; :meth:`LabEndpoint.close` stops every thread and socket
it started and removes its temporary files (certificates, NTLM user file).
"""

from .certs import lab_dns_name
from .faults import FAULTS, FaultKind
from .psrp import NO_LANGUAGE_MESSAGE
from .serve import PASSWORD, USERNAME, LabEndpoint, serve_lab
from .server import EndpointHost
from .winrs import POWERSHELL_STDIN

__all__ = ["FAULTS", "NO_LANGUAGE_MESSAGE", "PASSWORD", "POWERSHELL_STDIN", "USERNAME", "EndpointHost", "FaultKind",
           "LabEndpoint", "lab_dns_name", "serve_lab"]
