"""The orchestrator's metrics, served at ``/metrics`` of its FastAPI app.

Counted as things happen (small calls from the code that does them, or read off the event
hub): LCM operation occurrences by type and outcome with their latency, the engine's
placement latency, handovers (fast re-authentication at another node) and their gap, agent
command latency, RADIUS back-end requests. Read at scrape time (`StateCollector`): users by
state, NF instances by node/NF/flavour/state, nodes online, each switch's generation lag.

The handover gap is what the orchestrator sees of a roam: from the new node's association
event (the agent's timestamp) until the user's traffic is steered at the new node, that is
until the controller confirmed (barrier) the anchor that lets them out there. It leaves out
the radio's part and the NF's own move, which runs on behind the anchor (make-before-break).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from netfate.metrics.common import LATENCY_BUCKETS, query_names, registry, selected

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.orm import Session

    from netfate.orchestrator.hub import EventHub
    from netfate.orchestrator.service import Orchestrator

log = logging.getLogger("netfate.metrics.orchestrator")

REGISTRY = CollectorRegistry(auto_describe=True)

LCM_OPERATIONS = Counter(
    "netfate_lcm_operations_total", "LCM operation occurrences that ended, by operation "
    "(INSTANTIATE, MIGRATE, RELEASE...) and outcome (completed, failed, rolled_back)",
    ["operation", "outcome"], registry=REGISTRY)
LCM_DURATION = Histogram(
    "netfate_lcm_operation_duration_seconds", "From an LCM operation occurrence's start "
    "(PROCESSING) to its end, by operation and outcome", ["operation", "outcome"],
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
PLACEMENT_DURATION = Histogram(
    "netfate_placement_duration_seconds", "The engine's planning of one event (snapshot of "
    "the world and the policy's decision), by event kind", ["event"],
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
PLAN_INTENTS = Counter(
    "netfate_plan_intents_total", "Intents in the engine's plans, by kind (place, migrate, "
    "release, steer...)", ["intent"], registry=REGISTRY)
HANDOVERS = Counter(
    "netfate_handovers_total", "Fast re-authentications of a user at another node, by "
    "result (accepted, rejected, error)", ["result"], registry=REGISTRY)
HANDOVER_GAP = Histogram(
    "netfate_handover_gap_seconds", "From a roaming user's association at the new node to "
    "their traffic steered there (the controller's barrier on the anchor)", ["node"],
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
HANDOVER_REAUTH = Histogram(
    "netfate_handover_reauth_seconds", "The RADIUS fast re-authentication of a roaming user",
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
AGENT_COMMANDS = Histogram(
    "netfate_agent_command_duration_seconds", "A command to an agent over the bus until its "
    "reply, by command and outcome (ok, error, unreachable, bad_reply); not by node, which "
    "would be thousands of series at scale", ["command", "outcome"], buckets=LATENCY_BUCKETS,
    registry=REGISTRY)
RADIUS_REQUESTS = Counter(
    "netfate_radius_requests_total", "Requests of FreeRADIUS to the orchestrator's RADIUS "
    "back end, by phase (authorize, authenticate) and result (accept, reject, continue, "
    "invalid)", ["phase", "result"], registry=REGISTRY)

_ENDED = {"COMPLETED": "completed", "FAILED": "failed", "ROLLED_BACK": "rolled_back"}


# -- calls from the instrumented code ------------------------------------------------------
def placement(event: object, seconds: float) -> None:
    """The engine planned for ``event`` (an engine Event) in ``seconds``."""
    PLACEMENT_DURATION.labels(_snake(type(event).__name__)).observe(max(0.0, seconds))


def agent_command(node: str, command: str, outcome: str, seconds: float) -> None:
    """A command to ``node``'s agent took ``seconds`` (``node`` is for the log only)."""
    AGENT_COMMANDS.labels(command, outcome).observe(max(0.0, seconds))


def radius_request(phase: str, status: int) -> None:
    """rlm_rest's answer: 200 goes on (authorize) or accepts (authenticate), 401 rejects."""
    result = ("continue" if phase == "authorize" else "accept") if status == 200 else \
        "reject" if status == 401 else "invalid"
    RADIUS_REQUESTS.labels(phase, result).inc()


