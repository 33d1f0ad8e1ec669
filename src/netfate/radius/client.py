"""The captive portal's RADIUS client (pyrad packets, RFC 2865 PAP).

Every Access-Request carries a Message-Authenticator, and every reply must carry a valid one
as well as a valid Response Authenticator (the BlastRADIUS fix, CVE-2024-3596). A reply that
fails either check, or comes from elsewhere, or does not decode, is ignored as if it never
came: the request is sent again, and after the last attempt RadiusTimeout says how many bad
replies were dropped. A forged Access-Accept is never taken.

    client = RadiusClient("127.0.0.1", 1812, secret)
    result = client.authenticate("user1", "pw", mac="aa:bb:cc:dd:ee:ff", nas_id="cpe1")
    if result.accepted: ... result.framed_ip ...
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
import socket
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pyrad import packet  # type: ignore[import-untyped]
from pyrad.dictionary import Dictionary  # type: ignore[import-untyped]

from netfate.credentials import PASSWORD_MAX_BYTES as MAX_PASSWORD_BYTES  # RFC 2865 5.2
from netfate.errors import NetfateError


class RadiusError(NetfateError):
    """The RADIUS exchange failed (no server, a bad answer, a request that can't be sent)."""


class RadiusTimeout(RadiusError):
    """No valid reply after every attempt."""


@dataclass(frozen=True)
class AuthResult:
    accepted: bool
    framed_ip: str | None
    reply_message: str
    session_timeout: int | None
    rtt: float = 0.0
    """Seconds from the first send to the valid reply."""
    idle_timeout: int | None = None
    """Idle-Timeout (RFC 2865 5.28), seconds, if the Accept had one."""


@functools.cache
def dictionary() -> Any:
    """The RFC 2865/2866 dictionary shipped with the package (parsed once)."""
    with resources.as_file(resources.files("netfate.radius") / "dictionary") as path:
        return Dictionary(str(path))


class RadiusClient:
    """A RADIUS client of one server. Thread-safe: each request has its own socket.

    ``timeout`` is the wait for a reply after each send; a request is sent up to
    ``1 + retries`` times (the same packet, so the server sees retransmissions).
    ``require_message_authenticator`` (default on) drops replies without one; replies that
    have one always have it checked.
    """

    def __init__(self, host: str, port: int, secret: str | bytes, *, timeout: float = 2.0,
                 retries: int = 2, require_message_authenticator: bool = True) -> None:
        if timeout <= 0 or retries < 0:
            raise ValueError("timeout > 0 and retries >= 0")
        self.host = host
        self.port = port
        self.secret = secret.encode() if isinstance(secret, str) else secret
        if not self.secret:
            raise ValueError("the RADIUS shared secret is empty")
        self.timeout = timeout
        self.retries = retries
        self.require_ma = require_message_authenticator

    def __repr__(self) -> str:
        return f"RadiusClient({self.host!r}, {self.port}, secret=***)"

    # -- requests --------------------------------------------------------------------------
    def authenticate(self, user: str, password: str, mac: str | None = None,
                     nas_id: str | None = None) -> AuthResult:
        """PAP login of ``user`` from the client ``mac`` (Calling-Station-Id) at the access
        node ``nas_id`` (NAS-Identifier). AuthResult.accepted is False on Access-Reject;
        RadiusTimeout if no valid reply came; RadiusError on anything else."""
        raw_pw = password.encode("utf-8")
        if not user or len(user.encode("utf-8")) > 253:
            raise RadiusError("the user name must be 1-253 bytes")
        if not raw_pw or len(raw_pw) > MAX_PASSWORD_BYTES:
            raise RadiusError(f"the password must be 1-{MAX_PASSWORD_BYTES} bytes")
        req = self._packet(packet.AccessRequest)
        req["User-Name"] = user
        req["User-Password"] = req.PwCrypt(password)
        if mac:
            req["Calling-Station-Id"] = mac
        if nas_id:
            req["NAS-Identifier"] = nas_id
        start = time.monotonic()
        reply = self._exchange(req)
        rtt = time.monotonic() - start
        if reply.code not in (packet.AccessAccept, packet.AccessReject):
            raise RadiusError(f"unexpected RADIUS reply code {reply.code} (only PAP with "
                              "Access-Accept/Reject is supported)")
        ip = reply.get("Framed-IP-Address")
        st = reply.get("Session-Timeout")
        it = reply.get("Idle-Timeout")
        return AuthResult(
            accepted=reply.code == packet.AccessAccept,
            framed_ip=str(ip[0]) if ip else None,
            reply_message=" ".join(str(m) for m in reply.get("Reply-Message", [])),
            session_timeout=int(st[0]) if st else None,
            rtt=rtt,
            idle_timeout=int(it[0]) if it else None,
        )

    async def authenticate_async(self, user: str, password: str, mac: str | None = None,
                                 nas_id: str | None = None) -> AuthResult:
        """authenticate() in a worker thread, for asyncio callers."""
        return await asyncio.to_thread(self.authenticate, user, password, mac, nas_id)

    def status(self) -> bool:
        """Status-Server (RFC 5997): whether the server answers, validly signed."""
        try:
            self._exchange(self._packet(packet.StatusServer))
        except RadiusError:
            return False
        return True

    # -- the exchange ----------------------------------------------------------------------
    @property
    def dictionary(self) -> Any:
        return dictionary()

    @staticmethod
    def next_id() -> int:
        return secrets.randbelow(256)

    def exchange(self, req: Any) -> tuple[Any, float]:
        """Send a pyrad request packet built with this client's secret and dictionary;
        (its verified reply, seconds from the first send). RadiusTimeout/RadiusError as
        authenticate()."""
        start = time.monotonic()
        reply = self._exchange(req)
        return reply, time.monotonic() - start

    def _packet(self, code: int) -> Any:
        return packet.AuthPacket(code=code, id=secrets.randbelow(256), secret=self.secret,
                                 dict=dictionary(), message_authenticator=True)

    def _exchange(self, req: Any) -> Any:
        try:
            data = req.RequestPacket()
        except (ValueError, TypeError, packet.PacketError) as e:
            raise RadiusError(f"cannot encode the RADIUS request: {e}") from e
        bad: list[str] = []
        try:
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0][0]
        except OSError as e:
            raise RadiusError(f"RADIUS server {self.host}: {e}") from e
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            # Connected: the kernel drops datagrams from any other address and port.
            sock.connect((self.host, self.port))
            for _attempt in range(1 + self.retries):
                try:
                    sock.send(data)
                except OSError as e:
                    raise RadiusError(f"cannot send to {self.host}:{self.port}: {e}") from e
                deadline = time.monotonic() + self.timeout
                while (left := deadline - time.monotonic()) > 0:
                    sock.settimeout(left)
                    try:
                        raw = sock.recv(4096)
                    except TimeoutError:
                        break
                    except ConnectionRefusedError:  # ICMP port unreachable: not up (yet)
                        time.sleep(min(left, 0.05))
                        continue
                    reply, why = self._verify(req, raw)
                    if reply is not None:
                        return reply
                    bad.append(why)
        note = f"; ignored {len(bad)} invalid repl{'y' if len(bad) == 1 else 'ies'} " \
               f"({', '.join(sorted(set(bad)))})" if bad else ""
        raise RadiusTimeout(f"no valid RADIUS reply from {self.host}:{self.port} after "
                            f"{1 + self.retries} attempt(s) of {self.timeout:g} s{note}")

    def _verify(self, req: Any, raw: bytes) -> tuple[Any, str]:
        """The decoded reply if it answers ``req`` and is authentic, else (None, why)."""
        if len(raw) < 20:
            return None, "too short"
        if raw[1] != req.id:
            return None, "another request's id"
        try:
            reply = req.CreateReply(packet=raw)
        except Exception:  # whatever an untrusted datagram makes the decoder raise
            return None, "undecodable"
        try:
            ok = req.VerifyReply(reply, raw, enforce_ma=self.require_ma)
        except Exception:  # pyrad raises bare Exception for odd Message-Authenticators
            ok = False
        if not ok:
            length = int.from_bytes(raw[2:4], "big")
            expected = hashlib.md5(raw[:4] + req.authenticator + raw[20:length] + self.secret,
                                   usedforsecurity=False).digest()
            if not hmac.compare_digest(expected, raw[4:20]):
                return None, "bad Response Authenticator"
            if 80 in raw_attribute_types(raw[:length]):
                return None, "bad Message-Authenticator"
            if self.require_ma:
                return None, "no Message-Authenticator"
            return None, "unsolicited Proxy-State"
        return reply, ""


def raw_attribute_types(raw: bytes) -> list[int]:
    """The attribute type codes of a raw RADIUS packet, as far as they parse."""
    types, pos = [], 20
    while pos + 2 <= len(raw):
        t, length = raw[pos], raw[pos + 1]
        if length < 2:
            break
        types.append(t)
        pos += length
    return types


def authenticate(user: str, password: str, mac: str | None, nas_id: str | None, *,
                 host: str, port: int, secret: str | bytes, timeout: float = 2.0,
                 retries: int = 2) -> AuthResult:
    """One PAP login with a RadiusClient made for it."""
    return RadiusClient(host, port, secret, timeout=timeout, retries=retries).authenticate(
        user, password, mac, nas_id)
