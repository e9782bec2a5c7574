"""A throw-away certificate authority and one server certificate per lab host (``cryptography``).

Each server certificate names the host's loopback IP address and ``<host>.lab.invalid`` (a
name that never resolves outside a test that maps it), so clients validate it exactly as they
would a real host's: by CA and by name. Keys are ECDSA P-256, signatures SHA-256, valid for a
week from an hour ago.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["LabCA", "ServerCertificate", "lab_dns_name"]


def lab_dns_name(host: str) -> str:
    """``MAIL01`` → ``mail01.lab.invalid`` (a DNS label: letters, digits and hyphens)."""
    label = re.sub(r"[^a-z0-9-]+", "-", host.lower()).strip("-") or "host"
    return f"{label[:63]}.lab.invalid"


@dataclass(frozen=True)
class ServerCertificate:
    """A host's certificate and key as PEM files, and its DER form (for channel binding)."""

    cert_path: Path
    key_path: Path
    der: bytes

    def context(self) -> ssl.SSLContext:
        """A TLS 1.2+ server context serving this certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def end_point_hash(self) -> bytes:
        """``tls-server-end-point`` channel binding data (RFC 5929: SHA-256 for a SHA-256 signature)."""
        return b"tls-server-end-point:" + hashlib.sha256(self.der).digest()


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class LabCA:
    """A CA that exists for one endpoint's lifetime; its certificate is written to ``directory/ca.pem``."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hardening lab"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "hardening lab CA (loopback tests only)")])
        public = self._key.public_key()
        self._cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = directory / "ca.pem"
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, host: str, address: str) -> ServerCertificate:
        """A server certificate for ``host`` at ``address`` (SAN: the IP and ``<host>.lab.invalid``)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        dns = lab_dns_name(host)
        ca_ski = self._cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
            .issuer_name(self._cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns),
                                                        x509.IPAddress(ipaddress.ip_address(address))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", host)
        cert_path, key_path = self._directory / f"{stem}.pem", self._directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.touch(mode=0o600)
        key_path.write_bytes(_pem_key(key))
        return ServerCertificate(cert_path, key_path, cert.public_bytes(serialization.Encoding.DER))
