"""A real Samba AD DC on loopback for the directory tests (the fixture's implementation).

One DC per pytest session: provision into a scratch directory (realm LAB.EXAMPLE.TEST, no DNS,
only the `ldap` service, bound to one 127.x address), write our own CA and server certificate
before the first start, start `samba -M single` in the foreground, load the Exchange-like lab
schema (tests/data/directory/exchange-lab-schema.ldif) and populate a small Exchange org over
LDAPS. Stop by PID with SIGTERM. The measured recipe behind this is
../shared/reference/samba-ad.md (next to the repository).

Only `ldap` runs (not `kdc`): the tests bind SIMPLE over LDAPS, so a KDC would add two listeners
(88, 464) and a service to go wrong for nothing. `samba_spnupdate` still runs, so adding `kdc`
to SERVICES later is enough for a Kerberos test.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, NONE, SCHEMA, Connection, Server, Tls

REALM = "LAB.EXAMPLE.TEST"
DNS_DOMAIN = "lab.example.test"
NETBIOS_DOMAIN = "LAB"
DOMAIN_DN = "DC=lab,DC=example,DC=test"
CONFIG_DN = f"CN=Configuration,{DOMAIN_DN}"
SCHEMA_DN = f"CN=Schema,{CONFIG_DN}"
SITES_DN = f"CN=Sites,{CONFIG_DN}"
SERVER_NAME = f"dc1.{DNS_DOMAIN}"
ADMIN_USER = f"Administrator@{DNS_DOMAIN}"
ADMIN_PASSWORD = "Passw0rd!Lab"
READER_NAME = "svc-reader"
READER_USER = f"{READER_NAME}@{DNS_DOMAIN}"
READER_PASSWORD = "ReaderPassw0rd!1"

SERVICES = "ldap"
IP_ENV = "HARDENING_SAMBA_IP"
DEFAULT_IP = "127.0.20.1"
# When the default address is taken (another pytest session on this machine), try the next ones.
FALLBACK_IPS = tuple(f"127.0.20.{n}" for n in range(2, 17))
LDAP_PORTS = (389, 636, 3268, 3269)  # a DC always serves the global catalog too
PACKAGES = "samba samba-dsdb-modules samba-vfs-modules samba-ad-provision ldb-tools krb5-user"
INSTALL_HINT = f"Samba AD DC not installed: apt-get install {PACKAGES} (or run make test as root)"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
MAXIMUM_RUNTIME = 3600  # samba exits by itself after this, should a run ever leak it

SCHEMA_LDIF = Path(__file__).resolve().parents[1] / "data" / "directory" / "exchange-lab-schema.ldif"

# The lab org (see README next to the LDIF for where the values come from).
EXCHANGE_DN = f"CN=Microsoft Exchange,CN=Services,{CONFIG_DN}"
ORG_DN = f"CN=Lab Org,{EXCHANGE_DN}"
ADMIN_GROUPS_DN = f"CN=Administrative Groups,{ORG_DN}"
MODERN_GROUP_DN = f"CN=Exchange Administrative Group (FYDIBOHF23SPDLT),{ADMIN_GROUPS_DN}"
LEGACY_GROUP_DN = f"CN=First Administrative Group,{ADMIN_GROUPS_DN}"
DEFAULT_SITE_DN = f"CN=Default-First-Site-Name,{SITES_DN}"
BRANCH_SITE_DN = f"CN=Branch,{SITES_DN}"
ROLE_MAILBOX, ROLE_CLIENT_ACCESS, ROLE_UNIFIED_MESSAGING, ROLE_HUB_TRANSPORT, ROLE_EDGE = 2, 4, 16, 32, 64
MSEXCH_VERSION_2013_PLUS = 88218628259840
SCRATCH_CHILD = "CN=Child"
SCRATCH_GRANDCHILD = "CN=Grandchild"


def exchange_version_number(major: int, minor: int, build: int) -> int:
    """`versionNumber` as Exchange 2007+ writes it (bit layout inferred, see the README)."""
    return 0x70000000 | major << 22 | minor << 16 | 0x8000 | build


# ---------------------------------------------------------------------------------------------
# The fixture value
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SambaDC:
    """A running lab DC. Connect only to `ip` (loopback); validate TLS with `ca_file`.

    One DC serves the whole session, so the org is shared: a test that changes it (e.g. hardens
    `smtp_vs_dn`) must not expect the initial values, or should work in its own `ad_scratch`.
    """

    ip: str
    ldaps_url: str
    ldap_url: str
    server_name: str
    ca_file: Path
    rogue_ca_file: Path
    admin_user: str
    admin_password: str
    reader_user: str
    reader_password: str
    reader_dn: str
    domain_dn: str
    config_dn: str
    schema_dn: str
    exchange_dn: str
    org_dn: str
    servers: Mapping[str, str]
    smtp_vs_dn: str
    pop_vs_dn: str
    sites: Mapping[str, str]
    targetdir: Path
    conf: Path
    log_file: Path
    timings: Mapping[str, float]
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def connect(self, user: str, password: str, *, get_info: str = SCHEMA, **kwargs: Any) -> Connection:
        """A SIMPLE bind over LDAPS, the server certificate validated against our CA."""
        return ldaps_connection(self.ip, self.ca_file, user, password, get_info=get_info, **kwargs)

    def admin_connection(self, **kwargs: Any) -> Connection:
        return self.connect(self.admin_user, self.admin_password, **kwargs)

    def reader_connection(self, **kwargs: Any) -> Connection:
        return self.connect(self.reader_user, self.reader_password, **kwargs)

    def usn_changed(self, dn: str) -> int:
        """The object's `uSNChanged`: it moves on every real write and not on a no-op rewrite."""
        conn = self.connect(self.admin_user, self.admin_password, get_info=NONE)
        try:
            conn.search(dn, "(objectClass=*)", BASE, attributes=["uSNChanged"])
            if not conn.response:
                raise LookupError(f"{dn}: {conn.result['description']} {conn.result['message']}")
            return int(conn.response[0]["raw_attributes"]["uSNChanged"][0])
        finally:
            conn.unbind()

    def samba_tool(self, *args: str) -> str:
        """`samba-tool ARGS -s CONF` (an independent oracle, e.g. `dsacl get --objectdn=DN`)."""
        return samba_tool(self.conf, *args)

    def make_scratch(self, label: str) -> str:
        """A fresh container under the org, with `CN=Child` and `CN=Grandchild,CN=Child` below it."""
        slug = re.sub(r"[^A-Za-z0-9-]+", "-", label).strip("-")[:40] or "test"
        dn = f"CN=scratch-{uuid.uuid4().hex[:8]}-{slug},{self.org_dn}"
        conn = self.connect(self.admin_user, self.admin_password, get_info=NONE, check_names=False)
        try:
            for each in scratch_tree(dn):
                checked(conn, conn.add(each, attributes={"objectClass": ["top", "container"]}), f"add {each}")
        finally:
            conn.unbind()
        return dn


