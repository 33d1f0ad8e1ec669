"""Ports as the switch sees them: each port's OpenFlow config and state (`ovs-ofctl show`),
and taking a link down or up (`ovs-ofctl mod-port`): the troubleshooting report's link
check (OvsNetwork.port_states, the agent's switch dump) and the troubleshooting scenario's
fault.

A link between two nodes' LSIs is a pair of ports (testbed: OVS patch ports); it is down
when either end passes nothing (report.port_down). Argument lists only, never a shell.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from netfate.errors import DriverError
from netfate.proc import run

if TYPE_CHECKING:  # (ovs.py imports this module)
    from netfate.drivers.ovs import OvsServer

_PORT_LINE = re.compile(r"^\s*\d+\((?P<name>[^)]+)\):")
_FIELD = re.compile(r"^\s*(?P<key>config|state):\s*(?P<val>.*)")


def parse_show(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """`ovs-ofctl show` output -> port name -> (config flags, state flags); "0" is none."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    cur: str | None = None
    for line in text.splitlines():
        m = _PORT_LINE.match(line)
        if m:
            cur = m.group("name")
            out[cur] = ([], [])
            continue
        f = _FIELD.match(line)
        if f and cur is not None:
            flags = [w for w in f.group("val").split() if w != "0"]
            out[cur][0 if f.group("key") == "config" else 1].extend(flags)
    return out


def port_states(server: OvsServer, lsi: str) -> dict[str, tuple[list[str], list[str]]]:
    """Every port of the LSI with its (config, state) flags. DriverError if OVS refuses."""
    cp = run(["ovs-ofctl", "-O", "OpenFlow13", "show", lsi], env=server.env, check=False,
             timeout=10)
    if cp.returncode != 0:
        raise DriverError(f"ovs-ofctl show {lsi}: {cp.stderr.decode(errors='replace').strip()}")
    return parse_show(cp.stdout.decode(errors="replace"))


def set_port(server: OvsServer, lsi: str, port: str, up: bool) -> None:
    """Take one end of a link down (no receiving, no forwarding, port down) or bring it back.
    DriverError if OVS refuses."""
    words = ["up", "receive", "forward"] if up else ["down", "no-receive", "no-forward"]
    for w in words:
        cp = run(["ovs-ofctl", "-O", "OpenFlow13", "mod-port", lsi, port, w], env=server.env,
                 check=False, timeout=10)
        if cp.returncode != 0:
            raise DriverError(f"ovs-ofctl mod-port {lsi} {port} {w}: "
                              f"{cp.stderr.decode(errors='replace').strip()}")
