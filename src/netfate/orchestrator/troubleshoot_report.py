"""The orchestrator's troubleshooting report: from what each probe saw, the user's NFs'
counters, the links' port states and the flow tables read at each point, to one verdict
(netfate.troubleshoot.report.first_break) and a readable summary. Pure.

The report has the shape of the direct mode's (netfate.troubleshoot.ask): question,
verdict, points, elements, nfs, links, flows, seconds, summary, limits, left_behind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from netfate.orchestrator.troubleshoot_target import Target
from netfate.troubleshoot import report


@dataclass
class Point:
    """One probe's point: the node, its role, whether the user's traffic crosses it."""

    node: str
    role: str
    on_path: bool
    iid: str
    address: str
    config: dict[str, Any]
    mirrored: bool = False  # the probe gets copies of the user's traffic at this point
    routed: bool = False    # its own traffic is carried (its TS rules are installed)


@dataclass(frozen=True)
class Observed:
    """What the operation gathered besides the probes' results."""

    user_nfs: list[tuple[str, str, dict[str, Any]]]  # (instance id, NF, config) at the CPE
    before: dict[str, Any]                            # instance id -> status before
    after: dict[str, Any]                             # instance id -> status after
    links: list[dict[str, Any]]                       # {node, port, config, state} per end
    flows: dict[str, Any]                             # node -> its switch dump


def _observation(p: Point, results: dict[str, dict[str, Any]], target: str | None,
                 user_ip: str | None, captured: bool
                 ) -> tuple[report.PointObservation, list[str]]:
    """The point's observation and why some of it is no evidence. `captured`: a capture of
    the user's flow was asked of it."""
    by_tool: dict[str, dict[str, Any]] = {}
    for r in results.values():
        key = r.get("tool", "?") if r.get("tool") != "ping" else (
            "ping_user" if r.get("target") == user_ip and user_ip != target else "ping_dest")
        by_tool[str(key)] = r
    cap = by_tool.get("capture")
    # Evidence only from what can tell: a capture from a probe that gets copies of the
    # user's traffic at its point; pings and traces from a probe whose own traffic the
    # network carries (an address and its TS rules).
    limits = []
    spliced, addressed = p.mirrored, bool(p.config.get("address")) and p.routed
    if not spliced and captured:
        limits.append(f"{p.node}: its probe is not spliced into the user's path nor mirrors "
                      "it: its capture is no evidence")
    if not addressed:
        limits.append(f"{p.node}: its probe has no address the network carries: its pings "
                      "and traceroute are no evidence")
    obs = report.PointObservation(
        point=p.node, role=p.role, on_path=p.on_path,
        ping_dest=by_tool["ping_dest"].get("ok") if "ping_dest" in by_tool and addressed
        else None,
        ping_user=by_tool["ping_user"].get("ok") if "ping_user" in by_tool and addressed
        else None,
        flow_packets=(int(cap.get("packets_captured") or 0)
                      if cap is not None and cap.get("ok") and spliced else None),
        hops=report.traceroute_hops(by_tool["traceroute"].get("output", ""))
        if "traceroute" in by_tool and addressed else ())
    return obs, limits


def build(t: Target, points: list[Point], results: dict[str, dict[str, dict[str, Any]]],
          seen: Observed, cpe: str | None, target: str | None, user_ip: str | None,
          seconds: float) -> dict[str, Any]:
    """The report (a JSON-able dict). `results`: node -> request id -> the probe's result."""
    obs: list[report.PointObservation] = []
    limits: list[str] = []
    for p in points:
        o, why = _observation(p, results.get(p.node, {}), target, user_ip,
                              p.on_path and t.user is not None)
        obs.append(o)
        limits += why
    elements: list[report.Element] = []
    nfs = []
    for iid, nf, cfg in seen.user_nfs:
        a, b = seen.after.get(iid, {}), seen.before.get(iid, {})
        dropped, detail = report.firewall_drops(b, a) if nf == "firewall" else (0, "")
        if cpe is not None:
            elements.append(report.Element("nf", f"{t.user}'s {nf} on {cpe}", cpe,
                                           dropped=dropped, detail=detail))
        nfs.append({"instance_id": iid, "nf": nf, "config": cfg, "status": a,
                    "status_before": b, "dropped": dropped})
    if seen.links and cpe is not None:
        peer = next((e["node"] for e in seen.links if e["node"] != cpe), "?")
        elements.append(report.link_element(cpe, peer, seen.links))
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
        "points": [{**asdict(o), "probe": p.iid, "address": p.config.get("address"),
                    "mac": p.config.get("mac"), "results": results.get(p.node, {})}
                   for o, p in zip(obs, points, strict=True)],
        "elements": [asdict(e) for e in elements],
        "nfs": nfs,
        "links": seen.links,
        "flows": seen.flows,
        "seconds": round(seconds, 3),
        "summary": report.summary(verdict, obs, seconds)
        + "".join(f"\n  ! {x}" for x in limits),
        "limits": limits,
        "left_behind": [],
    }
