"""A directory (Active Directory, or Samba AD) over LDAP through ldap3.

TLS always: ``ldaps://`` (LDAPS) or ``ldap://`` with StartTLS before the bind, the server's
certificate validated against ``ldap_ca_bundle`` (else ``ca_bundle``, else the system store) and
the name in the URL or ``ldap_server_name``. No plain-text LDAP is ever sent, so a simple bind
never shows its password. Binds: simple (``user@domain`` or a DN), NTLM (Windows AD only: Samba
has no "Sicily" bind), Kerberos (SASL GSSAPI; needs the ``gssapi`` package and a ticket).

Each failure gets its own sentence: unreachable, TLS refused, certificate not trusted, bad
credentials. Every ldap3 exception is caught here and re-raised as
:class:`~hardening.errors.TargetError`; a request the directory refuses (no such object,
insufficient rights) is that call's error, not the connection's. ``requests`` counts LDAP
operations (StartTLS, bind, each search and modify).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import SecretError, TargetError
from ..inventory import Host
from ..ldif import SD_FLAGS_OID, sd_flags_control_value
from ..logredact import register_secret
from ..model import Bundle, LdapCall, SectionResult

__all__ = ["DirectorySettings", "DirectoryTarget", "certificate_names", "connect"]

log = logging.getLogger(__name__)

SCOPES = {"base": "BASE", "one": "LEVEL", "subtree": "SUBTREE"}
ACTIONS = {"replace": "MODIFY_REPLACE", "add": "MODIFY_ADD", "delete": "MODIFY_DELETE"}


class DirectorySettings:
    """Where and how to bind, from a host's merged connection settings."""

    def __init__(self, host: Host) -> None:
        conn = host.connection
        if not conn.ldap_url:
            raise TargetError(host.name, "this host has no directory: set connection.ldap_url (ldaps://DC)")
        url = urlsplit(conn.ldap_url)
        self.host_name = host.name
        self.url = conn.ldap_url
        self.starttls = url.scheme.lower() == "ldap"
        self.address = url.hostname or ""
        self.port = url.port or (389 if self.starttls else 636)
        self.server_name = conn.ldap_server_name or self.address
        self.auth = conn.ldap_auth
        self.username = conn.ldap_username or conn.username
        self.password = conn.ldap_password or conn.password
        self.ca_bundle = conn.ldap_ca_bundle or conn.ca_bundle
        self.insecure = conn.insecure_skip_certificate_validation
        self.timeout = conn.timeout
        if self.auth in {"simple", "ntlm"} and not (self.username and self.password):
            raise TargetError(host.name, f"ldap_auth {self.auth} needs ldap_username (or username) and a password "
                              "reference")
        if self.auth == "ntlm" and "\\" not in (self.username or ""):
            raise TargetError(host.name, "ldap_auth ntlm needs the user as DOMAIN\\user")

    @property
    def who(self) -> str:
        return self.username or "(Kerberos ticket)"


