"""The testbed's small PKI for its captive portals: a CA and one server certificate for the
portal's name (portal.netfate), so the captive portal API is served over https as RFC 8908
section 3 requires, and tests verify it against the CA like a device would against a public
one.

    pki = portal_pki(paths.run_dir() / "tls")
    pki.ca, pki.cert, pki.key        # PEM files; the keys are mode 0600

Files, in the given directory (made 0700): ca.pem, ca.key, portal.pem (the server
certificate, then the CA), portal.key. Made once and reused while they are valid for the
names asked for; they go with the run dir (`testbed down`). ECDSA P-256, SHA-256: quick to
make and accepted by every TLS client.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from netfate.access.addressing import PORTAL_NAME

VALID_DAYS = 365


@dataclass(frozen=True)
class PortalPki:
    ca: Path  # the CA certificate (PEM): what clients trust
    cert: Path  # the portal's certificate chain (PEM)
    key: Path  # the portal's key (PEM, mode 0600)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only, never readable by others even
    for a moment (created 0600, then renamed into place)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _valid_for(pki: PortalPki, names: Sequence[str]) -> bool:
    """The files exist, the certificate names ``names`` and is valid for another day."""
    try:
        cert = x509.load_pem_x509_certificate(pki.cert.read_bytes())
        pki.ca.read_bytes()
        pki.key.read_bytes()
    except (OSError, ValueError):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return (set(san.get_values_for_type(x509.DNSName)) == set(names)
            and cert.not_valid_after > now + dt.timedelta(days=1))


def portal_pki(directory: Path, names: Sequence[str] = (PORTAL_NAME,),
               ips: Sequence[str] = ()) -> PortalPki:
    """The CA and the portal's certificate for ``names`` (DNS) and ``ips`` (IP addresses)
    in ``directory``: made if missing or not valid for those names, else reused. OSError
    if the directory cannot be written."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    pki = PortalPki(ca=d / "ca.pem", cert=d / "portal.pem", key=d / "portal.key")
    if _valid_for(pki, names):
        return pki
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NetFATE testbed"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "NetFATE testbed CA")])
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=False, content_commitment=False, key_encipherment=False,
              data_encipherment=False, key_agreement=False, key_cert_sign=True,
              crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt += [x509.IPAddress(ipaddress.IPv4Address(ip)) for ip in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(until)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    _write_private(d / "ca.key", _key_pem(ca_key))
    _write_private(pki.key, _key_pem(key))
    pki.ca.write_bytes(ca.public_bytes(pem))
    pki.cert.write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    return pki
