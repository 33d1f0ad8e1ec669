"""What each UI view shows, read from the NFVI database as plain dicts (no HTML here).

Each function takes a database session and returns the view's data; the templates draw it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from netfate.db import repo
from netfate.orchestrator.troubleshoot_db import list_occs

TIERS = ("dc", "pe", "cpe")
TIER_NAMES = {"dc": "DC", "pe": "PE", "cpe": "CPE"}
# The topology drawing (SVG user units): one row per tier, DC on top.
BOX_W, BOX_H, GAP_X, ROW_H, PAD = 190, 74, 40, 130, 20


def _resources(r: dict[str, Any] | None) -> dict[str, Any]:
    r = r or {}
    total = int(r.get("mem_total_mb") or 0)
    free = int(r.get("mem_free_mb") or 0)
    return {"cpu_pct": round(float(r.get("cpu_util") or 0.0) * 100),
            "mem_used_mb": max(total - free, 0), "mem_total_mb": total,
            "mem_pct": round(100 * (total - free) / total) if total else 0}


def _links(nodes: Iterable[Any]) -> list[tuple[str, str]]:
    """Node pairs joined by a link (the ports each agent reports, both ends once)."""
    names = set()
    out: set[tuple[str, str]] = set()
    for n in nodes:
        names.add(n.name)
    for n in nodes:
        ports = (n.infrastructure or {}).get("switch_ports") or {}
        for peer in (ports.get("links") or {}).values():
            if peer in names and peer != n.name:
                a, b = sorted((n.name, str(peer)))
                out.add((a, b))
    return sorted(out)


def topology(s: Session) -> dict[str, Any]:
    """Nodes by tier with their resources, NFs and attached users; links; the drawing's
    coordinates (``x``, ``y`` of each box, ``width``/``height`` of the picture)."""
    nodes = repo.list_nodes(s)
    instances = repo.list_instances(s)
    users = repo.list_users(s)
    by_tier: dict[str, list[dict[str, Any]]] = {t: [] for t in TIERS}
    for n in nodes:
        nfs = [{"id": i.id, "nf": i.nf_name, "owner": i.owner, "flavour": i.flavour,
                "state": i.actual_state.value, "desired": i.desired_state.value}
               for i in instances if i.node_name == n.name]
        attached = [u.name for u in users if u.access_node == n.name]
        by_tier.setdefault(n.role.value, []).append({
            "name": n.name, "role": n.role.value, "online": n.online,
            "admin_down": bool(getattr(n, "admin_down", False)),
            "last_seen": n.last_seen, "users": attached, "nfs": nfs,
            **_resources(n.resources)})
    width = PAD * 2 + max(1, *(len(v) for v in by_tier.values())) * (BOX_W + GAP_X)
    pos: dict[str, tuple[int, int]] = {}
    for row, tier in enumerate(TIERS):
        row_nodes = by_tier.get(tier, [])
        span = len(row_nodes) * (BOX_W + GAP_X) - GAP_X
        x0 = (width - span) // 2
        for k, node in enumerate(row_nodes):
            node["x"], node["y"] = x0 + k * (BOX_W + GAP_X), PAD + row * ROW_H
            pos[node["name"]] = (node["x"] + BOX_W // 2, node["y"] + BOX_H // 2)
    links = [{"a": a, "b": b, "x1": pos[a][0], "y1": pos[a][1], "x2": pos[b][0],
              "y2": pos[b][1]} for a, b in _links(nodes) if a in pos and b in pos]
    return {"tiers": [(t, TIER_NAMES[t], by_tier.get(t, [])) for t in TIERS],
            "links": links, "width": width, "height": PAD * 2 + len(TIERS) * ROW_H - 40,
            "box_w": BOX_W, "box_h": BOX_H}


def users(s: Session, handovers: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Each user: where they are, their session, chain (hops and nodes), traffic classes,
    and their handover history (sessions in order, the gap between one's end and the next's
    start; the fast re-authentications the orchestrator recorded)."""
    reauths = list(handovers)
    steering: dict[str, list[Any]] = {}
    for r in repo.list_steering(s):
        steering.setdefault(r.user_name, []).append(r)
    owned: dict[str, list[Any]] = {}
    for i in repo.list_instances(s):
        owned.setdefault(i.owner, []).append(i)
    sessions: dict[str, list[Any]] = {}
    for x in repo.list_sessions(s):
        sessions.setdefault(x.user_name, []).append(x)
    out = []
    for u in repo.list_users(s):
        sess = sessions.get(u.name, [])
        history = []
        prev = None
        for x in sess:
            gap = None
            if prev is not None and prev.ended_at is not None:
                gap = round((x.started_at - prev.ended_at) * 1000, 1)
            history.append({"node": x.node_name, "started_at": x.started_at,
                            "ended_at": x.ended_at, "state": x.state.value, "gap_ms": gap})
            prev = x
        active = next((h for h in history if h["state"] == "active"), None)
        hops = [{"node": r.node_name, "chain": list(r.chain or []), "installed": r.installed}
                for r in steering.get(u.name, []) if r.desired]
        nfs = [{"id": i.id, "nf": i.nf_name, "node": i.node_name,
                "state": i.actual_state.value}
               for i in owned.get(u.name, [])]
        out.append({"name": u.name, "required_nfs": list(u.required_nfs or []),
                    "classifiers": list(u.classifiers or []), "access_node": u.access_node,
                    "mac": u.mac, "ip": u.ip, "framed_ip": u.framed_ip,
                    "last_seen": u.last_seen, "session": active, "history": history[-8:],
                    "hops": hops, "nfs": nfs,
                    "reauths": [r for r in reauths if r.get("user") == u.name][-5:]})
    return out


