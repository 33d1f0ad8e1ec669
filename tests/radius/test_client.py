"""The portal's RADIUS client against a fake RADIUS server (a UDP socket on loopback) that
answers with good, forged or broken replies: only an authentic reply is ever taken."""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest
from pyrad import packet  # type: ignore[import-untyped]

from netfate.radius.client import (
    AuthResult,
    RadiusClient,
    RadiusError,
    RadiusTimeout,
    authenticate,
    dictionary,
    raw_attribute_types,
)
from tests.radius.conftest import SECRET

Answer = Callable[[bytes], list[bytes]]  # request datagram -> reply datagrams to send
Forge = Callable[[bytes], bytes]  # request datagram -> one reply datagram
KEY = SECRET.encode()


class FakeRadius:
    """A RADIUS 'server' that answers each datagram with what `answer` makes of it."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            self.requests.append(data)
            for reply in self.answer(data):
                self.sock.sendto(reply, peer)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def fake() -> Iterator[Callable[[Answer], FakeRadius]]:
    servers: list[FakeRadius] = []

    def make(answer: Answer) -> FakeRadius:
        servers.append(FakeRadius(answer))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def request_of(data: bytes) -> packet.AuthPacket:
    return packet.AuthPacket(packet=data, secret=KEY, dict=dictionary())


def good_reply(data: bytes, code: int = packet.AccessAccept, ma: bool = True,
               **attrs: object) -> bytes:
    req = request_of(data)
    reply = req.CreateReply(message_authenticator=ma)
    reply.code = code
    for k, v in attrs.items():
        reply[k.replace("_", "-")] = v
    return bytes(reply.ReplyPacket())


def resign(raw: bytes, request_authenticator: bytes) -> bytes:
    """Recompute the Response Authenticator over raw (as the holder of the secret would)."""
    auth = hashlib.md5(raw[:4] + request_authenticator + raw[20:] + KEY).digest()
    return raw[:4] + auth + raw[20:]


def flip_ma(raw: bytes) -> bytes:
    """raw with one bit of its Message-Authenticator flipped."""
    pos = 20
    while pos < len(raw):
        t, length = raw[pos], raw[pos + 1]
        if t == 80:
            b = bytearray(raw)
            b[pos + 2] ^= 0x01
            return bytes(b)
        pos += length
    raise AssertionError("no Message-Authenticator")


def accept(data: bytes) -> list[bytes]:
    return [good_reply(data, Framed_IP_Address="10.90.100.9", Session_Timeout=600,
                       Reply_Message="welcome")]


def client(port: int, timeout: float = 0.3, retries: int = 1,
           require_message_authenticator: bool = True) -> RadiusClient:
    return RadiusClient("127.0.0.1", port, SECRET, timeout=timeout, retries=retries,
                        require_message_authenticator=require_message_authenticator)


def test_a_good_reply_is_taken(fake: Callable[[Answer], FakeRadius]) -> None:
    srv = fake(accept)
    r = client(srv.port).authenticate("user1", "pw", "aa-bb-cc-dd-ee-ff", "cpe1")
    assert r == AuthResult(True, "10.90.100.9", "welcome", 600, rtt=r.rtt)
    req = request_of(srv.requests[0])
    # What the portal sends: PAP, MAC, NAS, and a Message-Authenticator that verifies.
    assert req["User-Name"] == ["user1"]
    assert req.PwDecrypt(req["User-Password"][0]) == "pw"
    assert req["Calling-Station-Id"] == ["aa-bb-cc-dd-ee-ff"]
    assert req["NAS-Identifier"] == ["cpe1"]
    assert req.message_authenticator and req.verify_message_authenticator()


def test_a_reject_is_taken_with_its_message(fake: Callable[[Answer], FakeRadius]) -> None:
    srv = fake(lambda d: [good_reply(d, packet.AccessReject, Reply_Message="nope")])
    r = client(srv.port).authenticate("user1", "pw")
    assert (r.accepted, r.framed_ip, r.reply_message) == (False, None, "nope")


@pytest.mark.parametrize("forge,why", [
    (lambda d: bytes(bytearray(good_reply(d))[:4]) + bytes(16) + good_reply(d)[20:],
     "bad Response Authenticator"),
    (lambda d: resign(flip_ma(good_reply(d, Framed_IP_Address="10.6.6.6")),
                      request_of(d).authenticator),
     "bad Message-Authenticator"),
    (lambda d: good_reply(d, ma=False, Framed_IP_Address="10.6.6.6"),
     "no Message-Authenticator"),
    (lambda d: b"\x02" + d[1:2] + b"\x00\x10" + bytes(12), "too short"),
    (lambda d: b"\x02" + bytes([d[1] ^ 1]) + good_reply(d)[2:], "another request's id"),
    (lambda d: good_reply(d)[:-3], "undecodable"),
], ids=["response-authenticator", "message-authenticator", "no-message-authenticator",
        "too-short", "other-id", "truncated"])
def test_a_forged_or_broken_accept_is_ignored(fake: Callable[[Answer], FakeRadius],
                                              forge: Forge, why: str) -> None:
    srv = fake(lambda d: [forge(d)])
    with pytest.raises(RadiusTimeout, match="ignored 2 invalid replies") as exc:
        client(srv.port, retries=1).authenticate("user1", "pw")
    assert f"({why})" in str(exc.value)
    # The same packet was retransmitted (same id and authenticator): 1 + retries sends.
    assert len(srv.requests) == 2 and srv.requests[0] == srv.requests[1]


def test_a_forged_reply_before_the_real_one_does_not_stop_it(
        fake: Callable[[Answer], FakeRadius]) -> None:
    def forged_then_real(d: bytes) -> list[bytes]:
        forged = bytearray(good_reply(d, Framed_IP_Address="10.6.6.6"))
        forged[4] ^= 0xFF
        return [bytes(forged), good_reply(d, packet.AccessReject, Reply_Message="real")]

    srv = fake(forged_then_real)
    r = client(srv.port).authenticate("user1", "pw")
    assert (r.accepted, r.reply_message, r.framed_ip) == (False, "real", None)


def test_a_reply_signed_with_another_secret_is_ignored(
        fake: Callable[[Answer], FakeRadius]) -> None:
    def other_secret(d: bytes) -> list[bytes]:
        req = packet.AuthPacket(packet=d, secret=b"another-secret-0123", dict=dictionary())
        reply = req.CreateReply()
        return [bytes(reply.ReplyPacket())]

    srv = fake(other_secret)
    with pytest.raises(RadiusTimeout, match="ignored"):
        client(srv.port).authenticate("user1", "pw")


def test_without_message_authenticator_enforcement_a_reply_without_one_passes(
        fake: Callable[[Answer], FakeRadius]) -> None:
    srv = fake(lambda d: [good_reply(d, ma=False)])
    r = client(srv.port, require_message_authenticator=False).authenticate("user1", "pw")
    assert r.accepted
    # ...but one that has a wrong Message-Authenticator is still dropped.
    srv2 = fake(lambda d: [resign(flip_ma(good_reply(d)), request_of(d).authenticator)])
    with pytest.raises(RadiusTimeout):
        client(srv2.port, require_message_authenticator=False).authenticate("user1", "pw")


def test_no_server_is_a_clear_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RadiusTimeout, match=r"no valid RADIUS reply .* after 3 attempt\(s\)"):
        client(port, timeout=0.1, retries=2).authenticate("user1", "pw")


def test_a_silent_server_times_out_after_every_attempt(
        fake: Callable[[Answer], FakeRadius]) -> None:
    srv = fake(lambda d: [])
    with pytest.raises(RadiusTimeout) as exc:
        client(srv.port, timeout=0.1, retries=2).authenticate("user1", "pw")
    assert "ignored" not in str(exc.value)
    assert len(srv.requests) == 3


def test_challenge_is_an_error_not_an_accept(fake: Callable[[Answer], FakeRadius]) -> None:
    srv = fake(lambda d: [good_reply(d, packet.AccessChallenge)])
    with pytest.raises(RadiusError, match="unexpected RADIUS reply code 11"):
        client(srv.port).authenticate("user1", "pw")


@pytest.mark.parametrize("user,password", [("", "pw"), ("u", ""), ("u", "x" * 129),
                                           ("u" * 254, "pw")])
def test_bad_credentials_are_refused_before_sending(user: str, password: str) -> None:
    with pytest.raises(RadiusError, match="must be"):
        client(9).authenticate(user, password)


def test_status_server_and_async(fake: Callable[[Answer], FakeRadius]) -> None:
    import asyncio

    srv = fake(lambda d: [good_reply(d)] if d[0] == packet.StatusServer else accept(d))
    c = client(srv.port)
    assert c.status()
    assert asyncio.run(c.authenticate_async("user1", "pw")).accepted
    assert authenticate("user1", "pw", None, None, host="127.0.0.1", port=srv.port,
                        secret=SECRET, timeout=0.3).framed_ip == "10.90.100.9"
    forged = fake(lambda d: [good_reply(d, ma=False)])
    assert not client(forged.port, timeout=0.1, retries=0).status()
    assert SECRET not in repr(c)


def test_raw_attribute_types() -> None:
    raw = bytes(20) + bytes([1, 3, 65, 80, 18]) + bytes(16)
    assert raw_attribute_types(raw) == [1, 80]
    assert raw_attribute_types(bytes(20) + bytes([1, 0])) == []
    assert struct.calcsize("!BBH") == 4
