"""`netfate scenario ddos`: stopping an IoT flood where it starts (Glasgow paper, section V.A).

A CPE hosts several IoT devices (scenarios/iot-ddos.yaml). The whole platform runs (testbed up
with its services, the orchestrator's closed loop on with the `block-flood-sources` reaction
policy): each device is a user whose chain [firewall, packet-inspector] the orchestrator
places on the CPE and steers when the device associates. Some devices flood the victim (the
internet host) with SYNs and UDP datagrams. The inspector in an attacker's chain queues a
`flood` notification naming the device; its node's agent forwards it over the bus; the
orchestrator stores it and hands it to its closed loop (orchestrator/closed_loop.py), which
asks the reaction policy (engine/reaction.py) and carries out what it returns as an ordinary
UPDATE operation: a DROP rule for the device first in its firewall, pushed live by the agent.
The scenario only sends traffic and reads what the orchestrator recorded; it never touches
the NFs. The other devices' traffic to the victim goes on.

Figures, from the orchestrator's and the NFs' own timestamps: seconds from the attack's start
to each notification (the inspector's), to the orchestrator having it, and to its UPDATE
operation being complete (the rule in place); attack packets per second reaching the victim
before and after; the legitimate stream's throughput before, during and after the attack.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from netfate.engine.reaction import get_reaction_policy
from netfate.errors import InvalidInput
from netfate.scenarios import traffic
from netfate.scenarios.orch import Api
from netfate.scenarios.timeline import Mark, Say, marker
from netfate.testbed import lifecycle
from netfate.testbed.context import Testbed
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import Topology, parse_topology

TARGET_S = 1.0  # the target: mitigation within a second of the attack's start
FW_CFG: dict[str, Any] = {"default_out": "allow", "default_in": "deny", "rules": []}
CHAIN = ["firewall", "packet-inspector"]


@dataclass
class Options:
    rate: int = 3000  # packets per second per attacker (half SYN, half UDP)
    attackers: int = 2
    flood_pps: int = 1000  # the inspector's threshold
    flood_window_ms: int = 250  # over which the inspector measures a source's rate
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


def _deploy(api: Api, tb: Testbed, devices: list[str], opts: Options) -> None:
    """Each device a user with the chain [firewall, packet-inspector], associated at its
    CPE: the orchestrator places the chain and steers the device through it."""
    pi_cfg = {"flood_pps": opts.flood_pps, "flood_window_ms": opts.flood_window_ms,
              "scan_ports": 1000, "cooldown_s": 30}
    for d in devices:
        api.add_user(d, CHAIN, {"firewall": FW_CFG, "packet-inspector": pi_cfg})
    ops = [o for d in devices for o in api.associate(tb, d, d)]
    api.wait_ops(ops)
    for node in sorted({tb.access(d)[0] for d in devices}):
        api.wait_steered(node, [d for d in devices if tb.access(d)[0] == node])


def _watch(api: Api, attackers: list[str], fw_ids: dict[str, str], t_wall: float,
           end: float, mark: Mark) -> tuple[dict[str, Any], dict[str, Any]]:
    """Until `end` (monotonic) or every attacker's rule is in: the flood notifications the
    orchestrator stored, and its reactions' UPDATE operations once complete, by device,
    as {device: record} (seconds since `t_wall`, the attack's start in epoch seconds)."""
    notes: dict[str, Any] = {}
    rules: dict[str, Any] = {}
    by_fw = {v: k for k, v in fw_ids.items()}
    while time.monotonic() < end and len(rules) < len(attackers):
        for n in api.notifications("flood"):
            dev = str(n.get("owner"))
            if dev in notes or n.get("ts", 0) < t_wall - 1:
                continue
            notes[dev] = {"source": n.get("source"), "nf": n.get("nf_instance_id"),
                          "detected_s": round(n["ts"] - t_wall, 3),
                          "received_s": round(n["created_at"] - t_wall, 3)}
            mark(f"notification: flood from {dev} ({n.get('source')}) by "
                 f"{n.get('nf_instance_id')}, at the orchestrator "
                 f"{n['created_at'] - t_wall:.3f} s after the attack's start")
        for o in api.ops():
            fw_of = by_fw.get(o.instance_id)
            if (o.operation != "UPDATE" or fw_of is None or fw_of in rules
                    or o.start < t_wall or o.state != "COMPLETED"):
                continue
            rules[fw_of] = {"op": o.id, "started_s": round(o.start - t_wall, 3),
                          "installed_s": round(o.entered - t_wall, 3), "reason": o.reason}
            mark(f"rules installed: {fw_of}'s firewall updated by the closed loop "
                 f"(operation {o.id[:8]}, {o.reason})")
        time.sleep(0.1)
    return notes, rules


def run(opts: Options, say: Say, keep: bool = False) -> Result:
    """Bring the scenario's testbed up with its services and the closed loop, run the
    attack, check it, take it down (unless `keep`). InvalidInput for options the topology
    cannot serve."""
    topo = topology()
    devices = [h.name for h in topo.hosts if h.role == "client"]
    if not 1 <= opts.attackers < len(devices):
        raise InvalidInput(f"attackers: 1-{len(devices) - 1} (the topology has "
                           f"{len(devices)} devices and at least one stays legitimate)")
    if opts.rate < opts.flood_pps:
        raise InvalidInput(f"rate {opts.rate} pps is below the inspector's threshold "
                           f"{opts.flood_pps}: nothing would be detected")
    policy = get_reaction_policy(opts.policy)  # KeyError naming the known ones
    attackers, legit = devices[:opts.attackers], devices[opts.attackers:]
    addr = {h.name: str(h.address) for h in topo.hosts if h.role == "client"}
    victim = topo.internet_address
    res = Result()
    mark = marker(res.timeline, say)
    settings = TestbedSettings(reaction_policy=policy.name, idle_timeout=0)
    lifecycle.down()
    lifecycle.up(topo, settings=settings)
    mark("testbed up with its services (orchestrator with the closed loop "
         f"{policy.name!r}, controller, agents): 1 CPE, {', '.join(devices)}, victim {victim}")
    tb = Testbed.attach()
    api = Api(settings.api_url)
    counters: traffic.VictimCounters | None = None
    stream: traffic.LegitStream | None = None
    floods: list[Any] = []
    try:
        _deploy(api, tb, devices, opts)
        fw_ids = {d: f"{tb.access(d)[0]}-{d}-firewall" for d in devices}
        mark("each device associated; the orchestrator placed its chain (firewall, "
             "packet-inspector) on its CPE and steered it")
        counters = traffic.VictimCounters("fate-h-inet", [addr[d] for d in devices])
        stream = traffic.LegitStream(f"fate-h-{legit[0]}", "fate-h-inet", victim,
                                     kbyte_s=opts.legit_kbyte_s)
        mark(f"legitimate stream {legit[0]} -> victim ({opts.legit_kbyte_s} kB/s)")
        time.sleep(opts.baseline_s)
        t_attack = mark(f"attack: {', '.join(attackers)} flood the victim, {opts.rate} pps "
                        "each (SYN + UDP)")
        t_wall = time.time()
        floods = [traffic.start_flood(f"fate-h-{d}", addr[d], victim, opts.rate,
                                      opts.attack_s) for d in attackers]
        end = t_attack + opts.attack_s
        notes, rules = _watch(api, attackers, fw_ids, t_wall, end, mark)
        time.sleep(max(0.0, end - time.monotonic()))
        traffic.stop(floods)
        floods = []
        t_end = mark("attack over")
        time.sleep(opts.after_s)
        t_after = mark("done")
        installed = {d: r["installed_s"] for d, r in rules.items()}
        att = [addr[d] for d in attackers]
        leg = [addr[d] for d in legit]
        last_rule = t_attack + max(installed.values(), default=opts.attack_s)
        first_rule = t_attack + min(installed.values(), default=opts.attack_s)
        before_pps = counters.rate(att, t_attack + 0.05, first_rule)
        after_pps = counters.rate(att, last_rule + 0.3, t_end)
        f = res.figures
        f["notification_s"] = {d: n["detected_s"] for d, n in notes.items()}
        f["notification_at_orchestrator_s"] = {d: n["received_s"] for d, n in notes.items()}
        f["rules_installed_s"] = installed
        f["update_started_s"] = {d: r["started_s"] for d, r in rules.items()}
        f["attack_pps_at_victim"] = {"before": round(before_pps, 1),
                                     "after": round(after_pps, 1)}
        f["legit_kbyte_s"] = {"before": round(stream.kbyte_s(t_attack - opts.baseline_s + 0.3,
                                                             t_attack), 1),
                              "during": round(stream.kbyte_s(t_attack, t_end), 1),
                              "after": round(stream.kbyte_s(t_end, t_after), 1)}
        f["legit_other_devices_pps_at_victim"] = round(
            counters.rate(leg, t_attack, t_end), 1)
        f["options"] = {"rate": opts.rate, "attackers": attackers, "legit": legit,
                        "flood_pps": opts.flood_pps, "flood_window_ms": opts.flood_window_ms,
                        "attack_s": opts.attack_s, "policy": policy.name,
                        "path": "orchestrator closed loop"}
        lk = f["legit_kbyte_s"]
        res.checks = {
            "every attacker notified": set(notes) >= set(attackers),
            "no legitimate device notified": not set(notes) & set(legit),
            "every attacker's rules installed by the closed loop": set(rules) == set(attackers),
            "attack stopped at the victim": after_pps <= max(20.0, 0.05 * before_pps),
            "legitimate stream unaffected": lk["during"] >= 0.5 * lk["before"] > 0
            and lk["after"] >= 0.8 * lk["before"],
        }
        res.ok = all(res.checks.values())
        res.target_met = res.ok and max(installed.values()) <= TARGET_S
        return res
    finally:
        traffic.stop(floods)
        if stream is not None:
            stream.close()
        if counters is not None:
            counters.close()
        api.close()
        tb.close()
        if not keep:
            lifecycle.down()
