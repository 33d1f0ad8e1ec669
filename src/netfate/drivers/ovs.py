"""Open vSwitch: a private instance (ovsdb-server + ovs-vswitchd, userspace datapath) and the
network driver (Table I) on top of it.

Bridges and ports go through OVSDB with ovsdbapp: idempotent commands (may_exist / if_exists)
in transactions that wait for vswitchd. Without an SDN controller, TS rules are kept and
converged by drivers/local_steering.py over each bridge's management socket (OpenFlow 1.3).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netfate.controller.model import TSRule
from netfate.drivers import ovs_idl, ovs_port_states
from netfate.drivers.local_steering import LocalSteering
from netfate.drivers.openflow import OpenFlowChannel
from netfate.drivers.ovs_appctl import unixctl
from netfate.errors import DriverError, InvalidInput, NotFound
from netfate.proc import run
from netfate.supervisor import Group, Supervised, probes

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
DAEMONS = ("ovs-vswitchd", "ovsdb-server")
ISOLATED_VLAN = 4000


class OvsServer:
    """The project's own OVS daemons, in a private run directory, run in the foreground under
    the supervisor (PID records <rundir>/<daemon>.pid, stdout/stderr <daemon>.out, OVS's own
    log <daemon>.log). start() is idempotent.

    ``other_config``: Open_vSwitch other_config keys set before ovs-vswitchd starts (some,
    like userspace-tso-enable, are read only at its start); None: OTHER_CONFIG."""

    # What the benchmarks measured to help on this machine (README, "Data plane").
    OTHER_CONFIG: dict[str, str] = {}

    def __init__(self, rundir: Path, other_config: dict[str, str] | None = None) -> None:
        self.rundir = rundir
        self.other_config = dict(self.OTHER_CONFIG if other_config is None else other_config)
        self.db_sock = rundir / "db.sock"
        self.env = {
            "OVS_RUNDIR": str(rundir),
            "OVS_DBDIR": str(rundir),
            "OVS_LOGDIR": str(rundir),
            "OVS_SYSCONFDIR": str(rundir),
        }

    @property
    def db(self) -> str:
        return f"unix:{self.db_sock}"

    def pidfile(self, daemon: str) -> Path:
        return self.rundir / f"{daemon}.pid"

    def _daemon(self, daemon: str, argv: list[str] | None = None) -> Supervised:
        return Supervised(daemon, argv or [], self.rundir, programs=(daemon,),
                          env={**os.environ, **self.env}, log=self.rundir / f"{daemon}.out",
                          logs=[self.rundir / f"{daemon}.log"])

    def pid(self, daemon: str) -> int | None:
        """The daemon's PID if it runs, checked against /proc so a reused PID is not ours."""
        return self._daemon(daemon).pid

    def running(self) -> bool:
        return all(self.pid(d) is not None for d in DAEMONS)

    def start(self, timeout: float = 10.0) -> None:
        """Start ovsdb-server, then ovs-vswitchd, each once its socket answers. DriverError
        (StartError: exit code and log tail) if one does not; then neither runs."""
        if self.running():
            return
        self.stop()  # a half-started instance from a crash
        self.rundir.mkdir(parents=True, exist_ok=True)
        db = self.rundir / "conf.db"
        if db.exists():
            db.unlink()
        run(["ovsdb-tool", "create", str(db), SCHEMA], env=self.env)
        common = ["--no-chdir", "-vconsole:off", "-vsyslog:off", "-vfile:info"]
        with Group() as group:
            group.start(self._daemon("ovsdb-server", [
                "ovsdb-server", str(db), f"--remote=punix:{self.db_sock}",
                f"--unixctl={self.rundir / 'ovsdb-server.ctl'}",
                f"--log-file={self.rundir / 'ovsdb-server.log'}", *common,
            ]), ready=probes.unix_socket(self.db_sock), timeout=timeout)
            sets = [a for k, v in sorted(self.other_config.items())
                    for a in ("--", "set", "Open_vSwitch", ".", f"other_config:{k}={v}")]
            run(["ovs-vsctl", f"--db={self.db}", "--no-wait", "init", *sets], env=self.env)
            ctl = self.rundir / "ovs-vswitchd.ctl"
            group.start(self._daemon("ovs-vswitchd", [
                "ovs-vswitchd", self.db, f"--unixctl={ctl}",
                f"--log-file={self.rundir / 'ovs-vswitchd.log'}", *common,
            ]), ready=probes.unix_socket(ctl), timeout=timeout)
            group.release()  # both up: they outlive this call

    def stop(self) -> list[int]:
        """End the daemons by their recorded PIDs. Returns the PIDs ended."""
        ended = []
        for daemon in DAEMONS:
            pid = self._daemon(daemon).stop_recorded(grace=3.0)
            if pid is not None:
                ended.append(pid)
        return ended


