"""Bring the emulated testbed up (idempotently), report it, and take it down.

`down` does not trust any record: it ends the OVS daemons by their pidfiles, then removes
every namespace, link and cgroup whose name carries the project's prefix, and the run dir.
So it also cleans up after a crash or a kill -9.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netfate import naming, paths
from netfate.bus.server import stop_recorded
from netfate.controller.pipeline import ovs_datapath_id
from netfate.drivers import cgroups, netns
from netfate.drivers.ovs import OvsNetwork, OvsServer
from netfate.metrics import scrape
from netfate.supervisor import probes
from netfate.testbed import host_link, hosts, processes, readiness, underlay, up_guards
from netfate.testbed.base_rules import base_rules
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import Topology

Progress = Callable[[str], None]


def _noop(_: str) -> None:
    pass


def state_file() -> Any:
    return paths.run_dir() / "testbed.json"


def load_state() -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(state_file().read_text())
        return data
    except (OSError, ValueError):
        return None


def current() -> TestbedSettings:
    """The settings the testbed that is up was brought up with; the defaults if none is."""
    with contextlib.suppress(ValueError, TypeError):
        return TestbedSettings.model_validate((load_state() or {}).get("settings") or {})
    return TestbedSettings()


def controller_target(settings: TestbedSettings | None = None) -> str:
    return (settings or current()).controller_target


def tls_dir() -> Path:
    """The testbed's CA and portal certificate (testbed/tls.py): ca.pem is what clients
    trust to reach the captive portal API over https."""
    return paths.run_dir() / "tls"


def api_url(settings: TestbedSettings | None = None) -> str:
    """The orchestrator's API: with ``settings``, or as the testbed that is up records."""
    return (settings or current()).api_url


def child_env() -> dict[str, str]:
    """What the processes the testbed starts are told through their environment (the rest
    comes as flags): the run dir, so `testbed down` finds everything under one root."""
    return {"NETFATE_RUN_DIR": str(paths.run_dir())}


def up(topo: Topology, progress: Progress = _noop, services: bool = True,
       settings: TestbedSettings | None = None) -> dict[str, Any]:
    """Bring ``topo`` up: switches, hosts, and with ``services`` the controller, the
    orchestrator, the access services and one agent per node, configured by ``settings``
    (ports, idle timeout, re-auth lifetime; default: TestbedSettings()). Idempotent for the
    same topology; raises Conflict if another one is up, DriverError if a service does not
    come up."""
    t = settings or TestbedSettings()
    with paths.locked(paths.claim()):  # one `up` at a time
        prev = load_state()
        if prev is not None:
            up_guards.same_testbed(prev, topo)
            up_guards.same_settings(prev, t.model_dump(mode="json"))
            topo = hosts.as_moved(topo, prev)  # a client that roamed stays where it is
        else:
            up_guards.nothing_of_ours_up()
            # Recorded before anything is made: a failed `up` is then undone below, and if
            # even that is cut short, the next `up` or `down` knows what this one was doing.
            state_file().write_text(json.dumps({"topology": topo.model_dump(mode="json"),
                                                "partial": True}, indent=1))
        try:
            return _up(topo, progress, services, t, prev)
        except BaseException:
            if prev is None:  # a fresh testbed that did not come up leaves nothing behind
                progress("removing what was made")
                with up_guards.uninterrupted(), contextlib.suppress(Exception):
                    down(locked=True)
            raise


