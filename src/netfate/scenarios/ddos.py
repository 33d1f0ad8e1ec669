"""`netfate scenario ddos`: stopping an IoT flood where it starts (Glasgow paper, section V.A).

A CPE hosts several IoT devices (scenarios/iot-ddos.yaml), each steered through its own chain
[firewall, packet-inspector] on the CPE. Some devices flood the victim (the internet host)
with SYNs and UDP datagrams. The inspector in an attacker's chain raises a `flood`
notification naming the device; the closed loop hands it to the reaction policy
(engine/reaction.py, the one the orchestrator runs) and carries out what it returns: a DROP
rule for the device in its firewall, live. The other devices' traffic to the victim goes on.

This runs on the data plane (testbed up without services): the loop here drains the CPE's
notification queue itself and applies the reactions through the node's compute driver; with
services up, the orchestrator's closed loop (orchestrator/closed_loop.py) does the same.
Figures: seconds from the attack's start to each notification and to its rule being in
place, attack packets per second reaching the victim before and after, and the legitimate
stream's throughput before, during and after the attack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from netfate import catalogue
from netfate.engine.reaction import Alert, NFView, UpdateNF, get_reaction_policy
from netfate.errors import InvalidInput
from netfate.scenarios import traffic
from netfate.testbed import lifecycle
from netfate.testbed.context import Testbed
from netfate.testbed.topology import Topology, parse_topology

TARGET_S = 1.0  # the issue's target: mitigation within a second of the attack's start
FW_CFG: dict[str, Any] = {"default_out": "allow", "default_in": "deny", "rules": []}


@dataclass
class Options:
    rate: int = 3000  # packets per second per attacker (half SYN, half UDP)
    attackers: int = 2
    flood_pps: int = 1000  # the inspector's threshold
    baseline_s: float = 2.0
    attack_s: float = 5.0
    after_s: float = 2.0
    legit_kbyte_s: int = 1000
    policy: str = "block-flood-sources"


@dataclass
class Result:
    ok: bool = False
    target_met: bool = False
    checks: dict[str, bool] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    timeline: list[tuple[float, str]] = field(default_factory=list)


def topology() -> Topology:
    text = resources.files("netfate.scenarios").joinpath("iot-ddos.yaml").read_text()
    return parse_topology(text, "iot-ddos topology")


Say = Callable[[float, str], None]


def _deploy_chains(tb: Testbed, devices: list[str], opts: Options) -> dict[str, NFView]:
    """Each device's chain [firewall, packet-inspector] on its CPE, steered; its firewall."""
    fw_sha = catalogue.install(tb.store, "firewall").sha256
    pi_sha = catalogue.install(tb.store, "packet-inspector").sha256
    pi_cfg = {"flood_pps": opts.flood_pps, "scan_ports": 1000, "cooldown_s": 30}
    fws: dict[str, NFView] = {}
    for d in devices:
        node_name = tb.access(d)[0]
        node = tb.node(node_name)
        fw = node.deploy_nf(d, "firewall", fw_sha, FW_CFG)
        pi = node.deploy_nf(d, "packet-inspector", pi_sha, pi_cfg)
        tb.steer(d, [fw, pi], tag=f"user:{d}")
        fws[d] = NFView(fw.instance_id, "firewall", node_name, d, dict(FW_CFG))
    return fws


