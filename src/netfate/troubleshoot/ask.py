"""Ask "where is it broken?" for one user (and a destination) on the testbed's data plane.

The operation of the Glasgow paper's troubleshooting case (section V.B): deploy operator-owned
probes (the catalogue's troubleshooter, owner `operator`, netfate.owners) at the user's CPE
(in front of their chain), at the PE (where their traffic enters it) and at the DC (a
reference off the path); from each, ping and trace toward the destination and capture the
user's flow for a bounded time and packet count; read each node's flow tables (the network
driver's dump), the links' port states, and the user's NFs' configuration and counters
before and after; hand it all to the pure `report.first_break`; remove the probes and their
rules, whatever happened. Requests reach the probes as their config (a file the driver
writes, NF_CONFIG), never as shell text.

Runs on a testbed up without services (the user's chain is TS rules on their CPE, as
`netfate scenario ddos` builds it). Bounded: every tool has its own limit and the whole
question `timeout_s`; what has not answered by then is reported as not measured.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from netfate import catalogue
from netfate.drivers import ovs_port_states as links
from netfate.errors import InvalidInput, NetfateError, NotFound
from netfate.interfaces import NFInfo
from netfate.owners import OPERATOR
from netfate.testbed.context import Testbed
from netfate.troubleshoot import report, splice

PROBE_NF = "troubleshooter"
Say = Callable[[str], None]


@dataclass(frozen=True)
class Question:
    user: str                     # the user's device (a client host of the testbed)
    dest: str | None = None       # IPv4; None: the topology's internet address
    port: int | None = None       # the user's flow is TCP to this port (None: any traffic)
    seconds: int = 3              # each capture's duration
    packets: int = 50             # each capture's packet bound
    timeout_s: float = 25.0       # the whole question, probes up to probes gone


@dataclass
class Probe:
    point: str
    role: str
    on_path: bool
    info: NFInfo
    config: dict[str, Any]
    rules: list[str] = field(default_factory=list)  # its TS rule ids on the node


def _addresses(tb: Testbed, n: int) -> list[str]:
    """n free addresses of the topology's subnet for the probes (from its top down)."""
    topo = tb.topology
    net = ipaddress.IPv4Network(topo.subnet)
    taken = {str(topo.gateway)} | {topo.host_address(h) for h in topo.hosts if h.address}
    out = []
    for a in reversed(list(net.hosts())[-64:]):
        if str(a) not in taken:
            out.append(f"{a}/{net.prefixlen}")
        if len(out) == n:
            return out
    raise InvalidInput(f"no {n} free addresses at the top of {topo.subnet} for the probes")


def _check_dest(tb: Testbed, h: Any, dest: str) -> None:
    """InvalidInput unless ``dest`` is an address a user's flow can go to: unicast, not
    loopback/unspecified/reserved, not the subnet's network or broadcast address, not the
    user's own address."""
    ip = ipaddress.IPv4Address(dest)
    net = ipaddress.IPv4Network(tb.topology.subnet)
    why = ("not a unicast address" if ip.is_multicast or ip.is_unspecified or ip.is_loopback
           or ip.is_reserved or ip == ipaddress.IPv4Address("255.255.255.255")
           else f"the network or broadcast address of {net}"
           if ip in (net.network_address, net.broadcast_address)
           else "the user's own address" if dest == tb.topology.host_address(h) else "")
    if why:
        raise InvalidInput(f"destination {dest}: {why}")