def _number(x: float) -> str:
    """A number as a flag takes it, in full (`:g` kept 6 digits: 1234567 was 1.23457e+06)."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _up(topo: Topology, progress: Progress, services: bool, t: TestbedSettings,
        prev: dict[str, Any] | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    server = OvsServer(paths.ovs_dir())
    progress("starting Open vSwitch (private instance)")
    server.start()
    net = OvsNetwork(server)
    try:
        for n in topo.nodes:
            progress(f"node {n.name}: LSI-0 {n.lsi}")
            net.create_lsi(n.lsi, controller=t.controller_target,
                           datapath_id=ovs_datapath_id(n.name))
        for n in topo.nodes:
            if n.uplink:
                up_node = topo.node(n.uplink)
                assert n.uplink_port and n.uplink_peer
                net.create_ports(n.lsi, [(n.uplink_port, n.uplink_peer)], external_ids={
                    n.uplink_port: {"netfate-kind": "uplink", "netfate-peer-node": up_node.name}})
                net.create_ports(up_node.lsi, [(n.uplink_peer, n.uplink_port)],
                                 external_ids={n.uplink_peer: {"netfate-kind": "infra",
                                                               "netfate-peer-node": n.name}})
        progress("overlay: underlay bridges, infrastructure links, tunnels")
        underlay.up(topo, server, net, progress)
        with netns.iproute() as ipr:
            for h in topo.hosts:
                progress(f"host {h.name} on {h.attach}")
                _host(topo, h, ipr, net)
        if not services:
            # No controller will run: a plain learning switch, for data-plane experiments.
            # (With services, the controller owns every flow and the switches stay closed,
            # fail_mode=secure, until it has installed them.)
            for n in topo.nodes:
                net.apply_ts_rules(n.lsi, base_rules(net, n.lsi))
    finally:
        net.close()
    state = {
        "topology": topo.model_dump(mode="json"),
        "up_at": (prev or {}).get("up_at") or time.time(),
        "ovs": {d: server.pid(d) for d in ("ovsdb-server", "ovs-vswitchd")},
        "services": services,
        "settings": t.model_dump(mode="json"),
        "metrics": scrape.targets(topo, t),  # where Prometheus finds each process
    }
    paths.run_dir().mkdir(parents=True, exist_ok=True)
    progress("building container images")
    state["images"] = build_images(progress)
    state_file().write_text(json.dumps(state, indent=1))
    if services:
        # Running processes are kept, dead ones started again from their records.
        revived = revive(topo, progress, t)
        state["pids"] = revived.pop("pids")
        state["processes"] = revived
        state_file().write_text(json.dumps(state, indent=1))
    state["up_seconds"] = round(time.perf_counter() - t0, 3)
    return state


def start_services(topo: Topology, progress: Progress = _noop,
                   settings: TestbedSettings | None = None) -> dict[str, int]:
    """The orchestrator and one agent per node; returns once every node has registered.
    Each process gets its settings as flags (and the run dir through child_env()); the
    default settings are those the testbed that is up was brought up with. If a start or a
    wait fails, the processes started here are ended again."""
    with processes.together():
        return _start_services(topo, progress, settings or current())


def _start_services(topo: Topology, progress: Progress, t: TestbedSettings) -> dict[str, int]:
    env = child_env()
    api = t.api_url
    if not processes.alive("orchestrator"):
        from netfate.db.session import sqlite_url

        progress("starting the orchestrator")
        state_dir = paths.run_dir() / "orchestrator"
        processes.start("orchestrator", processes.netfate_argv(
            # its own SQLite, whatever NETFATE_DB_URL this shell has
            "orchestrator", "--state-dir", str(state_dir), "--db-url", sqlite_url(state_dir),
            "--port", str(t.api_port), "--nats-port", str(t.nats_port),
            "--command-timeout", _number(t.command_timeout),
            "--radius", "--user-idle-timeout", str(t.idle_timeout),
            "--reauth-lifetime", _number(t.reauth_lifetime),
            "--probe-subnet", topo.subnet, "--probe-gateway", topo.gateway,
            *(("--reaction-policy", t.reaction_policy) if t.reaction_policy else ())), env=env,
            ready=probes.http_ok(f"{api}/api/v1/health"), timeout=30)
    if not processes.alive("controller"):
        progress("starting the SDN controller")
        processes.start("controller", processes.netfate_argv(
            "controller", "--nats-url", t.nats_url, "--port", str(t.of_port),
            "--metrics-port", str(t.metrics_port)), env=env,
            ready=probes.tcp_port(t.of_port), timeout=30)
    cpes = [n for n in topo.nodes if n.role == "cpe"]
    # The portals' certificate, from the testbed's own CA (the CAPPORT API is https only).
    from netfate.testbed.tls import portal_pki  # cryptography: only when it is needed

    pki = portal_pki(tls_dir()) if cpes else None
    for k, n in enumerate(cpes):
        name = f"access-{n.name}"
        if processes.alive(name):
            continue
        progress(f"starting the access services of {n.name} (DHCP, DNS, captive portal)")
        assert pki is not None
        processes.start(name, processes.netfate_argv(
            "access", "serve", "--node", n.name, "--index", str(k), "--subnet", topo.subnet,
            "--gateway", topo.gateway, "--bridge", n.lsi, "--api-url", api,
            "--radius-state-dir", str(paths.run_dir() / "orchestrator"),
            "--internet-address", topo.internet_address, "--mtu", str(topo.mtu),
            "--tls-cert", str(pki.cert), "--tls-key", str(pki.key)), env=env)
    for n in topo.nodes:
        name = f"agent-{n.name}"
        if processes.alive(name):
            continue
        progress(f"starting the agent of {n.name}")
        mem, cpus = n.budget
        argv = ["agent", "--node", n.name, "--role", n.role,
                "--nats-url", t.nats_url, "--mtu", str(topo.mtu),
                "--mem-mb", str(mem), "--cpus", str(cpus), "--flavours", ",".join(n.runs),
                "--metrics-port", str(scrape.agent_port(topo, t, n.name))]
        if n.uplink_port:
            argv += ["--uplink", n.uplink_port]
        processes.start(name, processes.netfate_argv(*argv), env=env)
    readiness.wait_registered([n.name for n in topo.nodes], api)
    readiness.wait_access([n.name for n in cpes])
    readiness.wait_switches([n.name for n in topo.nodes], api)
    return processes.recorded()


def _host(topo: Topology, h: Any, ipr: Any, net: OvsNetwork) -> None:
    node = topo.node(h.attach)
    port = topo.host_port(h)
    if hosts.keep_link(topo, h, ipr, net):  # up again: its link (and lease) stays
        return
    netns.create(h.netns)
    netns.disable_ipv6(h.netns)  # no IPv6 chatter (router solicitations, DAD) on the links
    netns.veth_into(
        port, h.netns, "eth0", ipr=ipr, mac=h.mac or h.default_mac(), mtu=topo.mtu
    )
    addrs = [f"{topo.host_address(h)}/{topo.prefixlen}"]
    gateway = None
    if h.role == "internet":
        netns.configure_inside(h.netns, "eth0", addresses=addrs)
        with netns.iproute(h.netns) as nipr:
            lo = netns.link_index(nipr, "lo")
            with contextlib.suppress(Exception):
                nipr.addr("add", index=lo, address=topo.internet_address, prefixlen=32)
    else:
        gateway = topo.gateway
        netns.configure_inside(h.netns, "eth0", addresses=addrs, gateway=gateway)
    net.create_ports(node.lsi, [(port, None)], external_ids={port: hosts.port_ids(topo, h)})


def revive(topo: Topology, progress: Progress = _noop,
           settings: TestbedSettings | None = None) -> dict[str, Any]:
    """See testbed/revive.py (imported here late: it uses this module)."""
    from netfate.testbed import revive as rv

    return rv.revive(topo, progress, settings)


def down(progress: Progress = _noop, *, locked: bool = False) -> dict[str, Any]:
    """Remove everything carrying the prefix. Safe to run at any time, any number of times.
    Conflict while an `up` runs on the run dir (it killed that `up`'s services as they
    started); `locked`: the caller holds the run dir's lock (an `up` undoing itself)."""
    removed: dict[str, Any] = {"pids": [], "namespaces": [], "links": [], "cgroups": [],
                               "containers": []}
    run = paths.run_dir()
    if paths.is_real_dir(run):
        with contextlib.nullcontext() if locked else paths.locked(run, "testbed down"):
            _stop_recorded(removed, progress)
    # else a file or a link where the run dir should be: nothing of ours to read in it (it
    # crashed `down` before the rest); what carries the prefix still goes
    progress("removing cgroups")
    for cg in cgroups.list_ours():
        cgroups.delete(cg)
        removed["cgroups"].append(cg)
    cgroups.remove_parent()
    progress("removing links and namespaces")
    with netns.iproute() as ipr:
        for link in netns.list_links(naming.PREFIX, ipr):
            if netns.delete_link(link, ipr=ipr):
                removed["links"].append(link)
    for ns in netns.list_names():
        if naming.is_ours(ns):
            _delete_ns_links(ns)
            netns.delete(ns)
            removed["namespaces"].append(ns)
    run = paths.run_dir()
    if paths.remove(run) is None and os.path.lexists(run):
        removed["kept"] = str(run)  # NETFATE_RUN_DIR names something NetFATE did not make
    return removed


