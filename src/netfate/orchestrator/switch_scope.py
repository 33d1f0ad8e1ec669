"""Which switches a change at one node touches, from the ports and links the agents report:
the pure part of `switches.Switches`' publishing (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from netfate.bus.messages import SwitchPorts


def affected(ports: Mapping[str, SwitchPorts], node: str) -> list[str]:
    """A change at a CPE also changes the switches above it (locations, up the tree),
    and any PE or DC may host a stretch of its users' chains (transits, issue 11): those
    first, so a stretch is in place before the access switch steers into it. A state
    that did not change is not published again."""
    above: list[str] = []
    cur = ports.get(node)
    while cur is not None and cur.uplink is not None:
        parent = cur.links.get(cur.uplink)
        if parent is None or parent == node or parent in above:
            break
        above.append(parent)
        cur = ports.get(parent)
    # A switch that reports no uplink of its own (an agent of before) is above the node
    # if it links to it, as before.
    above += [o for o, p in ports.items()
              if o != node and o not in above and node in p.links.values()
              and p.links.get(p.uplink or "") != node]
    hosts = sorted(o for o, p in ports.items()
                   if o != node and o not in above and p.tunnels and p.access == []
                   and p.services is None)
    return [*hosts, node, *above]


def with_links(ports: Mapping[str, SwitchPorts], nodes: Iterable[str]) -> set[str]:
    """`nodes` and every node one of them links to: what their states are built from (a
    core's state names the CPEs below it)."""
    scope = set(nodes)
    for n in list(scope):
        p = ports.get(n)
        if p is not None:
            scope.update(p.links.values())
    return scope
