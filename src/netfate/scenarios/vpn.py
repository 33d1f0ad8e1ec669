"""`netfate scenario vpn`: a transparent VPN at the CPE (NNF paper, section V, Table IV).

The user's traffic enters an IPsec tunnel (strongSwan, IKEv2, ESP in UDP) in the VPN NF on
their CPE and leaves at a VPN gateway host behind the internet router; the user's device is
not configured at all. For each suite (the paper's AES-CBC-128/HMAC-SHA1 and the AEAD
AES-GCM-128) and each flavour that runs the NF (those the CPE hosts and the NF offers, or
`flavours`: native, container, vm), beside a bare strongSwan pair with no platform, it
measures what Table IV lists: start time (create -> first packet through the tunnel), RAM
and CPU of the CPE end (a VM's: its QEMU process), image size, and throughput
(iperf3, two TCP streams, MSS set to the tunnel's MTU so nothing fragments, mean of
`runs`), with the links uncapped and capped at 1 Gbit/s (tc tbf). Then the user roams with
the last flavour measured: the NF follows with its state (its config), the tunnel re-keys,
and a TCP connection through it is probed all along.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from netfate import catalogue
from netfate.drivers import node_files
from netfate.errors import InvalidInput
from netfate.interfaces import NFInfo
from netfate.oci.store import image_tag
from netfate.proc import netns_argv
from netfate.scenarios import vpn_measure as m
from netfate.scenarios import vpn_vm
from netfate.scenarios.timeline import Mark, Say, marker
from netfate.scenarios.vpn_gateway import BARE_A, BARE_INNER, Bare, Gateway, swan
from netfate.testbed import lifecycle
from netfate.testbed.context import Testbed
from netfate.testbed.move import move
from netfate.testbed.topology import Topology, parse_topology

CLIENT, CPE, CPE2 = "client1", "cpe1", "cpe2"
CLIENT_NS, INET_NS = "fate-h-client1", "fate-h-inet"
# The CPE end's address: inside the user's LAN (10.90.1.0/24, the traffic selector), as a
# site-to-site gateway has one (kernel-libipsec needs a local address in the selector).
VPN_ADDR, USER_LAN = "10.90.1.254/16", "10.90.1.0/24"
STRONGSWAN_PACKAGES = ("strongswan-swanctl", "charon-systemd", "strongswan-libcharon",
                       "libstrongswan", "libstrongswan-standard-plugins",
                       "libcharon-extra-plugins")
# NNF paper, Table IV (server CPE, IPsec client, AES-CBC-128/HMAC-SHA1, links at 1 Gbit/s:
# throughput Mbit/s @ CPU load %, RAM, image) and the start times issue #10 quotes from it
PAPER = {"vm": {"start_s": 3.0, "mbit_s": 796, "cpu_pct": 100, "ram_mb": 390.6,
                "image_mb": 522},
         "docker": {"start_s": 0.350, "mbit_s": 1095, "cpu_pct": 80, "ram_mb": 24.2,
                    "image_mb": 240},
         "native": {"start_s": 0.727, "mbit_s": 1094, "cpu_pct": 80, "ram_mb": 19.4,
                    "image_mb": 5},
         "bare": {"start_s": 0.154}}


@dataclass
class Options:
    suites: tuple[str, ...] = ("aes128-sha1", "aes128gcm16")
    runs: int = 3
    seconds: int = 3
    mtu: int = 1400  # of the tunnel; MSS = mtu - 40
    cap_mbit: int = 1000
    roam: bool = True
    flavours: tuple[str, ...] | None = None  # None: every flavour the CPE hosts and the NF has


FLAVOURS = ("native", "container", "vm")


def plan_flavours(wanted: tuple[str, ...] | None, hosted: list[str],
                  offered: list[str]) -> tuple[list[str], dict[str, str]]:
    """Which flavours to measure, in FLAVOURS order, and why each other wanted one is not:
    `wanted` None means every flavour of FLAVOURS. InvalidInput for an unknown name."""
    names = FLAVOURS if wanted is None else tuple(dict.fromkeys(wanted))
    unknown = [f for f in names if f not in FLAVOURS]
    if unknown:
        raise InvalidInput(f"flavours: {', '.join(unknown)} unknown (one of "
                           f"{', '.join(FLAVOURS)})")
    run_, skipped = [], {}
    for f in FLAVOURS:
        if f not in names:
            continue
        if f not in offered:
            skipped[f] = "not offered by the VPN NF's descriptor"
        elif f not in hosted:
            skipped[f] = f"not hosted by {CPE} (hosts: {', '.join(sorted(hosted))})"
        else:
            run_.append(f)
    return run_, skipped


@dataclass
class Result:
    ok: bool = False
    checks: dict[str, bool] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    timeline: list[tuple[float, str]] = field(default_factory=list)


def topology() -> Topology:
    text = resources.files("netfate.testbed").joinpath("default.yaml").read_text()
    return parse_topology(text, "default topology")


def _psk_file(owner: str = CLIENT) -> tuple[str, str]:
    """A fresh random PSK in a mode-600 file among `owner`'s node files, as the node's
    operator would put it there (node_files.owner_dir): (path, key)."""
    d = Path(node_files.owner_dir(owner))
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_hex(16)
    path = d / "psk"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return str(path), key


def image_mb() -> dict[str, float]:
    """The NF's bundle and the strongSwan packages it runs (dpkg's Installed-Size), MB."""
    p = subprocess.run(["dpkg-query", "-W", "-f", "${Installed-Size}\n",
                        *STRONGSWAN_PACKAGES], capture_output=True, text=True, check=False)
    kb = sum(int(x) for x in p.stdout.split() if x.isdigit())
    return {"bundle_mb": round(len(catalogue.bundle_bytes("vpn")) / 1e6, 3),
            "strongswan_mb": round(kb / 1024, 1)}


def ping_ok(ns: str, addr: str) -> bool:
    return subprocess.run(netns_argv(ns, ["ping", "-c", "1", "-W", "0.3", addr]),
                          capture_output=True, check=False).returncode == 0


def wait_ping(ns: str, addr: str, timeout: float) -> float | None:
    """Seconds until a ping from `ns` to `addr` is answered; None if not within timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if ping_ok(ns, addr):
            return time.monotonic() - t0
    return None