def scratch_tree(dn: str) -> tuple[str, str, str]:
    """The scratch container, its child and grandchild, parents first."""
    child = f"{SCRATCH_CHILD},{dn}"
    return dn, child, f"{SCRATCH_GRANDCHILD},{child}"


# ---------------------------------------------------------------------------------------------
# Availability, address, subprocesses
# ---------------------------------------------------------------------------------------------


def missing_tools() -> list[str]:
    return [tool for tool in ("samba", "samba-tool", "samba_spnupdate") if shutil.which(tool) is None]


def require_samba() -> None:
    """Skip when Samba is not installed; in CI (CI=true) that is a failure instead."""
    missing = missing_tools()
    if not missing:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{INSTALL_HINT}; missing: {', '.join(missing)} (CI=true, so this fails instead of skipping)")
    pytest.skip(INSTALL_HINT)


def _port_open(ip: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((ip, port)) == 0


def _loopback_ipv4(ip: str) -> str:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        address = None
    if address is None or address.version != 4 or not address.is_loopback:
        pytest.fail(f"{IP_ENV}={ip!r}: the lab DC only ever runs on an IPv4 loopback address (127.x.y.z)")
    return str(address)


@contextlib.contextmanager
def reserved_ip() -> Iterator[str]:
    """A loopback address nobody else's DC uses, held (flock) for as long as the block runs.

    The lock keeps two pytest sessions on one machine from picking the same address between
    the port check and samba's bind.
    """
    chosen = os.environ.get(IP_ENV)
    candidates = (_loopback_ipv4(chosen),) if chosen else (DEFAULT_IP, *FALLBACK_IPS)
    busy = []
    for ip in candidates:
        lock: IO[str] = open(Path(tempfile.gettempdir()) / f"hardening-samba-{ip}.lock", "a+")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            busy.append(f"{ip} (locked by another test session)")
            continue
        in_use = [port for port in LDAP_PORTS if _port_open(ip, port)]
        if in_use:
            lock.close()
            busy.append(f"{ip} (ports {in_use} already listening)")
            continue
        try:
            yield ip
        finally:
            lock.close()
        return
    message = f"no free loopback address for the lab DC: {'; '.join(busy)}"
    if os.environ.get("CI", "").lower() == "true" or chosen:
        pytest.fail(message)
    pytest.skip(message)


def _environment() -> dict[str, str]:
    """Our environment minus what would point Samba's /usr/bin/python3 tools at the venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}


def run(*argv: str, what: str) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, env=_environment(), stdin=subprocess.DEVNULL, check=False
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-3000:]
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n{output}")
    return done.stdout


def samba_tool(conf: Path, *args: str) -> str:
    # samba-tool only takes -s after the subcommand; without it, it reads /etc/samba/smb.conf
    return run("samba-tool", *args, "-s", str(conf), what=f"samba-tool {' '.join(args[:2])}")


# ---------------------------------------------------------------------------------------------
# TLS: our CA, the DC's certificate, and an unrelated "rogue" CA
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    rogue_ca: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def write_pki(directory: Path, ip: str) -> Pki:
    """Our lab CA and a server certificate for dc1 (SAN: DNS names and the IP), plus a rogue CA.

    ECDSA P-256 keys: generating them takes about a millisecond (RSA would cost tens).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("hardening lab test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(SERVER_NAME))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(SERVER_NAME), x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(ip))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _, rogue_cert = _ca("hardening lab ROGUE CA (trust nothing it signs)")
    pem = serialization.Encoding.PEM
    pki = Pki(directory / "ca.pem", directory / "cert.pem", directory / "key.pem", directory / "rogue-ca.pem")
    pki.ca.write_bytes(ca_cert.public_bytes(pem))
    pki.cert.write_bytes(cert.public_bytes(pem))
    pki.rogue_ca.write_bytes(rogue_cert.public_bytes(pem))
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(pki.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # samba refuses a key others can read
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    os.chmod(pki.key, 0o600)
    return pki


def install_tls(pki: Pki, targetdir: Path) -> None:
    """Put the files where samba looks (private/tls) before its first start: it then keeps them."""
    tls = targetdir / "private" / "tls"
    tls.mkdir(mode=0o700, parents=True, exist_ok=True)
    for source, name in ((pki.ca, "ca.pem"), (pki.cert, "cert.pem"), (pki.key, "key.pem")):
        shutil.copy2(source, tls / name)
    os.chmod(tls / "key.pem", 0o600)


# ---------------------------------------------------------------------------------------------
# Provision, start, stop
# ---------------------------------------------------------------------------------------------


def provision_command(targetdir: Path, ip: str) -> list[str]:
    t = targetdir
    options = {
        "netbios name": "DC1",
        "interfaces": f"{ip}/8",
        "bind interfaces only": "yes",
        "server services": SERVICES,
        "log file": f"{t}/log/log.%m",
        "pid directory": f"{t}/run",
        "ncalrpc dir": f"{t}/run/ncalrpc",
        "winbindd socket directory": f"{t}/run/winbindd",
        "ntp signd socket directory": f"{t}/run/ntp_signd",
    }
    return [
        "samba-tool", "domain", "provision", f"--targetdir={t}", f"--realm={REALM}", f"--domain={NETBIOS_DOMAIN}",
        f"--adminpass={ADMIN_PASSWORD}", "--server-role=dc",
        # NONE: SAMBA_INTERNAL would copy resolv.conf's nameserver into "dns forwarder" (off-box)
        "--dns-backend=NONE", "--host-name=dc1", f"--host-ip={ip}", "-q",
        *(f"--option={key} = {value}" for key, value in options.items()),
    ]


def provision(targetdir: Path, ip: str, pki_dir: Path) -> tuple[Path, Pki]:
    """Provision (certificates are made meanwhile), then spnupdate and Administrator's expiry."""
    proc = subprocess.Popen(
        provision_command(targetdir, ip), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, env=_environment(),
    )
    try:
        pki = write_pki(pki_dir, ip)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"samba-tool domain provision failed (exit {proc.returncode}):\n{output.decode()[-3000:]}")
    conf = targetdir / "etc" / "smb.conf"
    # the dnsupdate service would add the DC's ldap/..., GC/... SPNs; we don't run it
    run("samba_spnupdate", "-s", str(conf), what="samba_spnupdate")
    # else the password expires 42 days after provisioning
    samba_tool(conf, "user", "setexpiry", "Administrator", "--noexpiry")
    install_tls(pki, targetdir)
    return conf, pki


def start_samba(conf: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    argv = [
        "samba", "-F", "--debug-stdout", "-M", "single", "-s", str(conf), f"--maximum-runtime={MAXIMUM_RUNTIME}",
        "--option=dsdb:schema update allowed = true",
    ]
    if shutil.which("setpriv"):
        # should pytest itself be killed, the kernel sends samba SIGTERM (the finally can't run then)
        argv = ["setpriv", "--pdeathsig", "TERM", "--", *argv]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=_environment())


def _log_tail(path: Path, size: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError as error:
        return f"(no log: {error})"


def wait_until_ready(proc: subprocess.Popen[bytes], ip: str, ca_file: Path, log_file: Path) -> None:
    """Until LDAPS answers on ip:636 with a certificate our CA signed (so it is *our* samba)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"samba exited with {proc.returncode} before LDAPS answered:\n{_log_tail(log_file)}")
        try:
            with socket.create_connection((ip, 636), timeout=1.0) as raw, context.wrap_socket(
                raw, server_hostname=SERVER_NAME
            ):
                return
        except ssl.SSLCertVerificationError as error:
            raise RuntimeError(f"something else answers LDAPS on {ip}:636 (not our CA): {error}") from error
        except OSError:
            pass  # not listening yet, or the TLS layer is not up yet
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"samba did not answer LDAPS on {ip}:636 within {READY_TIMEOUT:.0f} s:\n{_log_tail(log_file)}"
            )
        time.sleep(0.05)


def stop_samba(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the root PID (it takes its children down); SIGKILL if it is still there after 15 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------------------------
# LDAP: connections, the schema LDIF, the lab org
# ---------------------------------------------------------------------------------------------


def ldaps_connection(
    ip: str, ca_file: Path, user: str, password: str, *, get_info: str = SCHEMA, **kwargs: Any
) -> Connection:
    """A bound ldap3 connection: LDAPS to ip:636, CERT_REQUIRED with ca_file, name dc1.lab.example.test."""
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(ca_file), valid_names=[SERVER_NAME])
    server = Server(ip, port=636, use_ssl=True, tls=tls, get_info=get_info, connect_timeout=10)
    kwargs.setdefault("receive_timeout", 30)
    return Connection(server, user=user, password=password, auto_bind=True, **kwargs)


def checked(conn: Connection, ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"{what}: {conn.result['description']} ({conn.result['result']}): {conn.result['message']}")


@dataclass
class LdifRecord:
    dn: str
    changetype: str = "add"
    attributes: dict[str, list[str | bytes]] = field(default_factory=dict)
    changes: list[tuple[str, str, list[str | bytes]]] = field(default_factory=list)  # (op, attribute, values)


def parse_ldif(text: str, substitutions: Mapping[str, str] = MappingProxyType({})) -> list[LdifRecord]:
    """The small LDIF subset the lab schema uses: adds, modifies with add/replace/delete, `::` base64."""
    records: list[LdifRecord] = []
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        lines: list[str] = []
        for line in block.split("\n"):
            if line.startswith("#"):
                continue
            if line.startswith(" ") and lines:
                lines[-1] += line[1:]  # RFC 2849 continuation
            elif line.strip():
                lines.append(line)
        if not lines:
            continue
        pairs: list[tuple[str, str | bytes]] = []
        for line in lines:
            if line == "-":
                pairs.append(("-", ""))
                continue
            name, sep, rest = line.partition(":")
            if not sep:
                raise ValueError(f"not an LDIF line: {line!r}")
            if rest.startswith(":"):
                pairs.append((name, base64.b64decode(rest[1:].strip())))
            else:
                value = rest.strip()
                for key, replacement in substitutions.items():
                    value = value.replace(key, replacement)
                pairs.append((name, value))
        if pairs[0][0].lower() != "dn":
            raise ValueError(f"LDIF record does not start with dn: {lines[0]!r}")
        record = LdifRecord(dn=str(pairs[0][1]))
        rest_pairs = pairs[1:]
        if rest_pairs and rest_pairs[0][0].lower() == "changetype":
            record.changetype = str(rest_pairs[0][1]).lower()
            rest_pairs = rest_pairs[1:]
        if record.changetype == "add":
            for name, item in rest_pairs:
                record.attributes.setdefault(name, []).append(item)
        elif record.changetype == "modify":
            op: tuple[str, str] | None = None
            values: list[str | bytes] = []
            for name, item in [*rest_pairs, ("-", "")]:
                if name == "-":
                    if op:
                        record.changes.append((op[0], op[1], values))
                    op, values = None, []
                elif op is None:
                    if name.lower() not in ("add", "replace", "delete"):
                        raise ValueError(f"{record.dn}: unsupported modify operation {name!r}")
                    op = (name.lower(), str(item))
                else:
                    values.append(item)
        else:
            raise ValueError(f"{record.dn}: unsupported changetype {record.changetype!r}")
        records.append(record)
    return records


def apply_ldif(conn: Connection, records: list[LdifRecord]) -> None:
    """Apply records in order (conn must have check_names=False to modify the rootDSE)."""
    ops = {"add": MODIFY_ADD, "replace": MODIFY_REPLACE, "delete": MODIFY_DELETE}
    for record in records:
        if record.changetype == "add":
            checked(conn, conn.add(record.dn, attributes=record.attributes), f"add {record.dn}")
        else:
            changes: dict[str, list[tuple[str, list[str | bytes]]]] = {}
            for op, attribute, values in record.changes:
                changes.setdefault(attribute, []).append((ops[op], values))
            checked(conn, conn.modify(record.dn, changes), f"modify {record.dn or '(rootDSE)'}")


def load_schema(conn: Connection, ldif: Path = SCHEMA_LDIF) -> None:
    apply_ldif(conn, parse_ldif(ldif.read_text(encoding="utf-8"), {"<SchemaContainerDN>": SCHEMA_DN}))


@dataclass(frozen=True)
class LabTree:
    servers: Mapping[str, str]
    smtp_vs_dn: str
    pop_vs_dn: str
    reader_dn: str


def populate(conn: Connection) -> LabTree:
    """The Exchange-like org in the configuration partition, a second site, and svc-reader."""

    def add(dn: str, object_class: str | list[str], **attributes: object) -> str:
        classes = [object_class] if isinstance(object_class, str) else object_class
        checked(conn, conn.add(dn, attributes={"objectClass": classes, **attributes}), f"add {dn}")
        return dn

    def exchange_server(group_dn: str, name: str, serial: str, **attributes: object) -> str:
        return add(
            f"CN={name},CN=Servers,{group_dn}", "msExchExchangeServer", serialNumber=serial,
            networkAddress=[f"ncacn_ip_tcp:{name.lower()}.{DNS_DOMAIN}", f"netbios:{name}"], **attributes,
        )

    add(BRANCH_SITE_DN, "site")
    add(EXCHANGE_DN, "msExchConfigurationContainer")
    add(ORG_DN, "msExchOrganizationContainer")
    add(ADMIN_GROUPS_DN, "container")
    servers: dict[str, str] = {}
    # Exchange 2013+ keep every server in this one admin group
    add(MODERN_GROUP_DN, "msExchAdminGroup")
    add(f"CN=Servers,{MODERN_GROUP_DN}", "msExchServersContainer")
    servers["MAIL01"] = exchange_server(
        MODERN_GROUP_DN, "MAIL01", "Version 15.2 (Build 1544.4)", versionNumber=exchange_version_number(15, 2, 1544),
        msExchCurrentServerRoles=ROLE_MAILBOX, msExchServerSite=DEFAULT_SITE_DN, msExchVersion=MSEXCH_VERSION_2013_PLUS,
    )
    servers["MAIL02"] = exchange_server(
        MODERN_GROUP_DN, "MAIL02", "Version 15.1 (Build 2507.6)", versionNumber=exchange_version_number(15, 1, 2507),
        msExchCurrentServerRoles=ROLE_MAILBOX, msExchServerSite=BRANCH_SITE_DN, msExchVersion=MSEXCH_VERSION_2013_PLUS,
    )
    servers["EDGE01"] = exchange_server(
        MODERN_GROUP_DN, "EDGE01", "Version 15.2 (Build 1544.4)", versionNumber=exchange_version_number(15, 2, 1544),
        msExchCurrentServerRoles=ROLE_EDGE, msExchServerSite=DEFAULT_SITE_DN, msExchVersion=MSEXCH_VERSION_2013_PLUS,
    )
    # an Exchange 2003 server in a legacy admin group, with protocol virtual servers
    add(LEGACY_GROUP_DN, "msExchAdminGroup")
    add(f"CN=Servers,{LEGACY_GROUP_DN}", "msExchServersContainer")
    ex2003 = exchange_server(LEGACY_GROUP_DN, "EX2003", "Version 6.5 (Build 7638.2: Service Pack 2)")
    servers["EX2003"] = ex2003
    protocols = add(f"CN=Protocols,{ex2003}", "msExchProtocolCfgProtocolContainer")
    smtp = add(f"CN=SMTP,{protocols}", "msExchProtocolCfgSMTPContainer")
    smtp_vs = add(
        f"CN=1,{smtp}", "protocolCfgSMTPServer", msExchAccessSSLFlags=0, msExchAuthenticationFlags=7,
        msExchServerBindings=[":25:"], msExchSmtpFullyQualifiedDomainName=f"ex2003.{DNS_DOMAIN}",
    )
    pop = add(f"CN=POP3,{protocols}", "msExchProtocolCfgPOPContainer")
    pop_vs = add(f"CN=1,{pop}", "protocolCfgPOPServer", msExchAuthenticationFlags=7)
    # an ordinary user: may read the directory, may not read SACLs
    reader_dn = add(
        f"CN={READER_NAME},CN=Users,{DOMAIN_DN}", ["top", "person", "organizationalPerson", "user"],
        sAMAccountName=READER_NAME, userPrincipalName=READER_USER,
        unicodePwd=f'"{READER_PASSWORD}"'.encode("utf-16-le"), userAccountControl=0x200,  # NORMAL_ACCOUNT
    )
    return LabTree(MappingProxyType(servers), smtp_vs, pop_vs, reader_dn)


# ---------------------------------------------------------------------------------------------
# The whole thing
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_dc(scratch: Path) -> Iterator[SambaDC]:
    """Provision, start, load the schema, populate; yield; stop. Nothing is left running."""
    require_samba()
    timings: dict[str, float] = {}
    with reserved_ip() as ip:
        targetdir = scratch / "dc"
        targetdir.mkdir(parents=True)
        mark = time.monotonic()
        conf, pki = provision(targetdir, ip, scratch / "pki")
        timings["provision"] = time.monotonic() - mark
        log_file = targetdir / "log" / "samba.stdout"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "wb") as log:
            mark = time.monotonic()
            proc = start_samba(conf, log)
            try:
                wait_until_ready(proc, ip, pki.ca, log_file)
                timings["start"] = time.monotonic() - mark
                mark = time.monotonic()
                conn = ldaps_connection(ip, pki.ca, ADMIN_USER, ADMIN_PASSWORD, get_info=NONE, check_names=False)
                try:
                    load_schema(conn)
                    timings["schema"] = time.monotonic() - mark
                    mark = time.monotonic()
                    tree = populate(conn)
                    timings["populate"] = time.monotonic() - mark
                finally:
                    conn.unbind()
                yield SambaDC(
                    ip=ip, ldaps_url=f"ldaps://{ip}", ldap_url=f"ldap://{ip}", server_name=SERVER_NAME,
                    ca_file=pki.ca, rogue_ca_file=pki.rogue_ca, admin_user=ADMIN_USER, admin_password=ADMIN_PASSWORD,
                    reader_user=READER_USER, reader_password=READER_PASSWORD, reader_dn=tree.reader_dn,
                    domain_dn=DOMAIN_DN, config_dn=CONFIG_DN, schema_dn=SCHEMA_DN, exchange_dn=EXCHANGE_DN,
                    org_dn=ORG_DN, servers=tree.servers, smtp_vs_dn=tree.smtp_vs_dn, pop_vs_dn=tree.pop_vs_dn,
                    sites=MappingProxyType({"Default-First-Site-Name": DEFAULT_SITE_DN, "Branch": BRANCH_SITE_DN}),
                    targetdir=targetdir, conf=conf, log_file=log_file, timings=MappingProxyType(timings), process=proc,
                )
            finally:
                mark = time.monotonic()
                stop_samba(proc)
                timings["stop"] = time.monotonic() - mark
