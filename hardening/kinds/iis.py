"""IIS kinds for Exchange's web front end (guide: "Require SSL for Outlook Web Access").

``iis_ssl``: Require SSL (``sslFlags`` of ``system.webServer/security/access``) on the Exchange
virtual directories of the Default Web Site. ``iis_redirect``: the http→https redirect of the
site root (``system.webServer/httpRedirect``), with what Microsoft's procedure does around it so
that nothing inherits what it must not.

Both are script kinds (templates ``iis_ssl.ps1.j2`` and ``iis_redirect.ps1.j2``). They use the
WebAdministration module (``Get-/Set-WebConfigurationProperty -PSPath 'MACHINE/WEBROOT/APPHOST'
-Location 'Default Web Site/owa'``), which the cmdlet catalogue documents for Windows Server 2012
to 2025 — one module for the whole modern range. They read and write applicationHost.config's
``<location>`` settings, where Exchange setup keeps them and where ``access`` must live (the
section is locked to applicationHost.config by default [I]).

Inheritance is the pitfall of both: in IIS, a setting made on the site root is inherited by every
virtual directory that does not set it itself. So each kind reads, besides the effective value,
whether a location sets the section itself (``IsLocallyStored`` of the section at that location
[I]), and reports an inherited value as ``...Inherited: True``.

Designed for a later IIS 6 variant (Exchange 2003's OWA, procedures.md §8.1) without changing the
parameters: the flags map one to one to the metabase's ``AccessSSLFlags`` bits (Ssl 8,
SslNegotiateCert 32, SslRequireCert 64, Ssl128 256 [V]); the metabase inherits the same way;
``HttpRedirect``'s EXACT_DESTINATION, CHILD_ONLY and PERMANENT flags map to the redirect
parameters; groups are expanded per variant (on 2003, ``owa`` would be Exchange, Public, ExchWeb).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..compare import BOOL, FLAGS, TEXT, Comparer, State, split_list
from ..facts import Facts
from ..model import Call, Change, ScriptCall
from .base import (
    Context,
    ControlFailed,
    Kind,
    KindParams,
    NotApplicable,
    RestartPolicy,
    Variant,
    canonical_names,
    host_objects,
)
from .platforms import WINDOWS_MODERN_PRODUCTS, is_modern_exchange, is_modern_windows

__all__ = [
    "EXCHANGE_VIRTUAL_DIRECTORIES",
    "FAMILY_KINDS",
    "GROUPS",
    "MODERN",
    "SSL_FLAG_BITS",
    "IisRedirect",
    "IisSsl",
    "parse_ssl_flags",
    "ssl_flags_text",
]


def _modern(facts: Facts) -> bool:
    return is_modern_windows(facts) and is_modern_exchange(facts)


MODERN = Variant(
    "iis-modern",
    "IIS 10 on Windows Server 2016-2025 with Exchange 2016/2019/SE (WebAdministration module)",
    WINDOWS_MODERN_PRODUCTS,
    _modern,
)

# IIS's sslFlags, in the order IIS writes them, and their bits (the same as IIS 6's AccessSSLFlags).
SSL_FLAG_BITS: dict[str, int] = {"Ssl": 8, "SslNegotiateCert": 32, "SslRequireCert": 64, "Ssl128": 256}
CLIENT_CERTIFICATE_FLAGS = {"ignore": (), "accept": ("SslNegotiateCert",),
                            "require": ("SslNegotiateCert", "SslRequireCert")}

# The virtual directories Exchange 2016/2019/SE creates in the Default Web Site [V] (EXD
# http-to-https-redirection.md, "Default Require SSL and HTTP Redirect settings").
EXCHANGE_VIRTUAL_DIRECTORIES = ("API", "aspnet_client", "Autodiscover", "ecp", "EWS", "mapi",
                                "Microsoft-Server-ActiveSync", "OAB", "owa", "PowerShell", "Rpc")
# Named selections, per variant. all_client: the client protocols whose Require SSL is on by
# default; not Rpc (Outlook Anywhere: see IisSsl) and never PowerShell.
GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    MODERN.name: {
        "owa": ("owa", "ecp"),
        "all_client": ("owa", "ecp", "EWS", "Microsoft-Server-ActiveSync", "OAB", "mapi", "Autodiscover"),
    },
}
GroupName = Literal["owa", "all_client"]
BACK_END_SITE = "Exchange Back End"
POWERSHELL_VDIR = "PowerShell"
REDIRECT_STATUS = ("Permanent", "Found", "Temporary", "PermRedirect")


def parse_ssl_flags(value: Any) -> list[str]:
    """sslFlags as read ("Ssl,Ssl128", "Ssl, Ssl128", "None", a number, a list) → flag names in
    IIS's order; names IIS does not know are kept (last) so that they show in a difference."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        bits = int(value)
        return [name for name, bit in SSL_FLAG_BITS.items() if bits & bit]
    names = [n for n in split_list(value) if n.casefold() != "none"]
    by_fold = {n.casefold(): n for n in SSL_FLAG_BITS}
    known = {by_fold[n.casefold()] for n in names if n.casefold() in by_fold}
    unknown = sorted({n for n in names if n.casefold() not in by_fold})
    return [n for n in SSL_FLAG_BITS if n in known] + unknown