def run(opts: Options, say: Say, keep: bool = False) -> Result:
    """Bring the scenario's testbed up, run the attack, check it, take it down (unless
    `keep`). InvalidInput for options the topology cannot serve."""
    topo = topology()
    devices = [h.name for h in topo.hosts if h.role == "client"]
    if not 1 <= opts.attackers < len(devices):
        raise InvalidInput(f"attackers: 1-{len(devices) - 1} (the topology has "
                           f"{len(devices)} devices and at least one stays legitimate)")
    if opts.rate < opts.flood_pps:
        raise InvalidInput(f"rate {opts.rate} pps is below the inspector's threshold "
                           f"{opts.flood_pps}: nothing would be detected")
    policy = get_reaction_policy(opts.policy)
    attackers, legit = devices[:opts.attackers], devices[opts.attackers:]
    addr = {h.name: str(h.address) for h in topo.hosts if h.role == "client"}
    victim = topo.internet_address
    res = Result()
    t0 = time.monotonic()

    def mark(msg: str) -> float:
        t = time.monotonic() - t0
        res.timeline.append((round(t, 3), msg))
        say(t, msg)
        return time.monotonic()

    lifecycle.down()
    lifecycle.up(topo, services=False)
    mark("testbed up: 1 CPE, " + ", ".join(devices) + ", victim " + victim)
    tb = Testbed.attach()
    counters: traffic.VictimCounters | None = None
    stream: traffic.LegitStream | None = None
    floods: list[Any] = []
    try:
        fws = _deploy_chains(tb, devices, opts)
        mark("each device steered through its chain (firewall, packet-inspector) on cpe1")
        counters = traffic.VictimCounters("fate-h-inet", [addr[d] for d in devices])
        stream = traffic.LegitStream(f"fate-h-{legit[0]}", "fate-h-inet", victim,
                                     kbyte_s=opts.legit_kbyte_s)
        mark(f"legitimate stream {legit[0]} -> victim ({opts.legit_kbyte_s} kB/s)")
        time.sleep(opts.baseline_s)
        queues = {n: tb.node(n).compute.queue for n in {v.node for v in fws.values()}}
        for q in queues.values():
            q.drain()
        t_attack = mark(f"attack: {', '.join(attackers)} flood the victim, {opts.rate} pps "
                        "each (SYN + UDP)")
        floods = [traffic.start_flood(f"fate-h-{d}", addr[d], victim, opts.rate,
                                      opts.attack_s) for d in attackers]
        notified: dict[str, float] = {}
        mitigated: dict[str, float] = {}
        by_addr = {addr[d]: d for d in devices}
        end = t_attack + opts.attack_s
        pool = ThreadPoolExecutor(max_workers=len(attackers))
        pending: list[Future[None]] = []

        def install(dev: str, r: UpdateNF) -> None:
            # one device's reaction; devices' reactions run side by side
            tb.node(fws[dev].node).compute.update_nf(r.instance_id, r.config)
            fws[dev] = NFView(fws[dev].instance_id, "firewall", fws[dev].node, dev, r.config)
            mitigated[dev] = time.monotonic() - t_attack
            mark(f"rules installed: DROP {addr[dev]} in {dev}'s firewall ({r.reason})")

        while time.monotonic() < end:
            for q in queues.values():
                for n in q.drain():
                    dev = by_addr.get(str(n.get("source")))
                    if n.get("type") != "flood" or dev is None or dev in notified:
                        continue
                    notified[dev] = time.monotonic() - t_attack
                    mark(f"notification: flood from {dev} ({n['source']}) by "
                         f"{n.get('nf')} on {n.get('node')}")
                    alert = Alert(node=str(n.get("node")), type="flood", owner=dev,
                                  nf=n.get("nf"), nf_id=n.get("nf_id"),
                                  severity=str(n.get("severity")), source=n.get("source"),
                                  detail=dict(n.get("detail") or {}), ts=float(n["ts"]))
                    for r in policy.react(alert, [fws[dev]]):
                        if isinstance(r, UpdateNF):  # (PlaceNF: every device has a firewall)
                            pending.append(pool.submit(install, dev, r))
            time.sleep(0.02)
        pool.shutdown(wait=True)
        for fut in pending:
            fut.result()  # a failed update fails the scenario with its error
        traffic.stop(floods)
        floods = []
        t_end = mark("attack over")
        time.sleep(opts.after_s)
        t_after = mark("done")
        att = [addr[d] for d in attackers]
        leg = [addr[d] for d in legit]
        last_rule = t_attack + max(mitigated.values(), default=opts.attack_s)
        first_rule = t_attack + min(mitigated.values(), default=opts.attack_s)
        before_pps = counters.rate(att, t_attack + 0.05, first_rule)
        after_pps = counters.rate(att, last_rule + 0.3, t_end)
        f = res.figures
        f["notification_s"] = {d: round(v, 3) for d, v in notified.items()}
        f["rules_installed_s"] = {d: round(v, 3) for d, v in mitigated.items()}
        f["attack_pps_at_victim"] = {"before": round(before_pps, 1),
                                     "after": round(after_pps, 1)}
        f["legit_kbyte_s"] = {"before": round(stream.kbyte_s(t_attack - opts.baseline_s + 0.3,
                                                             t_attack), 1),
                              "during": round(stream.kbyte_s(t_attack, t_end), 1),
                              "after": round(stream.kbyte_s(t_end, t_after), 1)}
        f["legit_other_devices_pps_at_victim"] = round(
            counters.rate(leg, t_attack, t_end), 1)
        f["options"] = {"rate": opts.rate, "attackers": attackers, "legit": legit,
                        "flood_pps": opts.flood_pps, "attack_s": opts.attack_s,
                        "policy": policy.name}
        lk = f["legit_kbyte_s"]
        res.checks = {
            "every attacker notified": set(notified) == set(attackers),
            "no legitimate device notified": not set(notified) & set(legit),
            "every attacker's rules installed": set(mitigated) == set(attackers),
            "attack stopped at the victim": after_pps <= max(20.0, 0.05 * before_pps),
            "legitimate stream unaffected": lk["during"] >= 0.5 * lk["before"] > 0
            and lk["after"] >= 0.8 * lk["before"],
        }
        res.ok = all(res.checks.values())
        res.target_met = res.ok and max(mitigated.values()) <= TARGET_S
        return res
    finally:
        traffic.stop(floods)
        if stream is not None:
            stream.close()
        if counters is not None:
            counters.close()
        tb.close()
        if not keep:
            lifecycle.down()
