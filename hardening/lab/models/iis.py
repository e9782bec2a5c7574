"""Lab model of IIS configuration for the ``iis_ssl`` and ``iis_redirect`` templates: sites and
virtual directories (location paths such as ``Default Web Site/owa``), and what
applicationHost.config sets at each location for two sections, ``access`` (sslFlags) and
``httpRedirect`` (enabled, destination, exactDestination, childOnly, httpResponseStatus).

Inheritance as IIS does it: each attribute's effective value is the one set at the nearest
location up the path (``Default Web Site/owa/auth`` → ``Default Web Site/owa`` →
``Default Web Site``), else the schema default; a section "is locally stored" at a location
when that location sets it. Writes set attributes at one location, as
``Set-WebConfigurationProperty -PSPath 'MACHINE/WEBROOT/APPHOST' -Location`` does.

A lab host's ``iis`` key starts from ``layout: exchange`` (the sites and virtual directories
Exchange 2016/2019/SE creates, with Exchange's defaults) and lists, per location, what it sets
there (``locations``, replacing the layout's settings of that location) and what does not exist
(``absent``). Not simulated: web.config files in the directories' folders, section locking,
bindings, certificates, worker processes and whether a request really gets 403.4 or a redirect.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...kinds.iis import SSL_FLAG_BITS
from .common import LabScriptError, ScriptHandler, State, StateSection

__all__ = ["EXCHANGE_LAYOUT", "SCRIPTS", "SECTIONS"]

ACCESS = "access"
REDIRECT = "httpRedirect"
STATUSES = ["Permanent", "Found", "Temporary", "PermRedirect"]
# Schema defaults of the two sections (IIS configuration reference) [V].
DEFAULTS: dict[str, dict[str, Any]] = {
    ACCESS: {"sslFlags": "None"},
    REDIRECT: {"enabled": False, "destination": "", "exactDestination": False, "childOnly": False,
               "httpResponseStatus": "Found"},
}
BOOLEAN_ATTRIBUTES = {"enabled", "exactDestination", "childOnly"}

_FRONT = "Default Web Site"
_BACK = "Exchange Back End"
# Exchange 2016/2019/SE's IIS layout. Default Web Site: Microsoft's table of default Require SSL
# settings [V] (EXD http-to-https-redirection.md): the root and every directory require SSL except
# PowerShell, Rpc and owa/Calendar. Which directories set it themselves rather than inheriting it
# from the root is [I]: Microsoft says a change at the root is inherited by the directories, so
# here only the three exceptions set it. Exchange Back End: its directories, settings not
# modelled [U] (nothing here reads them; the kinds refuse that site).
EXCHANGE_LAYOUT: dict[str, Any] = {
    "paths": [_FRONT, *(f"{_FRONT}/{v}" for v in (
        "API", "aspnet_client", "Autodiscover", "ecp", "EWS", "mapi", "Microsoft-Server-ActiveSync", "OAB", "owa",
        "owa/auth", "owa/Calendar", "owa/Integrated", "owa/oma", "PowerShell", "Rpc")),
        _BACK, *(f"{_BACK}/{v}" for v in (
            "API", "Autodiscover", "ecp", "EWS", "mapi", "mapi/emsmdb", "mapi/nspi", "Microsoft-Server-ActiveSync",
            "OAB", "owa", "PowerShell", "PushNotifications", "Rpc", "RpcWithCert"))],
    "config": {
        _FRONT: {ACCESS: {"sslFlags": "Ssl,Ssl128"}},
        f"{_FRONT}/owa/Calendar": {ACCESS: {"sslFlags": "None"}},
        f"{_FRONT}/PowerShell": {ACCESS: {"sslFlags": "None"}},
        f"{_FRONT}/Rpc": {ACCESS: {"sslFlags": "None"}},
    },
}


def _flags_value(value: Any) -> str:
    """An sslFlags value as IIS stores and prints it ("Ssl,Ssl128", "None"); unknown names fail."""
    names = [p.strip() for p in (value.split(",") if isinstance(value, str) else value or []) if str(p).strip()]
    out = []
    for name in names:
        match = next((n for n in [*SSL_FLAG_BITS, "None"] if n.casefold() == str(name).casefold()), None)
        if match is None:
            raise LabScriptError(f"The value '{value}' is not valid for attribute 'sslFlags': '{name}' is not one "
                                 f"of None, {', '.join(SSL_FLAG_BITS)}.")
        out.append(match)
    return ",".join(n for n in SSL_FLAG_BITS if n in out) or "None"


class LabRedirect(BaseModel):
    """What a location sets of httpRedirect (attributes left out are inherited)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = None
    destination: str | None = None
    exactDestination: bool | None = None
    childOnly: bool | None = None
    httpResponseStatus: Literal["Permanent", "Found", "Temporary", "PermRedirect"] | None = None