def run(opts: Options, say: Say, keep: bool = False) -> Result:
    """Bring the testbed up, run the comparison and the roaming, check, take it down
    (unless `keep`). InvalidInput for options out of range."""
    s = swan()
    for suite in opts.suites:
        if suite not in s.SUITES:
            raise InvalidInput(f"suite {suite!r}: one of {sorted(s.SUITES)}")
    if not 1 <= opts.runs <= 10 or not 1 <= opts.seconds <= 30:
        raise InvalidInput("runs: 1-10, seconds: 1-30")
    if not s.MTU_MIN <= opts.mtu <= s.MTU_MAX:
        raise InvalidInput(f"mtu: {s.MTU_MIN}-{s.MTU_MAX}")
    wanted, _ = plan_flavours(opts.flavours, list(FLAVOURS), list(FLAVOURS))  # unknown names
    # the VM guest before the testbed is attached (its VM driver needs it), or why not
    no_vm = vpn_vm.prepare() if "vm" in wanted else ""
    res = Result()
    mark = marker(res.timeline, say)
    topo = topology()
    inet = topo.internet_address
    mss = opts.mtu - 40
    lifecycle.down()
    lifecycle.up(topo, services=False)
    psk_file, psk = _psk_file()  # after up: `down` empties the run directory
    mark(f"testbed up: {CLIENT} on {CPE}, internet host {inet}")
    tb = Testbed.attach()
    gw = Gateway(INET_NS, mtu=topo.mtu)
    bare = Bare(link_mtu=topo.mtu)
    server = m.IperfServer(INET_NS, inet)
    rows: list[dict[str, Any]] = []
    bundle = catalogue.install(tb.store, "vpn")
    sha = bundle.sha256
    tag = image_tag(bundle.descriptor.name, bundle.descriptor.version)
    img = image_mb()
    try:
        flavours, skipped = plan_flavours(opts.flavours, sorted(tb.node(CPE).computes),
                                          list(bundle.descriptor.flavours))
        if no_vm and "vm" in skipped:
            skipped["vm"] += f" ({no_vm})"
        if "vm" in flavours:
            desc = bundle.descriptor
            res.figures["vm_template_s"] = round(vpn_vm.ensure_template(
                tb.node(CPE).driver("vm"), len(desc.ports), desc.resources.memory_mb), 1)
            mark(f"vm flavour: guest template ready in {res.figures['vm_template_s']} s "
                 "(once per guest image and device set; not part of a start)")
        if not flavours:
            raise InvalidInput(f"no flavour to measure: {skipped}")
        for f, why in skipped.items():
            mark(f"{f} flavour: {why}")
        res.figures["flavours"] = flavours
        res.figures["not_measured"] = skipped
        for suite in opts.suites:
            cfg = {"address": VPN_ADDR, "gateway": topo.gateway, "peer": Gateway.address,
                   "local_ts": [USER_LAN], "suite": suite,
                   "psk_file": psk_file, "mtu": opts.mtu}
            gw.up(s.normalise(cfg), psk)
            mark(f"[{suite}] VPN gateway up at {Gateway.address} (behind the internet host)")
            for flavour in flavours:
                rows.append(_nf(tb, flavour, sha, cfg, suite, opts, mss, inet,
                                _image(tb, flavour, img, tag), mark, res))
            rows.append(_bare(bare, suite, psk_file, psk, opts, mss, img, mark, res))
        res.figures["table"] = rows
        res.figures["paper_table_iv"] = PAPER
        res.figures["options"] = {"suites": list(opts.suites), "runs": opts.runs,
                                  "seconds": opts.seconds, "mtu": opts.mtu, "mss": mss,
                                  "cap_mbit": opts.cap_mbit}
        if opts.roam:
            suite = opts.suites[-1]
            cfg = {"address": VPN_ADDR, "gateway": topo.gateway, "peer": Gateway.address,
                   "local_ts": [USER_LAN], "suite": suite,
                   "psk_file": psk_file, "mtu": opts.mtu}
            gw.up(s.normalise(cfg), psk)
            res.figures["roaming"] = _roam(tb, sha, cfg, inet, mark, res, flavours[-1])
        res.ok = all(res.checks.values())
        return res
    finally:
        server.stop()
        bare.down()
        gw.down()
        tb.close()
        if not keep:
            lifecycle.down()


