"""Where is it broken? From what each point saw to the first point where traffic stops. Pure.

The Glasgow paper (section V.B) asks one question at many points at once: probes at the
user's CPE, the PE and the DC ping and trace toward the destination and capture the user's
flow, while each node's flow tables and the user's NFs' counters are read. This module
turns those observations into one verdict, with the evidence behind it.

The path is the list of on-path points in the order the user's traffic crosses them (their
CPE, then the PE), then the destination. Between two points lie *elements* that can drop
traffic: the user's NFs on a node, the infrastructure link between two nodes. Off-path
points (the DC) are references: they tell a destination that is down from a path that is.

Reasoning, in order (the first that applies wins):
1. Captures: the first on-path point that saw none of the user's flow, after one that saw
   it, bounds the break to the stretch before it; no point saw it: the break is before the
   first point (the user's device or access link).
2. Without captures, pings to the destination: the first on-path point whose ping fails,
   when a later one's succeeds, bounds it the same way.
3. Every point passes the flow on but the destination does not answer: the last stretch
   (or the destination itself, when no reference point reaches it either).
Inside the stretch, the element to blame is the first one that reports it: a link down at
the switch, or an NF whose drop counters grew while the question was asked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

DESTINATION = "destination"

ElementKind = Literal["nf", "link"]
VerdictKind = Literal["nf", "link", "stretch", "access", "destination", "none", "unknown"]


@dataclass(frozen=True)
class PointObservation:
    """What the probe at one point saw. None: not measured (the tool failed or timed out)."""

    point: str                       # the node's name (cpe1, core, dc)
    role: str                        # cpe | pe | dc
    on_path: bool                    # the user's traffic crosses it
    ping_dest: bool | None = None    # the destination answered its ping
    ping_user: bool | None = None    # the user's device answered its ping
    flow_packets: int | None = None  # packets of the user's flow in its capture
    hops: tuple[str, ...] = ()       # its traceroute toward the destination ("*": no answer)


@dataclass(frozen=True)
class Element:
    """Something on the path that can stop traffic, in the stretch after point `after`."""

    kind: ElementKind
    name: str                # "user1's firewall on cpe1", "link cpe1-core"
    after: str               # the on-path point it follows
    dropped: int = 0         # packets it dropped while the question was asked
    down: bool = False       # a link the switch reports down
    detail: str = ""         # which rule, which port state


@dataclass(frozen=True)
class Verdict:
    broken: bool
    kind: VerdictKind
    # The first point where traffic stops: the element to blame when one is known, else the
    # stretch "A -> B" it stops in; None when nothing is broken.
    stops_at: str | None
    after: str | None        # the last point that passed the traffic on
    before: str | None       # the first point (or the destination) it did not reach
    reason: str
    evidence: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["evidence"] = list(self.evidence)
        return d


def _stretch_of(path: list[PointObservation]) -> tuple[int | None, list[str]]:
    """(index of the first on-path point the traffic did not reach, evidence), by captures,
    then pings. len(path): it reached every point. None: nothing tells."""
    ev: list[str] = []
    seen = [p.flow_packets for p in path]
    if any(s is not None for s in seen):
        for p in path:
            if p.flow_packets is not None:
                ev.append(f"{p.point}: {p.flow_packets} packets of the user's flow captured")
        for i, s in enumerate(seen):
            if s == 0:
                return i, ev
        if all(s is not None for s in seen):
            return len(path), ev
    pings = [p.ping_dest for p in path]
    for p in path:
        if p.ping_dest is not None:
            ev.append(f"{p.point}: ping to the destination "
                      f"{'answered' if p.ping_dest else 'unanswered'}")
    if all(x is None for x in pings):
        return None, ev
    for i, ok in enumerate(pings):
        # The traffic stops after i if i cannot reach the destination but a later point can.
        if ok is False and any(later is True for later in pings[i + 1:]):
            return i + 1, ev
    if pings[-1] is True:
        return len(path), ev
    return None, ev


def first_break(path: list[PointObservation], elements: list[Element],
                references: list[PointObservation] | None = None,
                dest_answered: bool | None = None) -> Verdict:
    """The verdict for one question. `path`: the on-path points, user side first (at
    least one). `elements`: what lies after each point, in path order. `references`:
    off-path points (the DC). `dest_answered`: the user's flow got answers back (a
    capture saw replies), if known. ValueError for an empty path or an element after an
    unknown point."""
    if not path:
        raise ValueError("first_break: the path has no point")
    names = [p.point for p in path]
    for e in elements:
        if e.after not in names:
            raise ValueError(f"first_break: element {e.name!r} follows unknown point {e.after!r}")
    refs = references or []
    idx, ev = _stretch_of(path)
    # The user's own NF counts drops of the user's flow over the whole question, while a
    # capture sees only its window (a denied device sends ~1 SYN a second). Drops counted by
    # an NF after point i prove the flow passed i, whatever that capture missed.
    counted = [e for e in elements if e.kind == "nf" and e.dropped > 0 and not e.down]
    if counted:
        reached = max(names.index(e.after) for e in counted) + 1
        if idx is None or idx < reached:
            ev.append(f"{names[reached - 1]}: passed by the user's flow "
                      f"({counted[0].name} counted {counted[0].dropped} of its packets)")
            idx = reached
    for r in refs:
        if r.ping_dest is not None:
            ev.append(f"{r.point} (reference): ping to the destination "
                      f"{'answered' if r.ping_dest else 'unanswered'}")
    for e in elements:
        if e.down or e.dropped:
            ev.append(f"{e.name}: " + ("down" if e.down else f"{e.dropped} packets dropped")
                      + (f" ({e.detail})" if e.detail else ""))
    evidence = tuple(ev)
    if idx is None:
        return Verdict(False, "unknown", None, None, None,
                       "no probe could tell: every capture and ping failed to run", evidence)
    if idx == 0:
        first = path[0]
        # A capture's window can miss a failing device's sparse retries (~1 a second, fewer
        # on a loaded node), but a link or NF down on the path stops the traffic whatever
        # the window saw: blame it unless the user's device is unreachable too.
        down = next((e for e in elements if e.down), None)
        if down is not None and first.ping_user is not False:
            return Verdict(True, down.kind, down.name, down.after, _point_after(names, down),
                           f"{down.name} is down on the user's path" + (
                               f" ({down.detail})" if down.detail else "")
                           + f"; no packet of the user's flow was captured at {first.point} "
                           "in the capture's window", evidence)
        why = (f"none of the user's flow reached {first.point}, the first point: the user's "
               "device sends none, or it is lost on their access link")
        if first.ping_user is False:
            why += f" ({first.point} cannot ping the user's device either)"
        return Verdict(True, "access", f"access link to {first.point}", None, first.point,
                       why, evidence)
    after = path[idx - 1].point
    before = path[idx].point if idx < len(path) else DESTINATION
    blamed = _blame([e for e in elements if e.after == after])
    if idx == len(path):
        if blamed is None and (dest_answered is not False) and path[-1].ping_dest is not False:
            return Verdict(False, "none", None, path[-1].point, None,
                           "the user's flow crosses every point and the destination answers",
                           evidence)
        if blamed is None and refs and all(r.ping_dest is False for r in refs):
            return Verdict(True, "destination", DESTINATION, after, DESTINATION,
                           f"the flow crosses every point up to {after}, but the destination "
                           "answers no probe, not even from the reference points: it is down "
                           "or unreachable beyond the network", evidence)
    if blamed is not None:
        what = "is down" if blamed.down else f"dropped {blamed.dropped} packets"
        return Verdict(True, blamed.kind, blamed.name, after, before,
                       f"the user's traffic passes {after} but not {before}; in between, "
                       f"{blamed.name} {what}" + (f" ({blamed.detail})" if blamed.detail
                                                 else ""), evidence)
    return Verdict(True, "stretch", f"{after} -> {before}", after, before,
                   f"the user's traffic passes {after} but not {before}; nothing in between "
                   "reports a drop (look at the flow tables in the report)", evidence)


def _point_after(names: list[str], e: Element) -> str:
    i = names.index(e.after) + 1
    return names[i] if i < len(names) else DESTINATION


def _blame(stretch: list[Element]) -> Element | None:
    """The first element of a stretch that stops traffic: a link down, or drops counted."""
    for e in stretch:
        if e.down or e.dropped > 0:
            return e
    return None


def firewall_drops(before: dict[str, Any], after: dict[str, Any]) -> tuple[int, str]:
    """(packets of the user's outgoing traffic dropped between two firewall status reports,
    which rules): the growth of its deny rules for direction "out" and of its default_out
    policy when it denies. Inbound drops (direction "in", default_in) and "invalid" drops
    are listed, not counted: the question is about the user's traffic toward the
    destination, and late packets of closed connections would blame a working firewall.
    Either report may lack fields (a status that failed): they count as zero."""
    def packets(doc: Any) -> int:
        return int(doc.get("packets", 0)) if isinstance(doc, dict) else 0

    total, parts, other = 0, [], []
    rules_a = {r.get("index"): r for r in after.get("rules", []) if isinstance(r, dict)}
    rules_b = {r.get("index"): r for r in before.get("rules", []) if isinstance(r, dict)}
    for i, r in sorted(rules_a.items(), key=lambda kv: int(kv[0] or 0)):
        if r.get("action") != "deny":
            continue
        n = packets(r) - packets(rules_b.get(i, {}))
        direction = r.get("direction", "out")
        if n > 0 and direction == "out":
            total += n
            parts.append(f"rule {i} (deny out): {n}")
        elif n > 0:
            other.append(f"rule {i} (deny {direction}): {n}")
    for key in ("default_out", "default_in"):
        a = after.get(key) or {}
        if isinstance(a, dict) and a.get("policy") == "deny":
            n = packets(a) - packets(before.get(key) or {})
            if n > 0 and key == "default_out":
                total += n
                parts.append(f"{key} (deny): {n}")
            elif n > 0:
                other.append(f"{key} (deny): {n}")
    n = packets(after.get("invalid")) - packets(before.get("invalid"))
    if n > 0:
        other.append(f"invalid: {n}")
    if other:
        parts.append("not counted: " + ", ".join(other))
    return total, ", ".join(parts)


def traceroute_hops(output: str) -> tuple[str, ...]:
    """A traceroute's hops ("*": no answer), trailing unanswered ones folded into one."""
    hops = []
    for ln in output.splitlines()[1:]:
        w = ln.split()
        if w and w[0].isdigit():
            hops.append(w[1] if len(w) > 1 else "*")
    # trailing unanswered hops say one thing: nothing answers past the last address
    while len(hops) > 1 and hops[-1] == "*" and hops[-2] == "*":
        hops.pop()
    return tuple(hops)