class LabLocation(BaseModel):
    """What one location (site root or virtual directory) sets itself; nothing set = inherits all."""

    model_config = ConfigDict(extra="forbid")
    sslFlags: str | list[str] | None = Field(None, description="e.g. 'Ssl,Ssl128' or None.")
    httpRedirect: LabRedirect | None = None

    @field_validator("sslFlags")
    @classmethod
    def _flags(cls, value: Any) -> Any:
        if value is None:
            return value
        try:
            return _flags_value(value)
        except LabScriptError as exc:
            raise ValueError(str(exc)) from None


class LabIis(BaseModel):
    """IIS on a lab host."""

    model_config = ConfigDict(extra="forbid")
    layout: Literal["exchange", "none"] = Field(
        "exchange", description="exchange: the sites and virtual directories Exchange creates, with its defaults.")
    locations: dict[str, LabLocation] = Field(
        default_factory=dict, description="Location path → what it sets itself (replaces the layout's settings "
        "there; a new path adds a virtual directory).")
    absent: list[str] = Field(default_factory=list, description="Location paths (and all below) that do not exist.")


def _fold(path: str) -> str:
    return path.strip("/").casefold()


def _key(mapping: dict[str, Any], path: str) -> str | None:
    """The key of ``mapping`` that is this IIS path (paths ignore case)."""
    return next((k for k in mapping if _fold(k) == _fold(path)), None)


