"""The captive portal API over TLS (RFC 8908 section 3): the testbed's CA and portal
certificate, the checks of a certificate and key at start, and the portal served over
https on loopback, verified against the CA as a device would; over http and https, a
hostile Host gets 400 (RFC 9112 section 3.2)."""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path

import httpx
import pytest

from netfate.access.addressing import capport_url, for_index, user_portal_url
from netfate.access.portal import create_portal_app
from netfate.access.portal_server import PortalServer, listen_socket
from netfate.access.services import AccessServices
from netfate.access.tls import server_context
from netfate.errors import InvalidInput
from netfate.radius.client import AuthResult
from netfate.testbed.tls import PortalPki, portal_pki
from tests.local_http import exchange


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PortalPki:
    return portal_pki(tmp_path_factory.mktemp("tls"))


def test_the_testbed_pki_keeps_its_keys_private_and_is_reused(pki: PortalPki,
                                                              tmp_path: Path) -> None:
    d = pki.cert.parent
    for key in (pki.key, d / "ca.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    before = pki.cert.read_bytes()
    assert portal_pki(d).cert.read_bytes() == before  # valid: reused
    mine = portal_pki(tmp_path / "pki")
    first = mine.cert.read_bytes()
    assert portal_pki(tmp_path / "pki", names=("other.netfate",)).cert.read_bytes() != first
    server_context(pki.cert, pki.key)  # a matching pair loads


def test_bad_certificate_or_key_is_a_clear_error_at_start(pki: PortalPki, tmp_path: Path) -> None:
    other = portal_pki(tmp_path / "other")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    cases = {
        (tmp_path / "missing.pem", pki.key): "does not exist",
        (pki.cert, tmp_path / "missing.key"): "does not exist",
        (tmp_path, pki.key): "is not a file",
        (junk, pki.key): "is not PEM",
        (pki.cert, other.key): "is not the key of certificate",
        (pki.key, pki.key): "cannot be loaded",
    }
    for (cert, key), words in cases.items():
        with pytest.raises(InvalidInput, match=words):
            server_context(cert, key)
    # The access services refuse them before making anything (no namespace, no process).
    cpe = for_index("10.90.0.0/16", "10.90.0.1", "cpe1", 0)
    with pytest.raises(InvalidInput, match="is not the key of certificate"):
        AccessServices(cpe, None, tmp_path / "state", None, "http://127.0.0.1:1",
                       tls=(pki.cert, other.key))
    assert not (tmp_path / "state").exists()


def test_the_api_is_announced_and_served_over_https_only_with_a_certificate(
        pki: PortalPki, tmp_path: Path) -> None:
    cpe = for_index("10.90.0.0/16", "10.90.0.1", "cpe1", 0)
    svc = AccessServices(cpe, None, tmp_path, None, "http://127.0.0.1:1",
                         tls=(pki.cert, pki.key))
    assert f"--dhcp-option=114,{capport_url()}" in svc.dnsmasq.argv()  # RFC 8910
    assert capport_url().startswith("https://portal.netfate/")
    bare = AccessServices(cpe, None, tmp_path, None, "http://127.0.0.1:1")
    assert not any(a.startswith("--dhcp-option=114") for a in bare.dnsmasq.argv())


def test_the_portal_serves_capport_over_tls_verified_against_the_ca(pki: PortalPki) -> None:
    """A real uvicorn with the certificate, on loopback; httpx verifies it against the CA
    for the portal's name, and the API says captive, then not, with seconds remaining."""
    macs = {"127.0.0.1": "02:00:00:00:00:20"}

    def authenticate(user: str, password: str, mac: str) -> AuthResult:
        return AuthResult(password == "pw", "10.90.100.7", "", 600)

    app = create_portal_app("cpe1", "10.90.16.1", authenticate, lambda *a: None,
                            macs.get, capport_api_url=capport_url(),
                            portal_url=user_portal_url())
    sock = listen_socket(None, 0, host="127.0.0.1")
    port = sock.getsockname()[1]
    server = PortalServer(app, sock, tls=(pki.cert, pki.key))
    server.start()
    try:
        ctx = ssl.create_default_context(cafile=str(pki.ca))
        # Connect to loopback, but name the portal (SNI and the certificate check).
        transport = httpx.HTTPTransport(verify=ctx)
        with httpx.Client(transport=transport, timeout=5) as c:
            url = f"https://127.0.0.1:{port}/capport/api"
            ext = {"sni_hostname": "portal.netfate"}
            hdrs = {"Host": "portal.netfate", "Accept": "application/captive+json"}
            r = c.get(url, headers=hdrs, extensions=ext)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("application/captive+json")
            assert r.json() == {"captive": True, "user-portal-url": user_portal_url()}
            r = c.post(f"https://127.0.0.1:{port}/login", headers={
                "Host": "portal.netfate", "Accept": "application/json"},
                data={"username": "alice", "password": "pw"}, extensions=ext)
            assert r.status_code == 200 and r.json()["ok"], r.text
            body = c.get(url, headers=hdrs, extensions=ext).json()
            assert body["captive"] is False and 590 <= body["seconds-remaining"] <= 600
            assert body["user-portal-url"] == user_portal_url()
        # Not trusted without the CA, and not for another name.
        with httpx.Client(timeout=5) as c, pytest.raises(httpx.ConnectError):
            c.get(url, extensions=ext)
        with httpx.Client(transport=httpx.HTTPTransport(verify=ctx), timeout=5) as c, \
                pytest.raises(httpx.ConnectError):
            c.get(url, extensions={"sni_hostname": "evil.example"})
    finally:
        server.stop()


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_the_portal_refuses_a_hostile_host_over_http_and_https(pki: PortalPki,
                                                               https: bool) -> None:
    """The portal serves whatever Host a captive device asks for (a 302 to the login page),
    but not one that is no host: 400 naming it, as on every server of the project
    (netfate.http_protocol; every case is in tests/unit/test_http_protocol.py)."""
    app = create_portal_app("cpe1", "10.90.16.1", lambda *a: AuthResult(False, "", "", 0),
                            lambda *a: None, lambda ip: None, capport_api_url=capport_url(),
                            portal_url=user_portal_url())
    sock = listen_socket(None, 0, host="127.0.0.1")
    port = sock.getsockname()[1]
    server = PortalServer(app, sock, tls=(pki.cert, pki.key) if https else None)
    server.start()
    tls = ssl.create_default_context(cafile=str(pki.ca)) if https else None

    def send(head: bytes) -> tuple[int, bytes]:
        return exchange(port, head + b"Connection: close\r\n\r\n", tls=tls,
                        server_hostname="portal.netfate")

    try:
        for host in (b"portal.netfate", b"example.com", b"10.90.16.1", b"[::1]:8080"):
            status, rest = send(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n")
            assert status in (200, 302), (host, rest[:300])
        for head, words in (
                (b"GET / HTTP/1.1\r\nHost:\r\n", b"is empty"),
                (b"GET / HTTP/1.1\r\nHost: portal netfate\r\n", b"'portal netfate'"),
                (b"GET / HTTP/1.1\r\nHost: a\r\nHost: portal.netfate\r\n", b"multiple Host"),
                (b"GET / HTTP/1.1\r\n", b"Missing mandatory Host"),
                (b"GET http://evil.example/login HTTP/1.1\r\nHost: portal.netfate\r\n",
                 b"'evil.example'")):
            status, rest = send(head)
            assert status == 400 and words in rest, (head, rest[:300])
    finally:
        server.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="netfate access serve needs root")
def test_access_serve_refuses_bad_tls_files_at_start(pki: PortalPki, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing certificate or a key that is not the certificate's: one clear line, exit
    1, nothing made (no namespace, no state)."""
    from typer.testing import CliRunner

    from netfate import paths
    from netfate.cli.main import app

    monkeypatch.setenv("NETFATE_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(paths, "_run_dir", paths.run_dir())
    other = portal_pki(tmp_path / "other")
    base = ["access", "serve", "--node", "tlsbad", "--index", "0",
            "--state-dir", str(tmp_path / "state"),
            "--radius-state-dir", str(tmp_path / "orch")]
    for cert, key, words in ((tmp_path / "none.pem", pki.key, "does not exist"),
                             (pki.cert, other.key, "is not the key of certificate")):
        r = CliRunner().invoke(app, [*base, "--tls-cert", str(cert), "--tls-key", str(key)])
        assert r.exit_code == 1, r.output
        assert words in " ".join(r.output.split()), r.output
    r = CliRunner().invoke(app, [*base, "--tls-cert", str(pki.cert)])
    assert r.exit_code == 1 and "both --tls-cert and --tls-key" in r.output, r.output
    for made in ("state", "orch"):
        assert not (tmp_path / made).exists()


def test_an_expired_or_huge_certificate_is_a_clear_error_at_start(tmp_path: Path) -> None:
    """A certificate past its notAfter (or before its notBefore) loaded fine, and every
    device's CAPPORT request then failed its TLS handshake with nothing said; a
    certificate file of any size was read whole. Both are refused at start, naming why."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal.netfate")])
    keyf = tmp_path / "k.pem"
    keyf.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    for words, (start, end) in {"expired": (dt.datetime(2020, 1, 1), dt.datetime(2020, 2, 1)),
                                "not valid before": (dt.datetime(2999, 1, 1),
                                                     dt.datetime(2999, 2, 1))}.items():
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1)
                .not_valid_before(start).not_valid_after(end)
                .sign(key, hashes.SHA256()))
        certf = tmp_path / "c.pem"
        certf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        with pytest.raises(InvalidInput, match=words):
            server_context(certf, keyf)
    big = tmp_path / "big.pem"
    big.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + b"A" * (2 << 20))
    with pytest.raises(InvalidInput, match="larger than"):
        server_context(big, keyf)