def ssl_flags_text(flags: Sequence[str]) -> str:
    """The value Set-WebConfigurationProperty takes: "Ssl,Ssl128", or "None" for no flag."""
    return ",".join(parse_ssl_flags(list(flags))) or "None"


def _site_name(value: str) -> str:
    if value.strip().casefold() == BACK_END_SITE.casefold():
        raise ValueError(f"the {BACK_END_SITE} site (port 444) belongs to Exchange: its virtual directories "
                         "are not to be configured by the user (Microsoft, 'Default settings for Exchange "
                         "virtual directories'); harden the Default Web Site, which clients reach")
    return value


def _vdir_names(value: Any) -> Any:
    """Exchange's virtual directory names as IIS spells them, whatever case the playbook used (IIS
    paths ignore case); anything else is left exactly as given."""
    if isinstance(value, str):
        value = [value]
    return canonical_names(value, EXCHANGE_VIRTUAL_DIRECTORIES)


def _is_powershell(name: str) -> bool:
    head = name.strip().strip("/").split("/", 1)[0]
    return head.casefold() == POWERSHELL_VDIR.casefold()


def _roles_check(ctx: Context) -> None:
    roles = {r.casefold() for r in ctx.facts.exchange_roles}
    if roles and "edgetransport" in roles and "mailbox" not in roles:
        raise NotApplicable(f"{ctx.host} is an Edge Transport server: it has no client virtual directories")




