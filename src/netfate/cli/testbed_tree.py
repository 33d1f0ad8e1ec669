"""`netfate testbed status` as a tree: nodes under the node they uplink to, each with its
ports, the hosts on it (and the user logged in there) and the NFs running on it."""

from __future__ import annotations

import contextlib
from typing import Any

from rich.markup import escape
from rich.tree import Tree

TIER = {"dc": "DC", "pe": "PE", "cpe": "CPE"}


def fetch_users(api: str | None) -> list[dict[str, Any]]:
    """The orchestrator's users ([] if it does not answer): where each is attached."""
    if not api:
        return []
    import httpx

    from netfate.api_auth import BearerAuth

    with contextlib.suppress(httpx.HTTPError, ValueError, OSError):
        r = httpx.get(f"{api}/api/v1/users", timeout=2, auth=BearerAuth())
        if r.status_code == 200 and isinstance(r.json(), list):
            return list(r.json())
    return []


def _node_label(name: str, b: dict[str, Any]) -> str:
    role = str(b.get("role", ""))
    ports = b.get("ports") or {}
    if isinstance(ports, dict) and "error" in ports:
        pdesc = f"[red]{escape(str(ports['error']))}[/]"
    else:
        pdesc = ", ".join(f"{escape(p)}({n})" for p, n in sorted(ports.items(),
                                                                  key=lambda x: str(x[1])))
    return (f"[bold]{TIER.get(role, role.upper())} {escape(name)}[/] "
            f"[dim]LSI {escape(str(b.get('lsi', '')))}; ports: {pdesc or '-'}[/]")


def status_tree(st: dict[str, Any]) -> Tree:
    """Pure: the tree of a `lifecycle.status()` dict (with ``users`` added, as the
    orchestrator lists them). Nodes nest by their uplinks (the topology's "patch" links)."""
    title = f"testbed [green]{escape(str(st.get('topology')))}[/] is up"
    if st.get("api"):
        title += f" · API {escape(str(st['api']))}"
    root = Tree(title)
    bridges: dict[str, dict[str, Any]] = {
        str(b["node"]): {**b, "lsi": lsi} for lsi, b in st.get("bridges", {}).items()}
    parent: dict[str, str] = {}
    for link in st.get("links", []):
        if link.get("kind") == "patch":
            parent[str(link["a"]).split(":")[0]] = str(link["b"]).split(":")[0]
    nodes = list(bridges) or sorted({h["node"] for h in st.get("hosts", [])})
    users_by_mac = {str(u.get("mac")).lower(): u for u in st.get("users", []) if u.get("mac")}
    branch: dict[str, Tree] = {}

    def add(name: str, under: Tree) -> None:
        t = under.add(_node_label(name, bridges.get(name, {"role": "?"})))
        branch[name] = t
        for h in st.get("hosts", []):
            if h["node"] == name:
                _host(t, h, users_by_mac)
        for nf in st.get("nfs", []):
            if nf.get("node") == name:
                state = str(nf.get("state"))
                colour = "green" if state == "running" else "yellow"
                t.add(f"NF [cyan]{escape(str(nf['name']))}[/] "
                      f"{escape(str(nf['instance_id']))} ({escape(str(nf.get('flavour')))}) "
                      f"of {escape(str(nf.get('owner')))}: [{colour}]{escape(state)}[/]")
        for child in nodes:
            if parent.get(child) == name and child not in branch:
                add(child, t)

    for name in nodes:
        if name not in parent or parent[name] not in nodes:
            add(name, root)
    for name in nodes:  # a cycle of uplinks would leave some out: show them at the top
        if name not in branch:
            add(name, root)
    procs = st.get("processes") or {}
    if procs:
        p = root.add("[bold]processes[/]")
        for name, v in procs.items():
            mark = "[green]running[/]" if v.get("alive") else "[red]dead[/]"
            p.add(f"{escape(name)} PID {v.get('pid')}: {mark}")
    return root


def _host(t: Tree, h: dict[str, Any], users_by_mac: dict[str, dict[str, Any]]) -> None:
    present = "" if h.get("present", True) else " [red](namespace missing)[/]"
    label = (f"{escape(str(h['role']))} [magenta]{escape(str(h['name']))}[/] "
             f"{escape(str(h.get('address') or 'no address'))} "
             f"{escape(str(h.get('mac')))}{present}")
    u = users_by_mac.get(str(h.get("mac")).lower())
    if u is not None and u.get("access_node") == h["node"]:
        label += f" · user [bold]{escape(str(u['name']))}[/]"
        if u.get("ip"):
            label += f" ({escape(str(u['ip']))})"
    t.add(label)
