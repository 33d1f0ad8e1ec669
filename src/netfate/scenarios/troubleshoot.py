"""`netfate scenario troubleshoot`: one question asked at many points (Glasgow paper, V.B).

A user (user1 on cpe1, scenarios/troubleshoot.yaml) reaches a web service at the internet
host through their firewall. The scenario breaks something on purpose, asks "where is it
broken?" (netfate.troubleshoot.ask: operator-owned probes at the CPE, the PE and the DC,
ping, traceroute and a bounded capture from each, flow tables, link states, the user's
NFs' counters) and checks that the report points at what it broke; then it repairs it and
checks the probes are gone. The faults: a denied port in the user's firewall, and the
infrastructure link cpe1-core down. A first question, before any fault, must find nothing.

Runs on the data plane (testbed up without services), like `scenario ddos`. Figures: time
to report and number of points of each question, and its verdict.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from netfate import catalogue
from netfate.drivers import netns
from netfate.drivers import ovs_port_states as links
from netfate.errors import InvalidInput
from netfate.owners import OPERATOR
from netfate.proc import netns_argv
from netfate.scenarios.timeline import Say, marker
from netfate.scenarios.traffic import SINK
from netfate.testbed import lifecycle
from netfate.testbed.context import Testbed
from netfate.testbed.topology import Topology, parse_topology
from netfate.troubleshoot import splice
from netfate.troubleshoot.ask import Question, ask

USER = "user1"
FAULTS = ("firewall", "link")
FW_CFG: dict[str, Any] = {"default_out": "allow", "default_in": "deny", "rules": []}


@dataclass
class Options:
    port: int = 8080          # the user's web service at the internet host
    faults: tuple[str, ...] = FAULTS
    capture_s: int = 3        # each probe's capture
    timeout_s: float = 25.0   # each question, end to end


@dataclass
class Result:
    ok: bool = False
    checks: dict[str, bool] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)


def topology() -> Topology:
    text = resources.files("netfate.scenarios").joinpath("troubleshoot.yaml").read_text()
    return parse_topology(text, "troubleshoot topology")


class Complaint:
    """The user's device trying the service every `period` s: [(time, connected)]."""

    def __init__(self, ns: str, ip: str, port: int, period: float = 0.25) -> None:
        self.ns, self.ip, self.port, self.period = ns, ip, port, period
        self.tries: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            conn = netns.tcp_connect(self.ns, self.ip, self.port, timeout=0.8)
            self.tries.append((time.monotonic(), conn is not None))
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                conn.close()
            self._stop.wait(self.period)

    def works(self, since: float) -> bool | None:
        """Whether the tries since `since` all connected (None: none yet)."""
        recent = [ok for t, ok in self.tries if t >= since]
        return all(recent) if recent else None

    def wait(self, want: bool, timeout: float = 8.0) -> bool:
        """Until two tries in a row give `want`; whether they did within `timeout`."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            recent = [ok for t, ok in self.tries if t >= start][-2:]
            if len(recent) == 2 and all(ok == want for ok in recent):
                return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)


def _leftovers(tb: Testbed) -> list[str]:
    """Operator-owned NFs and probe rules still on the testbed."""
    tag = splice.probe_tag(USER)
    out = [i.instance_id for n in tb.node_names for i in tb.node(n).list_nfs()
           if i.owner == OPERATOR]
    for n in tb.node_names:
        out += [f"{n}:{r.rule_id}" for r in tb.ts_rules.rules_of(n, tb.node(n).lsi)
                if r.rule_id.startswith(tag)]
    return out


def run(opts: Options, say: Say, keep: bool = False) -> Result:
    """Bring the scenario's testbed up, break, ask, check, repair (each fault in turn), take
    it down (unless `keep`). InvalidInput for an unknown fault."""
    bad = [f for f in opts.faults if f not in FAULTS]
    if bad or not opts.faults:
        raise InvalidInput(f"faults: one or more of {', '.join(FAULTS)} (got {bad or 'none'})")
    topo = topology()
    dest = topo.internet_address
    res = Result()
    mark = marker(res.timeline, say)
    lifecycle.down()
    lifecycle.up(topo, services=False)
    mark(f"testbed up: {USER} on cpe1, PE core with the destination {dest}, DC beside")
    tb = Testbed.attach()
    sink: subprocess.Popen[bytes] | None = None
    user: Complaint | None = None
    try:
        node = tb.node("cpe1")
        fw = node.deploy_nf(USER, "firewall", catalogue.install(tb.store, "firewall").sha256,
                            dict(FW_CFG))
        tb.steer(USER, [fw], tag=f"user:{USER}")
        argv = netns_argv("fate-h-inet", [sys.executable, "-S", "-c", SINK, dest,
                                          str(opts.port)])
        sink = subprocess.Popen(argv,  # noqa: S603 - argument list, never a shell
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        user = Complaint(f"fate-h-{USER}", dest, opts.port)
        mark(f"{USER} steered through their firewall; they connect to {dest}:{opts.port} "
             "every 0.25 s")
        res.checks["the user's service works at first"] = user.wait(True)
        q = Question(USER, dest, opts.port, seconds=opts.capture_s, timeout_s=opts.timeout_s)

        def step(msg: str) -> None:  # ask's own progress, indented under its question
            mark("  " + msg)

        def question(label: str) -> dict[str, Any]:
            mark(f"ask: where is it broken? ({label})")
            rep = ask(tb, q, step)
            res.reports[label] = rep
            v = rep["verdict"]
            mark(f"report after {rep['seconds']:.2f} s from {len(rep['points'])} points: "
                 + (f"stops at {v['stops_at']}" if v["broken"] else v["reason"]))
            res.figures.setdefault("questions", {})[label] = {
                "time_to_report_s": rep["seconds"], "points": len(rep["points"]),
                "verdict": v["kind"], "stops_at": v["stops_at"]}
            return rep

        rep = question("no fault")
        res.checks["no fault: the report finds nothing broken"] = \
            rep["verdict"]["kind"] == "none"

        if "firewall" in opts.faults:
            deny = {**FW_CFG, "rules": [{"action": "deny", "proto": "tcp",
                                         "dport": opts.port}]}
            node.compute.update_nf(fw.instance_id, deny)
            mark(f"fault: {USER}'s firewall denies tcp port {opts.port}")
            res.checks["firewall fault: the user's service fails"] = user.wait(False)
            rep = question("firewall denies the port")
            v = rep["verdict"]
            res.checks["firewall fault: the report points at the user's firewall"] = (
                v["kind"] == "nf" and "firewall" in str(v["stops_at"])
                and v["after"] == "cpe1" and "rule 0" in v["reason"])
            node.compute.update_nf(fw.instance_id, dict(FW_CFG))
            mark("repaired: the firewall's rule removed")
            res.checks["firewall fault: the service works again"] = user.wait(True)

        if "link" in opts.faults:
            spec = topo.node("cpe1")
            assert spec.uplink_port is not None
            links.set_port(tb.server, node.lsi, spec.uplink_port, up=False)
            mark(f"fault: infrastructure link cpe1-core down (port {spec.uplink_port})")
            try:
                res.checks["link fault: the user's service fails"] = user.wait(False)
                rep = question("link down")
            finally:
                links.set_port(tb.server, node.lsi, spec.uplink_port, up=True)
                mark("repaired: the link is up again")
            v = rep["verdict"]
            res.checks["link fault: the report points at the link cpe1-core"] = (
                v["kind"] == "link" and v["stops_at"] == "link cpe1-core")
            res.checks["link fault: the service works again"] = user.wait(True)

        left = _leftovers(tb)
        res.checks["no probe or probe rule left behind"] = not left
        res.checks["the user's firewall is untouched by the probes"] = (
            node.compute.info(fw.instance_id).config.get("rules") == [])
        mark("done" + (f"; left behind: {left}" if left else ": nothing left behind"))
        qs = res.figures.get("questions", {})
        res.figures["time_to_report_s_max"] = max(
            (x["time_to_report_s"] for x in qs.values()), default=0.0)
        res.ok = all(res.checks.values())
        return res
    finally:
        if user is not None:
            user.close()
        if sink is not None:
            with contextlib.suppress(ProcessLookupError):
                sink.kill()
            sink.wait()
        tb.close()
        if not keep:
            lifecycle.down()