def port_down(config: list[str], state: list[str]) -> bool:
    """An OpenFlow port that passes no traffic: administratively down, not receiving or not
    forwarding (OFPPC_*), or its link down (OFPPS_LINK_DOWN)."""
    return bool({"PORT_DOWN", "NO_RECV", "NO_FWD"} & set(config)) or "LINK_DOWN" in state


def link_element(cpe: str, peer: str, ends: list[dict[str, Any]]) -> Element:
    """The link from the user's CPE up to `peer`, after the CPE's point, from its two ends
    as the switches report them ({node, port, config, state} each): down when either end
    passes nothing (port_down), with which end and why."""
    down = [e for e in ends if port_down(e["config"], e["state"])]
    return Element("link", f"link {cpe}-{peer}", cpe, down=bool(down),
                   detail="; ".join(f"{e['node']}:{e['port']} "
                                    + " ".join(e["config"] + e["state"]) for e in down))


def summary(verdict: Verdict, points: list[PointObservation], seconds: float) -> str:
    """The readable summary of a report: the verdict, then one line per point."""
    lines = [("BROKEN: traffic stops at " + str(verdict.stops_at)) if verdict.broken
             else ("OK: " if verdict.kind == "none" else "UNKNOWN: ") + verdict.reason]
    if verdict.broken:
        lines.append(f"  {verdict.reason}")
    lines.append(f"  asked at {len(points)} points in {seconds:.1f} s:")
    for p in points:
        flow = "-" if p.flow_packets is None else str(p.flow_packets)
        ping = {True: "ok", False: "FAIL", None: "-"}[p.ping_dest]
        hops = " ".join(p.hops) if p.hops else "-"
        lines.append(f"  {p.point:<8} {p.role:<3} {'path' if p.on_path else 'ref ':<4} "
                     f"flow pkts {flow:>4}  ping dest {ping:<4}  route {hops}")
    lines.extend(f"  - {e}" for e in verdict.evidence)
    return "\n".join(lines)