def connect(settings: DirectorySettings, count: list[int] | None = None) -> Any:
    """A bound ldap3 connection; raises :class:`TargetError` with one sentence per failure."""
    import ldap3
    from ldap3.core import exceptions as lx

    def counted() -> None:
        if count is not None:
            count[0] += 1

    name = settings.host_name
    tls = ldap3.Tls(validate=ssl.CERT_NONE if settings.insecure else ssl.CERT_REQUIRED,
                    ca_certs_file=settings.ca_bundle, valid_names=[settings.server_name],
                    version=ssl.PROTOCOL_TLS_CLIENT)
    server = ldap3.Server(settings.address, port=settings.port, use_ssl=not settings.starttls, tls=tls,
                          get_info=ldap3.NONE, connect_timeout=max(1, int(settings.timeout)))
    kwargs: dict[str, Any] = {"auto_bind": ldap3.AUTO_BIND_NONE, "raise_exceptions": False,
                              "receive_timeout": max(1, int(settings.timeout)), "auto_referrals": False}
    if settings.auth == "kerberos":
        try:
            import gssapi  # noqa: F401  (ldap3 imports it lazily and fails obscurely without it)
        except ImportError:
            raise TargetError(name, "ldap_auth kerberos needs the gssapi package (pip install gssapi; it builds "
                              "against libkrb5-dev) and a ticket (kinit)") from None
        kwargs.update(authentication=ldap3.SASL, sasl_mechanism=ldap3.KERBEROS,
                      sasl_credentials=(settings.server_name,))
    else:
        try:
            password = settings.password.resolve() if settings.password else None
        except SecretError as exc:
            raise TargetError(name, str(exc)) from None
        register_secret(password)  # installed log filters scrub it from then on
        kwargs.update(user=settings.username, password=password,
                      authentication=ldap3.NTLM if settings.auth == "ntlm" else ldap3.SIMPLE)
    connection = ldap3.Connection(server, **kwargs)
    stage = "connect"
    try:
        connection.open()
        if settings.starttls:
            stage = "starttls"
            counted()
            if not connection.start_tls():
                raise TargetError(name, f"{settings.url}: the server refused StartTLS "
                                  f"({_result(connection)}); use ldaps:// or enable TLS on the directory")
        if not settings.insecure and not certificate_names(connection.socket.getpeercert(), settings.server_name):
            raise TargetError(name, f"{settings.url}: the directory's certificate does not name "
                              f"{settings.server_name}: set ldap_server_name to a name it carries")
        stage = "bind"
        counted()
        if not connection.bind():
            raise TargetError(name, _bind_problem(settings, connection))
    except TargetError:
        _quietly_unbind(connection)
        raise
    except lx.LDAPSocketOpenError as exc:
        _quietly_unbind(connection)
        raise TargetError(name, _open_problem(settings, exc)) from None
    except lx.LDAPStartTLSError as exc:
        _quietly_unbind(connection)
        raise TargetError(name, _open_problem(settings, exc)) from None
    except lx.LDAPSessionTerminatedByServerError:
        _quietly_unbind(connection)
        hint = (" (Samba and some directories have no NTLM 'Sicily' bind: use ldap_auth simple over TLS or kerberos)"
                if settings.auth == "ntlm" else "")
        raise TargetError(name, f"{settings.url}: the server ended the session during the {stage}{hint}") from None
    except lx.LDAPException as exc:
        _quietly_unbind(connection)
        raise TargetError(name, f"{settings.url}: {stage} failed: {_first_line(exc)}") from None
    except ImportError as exc:  # ldap3's NTLM needs MD4 (pycryptodome on OpenSSL 3)
        _quietly_unbind(connection)
        raise TargetError(name, f"{settings.url}: {settings.auth} bind unavailable: {exc}") from None
    return connection


def certificate_names(cert: Mapping[str, Any] | None, name: str) -> bool:
    """Whether a validated peer certificate (``getpeercert()``) carries ``name``: a DNS name (a
    ``*.`` wildcard covers one left-most label) or an IP address in its subjectAltName, else its
    common name when it has no subjectAltName at all (RFC 6125 §6.4.4). ldap3 accepts a match on
    the address it connected to as well, which would let any certificate for that address pass
    for the DC named in ``ldap_server_name``; this check is ours."""
    if not cert:
        return False
    wanted = name.rstrip(".").casefold()
    sans = cert.get("subjectAltName") or ()
    candidates = [(kind, str(value)) for kind, value in sans]
    if not candidates:
        candidates = [("DNS", str(value)) for rdn in cert.get("subject") or () for key, value in rdn
                      if key == "commonName"]
    for kind, value in candidates:
        text = value.rstrip(".").casefold()
        if kind == "IP Address" and text == wanted:
            return True
        if kind == "DNS" and (text == wanted or (text.startswith("*.") and "." in wanted
                                                 and wanted.split(".", 1)[1] == text[2:])):
            return True
    return False


def _result(connection: Any) -> str:
    result = connection.result or {}
    text = f"{result.get('description', 'error')}"
    if result.get("message"):
        text += f": {str(result['message']).strip()}"
    return text


def _bind_problem(settings: DirectorySettings, connection: Any) -> str:
    code = (connection.result or {}).get("result")
    if code == 49:
        return (f"{settings.url}: bad credentials for {settings.who} (invalidCredentials); check ldap_username "
                "and the password reference")
    if code == 8:
        return f"{settings.url}: the directory requires a stronger bind than {settings.auth} ({_result(connection)})"
    return f"{settings.url}: bind as {settings.who} failed ({_result(connection)})"