def _stop_recorded(removed: dict[str, Any], progress: Progress) -> None:
    """End the processes the run dir records (services, nats-server, FreeRADIUS, access
    services' dnsmasq, VM NFs' QEMUs, OVS) and runc's containers under it."""
    progress("stopping the orchestrator and agents")
    removed["pids"] = processes.stop_all()
    nats_pid = stop_recorded(paths.run_dir() / "orchestrator" / "nats")
    if nats_pid:
        removed["pids"].append(nats_pid)
    from netfate.radius.server import stop_recorded as stop_radius

    with contextlib.suppress(Exception):  # the orchestrator stops it, unless it was killed
        radius_pid = stop_radius(paths.run_dir() / "orchestrator")
        if radius_pid:
            removed["pids"].append(radius_pid)
    access_dir = paths.run_dir() / "access"
    if access_dir.is_dir():  # a killed `access serve` leaves its dnsmasq behind
        from netfate.access.services import cleanup as access_cleanup

        for d in sorted(access_dir.iterdir()):
            with contextlib.suppress(Exception):
                pid = access_cleanup(d.name, d).get("dnsmasq_pid")
                if pid:
                    removed["pids"].append(pid)
    from netfate.drivers.vm_qemu import stop_all_under

    removed["pids"] += stop_all_under(paths.run_dir())  # VM NFs' QEMUs, by their records
    server = OvsServer(paths.ovs_dir())
    progress("stopping Open vSwitch")
    removed["pids"] += server.stop()
    progress("removing containers")
    removed["containers"] = _remove_containers()


