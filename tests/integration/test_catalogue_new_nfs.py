"""The content filter, the NAT and the load balancer, in each flavour they ship (native,
container and VM), with real traffic on the testbed: blocking and its counters, translation,
stickiness, live updates, and moves with their state into the other flavours (the state
document is the same whatever runs the NF). Each NF runs in a VM once, on its way from native
to container (a VM start under TCG costs seconds and a core: one per NF keeps this CI-sized)."""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate import catalogue, paths
from netfate.drivers import netns, vm_image, vm_qemu
from netfate.errors import NetfateError
from netfate.proc import netns_argv
from netfate.testbed.context import Testbed

from .conftest import Server, tcp_connect

INET = "10.255.0.1"
INET_NS = "fate-h-inet"
CLIENT_NS = "fate-h-client1"
BACKENDS = ("10.255.0.11", "10.255.0.12")
VIP = "10.255.0.100"
NAT_ADDR = "10.90.254.1"

# Answers every line with "<its own address> <the peer's address>": who served, who asked.
WHOAMI = (
    "import socket,sys,threading\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "s.bind((sys.argv[1],int(sys.argv[2]))); s.listen(64)\n"
    "def serve(c):\n"
    "  f=c.makefile('rb')\n"
    "  for _ in f:\n"
    "    c.sendall(('%s %s\\n'%(c.getsockname()[0],c.getpeername()[0])).encode())\n"
    "  c.close()\n"
    "while True:\n"
    "  c,_=s.accept(); threading.Thread(target=serve,args=(c,),daemon=True).start()\n"
)


