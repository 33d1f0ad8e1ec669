"""Integration tests: root, real namespaces, OVS and traffic. Everything is torn down after,
even on failure, and `testbed down` runs before the first test in case a crashed run left
things behind."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate import catalogue, naming
from netfate.drivers import netns, netns_release
from netfate.proc import netns_argv
from netfate.testbed import lifecycle
from netfate.testbed.context import Testbed
from netfate.testbed.topology import load_topology

pytestmark = pytest.mark.root


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root")
        for item in items:
            if "integration" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def testbed_up() -> Iterator[None]:
    lifecycle.down()
    lifecycle.up(load_topology(), services=False)
    try:
        yield
    finally:
        lifecycle.down()


@pytest.fixture
def tb(testbed_up: None) -> Iterator[Testbed]:
    """The running testbed (data plane only); NFs a test leaves behind are removed after it."""
    if lifecycle.status()["up"] is False:  # a test before this one took it down
        lifecycle.up(load_topology(), services=False)
    t = Testbed.attach()
    try:
        yield t
    finally:
        for name in t.node_names:
            node = t.node(name)
            for nf in node.list_nfs():  # every flavour's
                with contextlib.suppress(Exception):
                    node.remove_nf(nf.instance_id)
            for r in node.network.list_ts_rules(node.lsi):
                if not r.rule_id.startswith("base:"):  # the testbed's own (lifecycle.py)
                    with contextlib.suppress(Exception):
                        node.network.delete_ts_rule(node.lsi, r.rule_id)
        t.close()


@pytest.fixture(scope="module")
def scenario_testbed(testbed_up: None) -> Iterator[None]:
    """For a module whose scenario brings its own topology (or testbed) up and down: the
    default one comes back after."""
    try:
        yield
    finally:
        lifecycle.down()
        lifecycle.up(load_topology(), services=False)


@pytest.fixture
def fw_sha(tb: Testbed) -> str:
    return catalogue.install(tb.store, "firewall").sha256


class Server:
    """A TCP/UDP listener in a host namespace, ended by PID after the test."""

    def __init__(self, ns: str, ip: str, port: int, proto: str = "tcp") -> None:
        code = (
            "import socket,sys\n"
            "ip,port,proto=sys.argv[1],int(sys.argv[2]),sys.argv[3]\n"
            "t=socket.SOCK_STREAM if proto=='tcp' else socket.SOCK_DGRAM\n"
            "s=socket.socket(socket.AF_INET,t)\n"
            "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            "s.bind((ip,port))\n"
            "if proto=='udp':\n"
            "  while True:\n"
            "    d,a=s.recvfrom(2048); s.sendto(d,a)\n"
            "s.listen(16)\n"
            "while True:\n"
            "  c,_=s.accept()\n"
            "  while True:\n"
            "    d=c.recv(65536)\n"
            "    if not d: break\n"
            "    c.sendall(d)\n"
            "  c.close()\n"
        )
        self.proc = subprocess.Popen(
            netns_argv(ns, ["python3", "-c", code, ip, str(port), proto]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        yield started
    finally:
        for s in started:
            s.stop()


tcp_connect = netns.tcp_connect


def echo_ok(s: socket.socket, payload: bytes = b"hello") -> bool:
    try:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(4096)
            if not chunk:
                return False
            got += chunk
        return got == payload
    except OSError:
        return False


def ours_left() -> dict[str, list[str]]:
    """Our namespaces and host links, once the kernel has removed the ports of the NFs this
    process deleted (they go some milliseconds after delete_nf returns; netns_release)."""
    netns_release.wait_released(10)
    return {
        "namespaces": [n for n in netns.list_names() if naming.is_ours(n)],
        "links": netns.list_links(naming.PREFIX),
    }


@pytest.fixture
def tmp_bundle_dir(tmp_path: Path) -> Path:
    return tmp_path