def _open_problem(settings: DirectorySettings, exc: Exception) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        where = f"the CA in {settings.ca_bundle}" if settings.ca_bundle else "the system's CAs"
        return (f"{settings.url}: the directory's certificate is not trusted by {where}: set ldap_ca_bundle to the "
                "CA that issued it (certificate verify failed)")
    if "hostname" in text.lower() or "doesn't match" in text or "invalid server address" in text.lower():
        return (f"{settings.url}: the directory's certificate does not name {settings.server_name}: set "
                "ldap_server_name to a name it carries")
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text or "UNEXPECTED_EOF" in text:
        return f"{settings.url}: TLS failed: the server does not speak TLS on port {settings.port}"
    return f"{settings.url}: cannot reach the directory ({_first_line(exc)})"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _quietly_unbind(connection: Any) -> None:
    try:
        connection.unbind()
    except Exception:  # closing a broken connection: nothing more to learn
        log.debug("unbind after a failure failed", exc_info=True)


def _sd_control(flags: int) -> tuple[str, bool, bytes]:
    # Critical, so a server that does not know the control refuses the request rather than
    # ignoring it and writing (or reading) the whole descriptor.
    return (SD_FLAGS_OID, True, sd_flags_control_value(flags))


def _entry_values(call: LdapCall, raw: Mapping[str, list[bytes]]) -> dict[str, list[Any]]:
    by_fold = {k.casefold(): v for k, v in raw.items()}
    binary = {b.casefold() for b in call.binary}
    out: dict[str, list[Any]] = {}
    for name in call.attributes:
        values = by_fold.get(name.casefold())
        if values is None:
            continue
        out[name] = [bytes(v) if name.casefold() in binary else bytes(v).decode("utf-8", "replace") for v in values]
    return out


class DirectoryTarget:
    """A directory over LDAP. Connects and binds lazily, on the first bundle; one connection for
    the whole run."""

    def __init__(self, host: Host) -> None:
        self.settings = DirectorySettings(host)
        self.name = host.name
        self._count = [0]
        self._connection: Any = None
        self._closed = False

    @property
    def requests(self) -> int:
        return self._count[0]

    def run(self, bundle: Bundle) -> list[SectionResult]:
        if self._closed:
            raise TargetError(self.name, "the directory connection is closed")
        if self._connection is None:
            self._connection = connect(self.settings, self._count)
        out = []
        for section in bundle:
            values: list[Any] = []
            errors: list[str | None] = []
            for call in section.calls:
                if not isinstance(call, LdapCall):
                    raise TypeError(f"section {section.id}: the directory takes LDAP requests only")
                value, error = self._request(call)
                values.append(value)
                errors.append(error)
            out.append(SectionResult(section.id, tuple(values), tuple(errors)))
        return out

    def _request(self, call: LdapCall) -> tuple[Any, str | None]:
        import ldap3
        from ldap3.core import exceptions as lx

        c = self._connection
        controls = [_sd_control(call.sd_flags)] if call.sd_flags is not None else None
        self._count[0] += 1
        try:
            if call.op == "search":
                ok = c.search(call.dn, call.filter, search_scope=getattr(ldap3, SCOPES[call.scope]),
                              attributes=list(call.attributes) or [ldap3.NO_ATTRIBUTES], controls=controls)
                if not ok and (c.result or {}).get("result") not in (0, None):
                    return None, self._refusal(call)
                entries = [{"dn": e["dn"], "attributes": _entry_values(call, e.get("raw_attributes") or {})}
                           for e in (c.response or []) if e.get("type") == "searchResEntry"]
                return entries, None
            changes = {attribute: [(getattr(ldap3, ACTIONS[action]), list(values))]
                       for attribute, action, values in call.changes}
            if not c.modify(call.dn, changes, controls=controls):
                return None, self._refusal(call)
            return None, None
        except (lx.LDAPSocketOpenError, lx.LDAPSocketReceiveError, lx.LDAPSocketSendError,
                lx.LDAPSessionTerminatedByServerError) as exc:
            raise TargetError(self.name, f"{self.settings.url}: connection lost ({_first_line(exc)})") from None
        except lx.LDAPException as exc:
            return None, f"{call.op} {call.dn}: {_first_line(exc)}"

    def _refusal(self, call: LdapCall) -> str:
        code = (self._connection.result or {}).get("result")
        if code == 32:
            return f"no such object: {call.dn}"
        if code == 50:
            return (f"{call.op} {call.dn}: insufficient access rights for {self.settings.who} "
                    f"({_result(self._connection)})")
        return f"{call.op} {call.dn}: {_result(self._connection)}"

    def close(self) -> None:
        if self._connection is not None and not self._closed:
            _quietly_unbind(self._connection)
        self._closed = True