def _build(value: LabIis | None, host: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    layout = EXCHANGE_LAYOUT if value.layout == "exchange" else {"paths": [], "config": {}}
    paths: list[str] = list(layout["paths"])
    config: dict[str, Any] = copy.deepcopy(layout["config"])
    for path, location in value.locations.items():
        for i in range(1, len(path.split("/")) + 1):
            prefix = "/".join(path.split("/")[:i])
            if not any(_fold(p) == _fold(prefix) for p in paths):
                paths.append(prefix)
        existing = _key(config, path)
        if existing is not None:
            del config[existing]
        sections: dict[str, Any] = {}
        if location.sslFlags is not None:
            sections[ACCESS] = {"sslFlags": location.sslFlags}
        if location.httpRedirect is not None:
            sections[REDIRECT] = location.httpRedirect.model_dump(exclude_none=True)
        config[path] = sections
    for gone in value.absent:
        paths = [p for p in paths if not (_fold(p) == _fold(gone) or _fold(p).startswith(_fold(gone) + "/"))]
    return {"paths": paths, "config": config}


def _iis(state: State) -> dict[str, Any]:
    iis = state.get("iis")
    if iis is None:
        raise LabScriptError("The specified module 'WebAdministration' was not loaded because no valid module file "
                             "was found in any module directory.")
    return iis  # type: ignore[no-any-return]


def _exists(iis: dict[str, Any], path: str) -> bool:
    return any(_fold(p) == _fold(path) for p in iis["paths"])


def _effective(iis: dict[str, Any], path: str, section: str, attribute: str) -> Any:
    parts = path.strip("/").split("/")
    for i in range(len(parts), 0, -1):
        key = _key(iis["config"], "/".join(parts[:i]))
        if key is not None and attribute in iis["config"][key].get(section, {}):
            return iis["config"][key][section][attribute]
    return DEFAULTS[section][attribute]


def _locally_stored(iis: dict[str, Any], path: str, section: str) -> bool:
    key = _key(iis["config"], path)
    return key is not None and section in iis["config"][key]


def _set(iis: dict[str, Any], path: str, section: str, attribute: str, value: Any) -> None:
    """Set-WebConfigurationProperty at one location (a location tag is made if there is none)."""
    match = next((a for a in DEFAULTS[section] if a.casefold() == str(attribute).casefold()), None)
    if match is None:
        raise LabScriptError(f"Property {attribute} is not found on {section}.")
    if match == "sslFlags":
        value = _flags_value(value)
    elif match in BOOLEAN_ATTRIBUTES:
        if not isinstance(value, bool):
            raise LabScriptError(f"Cannot convert value \"{value}\" of attribute '{match}' to type Boolean.")
    elif match == "httpResponseStatus":
        status = next((s for s in STATUSES if s.casefold() == str(value).casefold()), None)
        if status is None:
            raise LabScriptError(f"The value '{value}' is not valid for attribute 'httpResponseStatus'.")
        value = status
    elif not isinstance(value, str):
        raise LabScriptError(f"Cannot convert value \"{value}\" of attribute '{match}' to type String.")
    key = _key(iis["config"], path)
    if key is None:
        key = path
        iis["config"][key] = {}
    iis["config"][key].setdefault(section, {})[match] = value


def _site_exists(iis: dict[str, Any], site: str) -> bool:
    return "/" not in site.strip("/") and _exists(iis, site)


def _names(data: Any) -> list[str]:
    value = data.get("virtual_directories") or []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _ssl_read(state: State, data: Any) -> dict[str, Any]:
    iis = _iis(state)
    site = str(data["site"])
    exists = _site_exists(iis, site)
    directories = []
    for name in _names(data):
        path = f"{site}/{name}"
        if not (exists and _exists(iis, path)):
            directories.append({"name": name, "exists": False})
            continue
        directories.append({"name": name, "exists": True, "sslFlags": _effective(iis, path, ACCESS, "sslFlags"),
                            "explicit": _locally_stored(iis, path, ACCESS)})
    return {"site_exists": exists, "virtual_directories": directories}


def _ssl_write(state: State, data: Any) -> dict[str, Any]:
    iis = _iis(state)
    entries = data.get("set") or []
    for entry in entries if isinstance(entries, list) else [entries]:
        _set(iis, f"{data['site']}/{entry['name']}", ACCESS, "sslFlags", entry["sslFlags"])
    return {"written": True}


def _redirect_read(state: State, data: Any) -> dict[str, Any]:
    iis = _iis(state)
    site = str(data["site"])
    if not _site_exists(iis, site):
        return {"site_exists": False}
    root = {a: _effective(iis, site, REDIRECT, a) for a in DEFAULTS[REDIRECT]}
    root["sslFlags"] = _effective(iis, site, ACCESS, "sslFlags")
    directories = []
    for name in _names(data):
        path = f"{site}/{name}"
        if not _exists(iis, path):
            directories.append({"name": name, "exists": False})
            continue
        directories.append({"name": name, "exists": True, "enabled": _effective(iis, path, REDIRECT, "enabled"),
                            "redirect_explicit": _locally_stored(iis, path, REDIRECT),
                            "ssl_explicit": _locally_stored(iis, path, ACCESS)})
    return {"site_exists": True, "root": root, "virtual_directories": directories}


def _redirect_write(state: State, data: Any) -> dict[str, Any]:
    iis = _iis(state)
    site = str(data["site"])
    for name in data.get("pin_ssl") or []:
        path = f"{site}/{name}"
        _set(iis, path, ACCESS, "sslFlags", _effective(iis, path, ACCESS, "sslFlags"))
    for name in data.get("disable") or []:
        _set(iis, f"{site}/{name}", REDIRECT, "enabled", False)
    if "root_ssl_flags" in data:
        _set(iis, site, ACCESS, "sslFlags", data["root_ssl_flags"])
    for attribute, value in (data.get("redirect") or {}).items():
        _set(iis, site, REDIRECT, attribute, value)
    return {"written": True}


SECTIONS: dict[str, StateSection] = {
    "iis": StateSection(LabIis | None, None, _build,
                        "IIS sites and virtual directories: layout (exchange), locations (what each location path "
                        "sets: sslFlags, httpRedirect), absent."),
}
SCRIPTS: dict[tuple[str, str], ScriptHandler] = {
    ("iis_ssl", "read"): _ssl_read,
    ("iis_ssl", "write"): _ssl_write,
    ("iis_redirect", "read"): _redirect_read,
    ("iis_redirect", "write"): _redirect_write,
}