class Whoami:
    def __init__(self, ns: str, ip: str, port: int) -> None:
        self.proc = subprocess.Popen(netns_argv(ns, ["python3", "-c", WHOAMI, ip, str(port)]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()


def ask(conn: socket.socket) -> tuple[str, str]:
    """(server's address, the address the server saw as the peer) over an open connection."""
    conn.sendall(b"?\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(256)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    local, peer = data.decode().split()
    return local, peer


def connect(ip: str, port: int) -> socket.socket:
    conn = tcp_connect(CLIENT_NS, ip, port, timeout=2.0)
    assert conn is not None, f"no connection to {ip}:{port}"
    conn.settimeout(2.0)
    return conn


@pytest.fixture(scope="module")
def backends(testbed_up: None) -> Iterator[None]:
    """Two backend addresses on the internet host, each with a whoami server; removed after."""
    lo = ["ip", "addr", "add", "dev", "lo"]
    servers = []
    try:
        for i, b in enumerate(BACKENDS):
            subprocess.run(netns_argv(INET_NS, [*lo, f"{b}/32"]), check=False,
                           capture_output=True)
            servers.append(Whoami(INET_NS, b, 8081 + i))
        servers.append(Whoami(INET_NS, INET, 8090))
        time.sleep(0.5)
        yield
    finally:
        for s in servers:
            s.stop()
        for b in BACKENDS:
            subprocess.run(netns_argv(INET_NS, ["ip", "addr", "del", f"{b}/32", "dev", "lo"]),
                           check=False, capture_output=True)


# The flavour each case deploys first, then the ones it moves the NF into with its state.
ROUTES = [pytest.param(("native", "container"), id="native-container"),
          pytest.param(("container", "native"), id="container-native"),
          pytest.param(("native", "vm", "container"), id="native-vm-container")]


@pytest.fixture(scope="module")
def vm_guest() -> str:
    """Build the VM guest once (a no-op when it is there) before a testbed is attached, so
    that the nodes' VM driver finds it; "" or why VMs can't run here."""
    if not Path(vm_qemu.QEMU).is_file():
        return "qemu-system-x86 is not installed (scripts/bootstrap.sh)"
    vm_image.build()
    return ""


@pytest.fixture
def route(request: pytest.FixtureRequest) -> tuple[str, ...]:
    flavours: tuple[str, ...] = request.param
    if "vm" in flavours:
        why = request.getfixturevalue("vm_guest")
        if why:
            pytest.skip(why)
    return flavours


def deploy(tb: Testbed, nf: str, cfg: dict[str, object], flavour: str = "native") -> str:
    sha = catalogue.install(tb.store, nf).sha256
    node_name, mac, access, uplink = tb.access("client1")
    node = tb.node(node_name)
    info = node.deploy_nf("user1", nf, sha, cfg, flavour=flavour)
    node.steer("user:user1", mac, access, uplink, [info])
    return info.instance_id


def replace_with_state(tb: Testbed, nf: str, old: str, cfg: dict[str, object],
                       flavour: str) -> str:
    """A new instance in ``flavour`` that imports the old one's state, steered instead of
    it; the old one removed (a move within the node, the way the coordinator does it across
    nodes and flavours)."""
    node_name, mac, access, uplink = tb.access("client1")
    node = tb.node(node_name)
    src = node.driver_of(old)
    state = src.export_state(old)
    new = node.deploy_nf("user1", f"{nf}-{flavour}", catalogue.install(tb.store, nf).sha256,
                         cfg, flavour=flavour)
    node.driver(flavour).import_state(new.instance_id, state)
    node.steer("user:user1", mac, access, uplink, [new])
    node.remove_nf(old)
    return new.instance_id


def diagnose(tb: Testbed, iid: str) -> str:
    node = tb.node("cpe1")
    st = node.driver_of(iid).status(iid).detail
    logs = sorted((paths.run_dir() / "nodes" / "cpe1" / "nfs" / iid / "run").glob("*.log"))
    return repr({k: v for k, v in st.items() if k != "ports"}) + "".join(
        f"\n--- {f.name}\n{f.read_text()[-1200:]}" for f in logs)


NAT_CFG: dict[str, object] = {"address": f"{NAT_ADDR}/16", "gateway": "10.90.0.1",
                              "internal": ["10.90.1.0/24"]}


@pytest.mark.parametrize("route", ROUTES, indirect=True)
def test_nat_translates_blocks_inbound_and_moves_with_its_bindings(
        route: tuple[str, ...], tb: Testbed, backends: None) -> None:
    flavour = route[0]
    iid = deploy(tb, "nat", NAT_CFG, flavour)
    conn = connect(INET, 8090)
    assert ask(conn) == (INET, NAT_ADDR)  # the internet sees the NAT's address only
    ping = subprocess.run(netns_argv(CLIENT_NS, ["ping", "-c", "1", "-W", "2", INET]),
                          capture_output=True, check=False)
    assert ping.returncode == 0  # ICMP is translated too
    # new connections from the internet to the user are not let in
    inbound = Server(CLIENT_NS, "10.90.1.1", 8070)
    try:
        assert tcp_connect(INET_NS, "10.90.1.1", 8070, timeout=0.7) is None
    finally:
        inbound.stop()
    st = tb.node("cpe1").driver(flavour).status(iid).detail
    assert st["running"] is True and st["translated_connections"] >= 2, st
    assert st["nat_entries"] >= 1 and st["inbound_dropped"]["packets"] >= 1, st
    assert f"{NAT_ADDR}/16" in st["addresses"]
    for to in route[1:]:
        iid = replace_with_state(tb, "nat", iid, NAT_CFG, to)
        conn.settimeout(6.0)  # the router learns the new NF's MAC from its next ARP request
        try:
            answer: tuple[str, str] = ask(conn)
        except TimeoutError:  # say why: the new instance's status and its helper's log
            answer = ("timed out", diagnose(tb, iid))
        assert answer == (INET, NAT_ADDR), to  # the established connection kept its binding
        assert tb.node("cpe1").driver(to).status(iid).detail["nat_entries"] >= 1, to
    conn.close()


LB_CFG: dict[str, object] = {
    "address": "10.90.253.1/16", "gateway": "10.90.0.1",
    "services": [{"name": "web", "vip": VIP, "port": 8080,
                  "backends": [{"address": BACKENDS[0], "port": 8081},
                               {"address": BACKENDS[1], "port": 8082}]}],
}


@pytest.mark.parametrize("route", ROUTES, indirect=True)
def test_load_balancer_spreads_keeps_each_connection_and_moves(
        route: tuple[str, ...], tb: Testbed, backends: None) -> None:
    flavour = route[0]
    iid = deploy(tb, "load-balancer", LB_CFG, flavour)
    conns = [connect(VIP, 8080) for _ in range(6)]
    first = [ask(c)[0] for c in conns]
    assert sorted(first) == sorted(BACKENDS * 3)  # round-robin: three each
    assert all(ask(c)[1] == "10.90.1.1" for c in conns)  # no source NAT: backends see the user
    st = tb.node("cpe1").driver(flavour).status(iid).detail
    svc = st["services"][0]
    assert svc["connections"] == 6, st
    assert [b["connections"] for b in svc["backends"]] == [3, 3], st
    assert [b["active"] for b in svc["backends"]] == [3, 3], st
    # live update: only the first backend for new connections; placed ones stay
    only_first = {**LB_CFG, "services": [{**LB_CFG["services"][0],  # type: ignore[index]
                                          "backends": [{"address": BACKENDS[0],
                                                        "port": 8081}]}]}
    tb.node("cpe1").driver(flavour).update_nf(iid, only_first)
    assert [ask(c)[0] for c in conns] == first
    late = connect(VIP, 8080)
    assert ask(late)[0] == BACKENDS[0]
    # moves with the state: every connection stays on its backend
    for to in route[1:]:
        iid = replace_with_state(tb, "load-balancer", iid, only_first, to)
        assert [ask(c)[0] for c in conns] == first, to
        assert ask(late)[0] == BACKENDS[0], to
    for c in [*conns, late]:
        c.close()


def test_a_config_only_the_nf_can_check_is_refused_with_its_reason(tb: Testbed) -> None:
    """Backends off the NF's subnet without a gateway: the schema cannot see it, the NF's
    own check does, and the deploy fails naming it, leaving nothing behind."""
    with pytest.raises(NetfateError, match="set gateway"):
        deploy(tb, "load-balancer", {"address": "10.90.253.1/16",
                                     "services": LB_CFG["services"]})
    assert tb.node("cpe1").compute.list_nfs() == []


# ---- content filter ---------------------------------------------------------------------------
# A resolver on the internet host: every name is 10.255.0.1 (A), with the query's id.
RESOLVER = (
    "import socket,struct,sys\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind((sys.argv[1],53))\n"
    "while True:\n"
    "  d,a=s.recvfrom(2048)\n"
    "  end=12\n"
    "  while d[end]: end+=1+d[end]\n"
    "  q=d[12:end+5]\n"
    "  rr=struct.pack('!HHHIH',0xC00C,1,1,60,4)+socket.inet_aton(sys.argv[1])\n"
    "  s.sendto(d[:2]+struct.pack('!HHHHH',0x8180,1,1,0,0)+q+rr,a)\n"
)


def dns_query(name: str, qtype: int = 1, qid: int = 0x1234) -> tuple[int, list[bytes], str]:
    """Ask the internet host's resolver from client1: (rcode, answers' rdata, who answered)."""
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(lb)]) + lb.encode() for lb in name.split(".")) + b"\0"
    q += struct.pack("!HH", qtype, 1)
    s = netns.socket_in(CLIENT_NS, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(2.0)
        s.sendto(q, (INET, 53))
        data, addr = s.recvfrom(2048)
    finally:
        s.close()
    rid, flags, _, an = struct.unpack_from("!HHHH", data, 0)
    assert rid == qid
    off = len(q)  # the header, then the question echoed as asked
    rdata = []
    for _ in range(an):
        off += 2  # a name pointer
        _, _, _, rdlen = struct.unpack_from("!HHIH", data, off)
        rdata.append(data[off + 10:off + 10 + rdlen])
        off += 10 + rdlen
    return flags & 0xF, rdata, addr[0]


@pytest.fixture(scope="module")
def resolver(testbed_up: None) -> Iterator[None]:
    proc = subprocess.Popen(netns_argv(INET_NS, ["python3", "-c", RESOLVER, INET]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.4)
        yield
    finally:
        proc.kill()
        proc.wait()


CF_CFG: dict[str, object] = {"block": ["blocked.example"], "allow": ["ok.blocked.example"],
                             "categories": ["test"], "notify": True}


@pytest.mark.parametrize("route", ROUTES, indirect=True)
def test_content_filter_blocks_by_domain_and_category_counts_and_moves(
        route: tuple[str, ...], tb: Testbed, resolver: None) -> None:
    flavour = route[0]
    iid = deploy(tb, "content-filter", CF_CFG, flavour)
    compute = tb.node("cpe1").driver(flavour)
    compute.queue.drain()
    assert dns_query("www.example.org") == (0, [socket.inet_aton(INET)], INET)
    assert dns_query("ok.blocked.example")[0] == 0  # the exception wins
    # blocked: NXDOMAIN at once, from the resolver's address (forged by the NF)
    assert dns_query("ads.blocked.example") == (3, [], INET)
    assert dns_query("www.blocked.test", qtype=28) == (3, [], INET)  # category "test"
    # DNS over TCP would go around the filter: dropped
    tcp = Server(INET_NS, INET, 53)
    try:
        assert tcp_connect(CLIENT_NS, INET, 53, timeout=0.7) is None
    finally:
        tcp.stop()
    time.sleep(0.7)  # counters are written every 0.5 s
    st = compute.status(iid).detail
    assert st["running"] is True and st["daemon_running"] is True, st
    assert (st["queries"], st["allowed"], st["blocked"], st["answered"]) == (4, 2, 2, 2), st
    assert st["by_category"] == {"blocklist": 1, "test": 1}, st
    assert st["by_domain"] == {"blocked.example": 1, "blocked.test": 1}, st
    assert st["by_client"] == {"10.90.1.1": 2}, st
    assert st["recent"][-1]["qname"] == "www.blocked.test" and st["recent"][-1]["qtype"] == "AAAA"
    assert st["dns_tcp_dropped"]["packets"] >= 1, st
    notes = compute.queue.drain()
    assert {(n["type"], n["source"]) for n in notes} == {("content-blocked", "10.90.1.1")}
    # live update to sinkhole answers; the counters stay
    compute.update_nf(iid, {**CF_CFG, "answer": "sinkhole"})
    assert dns_query("x.blocked.example") == (0, [b"\0\0\0\0"], INET)
    # moves: each new instance carries the config and what was counted
    for i, to in enumerate(route[1:]):
        iid = replace_with_state(tb, "content-filter", iid, {}, to)
        assert dns_query(f"y{i}.blocked.example") == (0, [b"\0\0\0\0"], INET), to
        time.sleep(0.7)
        moved = tb.node("cpe1").driver(to).status(iid).detail
        assert moved["blocked"] == 4 + i, (to, moved)
        assert moved["by_category"]["blocklist"] == 3 + i, (to, moved)