def handover(record: dict[str, Any]) -> None:
    """A fast re-authentication as `reauth.on_associated` records it: ``ok`` (accepted),
    ``radius_ms``, ``associated_ts`` (the agent's event time, epoch seconds), ``served_ts``
    (the anchor confirmed; missing when associating failed), ``node``."""
    if "error" in record:
        HANDOVERS.labels("error").inc()
        return
    HANDOVERS.labels("accepted" if record.get("ok") else "rejected").inc()
    with contextlib.suppress(TypeError, ValueError):
        HANDOVER_REAUTH.observe(float(record["radius_ms"]) / 1000)
    served, assoc = record.get("served_ts"), record.get("associated_ts")
    if record.get("ok") and served is not None and assoc is not None:
        HANDOVER_GAP.labels(str(record.get("node", ""))).observe(
            max(0.0, float(served) - float(assoc)))


class OpTracker:
    """LCM operation events (the hub's ``op`` events) to counters and latencies: the start
    time of each running occurrence, until it ends."""

    def __init__(self, limit: int = 10_000) -> None:
        self.started: dict[str, float] = {}
        self.limit = limit  # occurrences that never end (a restart) must not grow it forever

    def event(self, ev: dict[str, Any]) -> None:
        kind, data, ts = ev.get("event"), ev.get("data") or {}, float(ev.get("ts") or 0)
        if kind == "plan":
            for it in data.get("intents") or []:
                PLAN_INTENTS.labels(str(it.get("kind") or it.get("type") or "?")).inc()
            return
        if kind != "op":
            return
        op_id, state = str(data.get("id")), str(data.get("state"))
        if state == "PROCESSING":
            if len(self.started) >= self.limit:
                self.started.pop(next(iter(self.started)))
            self.started.setdefault(op_id, ts)
        elif state in _ENDED:
            operation, outcome = str(data.get("operation", "?")), _ENDED[state]
            LCM_OPERATIONS.labels(operation, outcome).inc()
            t0 = self.started.pop(op_id, None)
            if t0 is not None:
                LCM_DURATION.labels(operation, outcome).observe(max(0.0, ts - t0))


async def follow(hub: EventHub, tracker: OpTracker | None = None) -> None:
    """Feed the hub's events to an OpTracker until cancelled."""
    tracker = tracker or OpTracker()
    q = hub.subscribe()
    try:
        while True:
            ev = await q.get()
            try:
                tracker.event(ev)
            except Exception as exc:  # a malformed event must not end the metrics
                log.warning("metrics: cannot count event %s: %s", ev.get("event"), exc)
    finally:
        hub.unsubscribe(q)


# -- read at scrape time -------------------------------------------------------------------
def _counts(s: Session) -> dict[str, list[tuple[Any, ...]]]:
    from netfate.db.models import Node, SessionState, User, UserSession, VnfInstance

    active = UserSession.state == SessionState.ACTIVE
    return {
        "nfs": [tuple(r) for r in s.execute(
            sa.select(VnfInstance.node_name, VnfInstance.nf_name, VnfInstance.flavour,
                      VnfInstance.actual_state, VnfInstance.desired_state, sa.func.count())
            .group_by(VnfInstance.node_name, VnfInstance.nf_name, VnfInstance.flavour,
                      VnfInstance.actual_state, VnfInstance.desired_state))],
        "users": [(s.scalar(sa.select(sa.func.count()).select_from(User)) or 0,
                   s.scalar(sa.select(sa.func.count(sa.distinct(UserSession.user_name)))
                            .where(active)) or 0)],
        "sessions": [tuple(r) for r in s.execute(
            sa.select(UserSession.node_name, sa.func.count()).where(active)
            .group_by(UserSession.node_name))],
        "nodes": [tuple(r) for r in s.execute(sa.select(Node.name, Node.role, Node.online))],
    }


def _value(x: Any) -> str:
    return str(getattr(x, "value", x))


