"""The portal's TLS: the captive portal API (RFC 8908 section 3: its URI MUST be https) is
served over TLS with a certificate and key the operator gives (AccessSettings.tls_cert,
tls_key; the testbed makes its own CA for them, testbed/tls.py).

    ctx = server_context(Path("portal.pem"), Path("portal.key"))   # checked at start

Bad input is found here, before anything is started, with an error naming the file and
what is wrong with it (missing, unreadable, not PEM, key not the certificate's), rather
than later in the server's thread.
"""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

from cryptography import x509

from netfate.errors import InvalidInput

# The API's port on the portal (https); the switch lets every client reach it
# (controller/flows_services.py), before and after login.
HTTPS_PORT = 443
MAX_PEM = 1 << 20  # bytes: a certificate chain or key is a few kB; bound what is read


def _readable(kind: str, path: Path) -> bytes:
    if not path.exists():
        raise InvalidInput(f"TLS {kind} {path} does not exist")
    if not path.is_file():
        raise InvalidInput(f"TLS {kind} {path} is not a file")
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_PEM + 1)
    except OSError as exc:
        raise InvalidInput(f"TLS {kind} {path} cannot be read: {exc.strerror or exc}") from exc
    if len(data) > MAX_PEM:
        raise InvalidInput(f"TLS {kind} {path} is larger than {MAX_PEM} bytes")
    if b"-----BEGIN " not in data:
        raise InvalidInput(f"TLS {kind} {path} is not PEM (no '-----BEGIN' line)")
    return data


def _in_date(cert: Path, data: bytes) -> None:
    """InvalidInput if the first certificate in ``data`` is expired or not yet valid
    (every client's handshake would fail, RFC 5280 4.1.2.5); a file that does not decode is
    left to OpenSSL's own error."""
    try:
        c = x509.load_pem_x509_certificate(data)
    except ValueError:
        return
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if c.not_valid_after < now:
        raise InvalidInput(f"TLS certificate {cert} expired on "
                           f"{c.not_valid_after:%Y-%m-%d %H:%M} UTC")
    if c.not_valid_before > now:
        raise InvalidInput(f"TLS certificate {cert} is not valid before "
                           f"{c.not_valid_before:%Y-%m-%d %H:%M} UTC")


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server SSLContext (TLS 1.2 or later) for ``cert`` (PEM, the server certificate
    first, then any intermediates) and ``key`` (PEM, unencrypted). Raises InvalidInput
    naming the file when either is missing, unreadable, over MAX_PEM bytes or not PEM,
    when the certificate is expired or not yet valid, when the key is not
    the certificate's, or when the certificate cannot be loaded."""
    cert, key = Path(cert), Path(key)
    _in_date(cert, _readable("certificate", cert))
    _readable("key", key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key), password=_no_password)
    except ssl.SSLError as exc:
        text = f"{exc.reason or ''} {exc}".lower()
        if "mismatch" in text:
            raise InvalidInput(f"TLS key {key} is not the key of certificate {cert}") from exc
        raise InvalidInput(f"TLS certificate {cert} or key {key} cannot be loaded: "
                           f"{exc.reason or exc}") from exc
    except OSError as exc:
        raise InvalidInput(f"TLS certificate {cert} or key {key} cannot be read: "
                           f"{exc}") from exc
    return ctx


def _no_password() -> bytes:
    # An encrypted key would otherwise make OpenSSL prompt on the terminal: refuse it.
    raise InvalidInput("the TLS key is encrypted; give an unencrypted PEM key")
