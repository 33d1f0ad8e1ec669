"""Troubleshooting as an orchestrator operation (Glasgow paper, section V.B; issue 13).

`POST /api/v1/troubleshoot` {"user": U} or {"destination": IP} asks "where is it broken?".
The orchestrator deploys operator-owned probes (the catalogue's troubleshooter, owner
``operator``: netfate.owners) at the user's CPE, the PE above it and a DC, each through the
normal lifecycle path (an INSTANTIATE operation occurrence, the desired state in the
database, a push to the node's agent); it runs ping, traceroute and a bounded capture from
each (a request rides in the probe's configuration: an UPDATE, as the direct mode's
driver update), reads the results and the user's NFs' status through the agents, builds
the report with netfate.troubleshoot.report, and removes the probes (TERMINATE) whatever
happened, within a time bound.

One troubleshooting operation runs at a time: a probe's instance id is per node
(``<node>-operator-troubleshooter``), so a second question while one runs gets 409.
The occurrences are kept in memory (the last `KEEP`); the probes' own lifecycle
operations are in the database like any other.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate import naming
from netfate.bus.messages import Command, MirrorSpec
from netfate.db.models import LcmOperation, Node, NodeRole, Presence, User, VnfInstance
from netfate.errors import Conflict, InvalidInput, NetfateError, NotFound
from netfate.orchestrator.coordinator import Coordinator
from netfate.orchestrator.troubleshoot_target import Target, check_target
from netfate.owners import OPERATOR
from netfate.troubleshoot import report

log = logging.getLogger("netfate.troubleshoot")

PROBE_NF = "troubleshooter"
KEEP = 50  # finished occurrences remembered


@dataclass
class Point:
    node: str
    role: str
    on_path: bool
    iid: str
    address: str
    config: dict[str, Any]
    mirrored: bool = False  # the probe gets copies of the user's traffic at this point


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

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "operation": "TROUBLESHOOT", "operation_state": self.state,
                "target": asdict(self.target), "start_time": self.start_time,
                "end_time": self.end_time, "probes": list(self.probes),
                "vnf_lcm_op_occs": list(self.lcm_op_occs), "steps": list(self.steps),
                "report": self.report, "error": self.error,
                "left_behind": list(self.left_behind)}


# -- database reads and writes (one transaction each, off the event loop) -------------------

def ensure_operator(s: Session) -> None:
    """The operator's owner row (VnfInstance.owner is a user's name): no password anyone can
    log in with, never listed as a user (repo.list_users, snapshot)."""
    if s.get(User, OPERATOR) is None:
        s.add(User(name=OPERATOR, password_hash="!", required_nfs=[], nf_config={}))
        s.flush()


def plan_points(s: Session, t: Target) -> tuple[list[tuple[str, str, bool]], str | None,
                                                 str | None]:
    """([(node, role, on_path)], the user's address, the user's access node). InvalidInput
    for an unknown user or one not attached, or no node to probe from."""
    nodes = {n.name: n for n in s.scalars(sa.select(Node).order_by(Node.name))}
    up = [n for n in nodes.values() if n.online and not n.admin_down]
    pts: list[tuple[str, str, bool]] = []
    user_ip: str | None = None
    cpe: str | None = None
    if t.user is not None:
        u = s.get(User, t.user)
        if u is None or t.user == OPERATOR:
            raise InvalidInput(f"user {t.user!r} does not exist")
        if not u.access_node:
            raise InvalidInput(f"user {t.user!r} is attached to no node: nowhere to ask from")
        cpe, user_ip = u.access_node, u.ip
        pts.append((cpe, "cpe", True))
        parent = ((nodes[cpe].infrastructure or {}).get("parent")
                  if cpe in nodes else None)
        pes = [parent] if isinstance(parent, str) and parent in nodes else \
            [n.name for n in up if n.role == NodeRole.PE]
        if pes:
            pts.append((pes[0], "pe", True))
    else:
        pts += [(n.name, "pe", True) for n in up if n.role == NodeRole.PE][:1]
    dcs = [n.name for n in up if n.role == NodeRole.DC and n.name not in {p[0] for p in pts}]
    if dcs:
        pts.append((dcs[0], "dc", False))
    if not pts:
        raise InvalidInput("no node online to probe from")
    return pts, user_ip, cpe


def user_mac(s: Session, user: str) -> str | None:
    u = s.get(User, user)
    return u.mac if u is not None else None


def user_instances(s: Session, user: str, node: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The user's own instances wanted on a node: (id, nf, config)."""
    q = (sa.select(VnfInstance.id, VnfInstance.nf_name, VnfInstance.config)
         .where(VnfInstance.owner == user, VnfInstance.node_name == node,
                VnfInstance.desired_state == Presence.PRESENT)
         .order_by(VnfInstance.id))
    return [(r.id, r.nf_name, dict(r.config or {})) for r in s.execute(q)]