class StateCollector(Collector):
    """The orchestrator's world at scrape time: one database read, plus what it keeps in
    memory about the switches. Runs in the scrape's thread (never the event loop)."""

    def __init__(self, orch: Orchestrator) -> None:
        self.orch = orch

    def collect(self) -> Iterator[Metric]:
        db = self.orch.db
        if db is None:
            return  # not started yet
        c = db.call(_counts)
        nfs = GaugeMetricFamily(
            "netfate_nf_instances", "NF instances by node, NF, flavour, actual state and "
            "desired state", labels=["node", "nf", "flavour", "state", "desired"])
        for node, nf, flavour, state, desired, n in c["nfs"]:
            nfs.add_metric([node, nf, flavour, _value(state), _value(desired)], n)
        yield nfs
        users = GaugeMetricFamily("netfate_users", "Users by state (active: with an active "
                                  "session; inactive: known, no session)", labels=["state"])
        for total, active in c["users"]:
            users.add_metric(["active"], active)
            users.add_metric(["inactive"], max(0, total - active))
        yield users
        sessions = GaugeMetricFamily("netfate_sessions_active", "Active user sessions by "
                                     "access node", labels=["node"])
        for node, n in c["sessions"]:
            sessions.add_metric([node], n)
        yield sessions
        online = GaugeMetricFamily("netfate_node_online", "1 if the node's agent is "
                                   "registered and reporting", labels=["node", "role"])
        for name, role, is_online in c["nodes"]:
            online.add_metric([name, _value(role)], 1.0 if is_online else 0.0)
        yield online
        yield from self._switches()

    def _switches(self) -> Iterator[Metric]:
        sw = self.orch.switches
        if sw is None:
            return
        lag = GaugeMetricFamily(
            "netfate_switch_generation_lag", "Desired-state generations published for the "
            "node's switch and not yet confirmed by the SDN controller (0: in sync)",
            labels=["node"])
        in_sync = GaugeMetricFamily("netfate_switch_in_sync", "1 if the controller confirmed "
                                    "the switch's latest desired state", labels=["node"])
        for row in sw.summary():
            gen, done = row["generation"], row["synced_generation"]
            if gen is None:
                continue
            if done is not None:  # never confirmed: no lag to tell (and in_sync 0)
                lag.add_metric([row["node"]], float(max(0, gen - done)))
            in_sync.add_metric([row["node"]], 1.0 if row["in_sync"] else 0.0)
        yield lag
        yield in_sync


def app_registry(orch: Orchestrator) -> CollectorRegistry:
    """The registry one orchestrator app serves: the process-wide metrics and its state."""
    return registry(REGISTRY, [StateCollector(orch)])


def allowed(host: str | None, networks: Iterable[str]) -> bool:
    """Whether a client at ``host`` (an address) is inside one of ``networks`` (CIDR)."""
    try:
        addr = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(n, strict=False) for n in networks)


def install(app: FastAPI, orch: Orchestrator) -> None:
    """``GET /metrics`` on the app: outside /api/v1 and its operator authentication, so
    only clients in the orchestrator's ``metrics_networks`` (loopback by default) get it;
    others get 403. It takes ``name[]`` filters, and refuses other query parameters with
    400 (`common.query_names`). The app's lifespan runs `follow` on the hub while it is
    up."""
    from netfate.orchestrator.api.problems import problem

    reg = app_registry(orch)
    nets = orch.settings.metrics_networks

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:  # sync: the state collector reads the db
        host = request.client.host if request.client else None
        if not allowed(host, nets):
            return problem(403, f"/metrics is for clients in {list(nets)} "
                                f"(NETFATE_METRICS_NETWORKS), not {host}")
        try:
            names = query_names("/metrics", request.scope["query_string"].decode("latin-1"))
        except ValueError as exc:
            return problem(400, str(exc))
        return Response(generate_latest(selected(reg, names)), media_type=CONTENT_TYPE_LATEST)


def _snake(name: str) -> str:
    return "".join(f"_{ch.lower()}" if ch.isupper() and i else ch.lower()
                   for i, ch in enumerate(name))