def _image(tb: Testbed, flavour: str, img: dict[str, float], tag: str) -> dict[str, float]:
    """What the flavour's NF is made of, MB: native, the bundle and the strongSwan packages;
    container, its OCI image (the gzipped blobs and the unpacked rootfs) and the bundle; vm,
    the guest's kernel and initramfs and the bundle."""
    if flavour == "vm":
        return vpn_vm.image_mb(tb.node(CPE).driver("vm"), img["bundle_mb"])
    if flavour != "container":
        return {**img, "image_mb": round(img["bundle_mb"] + img["strongswan_mb"], 1)}
    from netfate.drivers.container import ContainerCompute

    drv = tb.node(CPE).driver("container")
    assert isinstance(drv, ContainerCompute)
    info = drv.images.resolve(tag)
    root = drv.images.rootfs(tag)
    unpacked = sum(p.lstat().st_size for p in root.rglob("*") if p.is_file())
    return {"bundle_mb": img["bundle_mb"], "oci_blobs_mb": round(info.size / 1e6, 1),
            "rootfs_mb": round(unpacked / 1e6, 1),
            "image_mb": round(unpacked / 1e6 + img["bundle_mb"], 1)}


def _nf(tb: Testbed, flavour: str, sha: str, cfg: dict[str, Any], suite: str, opts: Options,
        mss: int, inet: str, img: dict[str, float], mark: Mark,
        res: Result) -> dict[str, Any]:
    node = tb.node(CPE)
    t = time.monotonic()
    info = node.deploy_nf(CLIENT, "vpn", sha, cfg, flavour=flavour)
    deploy_s = time.monotonic() - t
    tb.steer(CLIENT, [info], tag=f"user:{CLIENT}")
    first = wait_ping(CLIENT_NS, inet, 15)
    start_s = time.monotonic() - t if first is not None else None
    res.checks[f"{flavour} {suite}: traffic crosses the tunnel"] = first is not None
    mark(f"[{suite}] {flavour} VPN NF on {CPE}: created and started in {deploy_s:.2f} s, first "
         f"packet through the tunnel after {start_s or float('nan'):.2f} s")
    row: dict[str, Any] = {"flavour": flavour, "suite": suite,
                           "deploy_s": round(deploy_s, 3),
                           "start_s": round(start_s, 3) if start_s else None,
                           "image_mb": img["image_mb"],
                           "image": {k: v for k, v in img.items() if k != "image_mb"}}
    ns = info.netns or ""
    try:
        if first is None:
            return row
        enc, clear = _on_the_wire(tb, inet)
        res.checks[f"{flavour} {suite}: ESP on the underlay, no plaintext"] = enc > 0 and clear == 0
        row["underlay"] = {"esp_in_udp_packets": enc, "plaintext_packets": clear}
        drv = node.driver(flavour)

        def pids() -> list[int]:  # the CPE end's processes: a VM's QEMU, else the namespace's
            return vpn_vm.pids(drv, info) if flavour == "vm" else m.pids_in(ns)

        row["ram_mb"] = m.rss_mb(pids())
        for label, capped in (("uncapped", None), ("capped", opts.cap_mbit)):
            m.cap(CLIENT_NS, "eth0", capped)
            tp = m.iperf(CLIENT_NS, inet, mss, opts.seconds, opts.runs, ns, cpu_pids=pids)
            row[label] = tp.summary()
            mark(f"[{suite}] {flavour}, {label}: {row[label]['mean_mbit_s']} Mbit/s, CPE end "
                 f"CPU {row[label]['cpu_pct']} %")
        m.cap(CLIENT_NS, "eth0", None)
        row["status"] = {k: v for k, v in drv.status(info.instance_id).detail.items()
                         if k in ("ike_established", "child_installed", "tunnel_out",
                                  "tunnel_in", "clear_dropped")}
        return row
    finally:
        m.cap(CLIENT_NS, "eth0", None)
        tb.remove_nf(CPE, info.instance_id)


