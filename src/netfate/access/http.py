"""A minimal HTTP/1.1 client whose TCP connection starts inside a namespace: what a browser
on a testbed client does (the portal redirect, the login POST). Used by the tests, the demo
and `netfate bench login`; no process is spawned, so its timings are the network's."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from netfate.drivers import netns
from netfate.errors import DriverError

MAX_RESPONSE = 1 << 20


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def request(ns: str, ip: str, method: str, path: str, *, port: int = 80,
            host: str | None = None, body: bytes = b"", headers: dict[str, str] | None = None,
            timeout: float = 5.0) -> Response:
    s = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect((ip, port))
        except OSError as exc:
            raise DriverError(f"HTTP from {ns} to {ip}:{port}: {exc}") from exc
        head = {"Host": host or ip, "Connection": "close", "User-Agent": "netfate-client"}
        head.update(headers or {})
        if body:
            head["Content-Length"] = str(len(body))
        lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in head.items()]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = bytearray()
        while len(data) < MAX_RESPONSE:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise DriverError(f"HTTP from {ns} to {ip}:{port}: {exc}") from exc
    finally:
        s.close()
    raw_head, _, rest = bytes(data).partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError) as exc:
        raise DriverError(f"HTTP from {ns} to {ip}:{port}: no status line") from exc
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return Response(status, hdrs, rest)


def login(ns: str, portal_ip: str, user: str, password: str, timeout: float = 10.0) -> Response:
    """The portal's login form, posted as a browser would, asking for the JSON answer."""
    body = urlencode({"username": user, "password": password}).encode()
    return request(ns, portal_ip, "POST", "/login", body=body, timeout=timeout,
                   headers={"Content-Type": "application/x-www-form-urlencoded",
                            "Accept": "application/json"})
