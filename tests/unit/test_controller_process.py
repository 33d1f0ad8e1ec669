"""The controller process for real (os-ken, its hub, the NATS bridge) against a fake OpenFlow
1.3 switch speaking the wire protocol on loopback: no OVS, no root, no namespaces."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from netfate.bus import subjects
from netfate.bus.messages import ClientSeen, SwitchSynced, UserIdleReport
from netfate.bus.server import EmbeddedNats, free_port
from netfate.controller import pipeline as pl
from netfate.controller.app import datapath_id
from netfate.controller.fake import FakeSwitch, ip_packet, stats_bytes
from netfate.controller.flows import build
from netfate.controller.model import Client, Hop, ServicesAttachment, SwitchState
from netfate.controller.ofmsg import from_stats

PORTS = {"a1": 1, "a2": 2, "up": 10, "svc": 20, "fw1-l": 31, "fw1-w": 32}
U1 = Client(name="user1", mac="02:aa:00:00:00:01", ip="10.90.1.1", port="a1",
          authenticated=True, chain=(Hop(lan="fw1-l", wan="fw1-w"),), idle_timeout=60)
STATE = SwitchState(
    node="cpe1", role="cpe", generation=1, uplink="up", access_ports=("a1", "a2"),
    services=ServicesAttachment(port="svc", mac="02:5e:00:00:00:01", ip="10.90.0.2"), users=(U1,),
)


def _msg(msg_type: int, xid: int, body: bytes = b"") -> bytes:
    return struct.pack(ofp.OFP_HEADER_PACK_STR, ofp.OFP_VERSION, msg_type, 8 + len(body),
                       xid) + body


def _multipart(kind: int, xid: int, body: bytes) -> bytes:
    return _msg(ofp.OFPT_MULTIPART_REPLY, xid,
                struct.pack(ofp.OFP_MULTIPART_REPLY_PACK_STR, kind, 0) + body)


def _match(**fields: Any) -> bytes:
    buf = bytearray()
    parser.OFPMatch(**fields).serialize(buf, 0)
    return bytes(buf)


class WireSwitch:
    """Connects to the controller, answers it like OVS would, keeps flows in a FakeSwitch.
    Reconnects when the controller goes away, as a switch with fail_mode=secure does."""

    def __init__(self, port: int, node: str, ports: dict[str, int]) -> None:
        self.addr = ("127.0.0.1", port)
        self.dpid = datapath_id(node)
        self.ports = ports
        self.table = FakeSwitch(ports)
        self.flow_mods = 0  # flow-mods received in the current session
        self.sessions = 0
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            if self._sock is not None:
                self._sock.close()
        self._thread.join(5)

    def send(self, data: bytes) -> None:
        with self._lock:
            assert self._sock is not None
            self._sock.sendall(data)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                s = socket.create_connection(self.addr, timeout=0.5)
            except OSError:
                time.sleep(0.1)
                continue
            s.settimeout(None)
            self._sock = s
            self.sessions += 1
            self.flow_mods = 0
            with contextlib.suppress(OSError, ConnectionError):
                self.send(_msg(ofp.OFPT_HELLO, 1))
                self._serve(s)
            s.close()

    def _read(self, s: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def _serve(self, s: socket.socket) -> None:
        while not self._stop.is_set():
            head = self._read(s, 8)
            _, kind, length, xid = struct.unpack(ofp.OFP_HEADER_PACK_STR, head)
            body = self._read(s, length - 8)
            if kind == ofp.OFPT_FEATURES_REQUEST:
                self.send(_msg(ofp.OFPT_FEATURES_REPLY, xid, struct.pack(
                    ofp.OFP_SWITCH_FEATURES_PACK_STR, self.dpid, 0, 254, 0, 0, 0)))
            elif kind == ofp.OFPT_ECHO_REQUEST:
                self.send(_msg(ofp.OFPT_ECHO_REPLY, xid, body))
            elif kind == ofp.OFPT_BARRIER_REQUEST:
                self.send(_msg(ofp.OFPT_BARRIER_REPLY, xid))
            elif kind == ofp.OFPT_MULTIPART_REQUEST:
                (mp,) = struct.unpack_from("!H", body)
                if mp == ofp.OFPMP_PORT_DESC:
                    self.send(_multipart(mp, xid, b"".join(
                        struct.pack(ofp.OFP_PORT_PACK_STR, no, b"\x02" * 6, name.encode(),
                                    0, 0, 0, 0, 0, 0, 0, 0)
                        for name, no in self.ports.items())))
                elif mp == ofp.OFPMP_FLOW:
                    self.send(_multipart(mp, xid, b"".join(
                        stats_bytes(f) for f in list(self.table.flows.values()))))
            elif kind == ofp.OFPT_FLOW_MOD:
                self.flow_mods += 1
                dp = type("DP", (), {"ofproto": ofp, "ofproto_parser": parser, "id": 0})
                mod = ofproto_parser.msg(dp, ofp.OFP_VERSION, kind, length, xid, head + body)
                f = from_stats(mod)
                if mod.command == ofp.OFPFC_ADD:
                    self.table.apply([f])
                elif mod.command == ofp.OFPFC_DELETE_STRICT:
                    self.table.delete([f])

    # -- what the data plane tells the controller --------------------------------------------
    def flow_removed_idle(self, cookie: int) -> None:
        body = struct.pack(ofp.OFP_FLOW_REMOVED_PACK_STR0, cookie, pl.P_IDLE,
                           ofp.OFPRR_IDLE_TIMEOUT, pl.ACTIVITY, 100, 0, 60, 0, 5, 500)
        self.send(_msg(ofp.OFPT_FLOW_REMOVED, 0, body + _match(metadata=(4, pl.USER_MASK))))

    def packet_in(self, in_port: int, frame: bytes) -> None:
        body = struct.pack(ofp.OFP_PACKET_IN_PACK_STR, ofp.OFP_NO_BUFFER, len(frame),
                           ofp.OFPR_ACTION, 0, 0)
        self.send(_msg(ofp.OFPT_PACKET_IN, 0, body + _match(in_port=in_port) + b"\0\0" + frame))


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[EmbeddedNats]:
    s = EmbeddedNats(tmp_path / "nats")
    s.start()
    try:
        yield s
    finally:
        s.stop()


class Controller:
    """The controller in its own process, started and ended by its PID."""

    def __init__(self, nats_url: str, port: int, log: Path) -> None:
        code = ("import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
                "from netfate.controller.run import run_controller\n"
                f"run_controller({nats_url!r}, {port})\n")
        self.log = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=self.log,
                                     stderr=self.log, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


async def _until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_controller_process_syncs_a_switch_survives_a_restart_and_reports(
    bus: EmbeddedNats, tmp_path: Path,
) -> None:
    of_port = free_port()
    switch = WireSwitch(of_port, "cpe1", PORTS)
    want = build(STATE, PORTS).flows

    async def scenario() -> None:
        nc = await nats.connect(bus.url)
        got: dict[str, list[bytes]] = {}

        async def record(m: Any) -> None:
            got.setdefault(m.subject.split(".")[-1], []).append(m.data)

        for subj in (subjects.CONTROLLER_HELLO, subjects.controller_synced("cpe1"),
                     subjects.CONTROLLER_IDLE, subjects.controller_client_seen("cpe1")):
            await nc.subscribe(subj, cb=record)
        await nc.flush()

        async def publish_desired_on_hello(n: int) -> None:
            # what the orchestrator does: every hello gets the full desired state again
            await _until(lambda: len(got.get("hello", [])) >= n, 20, "the controller's hello")
            await nc.publish(subjects.controller_desired("cpe1"),
                             STATE.model_dump_json().encode())

        ctl = Controller(bus.url, of_port, tmp_path / "controller.log")
        try:
            switch.start()
            await publish_desired_on_hello(1)
            await _until(lambda: bool(got.get("synced")), 20, "the first sync")
            first = SwitchSynced.model_validate_json(got["synced"][0])
            assert first.generation == 1 and first.added == len(want) and not first.errors
            assert len(switch.table.flows) == len(want)
            pkt = ip_packet("a1", U1.mac, "02:bb:00:00:00:01", "10.90.1.1", "10.255.0.1")
            assert switch.table.trace(pkt, {"fw1-l": "fw1-w"}).path == ["fw1-l", "up"]
        finally:
            ctl.stop()
        # a new controller process: the switch reconnects, nothing is re-installed
        ctl = Controller(bus.url, of_port, tmp_path / "controller.log")
        try:
            await publish_desired_on_hello(2)
            await _until(lambda: len(got.get("synced", [])) >= 2, 20, "the sync after restart")
            again = SwitchSynced.model_validate_json(got["synced"][1])
            assert (again.added, again.deleted, again.unchanged) == (0, 0, len(want))
            assert switch.sessions >= 2 and switch.flow_mods == 0
            # idleness and new clients, from the data plane to the bus
            switch.flow_removed_idle(pl.cookie(pl.Kind.IDLE, "user1"))
            frame = bytes.fromhex("ffffffffffff02aa000000090800") + bytes(50)
            switch.packet_in(PORTS["a2"], frame)
            await _until(lambda: bool(got.get("idle")) and bool(got.get("client_seen")), 20,
                         "idle and client reports")
            idle = UserIdleReport.model_validate_json(got["idle"][0])
            assert (idle.node, idle.user, idle.mac) == ("cpe1", "user1", U1.mac)
            seen = ClientSeen.model_validate_json(got["client_seen"][0])
            assert (seen.mac, seen.port) == ("02:aa:00:00:00:09", "a2")
        finally:
            ctl.stop()
            switch.stop()
            await nc.close()

    asyncio.run(scenario())