def _entries(value: Any, names: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    """The host's per-directory answers by name (case-insensitive)."""
    found = {str(e.get("name", "")).casefold(): e for e in host_objects(value)}
    return {name: found.get(name.casefold(), {}) for name in names}


# --- iis_ssl --------------------------------------------------------------------------------


class IisSslParams(KindParams):
    """Parameters of ``iis_ssl``."""

    site: str = Field("Default Web Site", description="The IIS site. The Exchange Back End site is refused.")
    virtual_directories: list[str] = Field(
        default_factory=list,
        description="Virtual directories by name, e.g. [owa, ecp, EWS, Microsoft-Server-ActiveSync, OAB, mapi, "
        "Autodiscover, Rpc] (Exchange's names are matched case-insensitively). PowerShell is refused when "
        "require_ssl is true.",
    )
    group: GroupName | None = Field(
        None, description="A named selection, added to virtual_directories: owa = owa + ecp; all_client = owa, "
        "ecp, EWS, Microsoft-Server-ActiveSync, OAB, mapi, Autodiscover (not Rpc, never PowerShell).",
    )
    require_ssl: bool = Field(True, description="The Ssl flag (IIS Manager: Require SSL). false also clears Ssl128.")
    require_128bit: bool | None = Field(
        None, description="The Ssl128 flag (Require 128-bit SSL; Exchange sets it by default). Unset: left as read.",
    )
    client_certificates: Literal["ignore", "accept", "require"] | None = Field(
        None, description="IIS Manager's client certificate choice: ignore (neither flag), accept "
        "(SslNegotiateCert), require (SslNegotiateCert and SslRequireCert). Unset: left as read.",
    )
    explicit: bool = Field(
        True, description="The value must be set on the virtual directory itself, not inherited from the site "
        "root, so a change at the root (the http→https redirect needs the root without Require SSL) cannot take "
        "SSL away from it.",
    )

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        return _site_name(value)

    @field_validator("virtual_directories", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return _vdir_names(value)

    @field_validator("virtual_directories")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if any(name == "" for name in value):
            raise ValueError("a virtual directory name cannot be empty (the site root is not selected here)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IisSslParams:
        if not self.virtual_directories and self.group is None:
            raise ValueError("name virtual_directories or a group")
        if self.require_ssl and any(_is_powershell(n) for n in self.virtual_directories):
            raise ValueError("the PowerShell virtual directory must not require SSL: Exchange's own remote "
                             "PowerShell (the Exchange Management Shell, and Exchange servers among themselves) "
                             "connects to http://server/PowerShell on port 80 with Kerberos, so requiring SSL there "
                             "breaks Exchange management; require_ssl: false on it restores the default")
        if self.require_128bit and not self.require_ssl:
            raise ValueError("require_128bit needs require_ssl: 128-bit SSL is a condition on SSL")
        return self


class IisSsl(Kind[IisSslParams]):
    """Require SSL on IIS virtual directories: the ``sslFlags`` attribute of
    ``system.webServer/security/access`` (Ssl, Ssl128, and the client-certificate flags
    SslNegotiateCert/SslRequireCert only when ``client_certificates`` is set), on virtual
    directories of the Default Web Site chosen by name or group.

    Reads, per virtual directory, that it exists (``Test-Path IIS:\\Sites\\…``), the effective
    ``sslFlags`` (``Get-WebConfigurationProperty -PSPath 'MACHINE/WEBROOT/APPHOST' -Location
    'Default Web Site/owa'``) and whether the location sets the section itself
    (``Get-WebConfiguration``'s ``IsLocallyStored`` [I]). Writes ``Set-WebConfigurationProperty``
    at the same location (applicationHost.config), only for directories that differ. Flags compare
    as a set; flags the control does not manage are kept as read. A missing site or virtual
    directory fails the control; nothing is created.

    No restart and no recycle: IIS applies applicationHost.config changes by itself [I]
    (procedures.md §8.2). The MSExchangeOWAAppPool recycle of §10.4 follows
    Set-OwaVirtualDirectory (Exchange's settings in AD), which this kind does not use.

    Pitfalls: the **PowerShell** virtual directory is refused with require_ssl true — Exchange's
    remote PowerShell uses http://server/PowerShell (port 80, Kerberos) and requiring SSL there
    breaks Exchange management. The **Exchange Back End** site (port 444) is refused. **Rpc**
    (Outlook Anywhere) does not require SSL by default because Outlook Anywhere's SSLOffloading is
    on by default [I]; name it only after ``Set-OutlookAnywhere -SSLOffloading $false`` (which sets
    it too), else Exchange may set it back. **owa/Calendar** (published calendars) does not require
    SSL by default and is not selected by the groups. With an SSL-offloading load balancer in front,
    do not require SSL on the server. Cumulative updates may reset IIS settings [I]: check after
    each one. Clients asking http:// for a directory that requires SSL get 403.4; the redirect of
    the site root is ``iis_redirect``.
    """

    name = "iis_ssl"
    summary = "Require SSL (IIS sslFlags) on Exchange's virtual directories of the Default Web Site"
    params_model = IisSslParams
    channel = "script"
    template = "iis_ssl.ps1.j2"
    variants = (MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {"sslFlags": FLAGS, "sslFlagsInherited": BOOL}

    def names(self, params: IisSslParams, ctx: Context) -> tuple[str, ...]:
        """The virtual directories this control acts on, without duplicates, in a stable order."""
        chosen = list(params.virtual_directories)
        if params.group is not None:
            chosen += GROUPS[ctx.variant.name][params.group]
        out: dict[str, str] = {}
        for name in chosen:
            out.setdefault(name.casefold(), name)
        return tuple(out.values())

    def _location(self, params: IisSslParams, name: str) -> str:
        return f"{params.site}/{name}"

    def read(self, params: IisSslParams, ctx: Context) -> tuple[Call, ...]:
        _roles_check(ctx)
        return (ScriptCall(self.name, "read", {"site": params.site,
                                               "virtual_directories": list(self.names(params, ctx))}),)

    def observe(self, params: IisSslParams, ctx: Context, values: Sequence[Any]) -> State:
        _roles_check(ctx)
        value = values[0] if values and isinstance(values[0], Mapping) else {}
        if not value.get("site_exists"):
            raise ControlFailed(f"site {params.site!r} does not exist on {ctx.host}")
        names = self.names(params, ctx)
        entries = _entries(value.get("virtual_directories"), names)
        missing = [n for n in names if not entries[n].get("exists")]
        if missing:
            raise ControlFailed(f"virtual director{'ies' if len(missing) > 1 else 'y'} "
                                f"{', '.join(self._location(params, n) for n in missing)} "
                                f"{'do' if len(missing) > 1 else 'does'} not exist on {ctx.host}")
        return {self._location(params, n): {"sslFlags": parse_ssl_flags(entries[n].get("sslFlags")),
                                             "sslFlagsInherited": not bool(entries[n].get("explicit"))}
                for n in names}

    def _flags(self, params: IisSslParams, current: Sequence[str]) -> list[str]:
        managed: set[str] = {"Ssl"}
        wanted: set[str] = {"Ssl"} if params.require_ssl else set()
        if not params.require_ssl:
            managed.add("Ssl128")
        elif params.require_128bit is not None:
            managed.add("Ssl128")
            wanted |= {"Ssl128"} if params.require_128bit else set()
        if params.client_certificates is not None:
            managed |= {"SslNegotiateCert", "SslRequireCert"}
            wanted |= set(CLIENT_CERTIFICATE_FLAGS[params.client_certificates])
        kept = [f for f in current if f not in managed]
        return parse_ssl_flags([*kept, *wanted])

    def desire(self, params: IisSslParams, ctx: Context, observed: State | None) -> State:
        _roles_check(ctx)
        desired: dict[str, dict[str, Any]] = {}
        for name in self.names(params, ctx):
            location = self._location(params, name)
            seen = (observed or {}).get(location) or {}
            want: dict[str, Any] = {"sslFlags": self._flags(params, seen.get("sslFlags") or [])}
            if params.explicit:
                want["sslFlagsInherited"] = False
            desired[location] = want
        return desired

    def write(self, params: IisSslParams, ctx: Context, observed: State | None, desired: State) -> tuple[Call, ...]:
        changes = []
        for name in self.names(params, ctx):
            location = self._location(params, name)
            want = desired[location] or {}
            seen = (observed or {}).get(location) or {}
            differs = observed is None or any(not self.comparers[p].equal(v, seen.get(p)) for p, v in want.items())
            if differs:
                # Always the whole value, at the directory's own location: that also ends inheritance.
                changes.append({"name": name, "sslFlags": ssl_flags_text(want["sslFlags"])})
        return (ScriptCall(self.name, "write", {"site": params.site, "set": changes}),) if changes else ()

    def plan_notes(self, params: IisSslParams) -> tuple[str, ...]:
        notes = []
        if params.client_certificates is None:
            notes.append("client-certificate flags (SslNegotiateCert, SslRequireCert) are kept as read")
        if params.require_ssl and params.require_128bit is None:
            notes.append("Ssl128 is kept as read")
        if any(n.casefold() == "rpc" for n in params.virtual_directories) and params.require_ssl:
            notes.append("Rpc: Outlook Anywhere must have SSLOffloading $false, else Exchange expects no SSL there")
        return tuple(notes)


# --- iis_redirect ---------------------------------------------------------------------------

# In the order they are written: enabled last, so the root never redirects to a half-set destination.
REDIRECT_ATTRIBUTES = ("destination", "exactDestination", "childOnly", "httpResponseStatus", "enabled")


class IisRedirectParams(KindParams):
    """Parameters of ``iis_redirect``."""

    site: str = Field("Default Web Site", description="The IIS site whose root redirects. The Exchange Back End "
                      "site is refused.")
    enabled: bool = Field(True, description="true: redirect the site root; false: no redirect at the root.")
    destination: str | None = Field(
        None, description="Where the root redirects, an https:// URL such as https://mail.contoso.com/owa "
        "(required when enabled). http:// and relative destinations are refused: they would not leave http.",
    )
    exact_destination: bool = Field(False, description="exactDestination: redirect to the destination exactly, "
                                    "without appending the requested path.")
    child_only: bool = Field(True, description="childOnly: only requests for the root itself are redirected "
                             "(Microsoft's procedure: Only redirect requests to content in this directory).")
    status: Literal["Permanent", "Found", "Temporary", "PermRedirect"] = Field(
        "Found", description="httpResponseStatus: Permanent 301, Found 302 (Microsoft's procedure), Temporary 307, "
        "PermRedirect 308.",
    )
    virtual_directories: list[str] = Field(
        default_factory=lambda: list(EXCHANGE_VIRTUAL_DIRECTORIES),
        description="Virtual directories that must not inherit the redirect: it is disabled on each of them "
        "explicitly (default: every virtual directory Exchange creates). PowerShell is always included. Those "
        "missing on a host are skipped.",
    )
    restart: Literal["none", "allowed", "deferred"] = Field(
        "none", description="IIS applies the change without a restart [I]; Microsoft's procedure ends with an IIS "
        "restart anyway. allowed: restart W3SVC once after a change (every web client of the server reconnects); "
        "deferred: report it as pending; none: no restart.",
    )

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        return _site_name(value)

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        return canonical_names(value, REDIRECT_STATUS)

    @field_validator("virtual_directories", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return _vdir_names(value)

    @field_validator("virtual_directories")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if any(name == "" for name in value):
            raise ValueError("a virtual directory name cannot be empty (the site root is what redirects)")
        return value

    @field_validator("destination")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return value
        text = value.strip().casefold()
        if text.startswith("http://"):
            raise ValueError("an http:// destination redirects http to http; give the https:// URL")
        if text.startswith("/"):
            raise ValueError("a relative destination keeps the scheme the client used (http); give the https:// URL")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IisRedirectParams:
        if self.enabled and self.destination is None:
            raise ValueError("enabled: true needs destination, the https:// URL to redirect to")
        return self


class IisRedirect(Kind[IisRedirectParams]):
    """The http→https redirect of an IIS site's root (``system.webServer/httpRedirect``: enabled,
    destination, exactDestination, childOnly, httpResponseStatus), the way Microsoft's
    procedure for Outlook on the web does it (EXD http-to-https-redirection.md [V]): the root
    stops requiring SSL (an http request meets 403.4 before any redirect), the root redirects to
    the https:// destination, and every virtual directory has the redirect disabled on itself.

    Why the last step: IIS's httpRedirect is inherited by every virtual directory that does not
    set it itself, so a redirect on the root alone would also redirect /owa, /EWS … and
    /PowerShell (which breaks Exchange management). The kind reads each listed virtual directory's
    ``enabled`` and whether it sets the section itself (``IsLocallyStored`` [I]); a directory that
    merely inherits ``enabled: False`` is drifted (``httpRedirectInherited``), because enabling
    the root would change it. Likewise, removing Require SSL from the root would take it away from
    every directory that inherits it: where the root's sslFlags change, directories that inherit
    them are first pinned — their sslFlags written on themselves with the value they have at that
    moment, read on the host just before (so a Require SSL written earlier in the same run by
    ``iis_ssl`` is kept, whatever the order of the controls). Require SSL on the directories
    themselves is ``iis_ssl``'s job.

    Reads with ``Get-WebConfigurationProperty``/``Get-WebConfiguration`` at ``-PSPath
    'MACHINE/WEBROOT/APPHOST' -Location``, writes ``Set-WebConfigurationProperty`` there
    (applicationHost.config), children before the root, only what differs. [I] A ``web.config``
    in a virtual directory's folder can also set httpRedirect (the section is delegated); this
    kind neither reads nor writes those files (Microsoft warns that one left in the OAB folder
    makes Outlook freeze). Restart: none needed [I]; see ``restart``.

    ``enabled: false`` turns the root's redirect off and touches nothing else. With the guide's
    Require SSL kept on /owa (``iis_ssl``), http://server/owa gets 403.4; only http://server/ is
    redirected.
    """

    name = "iis_redirect"
    summary = "http→https redirect of the Default Web Site root, not inherited by Exchange's virtual directories"
    params_model = IisRedirectParams
    channel = "script"
    template = "iis_redirect.ps1.j2"
    variants = (MODERN,)
    comparers: ClassVar[Mapping[str, Comparer]] = {
        "enabled": BOOL, "destination": TEXT, "exactDestination": BOOL, "childOnly": BOOL,
        "httpResponseStatus": TEXT, "sslFlags": FLAGS, "httpRedirectInherited": BOOL, "sslFlagsInherited": BOOL,
    }

    def names(self, params: IisRedirectParams) -> tuple[str, ...]:
        """The virtual directories kept from inheriting the redirect (PowerShell always among them)."""
        out: dict[str, str] = {}
        for name in (*params.virtual_directories, POWERSHELL_VDIR):
            out.setdefault(name.casefold(), name)
        return tuple(out.values()) if params.enabled else ()

    def read(self, params: IisRedirectParams, ctx: Context) -> tuple[Call, ...]:
        _roles_check(ctx)
        return (ScriptCall(self.name, "read", {"site": params.site,
                                               "virtual_directories": list(self.names(params))}),)

    def observe(self, params: IisRedirectParams, ctx: Context, values: Sequence[Any]) -> State:
        _roles_check(ctx)
        value = values[0] if values and isinstance(values[0], Mapping) else {}
        if not value.get("site_exists"):
            raise ControlFailed(f"site {params.site!r} does not exist on {ctx.host}")
        root: Mapping[str, Any] = value["root"] if isinstance(value.get("root"), Mapping) else {}
        state: dict[str, dict[str, Any] | None] = {params.site: {
            "enabled": root.get("enabled"),
            "destination": root.get("destination") or None,  # IIS's default is "": no destination
            "exactDestination": root.get("exactDestination"),
            "childOnly": root.get("childOnly"),
            "httpResponseStatus": root.get("httpResponseStatus"),
            "sslFlags": parse_ssl_flags(root.get("sslFlags")),
        }}
        names = self.names(params)
        for name, entry in _entries(value.get("virtual_directories"), names).items():
            state[f"{params.site}/{name}"] = None if not entry.get("exists") else {
                "enabled": entry.get("enabled"),
                "httpRedirectInherited": not bool(entry.get("redirect_explicit")),
                "sslFlagsInherited": not bool(entry.get("ssl_explicit")),
            }
        return state

    def desire(self, params: IisRedirectParams, ctx: Context, observed: State | None) -> State:
        _roles_check(ctx)
        if not params.enabled:
            return {params.site: {"enabled": False}}
        root_seen = (observed or {}).get(params.site) or {}
        root_ssl_changes = observed is None or not FLAGS.equal([], root_seen.get("sslFlags"))
        desired: dict[str, dict[str, Any] | None] = {params.site: {
            "enabled": True,
            "destination": params.destination,
            "exactDestination": params.exact_destination,
            "childOnly": params.child_only,
            "httpResponseStatus": params.status,
            "sslFlags": [],
        }}
        for name in self.names(params):
            location = f"{params.site}/{name}"
            if observed is not None and observed.get(location) is None:
                desired[location] = None  # not on this host: nothing can inherit there
                continue
            want: dict[str, Any] = {"enabled": False, "httpRedirectInherited": False}
            if root_ssl_changes:
                want["sslFlagsInherited"] = False
            desired[location] = want
        return desired

    def write(self, params: IisRedirectParams, ctx: Context, observed: State | None,
              desired: State) -> tuple[Call, ...]:
        def differs(obj: str, prop: str) -> bool:
            want = desired.get(obj) or {}
            if prop not in want:
                return False
            seen = (observed or {}).get(obj) or {}
            return observed is None or not self.comparers[prop].equal(want[prop], seen.get(prop))

        pin, disable = [], []
        for name in self.names(params):
            location = f"{params.site}/{name}"
            if desired.get(location) is None:
                continue
            if differs(location, "sslFlagsInherited"):
                pin.append(name)
            if differs(location, "enabled") or differs(location, "httpRedirectInherited"):
                disable.append(name)
        data: dict[str, Any] = {"site": params.site, "pin_ssl": pin, "disable": disable}
        root = desired[params.site] or {}
        if differs(params.site, "sslFlags"):
            data["root_ssl_flags"] = ssl_flags_text(root["sslFlags"])
        redirect = {attr: root[attr] for attr in REDIRECT_ATTRIBUTES if differs(params.site, attr)}
        if redirect:
            data["redirect"] = redirect
        if not pin and not disable and len(data) == 3:
            return ()
        return (ScriptCall(self.name, "write", data),)

    def plan_notes(self, params: IisRedirectParams) -> tuple[str, ...]:
        if not params.enabled:
            return ()
        return ("virtual directories missing on the host are skipped; those already setting httpRedirect "
                "or sslFlags themselves are left as they are",)

    def restarts(self, params: IisRedirectParams, ctx: Context, changes: Sequence[Change]) -> tuple[str, ...]:
        return ("W3SVC",) if changes and params.restart != "none" else ()

    def restart_policy(self, params: IisRedirectParams) -> RestartPolicy:
        return "allowed" if params.restart == "allowed" else "deferred"


FAMILY_KINDS = (IisSsl(), IisRedirect())