def instances(s: Session) -> list[dict[str, Any]]:
    """NF instances with their flavour, node, state, owner, active users, config, whether
    the operator placed them (pinned) and whether their notifications are muted."""
    muted = {m.nf_instance_id for m in repo.list_mutes(s)}
    return [{"id": i.id, "nf": i.nf_name, "flavour": i.flavour, "node": i.node_name,
             "owner": i.owner, "desired": i.desired_state.value,
             "state": i.actual_state.value, "active_users": list(i.active_users or []),
             "config": i.config or {}, "muted": i.id in muted, "pinned": i.pinned,
             "updated_at": i.updated_at}
            for i in repo.list_instances(s)]


def operations(s: Session, limit: int = 100) -> list[dict[str, Any]]:
    """Lifecycle operation occurrences, newest first, with how long each took and why a
    failed one failed."""
    ops = repo.list_op_occs(s, newest_first=True, limit=limit)
    now = time.time()
    out = []
    for o in ops:
        err = o.error or {}
        end = o.state_entered_time if o.operation_state.value != "PROCESSING" else now
        out.append({"id": o.id, "operation": o.operation.value,
                    "state": o.operation_state.value, "instance": o.vnf_instance_id,
                    "params": o.params or {}, "start": o.start_time,
                    "ms": round((end - o.start_time) * 1000),
                    "reason": err.get("detail") or err.get("title") or (
                        str(err) if err else None)})
    return out


def notifications(s: Session, *, owner: str | None = None, node: str | None = None,
                  nf: str | None = None, acknowledged: bool | None = None,
                  limit: int = 200) -> list[dict[str, Any]]:
    rows = repo.list_notifications(s, owner=owner or None, node=node or None,
                                   nf_instance_id=nf or None, acknowledged=acknowledged,
                                   limit=limit)  # newest first
    return [{"id": n.id, "nf": n.nf_instance_id, "node": n.node, "owner": n.owner,
             "type": n.type, "severity": n.severity, "source": n.source,
             "detail": n.detail or {}, "ts": n.ts, "acknowledged": n.acknowledged}
            for n in rows]


def choices(s: Session) -> dict[str, list[str]]:
    """Names for the action forms' menus."""
    return {"nodes": [n.name for n in repo.list_nodes(s)],
            "users": [u.name for u in repo.list_users(s)],
            "nfs": sorted({b.name for b in repo.list_bundles(s)}),
            "instances": [i.id for i in repo.list_instances(s)
                          if i.desired_state.value == "present"]}


def troubleshoots(s: Session, limit: int = 30) -> list[dict[str, Any]]:
    """The troubleshooting questions recorded, newest first: target, state, verdict and
    the report's readable summary (or why the question failed)."""
    out = []
    for d in reversed(list_occs(s, limit)):
        t, rep, err = d.get("target") or {}, d.get("report") or {}, d.get("error") or {}
        v = rep.get("verdict") or {}
        out.append({"id": d.get("id"), "state": d.get("operation_state"),
                    "user": t.get("user"), "destination": t.get("destination"),
                    "port": t.get("port"), "start": d.get("start_time"),
                    "stops_at": v.get("stops_at"), "kind": v.get("kind"),
                    "summary": rep.get("summary") or err.get("detail") or "",
                    "probes": d.get("probes") or []})
    return out
