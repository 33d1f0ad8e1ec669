"""What a node can run: functional capabilities (from the tools present) and infrastructure
facts (CPU architecture, switch, flavours). The UN paper's three kinds of information."""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Iterable

from netfate.drivers import cgroups, registry

# capability -> the executable that provides it
TOOLS = {
    "nftables": "nft",
    "iptables": "iptables-restore",  # xt NFQUEUE: the nft queue expression may be missing
    "conntrack": "conntrack",
    "tc": "tc",
    "iproute2": "ip",
    "tcpdump": "tcpdump",
    "ping": "ping",
    "traceroute": "traceroute",
    "python3": "python3",
    "bash": "bash",
}


def functional() -> set[str]:
    found = {cap for cap, exe in TOOLS.items() if shutil.which(exe, path=_path())}
    if os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        found.add("bridge")
    return found


def _path() -> str:
    return os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin"


def infrastructure(flavours: Iterable[str] | None = None) -> dict[str, object]:
    """The node's infrastructure facts. `flavours`: those it hosts compute drivers for (the
    agent passes the drivers it built); default: every flavour registered under
    `netfate.compute` (netfate.drivers.registry), whether or not it loads here."""
    return {
        "arch": platform.machine(),
        "kernel": platform.release(),
        "flavours": sorted(registry.available() if flavours is None else flavours),
        "switch": "openvswitch-netdev",
        "cgroups": "v1" if cgroups.available() else "none",
        "cpus": os.cpu_count() or 1,
    }