def _check(tb: Testbed, q: Question) -> tuple[str, str, str]:
    """(the user's address, the destination, the user's MAC); InvalidInput otherwise."""
    try:
        h = tb.host(q.user)
    except NotFound as exc:
        raise InvalidInput(f"user {q.user!r}: {exc}") from None
    if h.role != "client":
        raise InvalidInput(f"user {q.user!r} is {h.a_role}, not a user's device")
    dest = q.dest or tb.topology.internet_address
    try:
        dest = str(ipaddress.IPv4Address(dest))
    except ValueError:
        raise InvalidInput(f"destination {q.dest!r} is not an IPv4 address") from None
    _check_dest(tb, h, dest)
    if q.port is not None and not 1 <= q.port <= 65535:
        raise InvalidInput(f"port {q.port}: must be 1-65535")
    if not 1 <= q.seconds <= 30 or not 1 <= q.packets <= 1000:
        raise InvalidInput("capture: 1-30 seconds and 1-1000 packets")
    return tb.topology.host_address(h), dest, h.mac or h.default_mac()


def _toward(tb: Testbed, node: str, dest: str) -> str:
    """The port of `node`'s LSI the user's traffic to `dest` leaves by: the destination
    host's own port when it hangs off that node (for an address outside the subnet, the
    internet host's: it holds the gateway), else the node's uplink."""
    topo = tb.topology
    outside = ipaddress.IPv4Address(dest) not in ipaddress.IPv4Network(topo.subnet)
    for h in topo.hosts:
        if h.attach == node and (topo.host_address(h) == dest or (
                h.role == "internet" and outside)):
            return topo.host_port(h)
    up = topo.node(node).uplink_port
    if up is None:
        raise InvalidInput(f"no way from {node} toward {dest}: no host there has it and "
                           f"{node} has no uplink")
    return up


def _deploy(tb: Testbed, q: Question, dest: str, mac: str, say: Say,
            probes: list[Probe]) -> None:
    """Deploy the probes, appending each to `probes` as soon as it exists (so a failure
    half-way leaves the caller a list of what to remove)."""
    cpe, _, access, uplink = tb.access(q.user)
    pe = tb.topology.node(cpe).uplink
    dcs = [n.name for n in tb.topology.nodes if n.role == "dc" and n.name not in (cpe, pe)]
    plan = [(cpe, "cpe", True)] + ([(pe, "pe", True)] if pe else []) + \
        ([(dcs[0], "dc", False)] if dcs else [])
    sha = catalogue.install(tb.store, PROBE_NF).sha256
    addrs = _addresses(tb, len(plan))
    tag = splice.probe_tag(q.user)
    for (node, role, on_path), addr in zip(plan, addrs, strict=True):
        cfg = {"address": addr, "gateway": str(tb.topology.gateway)}
        n = tb.node(node)
        info = n.deploy_nf(OPERATOR, PROBE_NF, sha, cfg)
        probe = Probe(node, role, on_path, info, cfg)
        probes.append(probe)  # recorded before its rules: removed whatever happens next
        lan, wan = info.ports[0].host_if, info.ports[-1].host_if
        pmac = info.own_macs[0]
        ptag = f"{tag}:{role}"
        if role == "cpe":
            mine = [r for r in tb.ts_rules.rules_of(node, n.lsi)
                    if not r.rule_id.startswith(tag + ":")]
            rules = splice.at_access(ptag, mac, access, uplink, mine, lan, wan, pmac)
        elif role == "pe":
            spec = tb.topology.node(cpe)
            assert spec.uplink_peer is not None
            rules = splice.at_ingress(ptag, mac, spec.uplink_peer, _toward(tb, node, dest),
                                      lan, wan, pmac)
        else:
            up = tb.topology.node(node).uplink_port
            if up is None:
                raise NotFound(f"node {node} has no uplink for its probe")
            rules = splice.beside(ptag, up, lan, wan, pmac)
        probe.rules = [r.rule_id for r in rules]  # before they are applied: a failure part
        tb.ts_rules.apply(node, n.lsi, rules)     # way through leaves some, removed too
        say(f"probe {info.instance_id} ({addr}) at {node} "
            + ("in the user's path" if on_path else "beside the path (reference)"))