def _on_the_wire(tb: Testbed, inet: str) -> tuple[int, int]:
    """(ESP-in-UDP packets, packets with the user's address) on the internet host's link to
    the core while the client pings through the tunnel: the underlay sees the tunnel only.
    (The CPE's uplink is an OVS patch port, which has no kernel interface to capture on.)"""
    user = str(tb.host(CLIENT).address)
    counts = []
    for bpf in (["udp", "port", "4500"], ["ip", "and", "host", user]):
        pinger = subprocess.Popen(netns_argv(CLIENT_NS, ["ping", "-c", "8", "-i", "0.1", inet]),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            counts.append(m.capture("eth0", 1.2, bpf, ns=INET_NS))
        finally:
            pinger.wait()
    return counts[0], counts[1]


def _bare(bare: Bare, suite: str, psk_file: str, psk: str, opts: Options, mss: int,
          img: dict[str, float], mark: Mark, res: Result) -> dict[str, Any]:
    bare.up(suite, psk_file, psk, opts.mtu)
    first = wait_ping(BARE_A, BARE_INNER[1], 5)
    res.checks[f"bare {suite}: traffic crosses the tunnel"] = first is not None
    mark(f"[{suite}] bare strongSwan: tunnel up in {bare.start_s:.2f} s")
    row: dict[str, Any] = {"flavour": "bare", "suite": suite,
                           "start_s": round(bare.start_s, 3),
                           "ram_mb": m.rss_mb(m.pids_in(BARE_A)),
                           "image_mb": img["strongswan_mb"]}
    server = m.IperfServer(bare.b.ns, BARE_INNER[1], 5202)
    try:
        for label, capped in (("uncapped", None), ("capped", opts.cap_mbit)):
            m.cap(BARE_A, "fate-vpnb-a", capped)
            tp = m.iperf(BARE_A, BARE_INNER[1], mss, opts.seconds, opts.runs, BARE_A,
                         bind=BARE_INNER[0], port=5202)
            row[label] = tp.summary()
            mark(f"[{suite}] bare, {label}: {row[label]['mean_mbit_s']} Mbit/s, CPE end "
                 f"CPU {row[label]['cpu_pct']} %")
        return row
    finally:
        server.stop()
        bare.down()


def _roam(tb: Testbed, sha: str, cfg: dict[str, Any], inet: str,
          mark: Mark, res: Result, flavour: str = "native") -> dict[str, Any]:
    """The user moves cpe1 -> cpe2 and the NF follows: its state (the config) is exported and
    a new instance on cpe2 imports it; the client moves and is steered through it; the old
    instance goes. The new instance's IKE can leave cpe2 only once it is in a steered chain
    (the switch lets an NF's own frames out only then), so its tunnel is negotiated after
    the move (the gateway replaces the old one: `unique = replace`). A TCP connection through
    the tunnel is probed all along; its longest silence is the gap."""
    old = tb.node(CPE).deploy_nf(CLIENT, "vpn", sha, cfg, flavour=flavour)
    tb.steer(CLIENT, [old], tag=f"user:{CLIENT}")
    out: dict[str, Any] = {"flavour": flavour}
    if wait_ping(CLIENT_NS, inet, 15) is None:
        res.checks["roaming: tunnel up before the move"] = False
        tb.remove_nf(CPE, old.instance_id)
        return out
    probe = m.Probe(INET_NS, CLIENT_NS, inet)
    new: NFInfo | None = None
    tb2: Testbed | None = None
    old_gone = False
    try:
        time.sleep(0.5)
        mark(f"roaming: a TCP connection {CLIENT} -> {inet}:7070 through the tunnel")
        t0 = time.monotonic()
        state = tb.node(CPE).driver(flavour).export_state(old.instance_id)
        node2 = tb.node(CPE2)
        new = node2.deploy_nf(CLIENT, "vpn", sha, dict(state["config"]), flavour=flavour)
        node2.driver(flavour).import_state(new.instance_id, state)
        t_ready = time.monotonic()
        mark(f"roaming: the VPN NF's state imported by a new instance on {CPE2} "
             f"({t_ready - t0:.2f} s); its tunnel starts once it is steered")
        # Without the controller an unsteered client's frames are switched straight out in
        # the clear (and the internet host would reset the connection it knows only through
        # the gateway): the probe holds its next message across the move and the steering.
        with probe.hold():
            t_move = time.monotonic()
            mv = move(CLIENT, CPE2)
            tb2 = Testbed.attach()
            tb2.steer(CLIENT, [new], tag=f"user:{CLIENT}")
            t_steered = time.monotonic()
        mark(f"roaming: {CLIENT} moved {CPE} -> {CPE2} and steered through the VPN NF there "
             f"({(t_steered - t_move) * 1000:.0f} ms; the link itself {mv.get('seconds')} s)")
        tb.remove_nf(CPE, old.instance_id)
        old_gone = True
        back = wait_ping(CLIENT_NS, inet, 20)
        t_back = time.monotonic()
        survived = probe.alive(wait_s=15)
        gap = probe.gap(t0, time.monotonic())
        out = {"flavour": flavour, "export_deploy_import_s": round(t_ready - t0, 3),
               "move_and_steer_ms": round((t_steered - t_move) * 1000, 1),
               "move_to_first_ping_s": round(t_back - t_move, 3),
               "tcp_gap_s": round(gap, 3), "tcp_survived": survived,
               "probe_error": probe.error}
        mark(f"roaming: TCP connection {'survived' if survived else 'LOST'}, longest gap "
             f"{gap:.2f} s")
        res.checks["roaming: tunnel back after the move"] = back is not None
        res.checks["roaming: the TCP connection survived"] = survived
        return out
    finally:
        probe.close()
        if not old_gone:
            tb.remove_nf(CPE, old.instance_id)
        if new is not None:
            (tb2 or tb).remove_nf(CPE2, new.instance_id)
        if tb2 is not None:
            tb2.close()
