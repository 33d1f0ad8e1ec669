"""The checker: after a run, from the outside (the API, the kernel, OVS, traffic), does the
testbed hold what the platform promises?

- every NF the database wants runs on its node (its namespace exists, the agent reports it
  running, its daemons live) and no other NF namespace exists;
- no operation is left PROCESSING or ROLLING_BACK;
- every logged-in, active user is served where their device is: their NFs are exactly their
  chain, at their CPE, steered in order; an allowed port is reachable, the firewall's denied
  port is not, and the updatable port as the firewall's recorded config says;
- every idle (or never logged-in) user has no NF wanted nor running;
- after `testbed down`: no namespace, link, cgroup or run directory of the project is left.

`converge` polls `violations` until there are none or its time is up: the platform is
eventually consistent, and the checker gives it the idle timeout and a margin to settle.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from netfate import naming, paths
from netfate.api_pages import get_all
from netfate.chaos.workload import ALLOWED, DENIED, EXTRA, INET, User
from netfate.drivers import cgroups, netns
from netfate.drivers.nf_records import dead_daemons
from netfate.roaming.probes import reachable
from netfate.testbed import lifecycle
from netfate.testbed.topology import Topology


def _nf_dir(node: str, iid: str) -> Path:
    return paths.run_dir() / "nodes" / node / "nfs" / iid


def nf_violations(topo: Topology, instances: list[dict[str, Any]]) -> list[str]:
    out = []
    wanted = [i for i in instances if i["desired_state"] == "present"]
    names = set(netns.list_names())
    expected = set()
    for i in wanted:
        ns = naming.nf_netns(i["node_name"], i["owner"], i["nf_name"])
        expected.add(ns)
        if ns not in names:
            out.append(f"NF {i['id']} wanted on {i['node_name']}: no namespace {ns}")
        if i["actual_state"] != "running":
            out.append(f"NF {i['id']} wanted on {i['node_name']}: {i['actual_state']}")
        for name in dead_daemons(_nf_dir(i["node_name"], i["id"]) / "run"):
            out.append(f"NF {i['id']}: its daemon {name} does not run")
    prefixes = tuple(f"{naming.PREFIX}{n.name}-" for n in topo.nodes)
    for ns in sorted(names):
        if ns.startswith(prefixes) and ns not in expected:
            out.append(f"namespace {ns}: an NF no one wants")
    return out


def op_violations(ops: list[dict[str, Any]]) -> list[str]:
    return [f"operation {o['id']} ({o['operation']} {o.get('vnf_instance_id')}) stuck in "
            f"{o['operation_state']}" for o in ops
            if o["operation_state"] in ("PROCESSING", "ROLLING_BACK")]


def _denies(config: dict[str, Any], port: int) -> bool:
    return any(r.get("action") == "deny" and r.get("dport") == port
               for r in config.get("rules") or [])


def user_violations(topo: Topology, u: User, instances: list[dict[str, Any]],
                    steering: list[dict[str, Any]], traffic: bool = True) -> list[str]:
    mine = [i for i in instances if i["owner"] == u.name and i["desired_state"] == "present"]
    h = topo.host(u.host)
    if not (u.logged_in and u.active):
        return [f"{u.name} is idle but {i['id']} is wanted on {i['node_name']}" for i in mine]
    out = []
    at = h.attach
    by_nf = {i["nf_name"]: i for i in mine}
    if sorted(by_nf) != sorted(u.chain) or len(mine) != len(u.chain):
        out.append(f"{u.name} requires {list(u.chain)}, has {[i['id'] for i in mine]}")
    elsewhere = [i["id"] for i in mine if i["node_name"] != at]
    if elsewhere:
        out.append(f"{u.name} is at {at}, their NFs {elsewhere} are not")
    rules = [r for r in steering if r["user_name"] == u.name and r.get("desired", True)]
    chain = [by_nf[n]["id"] for n in u.chain if n in by_nf]
    if [(r["node_name"], r["chain"]) for r in rules] != [(at, chain)]:
        out.append(f"{u.name} steered {[(r['node_name'], r['chain']) for r in rules]}, "
                   f"expected at {at} through {chain}")
    if out or not traffic:
        return out
    if not reachable(h.netns, INET, ALLOWED):
        out.append(f"{u.name} at {at}: port {ALLOWED} unreachable")
    if reachable(h.netns, INET, DENIED):
        out.append(f"{u.name} at {at}: port {DENIED} reachable through their firewall")
    fw = by_nf.get("firewall")
    if fw is not None:
        deny = _denies(fw.get("config") or {}, EXTRA)
        if reachable(h.netns, INET, EXTRA) == deny:
            out.append(f"{u.name} at {at}: port {EXTRA} {'open' if deny else 'closed'}, "
                       f"but the firewall's config {'denies' if deny else 'allows'} it")
    return out


def violations(api: httpx.Client, topo: Topology, users: list[User],
               traffic: bool = True) -> list[str]:
    """Everything wrong now (an unanswered API is one violation)."""
    try:
        instances = api.get("/vnf_instances").json()
        ops = get_all(api, "/vnf_lcm_op_occs")
        steering = api.get("/steering_rules").json()
    except (httpx.HTTPError, ValueError) as exc:
        return [f"the API does not answer: {type(exc).__name__}: {exc}"]
    topo = Topology.model_validate((lifecycle.load_state() or {})["topology"])
    out = op_violations(ops) + nf_violations(topo, instances)
    for u in users:
        out += user_violations(topo, u, instances, steering, traffic)
    return out


def converge(api: httpx.Client, topo: Topology, users: list[User], timeout: float,
             step: float = 1.0) -> tuple[list[str], float]:
    """Poll until nothing is wrong (the traffic checks last, once the records agree) or
    `timeout` s passed: the violations left, and the seconds it took."""
    t0 = time.monotonic()
    while True:
        found = violations(api, topo, users, traffic=False)
        if not found:
            found = violations(api, topo, users, traffic=True)
        if not found or time.monotonic() - t0 > timeout:
            return found, round(time.monotonic() - t0, 1)
        time.sleep(step)


def leftovers() -> list[str]:
    """What `testbed down` left behind (none: empty)."""
    out = [f"namespace {n}" for n in netns.list_names() if naming.is_ours(n)]
    with netns.iproute() as ipr:
        out += [f"link {link}" for link in netns.list_links(naming.PREFIX, ipr)]
    out += [f"cgroup {c}" for c in cgroups.list_ours()]
    if paths.run_dir().exists():
        out.append(f"directory {paths.run_dir()}")
    return out