def _remove(tb: Testbed, probes: list[Probe]) -> list[str]:
    """Remove the probes and every rule of theirs; what could not be removed (empty: all)."""
    left = []
    for p in probes:
        # Each step on its own: a probe whose rules could not be removed is still deleted
        # (and the other way round), and any error, not only ours, is reported, not raised
        # over the question's own.
        try:
            n = tb.node(p.point)
            tb.unsteer(p.point, [r for r in tb.ts_rules.rules_of(p.point, n.lsi)
                                 if r.rule_id in set(p.rules)])
        except Exception as exc:  # reported in left_behind
            left.append(f"{p.info.instance_id}'s rules: {exc}")
        try:
            tb.remove_nf(p.point, p.info.instance_id)
        except Exception as exc:  # reported in left_behind
            left.append(f"{p.info.instance_id}: {exc}")
    return left


def _requests(q: Question, p: Probe, user_ip: str, dest: str) -> list[dict[str, Any]]:
    nonce = secrets.token_hex(3)
    reqs: list[dict[str, Any]] = []
    if p.on_path:
        words = ["src", "host", user_ip, "and", "dst", "host", dest]
        if q.port is not None:
            words += ["and", "tcp", "dst", "port", str(q.port)]
        reqs.append({"id": f"cap-{nonce}", "tool": "capture", "interface": "lan",
                     "seconds": q.seconds, "packets": q.packets, "filter": " ".join(words)})
    reqs.append({"id": f"pd-{nonce}", "tool": "ping", "target": dest, "count": 3})
    if p.role == "cpe":
        reqs.append({"id": f"pu-{nonce}", "tool": "ping", "target": user_ip, "count": 3})
    reqs.append({"id": f"tr-{nonce}", "tool": "traceroute", "target": dest, "count": 1})
    return reqs


def _run_requests(tb: Testbed, p: Probe, reqs: list[dict[str, Any]],
                  deadline: float) -> dict[str, dict[str, Any]]:
    """Start the probe's requests (one update each: the request rides in its config), wait
    for their results until `deadline`; request id -> result (missing: not finished)."""
    drv = tb.node(p.point).driver_of(p.info.instance_id)
    for r in reqs:
        drv.update_nf(p.info.instance_id, {**p.config, "request": r})
    want = {r["id"] for r in reqs}
    while time.monotonic() < deadline:
        st = drv.status(p.info.instance_id).detail
        done = {r.get("id") for r in st.get("results", [])}
        if want <= done:
            break
        time.sleep(0.3)
    with contextlib.suppress(NetfateError):
        doc = drv.export_state(p.info.instance_id)
        return {r["id"]: r for r in doc.get("results", []) if r.get("id") in want}
    return {}


def _hops(output: str) -> tuple[str, ...]:
    return report.traceroute_hops(output)


def _user_nfs(tb: Testbed, node: str, user: str) -> dict[str, dict[str, Any]]:
    """The user's NFs on a node: instance id -> {nf, config, status}."""
    n = tb.node(node)
    out = {}
    for i in n.list_nfs():
        if i.owner != user:
            continue
        try:
            st = n.driver_of(i.instance_id).status(i.instance_id).detail
        except NetfateError as exc:
            st = {"error": str(exc)}
        out[i.instance_id] = {"nf": i.name, "flavour": i.flavour, "config": i.config,
                              "status": st}
    return out