def instance_exists(s: Session, iid: str) -> bool:
    return s.get(VnfInstance, iid) is not None


# -- the operation -------------------------------------------------------------------------



class Troubleshoots:
    """The troubleshooting operations of one orchestrator."""

    def __init__(self, coord: Coordinator) -> None:
        self.coord = coord
        self.db = coord.db
        self.ops: dict[str, TsOccurrence] = {}
        self._running: TsOccurrence | None = None
        self._lock = asyncio.Lock()

    def get(self, op_id: str) -> TsOccurrence:
        op = self.ops.get(op_id)
        if op is None:
            raise NotFound(f"troubleshooting operation {op_id!r} does not exist")
        return op

    async def start(self, body: dict[str, Any]) -> TsOccurrence:
        """Check the question, plan its points; the occurrence, PROCESSING, its work
        spawned. InvalidInput (nothing changed) or Conflict (one is running)."""
        t = check_target(body)
        async with self._lock:
            if self._running is not None:
                what = self._running.target.user or self._running.target.destination
                raise Conflict(f"troubleshooting operation {self._running.id} (for {what}) "
                               "is in progress; retry when it ends")
            plan = await self.db.run(plan_points, t)
            op = TsOccurrence(str(uuid.uuid4()), t)
            self.ops[op.id] = op
            self._running = op
        for old in list(self.ops)[:-KEEP]:
            if self.ops[old].state != "PROCESSING":
                del self.ops[old]
        self.coord.spawn(self._run(op, plan))
        return op

    async def _run(self, op: TsOccurrence,
                   plan: tuple[list[tuple[str, str, bool]], str | None, str | None]) -> None:
        t0 = time.monotonic()
        points: list[Point] = []
        state = "FAILED"
        try:
            try:
                op.report = await self._ask(op, plan, points, t0)
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
            self._running = None
            self.coord.hub.publish("op", {"id": op.id, "operation": "TROUBLESHOOT",
                                          "vnf_instance_id": "", "state": op.state})

    async def _ask(self, op: TsOccurrence,
                   plan: tuple[list[tuple[str, str, bool]], str | None, str | None],
                   points: list[Point], t0: float) -> dict[str, Any]:
        t = op.target
        pts, user_ip, cpe = plan
        dest = t.destination
        deadline = t0 + t.timeout_s
        await self.db.run(ensure_operator)
        for node, role, on_path in pts:
            _in_time(deadline, f"{len(points)} of {len(pts)} probes deployed")
            iid = naming.nf_instance_id(node, OPERATOR, PROBE_NF)
            # Its config schema takes address/gateway/max_results/request only. No address
            # yet: the orchestrator does not allocate probe addresses (its pings then fail).
            cfg: dict[str, Any] = {}
            p = Point(node, role, on_path, iid, "", cfg)
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
            op.steps.append(f"probe {iid} at {node}")
        _in_time(deadline, "the probes deployed, none asked yet")
        if t.user is not None and cpe is not None:
            await self._mirror(op, points, cpe, await self.db.run(user_mac, t.user))
        user_nfs = (await self.db.run(user_instances, t.user, cpe)
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
        return _report(t, points, results, user_nfs, before, after, cpe, target, user_ip,
                       time.monotonic() - t0)

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
        """Terminate every probe recorded (TERMINATE occurrences); what is still there."""
        left: list[str] = []
        for p in points:
            try:
                if not await self.db.run(instance_exists, p.iid):
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


def _report(t: Target, points: list[Point], results: dict[str, dict[str, dict[str, Any]]],
            user_nfs: list[tuple[str, str, dict[str, Any]]], before: dict[str, Any],
            after: dict[str, Any], cpe: str | None, target: str | None,
            user_ip: str | None, seconds: float) -> dict[str, Any]:
    obs = []
    limits: list[str] = []
    for p in points:
        by_tool: dict[str, dict[str, Any]] = {}
        for r in results.get(p.node, {}).values():
            key = r.get("tool", "?") if r.get("tool") != "ping" else (
                "ping_user" if r.get("target") == user_ip and user_ip != target
                else "ping_dest")
            by_tool[str(key)] = r
        cap = by_tool.get("capture")
        # Evidence only from what can tell: a capture from a probe that gets copies of the
        # user's traffic at its point, pings and traces from a probe with an address (none
        # yet: the orchestrator allocates no probe addresses), so their results are in the
        # report but not in its verdict.
        spliced, addressed = p.mirrored, bool(p.config.get("address"))
        obs.append(report.PointObservation(
            point=p.node, role=p.role, on_path=p.on_path,
            ping_dest=by_tool["ping_dest"].get("ok")
            if "ping_dest" in by_tool and addressed else None,
            ping_user=by_tool["ping_user"].get("ok")
            if "ping_user" in by_tool and addressed else None,
            flow_packets=(int(cap.get("packets_captured") or 0)
                          if cap is not None and cap.get("ok") and spliced else None),
            hops=report.traceroute_hops(by_tool["traceroute"].get("output", ""))
            if "traceroute" in by_tool and addressed else ()))
        if not spliced and p.on_path and t.user is not None:  # a capture was asked
            limits.append(f"{p.node}: its probe is not spliced into the user's path nor "
                          "mirrors it: its capture is no evidence")
        if not addressed:
            limits.append(f"{p.node}: its probe has no address: its pings and traceroute "
                          "are no evidence")
    elements: list[report.Element] = []
    nfs = []
    for iid, nf, cfg in user_nfs:
        a, b = after.get(iid, {}), before.get(iid, {})
        dropped, detail = report.firewall_drops(b, a) if nf == "firewall" else (0, "")
        if cpe is not None:
            elements.append(report.Element("nf", f"{t.user}'s {nf} on {cpe}", cpe,
                                           dropped=dropped, detail=detail))
        nfs.append({"instance_id": iid, "nf": nf, "config": cfg, "status": a,
                    "status_before": b, "dropped": dropped})
    path = [o for o in obs if o.on_path]
    refs = [o for o in obs if not o.on_path]
    if path:
        verdict = report.first_break(path, [e for e in elements
                                            if e.after in {o.point for o in path}], refs)
    else:
        verdict = report.Verdict(False, "unknown", None, None, None,
                                 "no point on the path to ask from")
    return {
        "question": {**asdict(t), "dest": target, "user_ip": user_ip},
        "verdict": verdict.as_dict(),
        "points": [{**asdict(o), "probe": p.iid, "results": results.get(p.node, {})}
                   for o, p in zip(obs, points, strict=True)],
        "elements": [asdict(e) for e in elements],
        "nfs": nfs,
        "links": [],
        "flows": {},
        "seconds": round(seconds, 3),
        "summary": report.summary(verdict, obs, seconds)
        + "".join(f"\n  ! {x}" for x in limits),
        "limits": limits,
        "left_behind": [],
    }

