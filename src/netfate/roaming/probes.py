"""Traffic that shows what a handover does to a client: a UDP probe stream (one datagram per
millisecond, numbered) whose largest silence is the handover gap, and a long-lived TCP
connection that must survive. Sender and receiver are threads of this process with sockets
inside the client's and the internet host's namespaces: timestamps share one clock."""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from netfate.drivers import netns

_HDR = struct.Struct("!Qd")


@dataclass
class Gap:
    ms: float                 # the longest silence in the stream, in ms
    start: float              # wall-clock time of the last datagram before it
    end: float                # ... and of the first one after it
    lost: int                 # datagrams sent but never received


class UdpProbe:
    """client -> internet host, `rate` datagrams per second, arrival times recorded."""

    def __init__(self, client_ns: str, server_ns: str, server_ip: str, port: int = 7777,
                 rate: int = 1000) -> None:
        self.rx = netns.socket_in(server_ns, socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.rx.bind((server_ip, port))
        self.rx.settimeout(0.2)
        self.tx = netns.socket_in(client_ns, socket.AF_INET, socket.SOCK_DGRAM)
        self.dst = (server_ip, port)
        self.interval = 1.0 / rate
        self.sent = 0
        self.arrivals: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True),
                         threading.Thread(target=self._recv, daemon=True)]

    def start(self) -> UdpProbe:
        for t in self._threads:
            t.start()
        return self

    def _send(self) -> None:
        seq = 0
        nxt = time.monotonic()
        while not self._stop.is_set():
            try:
                self.tx.sendto(_HDR.pack(seq, time.time()), self.dst)
            except OSError:
                pass  # no route while the link is down: a lost probe, like on the air
            seq += 1
            self.sent = seq
            nxt += self.interval
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.05:
                nxt = time.monotonic()  # fell behind (a busy machine): don't burst

    def _recv(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.rx.recv(64)
            except OSError:
                continue
            if len(data) >= _HDR.size:
                self.arrivals.append((_HDR.unpack_from(data)[0], time.time()))

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(1)
        self.tx.close()
        self.rx.close()

    def received_since(self, t: float) -> int:
        return sum(1 for _, at in list(self.arrivals) if at >= t)

    def gap(self, after: float = 0.0, before: float = float("inf")) -> Gap:
        """The longest silence between arrivals within [after, before]."""
        times = sorted(at for _, at in list(self.arrivals) if after <= at <= before)
        best = Gap(0.0, after, after, 0)
        for a, b in itertools.pairwise(times):
            if (b - a) * 1000 > best.ms:
                best = Gap(round((b - a) * 1000, 2), a, b, 0)
        seqs = {s for s, _ in list(self.arrivals)}
        best.lost = self.sent - len(seqs)
        return best

    def first_after(self, t: float) -> float | None:
        times = [at for _, at in list(self.arrivals) if at >= t]
        return min(times) if times else None


class EchoServer:
    """TCP echo on the internet host."""

    def __init__(self, ns: str, ip: str, port: int) -> None:
        self.sock = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(16)
        self.sock.settimeout(0.3)
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@dataclass
class TcpStream:
    """A long-lived TCP connection sending a numbered line every `period` seconds and
    checking each echo. `alive` is False once the connection fails (reset, timeout)."""

    client_ns: str
    ip: str
    port: int
    period: float = 0.01
    sock: socket.socket | None = None
    echoed: int = 0
    error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, timeout: float = 2.0) -> TcpStream:
        self.sock = netns.tcp_connect(self.client_ns, self.ip, self.port, timeout=timeout)
        if self.sock is None:
            raise OSError(f"no TCP connection from {self.client_ns} to {self.ip}:{self.port}")
        self.sock.settimeout(30)  # TCP retransmits across the handover; give it time
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self.sock is not None
        n = 0
        buf = b""
        while not self._stop.is_set():
            line = f"{n}\n".encode()
            try:
                self.sock.sendall(line)
                while b"\n" not in buf:
                    chunk = self.sock.recv(4096)
                    if not chunk:
                        raise OSError("connection closed by the peer")
                    buf += chunk
            except OSError as exc:
                self.error = str(exc) or type(exc).__name__
                return
            got, _, buf = buf.partition(b"\n")
            if got != line.rstrip(b"\n"):
                self.error = f"echo mismatch: sent {n}, got {got[:20]!r}"
                return
            self.echoed = n = n + 1
            time.sleep(self.period)

    @property
    def alive(self) -> bool:
        return self.error is None and self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3)
        if self.sock is not None:
            self.sock.close()


def reachable(ns: str, ip: str, port: int, timeout: float = 0.7) -> bool:
    """Whether a TCP connection from the namespace to ip:port opens (then closes it)."""
    s = netns.tcp_connect(ns, ip, port, timeout=timeout)
    if s is None:
        return False
    s.close()
    return True