def ask(tb: Testbed, q: Question, say: Say = lambda _: None) -> dict[str, Any]:
    """One question, answered: the report as a JSON-able dict (question, verdict, points,
    elements, nfs, links, flows, seconds, summary, left_behind). InvalidInput for a bad
    question (nothing deployed); the drivers' errors if a probe cannot be deployed (what was
    deployed is removed first)."""
    user_ip, dest, mac = _check(tb, q)
    t0 = time.monotonic()
    deadline = t0 + q.timeout_s
    cpe = tb.access(q.user)[0]
    before = _user_nfs(tb, cpe, q.user)
    probes: list[Probe] = []
    results: dict[str, dict[str, dict[str, Any]]] = {}
    link_ends: list[dict[str, Any]] = []
    flows: dict[str, list[dict[str, Any]]] = {}
    after: dict[str, dict[str, Any]] = {}
    spec = tb.topology.node(cpe)
    try:
        _deploy(tb, q, dest, mac, say, probes)
        reqs = {p.point: _requests(q, p, user_ip, dest) for p in probes}
        say("ping, traceroute and capture at " + ", ".join(p.point for p in probes))
        with ThreadPoolExecutor(max_workers=len(probes)) as pool:
            futs = {p.point: pool.submit(_run_requests, tb, p, reqs[p.point], deadline)
                    for p in probes}
            results = {k: f.result() for k, f in futs.items()}
        after = _user_nfs(tb, cpe, q.user)
        flows = {p.point: tb.network.dump_flows(tb.node(p.point).lsi) for p in probes}
        if spec.uplink and spec.uplink_port and spec.uplink_peer:
            for node, port in ((cpe, spec.uplink_port), (spec.uplink, spec.uplink_peer)):
                cfg, state = links.port_states(tb.server, tb.node(node).lsi).get(port, ([], []))
                link_ends.append({"node": node, "port": port, "config": cfg, "state": state})
        say("flow tables, link states and the user's NFs' counters read")
    finally:
        left = _remove(tb, probes)
    say("probes removed" + ("" if not left else f" except {left}"))
    obs = []
    for p in probes:
        rs = list(results.get(p.point, {}).values())
        by_tool: dict[str, dict[str, Any]] = {}
        for r in rs:
            key = r["tool"] if r["tool"] != "ping" else (
                "ping_user" if r.get("target") == user_ip else "ping_dest")
            by_tool[key] = r
        cap = by_tool.get("capture")
        obs.append(report.PointObservation(
            point=p.point, role=p.role, on_path=p.on_path,
            ping_dest=by_tool["ping_dest"].get("ok") if "ping_dest" in by_tool else None,
            ping_user=by_tool["ping_user"].get("ok") if "ping_user" in by_tool else None,
            flow_packets=(int(cap.get("packets_captured") or 0)
                          if cap is not None and cap.get("ok") else None),
            hops=_hops(by_tool["traceroute"].get("output", "")) if "traceroute" in by_tool
            else ()))
    elements: list[report.Element] = []
    nfs = []
    for iid, a in after.items():
        b = before.get(iid, {"status": {}})
        dropped, detail = (report.firewall_drops(b["status"], a["status"])
                           if a["nf"] == "firewall" else (0, ""))
        elements.append(report.Element("nf", f"{q.user}'s {a['nf']} on {cpe}", cpe,
                                       dropped=dropped, detail=detail))
        nfs.append({"instance_id": iid, **a, "status_before": b["status"], "dropped": dropped})
    if link_ends:
        elements.append(report.link_element(cpe, str(spec.uplink), link_ends))
    path = [o for o in obs if o.on_path]
    refs = [o for o in obs if not o.on_path]
    verdict = report.first_break(path, elements, refs)
    seconds = time.monotonic() - t0
    return {
        "question": {**asdict(q), "dest": dest, "user_ip": user_ip},
        "verdict": verdict.as_dict(),
        "points": [{**asdict(o), "probe": p.info.instance_id, "address": p.config["address"],
                    "results": results.get(p.point, {})} for o, p in zip(obs, probes,
                                                                        strict=True)],
        "elements": [asdict(e) for e in elements],
        "nfs": nfs,
        "links": link_ends,
        "flows": flows,
        "seconds": round(seconds, 3),
        "summary": report.summary(verdict, obs, seconds),
        "left_behind": left,
    }


def operator_nfs(tb: Testbed) -> list[str]:
    """Every operator-owned NF still on the testbed's nodes (empty after a question)."""
    return [i.instance_id for n in tb.node_names for i in tb.node(n).list_nfs()
            if i.owner == OPERATOR]
