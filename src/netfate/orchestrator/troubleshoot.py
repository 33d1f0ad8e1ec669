"""Troubleshooting as an orchestrator operation (Glasgow paper, section V.B; issue 13).

`POST /api/v1/troubleshoot` {"user": U} or {"destination": IP} asks "where is it broken?".
The orchestrator deploys operator-owned probes (the catalogue's troubleshooter, owner
``operator``: netfate.owners) at the user's CPE, the PE above it and a DC, each through the
normal lifecycle path (an INSTANTIATE operation occurrence, the desired state in the
database, a push to the node's agent). Each probe sits beside the user's path: it is a
station of the access subnet with an address and MAC the orchestrator gives it, its own
traffic carried by TS rules for its MAC (troubleshoot_probes), and its lan port gets copies
of the user's traffic at its point (an OVS mirror, agent/mirrors.py). From each it runs
ping, traceroute and a bounded capture (a request rides in the probe's configuration: an
UPDATE, as the direct mode's driver update); it reads the results, the user's NFs' status,
and each point's flow tables and port states (agent/switch_dump.py) through the agents,
builds the report (troubleshoot_report), and removes the rules and the probes (TERMINATE)
whatever happened, within a time bound.

One troubleshooting operation runs at a time: a probe's instance id is per node
(``<node>-operator-troubleshooter``), so a second question while one runs gets 409.
Each occurrence is recorded in the database when it starts and when it ends (the last
`KEEP` also in memory, with their steps as they happen); the probes' own lifecycle
operations and TS rules are in the database like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from netfate import naming
from netfate.bus.messages import Command, DumpSpec, MirrorSpec, SwitchPorts
from netfate.db.models import LcmOperation
from netfate.errors import Conflict, InvalidInput, NetfateError, NotFound
from netfate.orchestrator import troubleshoot_db as tdb
from netfate.orchestrator import troubleshoot_probes as probes
from netfate.orchestrator import troubleshoot_report
from netfate.orchestrator.coordinator import Coordinator
from netfate.orchestrator.orphans import TS_KEY
from netfate.orchestrator.troubleshoot_report import Observed, Point
from netfate.orchestrator.troubleshoot_target import Target, check_target
from netfate.owners import OPERATOR

log = logging.getLogger("netfate.troubleshoot")

PROBE_NF = "troubleshooter"
KEEP = 50  # finished occurrences remembered
RULES_WAIT_S = 3.0  # how long the controller may take to install (or remove) the probes' rules
Plan = tuple[list[tuple[str, str, bool]], str | None, str | None]


@dataclass
class TsOccurrence:
    id: str
    target: Target
    state: str = "PROCESSING"          # PROCESSING | COMPLETED | FAILED
    start_time: float = field(default_factory=time.time)
    end_time: float | None = None
    probes: list[str] = field(default_factory=list)
    lcm_op_occs: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    left_behind: list[str] = field(default_factory=list)
    rules: dict[str, list[str]] = field(default_factory=dict)  # node -> its probes' TS rules

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "operation": "TROUBLESHOOT", "operation_state": self.state,
                "target": asdict(self.target), "start_time": self.start_time,
                "end_time": self.end_time, "probes": list(self.probes),
                "vnf_lcm_op_occs": list(self.lcm_op_occs), "steps": list(self.steps),
                "report": self.report, "error": self.error,
                "left_behind": list(self.left_behind)}


# -- the operation -------------------------------------------------------------------------


class Troubleshoots:
    """The troubleshooting operations of one orchestrator. `probe_subnet`/`probe_gateway`
    (orchestrator settings): where the probes take addresses; an empty subnet: none (their
    pings and traceroutes are then in the report but no evidence)."""

    def __init__(self, coord: Coordinator, probe_subnet: str = "",
                 probe_gateway: str = "") -> None:
        self.coord = coord
        self.db = coord.db
        self.probe_subnet = probe_subnet
        self.probe_gateway = probe_gateway
        self.ops: dict[str, TsOccurrence] = {}
        self._running: TsOccurrence | None = None
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        """A question is in progress here."""
        return self._running is not None

    async def get(self, op_id: str) -> dict[str, Any]:
        """The occurrence as the API shows it: from memory while this orchestrator has it,
        else as recorded. NotFound if there is none."""
        op = self.ops.get(op_id)
        if op is not None:
            return op.as_dict()
        doc = await self.db.run(tdb.get_occ, op_id)
        if doc is None:
            raise NotFound(f"troubleshooting operation {op_id!r} does not exist")
        return doc

    async def recorded(self) -> list[dict[str, Any]]:
        """The recorded occurrences, oldest first, those in memory as they are now."""
        docs = {d["id"]: d for d in await self.db.run(tdb.list_occs)}
        docs.update({op.id: op.as_dict() for op in self.ops.values()})
        return sorted(docs.values(), key=lambda d: float(d.get("start_time") or 0))

    async def _record(self, op: TsOccurrence) -> None:
        """Write the occurrence to the database; a failure is logged (the question itself
        is unaffected, and memory still has it)."""
        try:
            await self.db.run(tdb.save_occ, op.as_dict())
        except Exception as exc:
            log.warning("recording troubleshooting %s failed: %s: %s", op.id,
                        type(exc).__name__, exc)

    async def start(self, body: dict[str, Any]) -> TsOccurrence:
        """Check the question, plan its points; the occurrence, PROCESSING, its work
        spawned. InvalidInput (nothing changed) or Conflict (one is running)."""
        t = check_target(body)
        async with self._lock:
            if self._running is not None:
                what = self._running.target.user or self._running.target.destination
                raise Conflict(f"troubleshooting operation {self._running.id} (for {what}) "
                               "is in progress; retry when it ends")
            plan = await self.db.run(tdb.plan_points, t)
            configs = await self._configs(len(plan[0]))  # Conflict: no free addresses
            await self._across_replicas()  # Conflict: one runs at another replica
            op = TsOccurrence(str(uuid.uuid4()), t)
            self.ops[op.id] = op
            self._running = op
        for old in list(self.ops)[:-KEEP]:
            if self.ops[old].state != "PROCESSING":
                del self.ops[old]
        await self._record(op)
        self.coord.spawn(self._run(op, plan, configs))
        return op

    async def _run(self, op: TsOccurrence, plan: Plan, configs: list[dict[str, Any]]) -> None:
        t0 = time.monotonic()
        points: list[Point] = []
        state = "FAILED"
        try:
            try:
                op.report = await self._ask(op, plan, configs, points, t0)
                state = "COMPLETED"
            except Exception as exc:
                timed_out = isinstance(exc, TimeoutError)
                op.error = {"type": "about:blank",
                            "title": "timed out" if timed_out else "troubleshooting failed",
                            "status": 504 if timed_out else 500,
                            "detail": (f"no report within {op.target.timeout_s:g} s: {exc}"
                                       if timed_out else str(exc) or type(exc).__name__)}
            finally:  # also when cancelled: the probes go whatever happened
                op.left_behind = await self._remove(op, points)
                op.steps.append("probes removed" if not op.left_behind
                                else f"probes left behind: {op.left_behind}")
                if op.report is not None:
                    op.report["left_behind"] = list(op.left_behind)
                    op.report["seconds_with_removal"] = round(time.monotonic() - t0, 3)
        finally:
            # Final only once the probes are gone (or known to be left behind).
            op.state = state
            op.end_time = time.time()
            await self._record(op)
            self._running = None
            shared = self.coord.locks.shared
            if shared is not None:
                with contextlib.suppress(Exception):  # a lost session has released it
                    await shared.unlock(TS_KEY)
            self.coord.hub.publish("op", {"id": op.id, "operation": "TROUBLESHOOT",
                                          "vnf_instance_id": "", "state": op.state})

    async def _across_replicas(self) -> None:
        """With replicas: one question at a time across all of them (its probes have fixed
        instance ids per node), held by this replica's advisory-lock session until the
        question ends. Conflict if another replica has one running."""
        shared = self.coord.locks.shared
        if shared is not None and not await shared.try_lock(TS_KEY):
            raise Conflict("a troubleshooting operation is in progress at another "
                           "orchestrator replica; retry when it ends")

    async def _configs(self, n: int) -> list[dict[str, Any]]:
        """Each probe's configuration: beside the path, with an address and MAC of its own
        when the orchestrator has a probe subnet (none free: without, and said so)."""
        base: dict[str, Any] = {"beside": True}
        if not self.probe_subnet:
            return [dict(base) for _ in range(n)]
        taken = await self.db.run(tdb.taken_addresses)
        try:
            addrs = probes.addresses(self.probe_subnet, self.probe_gateway, taken, n)
        except InvalidInput as exc:  # the platform's state, not the question, is at fault
            raise Conflict(f"{exc}; free some, or widen NETFATE_PROBE_SUBNET") from None
        return [{**base, "address": a, "gateway": self.probe_gateway, "mac": probes.mac_of(a)}
                for a in addrs]

    async def _ask(self, op: TsOccurrence, plan: Plan, configs: list[dict[str, Any]],
                   points: list[Point], t0: float) -> dict[str, Any]:
        t = op.target
        pts, user_ip, cpe = plan
        dest = t.destination
        deadline = t0 + t.timeout_s
        await self.db.run(tdb.ensure_operator)
        for (node, role, on_path), cfg in zip(pts, configs, strict=True):
            _in_time(deadline, f"{len(points)} of {len(pts)} probes deployed")
            iid = naming.nf_instance_id(node, OPERATOR, PROBE_NF)
            p = Point(node, role, on_path, iid, cfg.get("address", ""), cfg)
            points.append(p)  # before it exists: removed whatever happens next
            op.probes.append(iid)
            op_id = await self.coord.new_op(LcmOperation.INSTANTIATE, iid, {
                "node": node, "nf": PROBE_NF, "owner": OPERATOR,
                "reason": f"troubleshooting {op.id}"})
            op.lcm_op_occs.append(op_id)
            ok = await self.coord.as_owner(OPERATOR, self.coord.instantiate(
                op_id, node, OPERATOR, PROBE_NF, iid, cfg))
            if not ok:
                raise NetfateError(f"probe {iid} did not come up on {node} "
                                   f"(operation {op_id})")
            op.steps.append(f"probe {iid} at {node}"
                            + (f" ({p.address})" if p.address else ""))
        _in_time(deadline, "the probes deployed, none asked yet")
        mac = await self.db.run(tdb.user_mac, t.user) if t.user is not None else None
        await self._route(op, points, cpe, mac)
        if t.user is not None and cpe is not None:
            await self._mirror(op, points, cpe, mac)
        user_nfs = (await self.db.run(tdb.user_instances, t.user, cpe)
                    if t.user is not None and cpe is not None else [])
        before = {iid: await self._status(cpe, iid) for iid, _, _ in user_nfs} if cpe else {}
        target = dest or user_ip
        results: dict[str, dict[str, dict[str, Any]]] = {}
        if target is not None:
            outs = await asyncio.gather(*(self._probe(op, p, target, user_ip, deadline)
                                          for p in points), return_exceptions=True)
            for p, r in zip(points, outs, strict=True):
                results[p.node] = r if isinstance(r, dict) else {}
        op.steps.append("ping, traceroute and capture at " + ", ".join(p.node for p in points))
        after = {iid: await self._status(cpe, iid) for iid, _, _ in user_nfs} if cpe else {}
        mentions = [x for x in (mac, user_ip, dest) if x]
        read = await asyncio.gather(*(self._dump(p.node, mentions) for p in points))
        dumps = {p.node: d for p, d in zip(points, read, strict=True)}
        op.steps.append("flow tables and port states read at "
                        + ", ".join(n for n, d in dumps.items() if "error" not in d))
        seen = Observed(user_nfs, before, after, self._link_ends(cpe, dumps), dumps)
        return troubleshoot_report.build(t, points, results, seen, cpe, target, user_ip,
                                         time.monotonic() - t0)

    def _ports(self) -> dict[str, SwitchPorts]:
        sw = self.coord.switches
        return dict(sw.ports) if sw is not None else {}

    async def _route(self, op: TsOccurrence, points: list[Point], cpe: str | None,
                     mac: str | None) -> None:
        """Each addressed probe's own traffic carried by TS rules (troubleshoot_probes),
        installed before it is asked anything. A probe whose rules cannot be made is asked
        all the same; its pings are then no evidence (`Point.routed`)."""
        sw = self.coord.switches
        if sw is None:
            op.steps.append("no SDN controller: the probes' own traffic is not carried")
            return
        ports = self._ports()
        by_probe: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for p in points:
            if not p.config.get("mac"):
                continue
            station = ports.get(p.node, SwitchPorts()).stations.get((mac or "").lower())
            user = (mac, station) if p.node == cpe and mac and station else None
            try:
                by_probe[p.iid] = probes.rules_for(
                    p.iid, p.node, naming.nf_port(p.iid, "wan"), p.config["mac"], ports, user)
            except NetfateError as exc:
                op.steps.append(f"no route for the probe at {p.node}: {exc}")
        if not by_probe:
            return
        rules = probes.merge(*by_probe.values())
        op.rules = probes.rule_ids(rules)  # before they exist: removed whatever happens next
        await self.db.run(tdb.put_rules, rules)
        reports = await asyncio.gather(*(sw.apply(n, timeout=RULES_WAIT_S) for n in rules))
        confirmed = {r.node for rs in reports for r in rs}
        skipped = [x for rs in reports for r in rs for x in r.skipped if probes.RULE_PREFIX in x]
        for p in points:
            p.routed = p.iid in by_probe and set(by_probe[p.iid]) <= confirmed and \
                not any(p.iid in x for x in skipped)
        unconfirmed = sorted(set(rules) - confirmed)
        op.steps.append(f"the probes' own traffic carried by {sum(map(len, rules.values()))} "
                        f"TS rules at {', '.join(sorted(rules))}"
                        + (f" (skipped: {skipped})" if skipped else "")
                        + (f" (the controller did not confirm {unconfirmed} in "
                           f"{RULES_WAIT_S:g} s)" if unconfirmed else ""))

    def _link_ends(self, cpe: str | None, dumps: dict[str, dict[str, Any]]
                   ) -> list[dict[str, Any]]:
        """The two ends of the link from the user's CPE up, with their port states (as the
        switches reported them in `dumps`); empty when either is unknown."""
        if cpe is None:
            return []
        ports = self._ports()
        up = probes.parent(ports, cpe)
        own = ports.get(cpe)
        if up is None or own is None or own.uplink is None:
            return []
        out = []
        for node, port in ((cpe, own.uplink), up):
            st = (dumps.get(node) or {}).get("ports", {}).get(port)
            if st is None:
                return []
            out.append({"node": node, "port": port, "config": list(st.get("config", [])),
                        "state": list(st.get("state", []))})
        return out

    async def _dump(self, node: str, mentions: list[str]) -> dict[str, Any]:
        """The node's flows naming the user (or the destination), and its ports' states."""
        try:
            r = await self.coord.bus.command(node, Command(
                op="switch_dump", dump=DumpSpec(mentions=mentions[:8])))
        except NetfateError as exc:
            return {"error": str(exc)}
        return r.data if r.ok else {"error": r.error or "switch_dump failed"}
    async def _mirror(self, op: TsOccurrence, points: list[Point], cpe: str,
                      mac: str | None) -> None:
        """Each on-path probe gets copies of the user's traffic at its point (agent/
        mirrors.py): at the CPE, of the access port the user's device is on; above it, of
        the links toward the CPE. A point that cannot is no evidence (the report says why)."""
        for p in points:
            if not p.on_path:
                continue
            if p.node == cpe and mac is None:
                op.steps.append(f"no mirror at {p.node}: the user's device has no known MAC")
                continue
            spec = (MirrorSpec(station_mac=mac) if p.node == cpe
                    else MirrorSpec(peer_node=cpe))
            try:
                r = await self.coord.bus.command(
                    p.node, Command(op="mirror", instance_id=p.iid, mirror=spec))
            except NetfateError as exc:
                op.steps.append(f"no mirror at {p.node}: {exc}")
                continue
            if r.ok:
                p.mirrored = True
                op.steps.append(f"probe at {p.node} mirrors {', '.join(r.data.get('ports', []))}")
            else:
                op.steps.append(f"no mirror at {p.node}: {r.error}")

    async def _status(self, node: str | None, iid: str) -> dict[str, Any]:
        if node is None:
            return {}
        try:
            r = await self.coord.bus.command(node, Command(op="nf_status", instance_id=iid))
        except NetfateError as exc:
            return {"error": str(exc)}
        if not r.ok:
            return {"error": r.error or "nf_status failed"}
        detail = r.data.get("detail", {})
        return detail if isinstance(detail, dict) else {}

    async def _probe(self, op: TsOccurrence, p: Point, target: str, user_ip: str | None,
                     deadline: float) -> dict[str, dict[str, Any]]:
        """Run the point's requests (an UPDATE each: the request rides in its config), then
        read their results through the agent until `deadline`."""
        t = op.target
        nonce = secrets.token_hex(3)
        reqs: list[dict[str, Any]] = []
        if p.on_path and user_ip is not None and t.user is not None:
            words = ["src", "host", user_ip]  # the user's own traffic (to dest if given)
            if t.destination is not None:
                words += ["and", "dst", "host", t.destination]
            if t.port is not None:
                words += ["and", "tcp", "dst", "port", str(t.port)]
            reqs.append({"id": f"cap-{nonce}", "tool": "capture", "interface": "lan",
                         "seconds": t.seconds, "packets": t.packets,
                         "filter": " ".join(words)})
        reqs.append({"id": f"pd-{nonce}", "tool": "ping", "target": target, "count": 3})
        if p.role == "cpe" and user_ip is not None and user_ip != target:
            reqs.append({"id": f"pu-{nonce}", "tool": "ping", "target": user_ip, "count": 3})
        reqs.append({"id": f"tr-{nonce}", "tool": "traceroute", "target": target, "count": 1})
        for r in reqs:
            if time.monotonic() > deadline:
                break  # not asked: "not measured"
            op_id = await self.coord.new_op(LcmOperation.UPDATE, p.iid,
                                            {"request": r, "troubleshoot": op.id})
            op.lcm_op_occs.append(op_id)
            await self.coord.as_owner(OPERATOR, self.coord.update(op_id, p.iid,
                                                                  {**p.config, "request": r}))
        want = {r["id"] for r in reqs}
        got: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            st = await self._status(p.node, p.iid)
            got = {r["id"]: r for r in st.get("results", []) or []
                   if isinstance(r, dict) and r.get("id") in want}
            if want <= got.keys():
                break
            await asyncio.sleep(0.3)
        return got

    async def _remove(self, op: TsOccurrence, points: list[Point]) -> list[str]:
        """Remove the probes' TS rules, then terminate every probe recorded (TERMINATE
        occurrences); what is still there."""
        left: list[str] = []
        if op.rules:
            try:
                await self.db.run(tdb.delete_rules, op.rules)
                sw = self.coord.switches
                if sw is not None:
                    await asyncio.gather(*(sw.apply(n, timeout=RULES_WAIT_S)
                                           for n in op.rules))
            except Exception as exc:
                left.append(f"the probes' TS rules at {sorted(op.rules)}: "
                            f"{exc or type(exc).__name__}")
        for p in points:
            try:
                if not await self.db.run(tdb.instance_exists, p.iid):
                    continue  # its instantiation was rolled back
                op_id = await self.coord.new_op(LcmOperation.TERMINATE, p.iid, {
                    "reason": f"troubleshooting {op.id} done"})
                op.lcm_op_occs.append(op_id)
                # bounded by the agent's command timeout; never cancelled half-way
                ok = await self.coord.as_owner(OPERATOR, self.coord.terminate(op_id, p.iid))
                if not ok:
                    left.append(f"{p.iid}: termination not confirmed ({op_id})")
            except Exception as exc:
                left.append(f"{p.iid}: {exc or type(exc).__name__}")
        return left


def _in_time(deadline: float, what: str) -> None:
    """TimeoutError once `deadline` (monotonic) has passed. The lifecycle operations are
    never cancelled half-way (each is bounded by the agents' command timeout): the question
    stops between them, and its probes are removed."""
    if time.monotonic() > deadline:
        raise TimeoutError(what)
