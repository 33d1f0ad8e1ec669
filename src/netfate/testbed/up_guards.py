"""What a `testbed up` checks before it builds, and how its undo holds off signals
(testbed.lifecycle): the testbed that is up is this one, nothing of another is, and an
interrupted `up` finishes removing what it made."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from netfate import naming, paths
from netfate.drivers import netns
from netfate.errors import Conflict
from netfate.testbed.topology import Topology


def same_testbed(prev: dict[str, Any], topo: Topology) -> None:
    """Conflict unless `topo` is the testbed that is up, but for where its hosts are now (a
    topology of the same name with other nodes, addresses or MTU half-built over it, or
    was taken as up while its hosts kept the old addresses)."""
    was = prev.get("topology", {})
    if was.get("name") != topo.name:
        raise Conflict(f"a testbed {was.get('name')!r} is up; run 'netfate testbed down'")

    def unmoved(t: dict[str, Any]) -> dict[str, Any]:  # where a host is: `testbed move`'s
        return {**t, "hosts": sorted(({k: v for k, v in h.items() if k != "attach"}
                                      for h in t.get("hosts", [])), key=lambda h: h["name"])}

    if unmoved(was) != unmoved(topo.model_dump(mode="json")):
        raise Conflict(f"a testbed {topo.name!r} with other nodes, hosts, addresses or "
                       "settings is up; run 'netfate testbed down' first")


def same_settings(prev: dict[str, Any], settings: dict[str, Any]) -> None:
    """Conflict unless the testbed that is up, with its services, runs with these settings
    (ports, idle timeout...): `up --api-port 8282` over a testbed on 8181 waited 30 s for
    agents that never came, then recorded 8282, and `--idle-timeout 600` said "up" and
    kept 30 (probe of 2026-12-06). The topology file's path is no setting of the testbed."""
    was = prev.get("settings")
    if was is None or not prev.get("services"):
        # recorded by a version that kept none, or no service runs yet: this `up` starts
        # them with these settings (adding services to a data-plane testbed converges)
        return
    differ = sorted(k for k in {*was, *settings} - {"topology"}
                    if was.get(k) != settings.get(k))
    if differ:
        shown = ", ".join(f"{k} {was.get(k)!r} -> {settings.get(k)!r}" for k in differ[:5])
        raise Conflict(f"the testbed that is up runs with other settings ({shown}); run "
                       "'netfate testbed down' first, or 'up' with the same settings")


def nothing_of_ours_up() -> None:
    """Conflict if namespaces of ours exist while this run dir records no testbed: another
    run dir's testbed, or leftovers (a second `up` under another NETFATE_RUN_DIR failed over
    the first one's bridges, then its undo removed that testbed's namespaces)."""
    ns = sorted(n for n in netns.list_names() if naming.is_ours(n))
    if ns:
        raise Conflict(f"{len(ns)} namespaces named {naming.PREFIX}* exist (e.g. {ns[0]}) "
                       f"but run dir {paths.run_dir()} records no testbed: another run dir's "
                       "testbed, or leftovers; `netfate testbed down` with that run dir's "
                       "NETFATE_RUN_DIR removes them (or every fate-* resource with any)")


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """SIGINT and SIGTERM held off for the block (an undo cut short by a second signal left
    a half-built testbed): in the main thread only, where handlers live."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)