class OvsNetwork:
    """The network abstraction (Table I) for bridges of one OvsServer."""

    def __init__(self, server: OvsServer, timeout: float = 30.0) -> None:
        # ``timeout`` (s) bounds one OVSDB transaction *including* ovs-vswitchd applying it
        # (ovsdbapp waits for cur_cfg, as ovs-vsctl does): on this 2-core machine, with a
        # QEMU guest busy, a port deletion took over 10 s in a full `make test`.
        self.server = server
        self.timeout = timeout
        self._api: Any = None
        self._lock = threading.Lock()
        self._channels: dict[str, OpenFlowChannel] = {}
        self._port_watchers = ovs_idl.PortWatchers()
        self.ts_rules = LocalSteering(server.rundir / "ts-rules", self._of, self.list_ports,
                                      self.settle, self.controller_connected)

    # -- OVSDB through ovsdbapp ---------------------------------------------------------
    @property
    def api(self) -> Any:
        with self._lock:
            if self._api is None:
                if not self.server.db_sock.exists():
                    raise DriverError(f"OVS is not running (no {self.server.db_sock})")
                self._api = ovs_idl.connect(self.server.db, self.timeout,
                                            self._port_watchers)
            return self._api

    def close(self) -> None:
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()
            if self._api is not None:
                with contextlib.suppress(Exception):
                    # its thread may sit in the IDL poller until the next OVSDB change
                    self._api.ovsdb_connection.stop(timeout=1)
                self._api = None

    def _commit(self, *cmds: Any, wait: bool = True) -> None:
        """One OVSDB transaction; wait=False: not waiting for ovs-vswitchd to apply it
        (`ovs-vsctl --no-wait`: ovsdbapp's base transaction, not its cur_cfg-waiting one)."""
        api = self.api  # first: it loads ovs without eventlet (ovs_import)
        from ovsdbapp.backend.ovs_idl import transaction

        try:
            with (api.transaction(check_error=True) if wait else transaction.Transaction(
                    api, api.ovsdb_connection, self.timeout, check_error=True)) as txn:
                for c in cmds:
                    txn.add(c)
        except Exception as exc:
            # ovsdbapp's timeout names every command with its whole row: long and no help.
            # What ovs-vswitchd said while it did not apply the change is.
            text = str(exc)
            if type(exc).__name__ == "TimeoutException":
                text = (f"ovs-vswitchd did not apply it within {self.timeout:g} s; "
                        f"{self._vswitchd_complaints()}")
            raise DriverError(f"OVSDB transaction failed: {text[:2000]}") from exc

    # -- LSIs ---------------------------------------------------------------------------
    def create_lsi(self, lsi: str, *, controller: str | None = None,
                   datapath_id: str | None = None) -> None:
        """An OpenFlow 1.3 bridge, fail_mode=secure. With a controller (tcp:127.0.0.1:6653),
        it owns the flows; several, comma-separated, share it with OpenFlow roles
        (controller/roles.py); datapath_id (16 hex digits) is how a controller knows it."""
        api = self.api
        other = {"disable-in-band": "true"}
        if datapath_id is not None:
            other["datapath-id"] = datapath_id
        cmds = [
            api.add_br(lsi, may_exist=True, datapath_type="netdev"),
            api.db_set(
                "Bridge", lsi,
                ("fail_mode", "secure"),
                ("protocols", ["OpenFlow13"]),
                ("other_config", other),
            ),
        ]
        if controller is not None:
            # Reconnect within 1 s (OVS backs off up to 8 s by default): a controller
            # started after the switch, or restarted, takes over quickly.
            ctls = [api.db_create("Controller", target=t.strip(), max_backoff=1000,
                                  inactivity_probe=5000) for t in controller.split(",")]
            cmds += [*ctls, api.db_set("Bridge", lsi, ("controller", ctls))]
        self._commit(*cmds)

    def delete_lsi(self, lsi: str) -> None:
        self._commit(self.api.del_br(lsi, if_exists=True))
        self.ts_rules.forget(lsi)

    def list_lsis(self) -> list[str]:
        return sorted(str(b) for b in self.api.list_br().execute(check_error=True))

    def controller_connected(self, lsi: str) -> bool:
        """Whether an SDN controller holds an OpenFlow session with the LSI now (read from
        the IDL's in-memory replica of OVSDB)."""
        br = self.api.lookup("Bridge", lsi)
        return any(bool(c.is_connected) for c in getattr(br, "controller", []))

    def _require_lsi(self, lsi: str) -> None:
        if not self.api.br_exists(lsi).execute(check_error=True):
            raise NotFound(f"LSI {lsi!r} does not exist on this node")

    # -- ports --------------------------------------------------------------------------
    def create_port(self, lsi: str, port: str, *, peer: str | None = None) -> int:
        """Attach a kernel interface (or, with peer, a patch port) to the LSI; its ofport."""
        self._require_lsi(lsi)
        return self.create_ports(lsi, [(port, peer)])[port]

    def create_ports(
        self, lsi: str, ports: list[tuple[str, str | None]], *, isolated: bool = False,
        external_ids: dict[str, dict[str, str]] | None = None,
    ) -> dict[str, int]:
        """Several ports in one transaction (an NF's ports come up together).

        isolated ports sit in a VLAN of their own, which only affects the NORMAL action: L2
        flooding from the access and infrastructure ports never reaches them, while steering
        rules still output to them. They share that VLAN, so nothing from one may reach
        NORMAL: an NF bridges its ports, and a frame NORMAL flooded from one into the other
        would circle NF and switch for ever (a broadcast storm that starves ovs-vswitchd's
        main thread). The controller's pipeline never sends them to NORMAL; without it, the
        node's drop rules do (node.attach_ports, node.remove_nf). Not OVS protected ports:
        OVS blocks every output between two protected ports, so chains of NFs would break.
        external_ids, by port name, go on the port's Interface row: what sits behind it
        (`attached-mac`, as OpenStack names it; `netfate-kind`: access, services, ...).
        """
        api = self.api
        cmds: list[Any] = []
        for port, peer in ports:
            cmds.append(api.add_port(lsi, port, may_exist=True))
            ids = (external_ids or {}).get(port)
            if ids:
                cmds.append(api.db_set("Interface", port, ("external_ids", ids)))
            if isolated:
                cmds.append(api.db_set("Port", port, ("tag", ISOLATED_VLAN)))
            if peer is not None:
                cmds.append(
                    api.db_set("Interface", port, ("type", "patch"), ("options", {"peer": peer}))
                )
        self._commit(*cmds)
        result = {}
        for port, _ in ports:
            result[port] = self._ofport(port)
        return result

    def port_ids(self, lsi: str) -> dict[str, dict[str, str]]:
        """Each port of the LSI with its Interface's external_ids (read from the IDL's
        in-memory replica: no round trip, so cheap enough to poll)."""
        self._require_lsi(lsi)
        br = self.api.lookup("Bridge", lsi)
        out: dict[str, dict[str, str]] = {}
        for port in br.ports:
            for iface in port.interfaces:
                if iface.name != lsi:
                    out[iface.name] = dict(iface.external_ids)
        return out

    def watch_ports(self, callback: Callable[[], None]) -> Callable[[], None]:
        """See interfaces.PortDriver. Connects to OVSDB if not connected yet (DriverError if
        OVS is not running); the callback survives reconnections."""
        self._port_watchers.add(callback)
        try:
            _ = self.api
        except Exception:
            self._port_watchers.remove(callback)
            raise
        return lambda: self._port_watchers.remove(callback)

    def _ofport(self, port: str) -> int:
        rows = self.api.db_list("Interface", [port], columns=["ofport", "error"]).execute(
            check_error=True
        )
        ofport = rows[0]["ofport"] if rows else None
        if isinstance(ofport, list):
            ofport = ofport[0] if ofport else None
        if not isinstance(ofport, int) or ofport < 0:
            error = rows[0].get("error") if rows else None
            raise DriverError(f"port {port} has no OpenFlow port number: "
                              f"{error or self._vswitchd_complaints()}")
        return ofport

    def _vswitchd_complaints(self, lines: int = 6) -> str:
        """Why vswitchd left a port without a number when OVSDB says nothing: its own log's
        last warnings and errors (e.g. a datapath it could not create because another
        ovs-vswitchd holds the userspace datapath's `ovs-netdev` tap)."""
        log = self.server.rundir / "ovs-vswitchd.log"
        try:
            with log.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 65536))
                text = fh.read().decode(errors="replace")
        except OSError:
            return f"unknown (no {log})"
        bad = [ln for ln in text.splitlines() if "|WARN|" in ln or "|ERR|" in ln or "|EMER|" in ln]
        if not bad:
            return "unknown (ovs-vswitchd logged no warning)"
        return "ovs-vswitchd logged: " + " / ".join(bad[-lines:])

    def delete_port(self, lsi: str, port: str) -> None:
        self._commit(self.api.del_port(port, bridge=lsi, if_exists=True))

    # -- tunnels (the overlay between nodes) -------------------------------------------------
    def create_tunnel(self, lsi: str, port: str, *, remote_ip: str, udp_port: int = 4789,
                      egress_mark: int | None = None,
                      external_ids: dict[str, str] | None = None) -> int:
        """See interfaces.TunnelDriver. The userspace datapath encapsulates itself (OVS
        "native tunneling"): the outer packet leaves by the bridge its route to `remote_ip`
        names (`ovs-appctl ovs/route/show`)."""
        try:
            addr = ipaddress.IPv4Address(remote_ip)
        except ValueError:
            raise InvalidInput(f"tunnel {port}: remote_ip {remote_ip!r} is not IPv4") from None
        if not 1 <= udp_port <= 65535:
            raise InvalidInput(f"tunnel {port}: UDP port {udp_port} is not in 1..65535")
        self._require_lsi(lsi)
        api = self.api
        opts = {"remote_ip": str(addr), "key": "flow", "dst_port": str(udp_port)}
        if egress_mark is not None:
            opts["egress_pkt_mark"] = str(egress_mark)
        # In the isolated VLAN, as NF ports: L2 flooding (NORMAL) from the access and
        # infrastructure ports never enters the full mesh of tunnels, where it would loop
        # between nodes; only explicit flows send into it. Nothing a tunnel brings may reach
        # NORMAL either (it would be flooded in that VLAN up the infrastructure links into
        # every other node's tunnels): the controller's pipeline and, without it, the
        # testbed's drop rules (testbed/lifecycle.base_rules) see to it.
        cmds = [api.add_port(lsi, port, may_exist=True),
                api.db_set("Port", port, ("tag", ISOLATED_VLAN)),
                api.db_set("Interface", port, ("type", "vxlan"), ("options", opts))]
        if external_ids:
            cmds.append(api.db_set("Interface", port, ("external_ids", external_ids)))
        self._commit(*cmds)
        return self._ofport(port)

    def delete_tunnel(self, lsi: str, port: str) -> None:
        self.delete_port(lsi, port)

    # -- mirrors (a probe's copy of a user's traffic) --------------------------------------
    def create_mirror(self, lsi: str, name: str, ports: list[str], output: str) -> None:
        """See interfaces.MirrorDriver. An OVS Mirror row on the LSI, selecting `ports` both
        ways; OVS itself then keeps `output` for the copies alone."""
        if not ports:
            raise InvalidInput(f"mirror {name}: no port to mirror")
        if output in ports:
            raise InvalidInput(f"mirror {name}: {output} cannot mirror itself")
        self._require_lsi(lsi)
        api = self.api
        rows = {}
        for p in [*ports, output]:
            row = api.lookup("Port", p, default=None)
            if row is None:
                raise NotFound(f"mirror {name}: no port {p!r} on this node")
            rows[p] = row.uuid
        self.delete_mirrors(lsi, name=name)  # idempotent: the same name again replaces it
        sel = [rows[p] for p in ports]
        mirror = api.db_create("Mirror", name=name, select_src_port=sel, select_dst_port=sel,
                               output_port=rows[output])
        self._commit(mirror, api.db_add("Bridge", lsi, "mirrors", mirror))

    def delete_mirrors(self, lsi: str, *, output: str | None = None,
                       name: str | None = None) -> list[str]:
        """See interfaces.MirrorDriver. (A Mirror is no root row: taken off its bridge, OVSDB
        deletes it.)"""
        br = self.api.lookup("Bridge", lsi, default=None)
        if br is None:
            return []
        gone = []
        for m in list(getattr(br, "mirrors", [])):
            outs = [p.name for p in getattr(m, "output_port", [])]
            if (name is not None and m.name == name) or (output is not None and output in outs):
                gone.append(m)
        if gone:
            self._commit(*(self.api.db_remove("Bridge", lsi, "mirrors", m.uuid) for m in gone))
        return sorted(str(m.name) for m in gone)

    def delete_ports(self, lsi: str, ports: list[str], *, wait: bool = True) -> None:
        """See interfaces.NetworkDriver (ovs-vswitchd's removal: 20-90 ms here)."""
        self._commit(*(self.api.del_port(p, bridge=lsi, if_exists=True) for p in ports),
                     wait=wait)

    def list_ports(self, lsi: str) -> dict[str, int]:
        self._require_lsi(lsi)
        names = [str(p) for p in self.api.list_ports(lsi).execute(check_error=True)]
        if not names:
            return {}
        rows = self.api.db_list("Interface", names, columns=["name", "ofport"]).execute(
            check_error=True
        )
        out = {}
        for r in rows:
            of = r["ofport"]
            if isinstance(of, list):
                of = of[0] if of else -1
            out[str(r["name"])] = int(of)
        return out

    # -- TS rules (Table I), on a node without an SDN controller -------------------------
    def _of(self, lsi: str) -> OpenFlowChannel:
        with self._lock:
            ch = self._channels.get(lsi)
            if ch is None:
                ch = OpenFlowChannel(str(self.server.rundir / f"{lsi}.mgmt"))
                self._channels[lsi] = ch
            return ch

    def create_ts_rule(self, lsi: str, rule: TSRule) -> None:
        self.apply_ts_rules(lsi, [rule])

    def apply_ts_rules(self, lsi: str, rules: list[TSRule], *, settle: bool = True) -> None:
        """Install rules (re-applying a rule id replaces it in place) and converge the LSI's
        flows to the node's TS rules. settle=False when no traffic can have used the old
        flows (e.g. rules on new ports). Raises NotFound for a port not on the LSI."""
        self.ts_rules.apply(lsi, rules, settle=settle)

    def delete_ts_rule(self, lsi: str, rule_id: str) -> None:
        self.delete_ts_rules(lsi, [rule_id])

    def delete_ts_rules(self, lsi: str, rule_ids: list[str]) -> None:
        self.ts_rules.delete(lsi, rule_ids)

    def list_ts_rules(self, lsi: str) -> list[TSRule]:
        return self.ts_rules.rules_of(lsi)

    def settle(self) -> None:
        """Return once the datapath forwards by the new flows. A barrier only says the flow
        table changed; the userspace datapath keeps using its cached flows until the
        revalidators have been through them (up to hundreds of ms on a loaded machine), so a
        user's packets could still take the path around a new NF. Purging the cache is
        faster and certain; the next packet of each flow is classified again."""
        unixctl(self.server, "revalidator/purge")

    def dump_flows(self, lsi: str) -> list[dict[str, Any]]:
        """The switch's flows, with counters, as the switch reports them."""
        return self._of(lsi).dump_flows()

    def port_states(self, lsi: str) -> dict[str, tuple[list[str], list[str]]]:
        """See interfaces.SwitchInspector."""
        return ovs_port_states.port_states(self.server, lsi)

