"""`netfate bench login`: from the captive portal's login POST to the user's first packet at
the internet host, through their firewall; p50/p95 over N logins, broken down into RADIUS,
placement, NF start and flow install. Baseline, same run: a user without NFs (RADIUS and
steering only).

Each login is of a device that has its stable address already (a returning user: the CPE's
DHCP hands it out), with a 1 kHz UDP probe stream running from before the POST: the first
probe to arrive marks the path open. Between logins the user is released (idle)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from netfate.access import http
from netfate.api_auth import BearerAuth
from netfate.api_pages import get_all
from netfate.bench.stats import ratio, summary
from netfate.errors import NetfateError
from netfate.roaming.probes import UdpProbe
from netfate.roaming.session import (
    ensure_user,
    portal_ip,
    portal_login,
    running_at,
    wait_for,
)
from netfate.testbed import lifecycle
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import Topology, load_topology


def _one(api: httpx.Client, topo: Topology, host: str, user: str, nf: bool,
         inet_ns: str, inet: str, port: int) -> dict[str, Any]:
    ns = topo.host(host).netns
    node = topo.host(host).attach
    probe = UdpProbe(ns, inet_ns, inet, port=port).start()
    try:
        time.sleep(0.05)
        while True:
            t_post = time.time()
            r = http.login(ns, portal_ip(topo, node), user, "bench-secret-1")
            if r.status != 429:
                break
            # the portal's per-client limit (10 logins / 10 s): wait as it says, not counted
            time.sleep(float(r.headers.get("retry-after", "1")))
        if r.status != 200:
            raise NetfateError(f"login refused ({r.status}): {r.body[:200]!r}")
        body = r.json()
        first = wait_for(lambda: probe.first_after(t_post), 30, "the first packet out")
    finally:
        probe.stop()
    out = {"total_ms": round((first - t_post) * 1000, 2),
           "radius_ms": body.get("radius_ms"), "portal_setup_ms": body.get("setup_ms")}
    if nf:
        ops = [o for o in get_all(api, "/vnf_lcm_op_occs")
               if o["operation"] == "INSTANTIATE" and o["start_time"] >= t_post - 0.01]
        if ops:
            op = min(ops, key=lambda o: o["start_time"])
            done = float(op["state_entered_time"])
            radius_end = t_post + float(body.get("radius_ms") or 0) / 1000
            out["placement_ms"] = round((float(op["start_time"]) - radius_end) * 1000, 2)
            out["nf_start_ms"] = round((done - float(op["start_time"])) * 1000, 2)
            out["flow_install_ms"] = round((first - done) * 1000, 2)
    return out


def _release(api: httpx.Client, user: str) -> None:
    api.post(f"/users/{user}/idle")
    wait_for(lambda: not running_at(api, user) and not any(
        r["user_name"] == user for r in api.get("/steering_rules").json()), 20,
        f"{user} to be released")


def _stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": len(rows)}
    for k in ("total_ms", "radius_ms", "placement_ms", "nf_start_ms", "flow_install_ms",
              "portal_setup_ms"):
        vals = [float(r[k]) for r in rows if r.get(k) is not None]
        if vals:
            st = summary(vals)
            out[k] = {"p50": st["p50"], "p95": st["p95"], "mean": st["mean"]}
    return out


def run(runs: int = 30, say: Callable[[str], None] = lambda _: None,
        testbed: TestbedSettings | None = None) -> dict[str, Any]:
    """``testbed``: the testbed's settings (ports, topology); its idle timeout is raised to
    300 s."""
    tb = (testbed or TestbedSettings()).model_copy(update={"idle_timeout": 300})
    topo = load_topology(tb.topology)
    api = httpx.Client(base_url=lifecycle.api_url(tb) + "/api/v1", timeout=30,
                     auth=BearerAuth())
    rows: dict[str, list[dict[str, Any]]] = {"firewall": [], "no_nf": []}
    try:
        say("testbed up")
        lifecycle.down()
        lifecycle.up(topo, settings=tb)
        inet = next(h for h in topo.hosts if h.role == "internet")
        users = {"bench-fw": ("client1", ["firewall"]), "bench-plain": ("client2", [])}
        for user, (host, nfs) in users.items():
            ensure_user(api, user, "bench-secret-1", nfs)
            # First login: the device gets its stable address; then log out.
            portal_login(topo, host, user, "bench-secret-1")
            _release(api, user)
        for k in range(runs):
            for user, (host, nfs) in users.items():
                say(f"login {k + 1}/{runs}: {user}")
                kind = "firewall" if nfs else "no_nf"
                rows[kind].append(_one(api, topo, host, user, bool(nfs), inet.netns,
                                       topo.internet_address, 7100 + k % 50))
                _release(api, user)
    finally:
        api.close()
        lifecycle.down()
    fw, base = _stats(rows["firewall"]), _stats(rows["no_nf"])
    return {"benchmark": "login", "firewall": fw, "baseline_no_nf": base,
            "total_p50_ratio_vs_baseline": ratio(
                fw.get("total_ms", {}).get("p50"), base.get("total_ms", {}).get("p50")),
            "runs_detail": rows}
