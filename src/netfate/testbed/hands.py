"""Driving the testbed by hand: run a command on a host (Mininet's ``h1 ping h2``), log a
client in at its CPE's captive portal as a person would."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from dataclasses import asdict
from typing import Any

from netfate.errors import Conflict, InvalidInput
from netfate.proc import netns_argv
from netfate.testbed import lifecycle
from netfate.testbed.topology import Topology


def topology_up() -> Topology:
    """The topology of the testbed that is up, with its hosts where they are now (after
    moves). Conflict if no testbed is up."""
    st = lifecycle.load_state()
    if st is None:
        raise Conflict("the testbed is not up; run 'netfate testbed up'")
    return Topology.model_validate(st["topology"])


def host_argv(topo: Topology, host: str, argv: list[str]) -> list[str]:
    """The argument list that runs ``argv`` in ``host``'s namespace (nsenter, no shell).
    Pure. InvalidInput if the host is unknown (naming the known ones) or argv is empty."""
    h = topo.host(host)
    if not argv:
        raise InvalidInput(f"no command to run on {host}; e.g. "
                           f"'netfate testbed exec {host} -- ip addr'")
    return netns_argv(h.netns, argv)


def exit_code(returncode: int) -> int:
    """A shell's convention: a child killed by signal N exits 128+N. Pure."""
    return 128 - returncode if returncode < 0 else returncode


def run_on(host: str, argv: list[str], topo: Topology | None = None) -> int:
    """Run ``argv`` on ``host`` with this terminal's stdin/stdout/stderr, until it exits;
    its exit code (128+N if killed by signal N). Ctrl-C goes to the command (same process
    group), not to us. InvalidInput/Conflict as host_argv/topology_up; InvalidInput if
    the program does not exist."""
    full = host_argv(topo or topology_up(), host, argv)
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            proc = subprocess.Popen(full)  # noqa: S603 - argument list, never a shell
        except OSError as exc:
            raise InvalidInput(f"cannot run {argv[0]!r} on {host}: {exc}") from exc
        code = proc.wait()
    finally:
        signal.signal(signal.SIGINT, old)
    # nsenter says 127/126 itself for a missing or unrunnable program.
    return exit_code(code)


def login(client: str, user: str, password: str,
          topo: Topology | None = None) -> dict[str, Any]:
    """What a person at the captive portal does on ``client``: DHCP, the login page's POST
    (RADIUS behind it), then the stable address RADIUS gave (roaming/session.py). Returns
    {"ok": True, "user", "client", "node", "ip", "lease_ms", "portal_ms", "renew_ms"}.
    NetfateError with the portal's answer if the login is refused; InvalidInput if
    ``client`` is not a client host."""
    from netfate.roaming.session import portal_login

    t = topo or topology_up()
    h = t.host(client)
    if h.role != "client":
        raise InvalidInput(f"{client} is {h.a_role}; log in from a client: "
                           f"{[x.name for x in t.hosts if x.role == 'client']}")
    out = asdict(portal_login(t, client, user, password))
    return {"ok": True, "client": client, **out}


def hosts(topo: Topology | None = None) -> list[str]:
    """The host names of the testbed that is up ([] if none is)."""
    with contextlib.suppress(Exception):
        return [h.name for h in (topo or topology_up()).hosts]
    return []