def _remove_containers() -> list[str]:
    """runc's containers under the project's state root (their cgroups go with them)."""
    from netfate.drivers.runc import Runc

    runc = Runc(paths.run_dir() / "runc")
    gone = []
    for cid in runc.list_ids():
        with contextlib.suppress(Exception):
            runc.delete(cid)
            gone.append(cid)
    return gone


def build_images(progress: Progress = _noop) -> list[str]:
    """Build the catalogue's container images into the node store (idempotent); skipped,
    with a note, where the container flavour's tools are missing."""
    from netfate.errors import NetfateError
    from netfate.oci.build import build_nf_image, container_nfs
    from netfate.oci.store import ImageStore

    store = ImageStore(paths.run_dir() / "images")
    built = []
    for name in container_nfs():
        try:
            built.append(build_nf_image(store, name).tag)
        except (NetfateError, OSError) as exc:
            progress(f"image {name}: not built ({exc})")
    return built


def _delete_ns_links(ns: str) -> None:
    """Delete veths inside ns first: `ip netns del` returns before the namespace is gone."""
    with contextlib.suppress(Exception), netns.iproute(ns) as ipr:
        for link in ipr.get_links():
            if link.get_attr("IFLA_INFO_DATA") is not None or link.get("ifname") != "lo":
                with contextlib.suppress(Exception):
                    ipr.link("del", index=link["index"])


def status() -> dict[str, Any]:
    st = load_state()
    server = OvsServer(paths.ovs_dir())
    out: dict[str, Any] = {
        "up": st is not None and server.running(),
        "topology": (st or {}).get("topology", {}).get("name"),
        "ovs": {d: server.pid(d) for d in ("ovsdb-server", "ovs-vswitchd")},
        "bridges": {},
        "hosts": [],
        "links": [],
        "namespaces": [n for n in netns.list_names() if naming.is_ours(n)],
        "processes": {k: {"pid": v, "alive": processes.alive(k)}
                      for k, v in processes.recorded().items()},
        "api": api_url() if processes.alive("orchestrator") else None,
    }
    if st is None:
        return out
    topo = Topology.model_validate(st["topology"])
    if server.running():
        net = OvsNetwork(server)
        try:
            for n in topo.nodes:
                try:
                    ports = net.list_ports(n.lsi)
                except Exception as exc:
                    ports = {"error": str(exc)}  # type: ignore[dict-item]
                out["bridges"][n.lsi] = {"node": n.name, "role": n.role, "ports": ports}
        finally:
            net.close()
    for n in topo.nodes:
        if n.uplink:
            out["links"].append({"a": f"{n.name}:{n.uplink_port}",
                                 "b": f"{n.uplink}:{n.uplink_peer}", "kind": "patch"})
    for h in topo.hosts:
        # What the host's eth0 holds now (a lease, a stable address, a MAC it changed),
        # the topology's where it cannot be read.
        real = host_link.read(h.netns)
        planned = topo.host_address(h) if h.address or h.role == "internet" else None
        out["hosts"].append({
            "name": h.name, "role": h.role, "node": h.attach, "netns": h.netns,
            # None when eth0 holds no address (not the topology's: probe of 2026-12-06)
            "address": real.address if real is not None else planned,
            "addresses": list(real.addresses) if real else [],
            "topology_address": planned,
            "mac": (real.mac if real else None) or h.mac or h.default_mac(),
            "present": real is not None or netns.exists(h.netns),
        })
        out["links"].append({"a": f"{h.name}:eth0", "b": f"{h.attach}:{topo.host_port(h)}",
                             "kind": "veth"})
    nfs = []
    nodes_dir = paths.run_dir() / "nodes"
    if nodes_dir.is_dir():
        for nd in sorted(nodes_dir.iterdir()):
            for inst in sorted((nd / "nfs.records").glob("*.json")):
                with contextlib.suppress(Exception):
                    d = json.loads(inst.read_text())
                    nfs.append({k: d[k] for k in ("instance_id", "node", "owner", "name",
                                                  "state", "flavour")})
    out["nfs"] = nfs
    return out
