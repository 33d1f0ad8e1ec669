"""What a node can run: functional capabilities (from the tools present, kernel features and
hardware it detects) and infrastructure facts (CPU architecture, switch, flavours). The UN
paper's three kinds of information (NNF paper, section III-C).

A capability a node advertises is one it detects, never one it is told about:
- packages: an executable on the PATH (TOOLS: `iptables`, `nftables` for `nft`, ...); named
  bare, as a descriptor names a package dependency;
- kernel features: from the kernel's own configuration (/proc/config.gz: built in or a module),
  else from what the running kernel shows (/sys/module, /proc); named `kernel:NAME`;
- hardware: CPU flags from /proc/cpuinfo (x86 `flags`, ARM `Features`); named `hardware:NAME`.
"""

from __future__ import annotations

import gzip
import os
import platform
import shutil
from collections.abc import Iterable
from pathlib import Path

from netfate.drivers import cgroups, registry
from netfate.resolver import capability_key

# capability -> the executables that provide it (any one of them)
TOOLS: dict[str, str | tuple[str, ...]] = {
    "nftables": "nft",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "tc": "tc",
    "iproute2": "ip",
    "tcpdump": "tcpdump",
    "ping": "ping",
    "traceroute": "traceroute",
    "python3": "python3",
    "bash": "bash",
    "strongswan": ("swanctl", "ipsec", "charon-systemd"),
    "wireguard": "wg",
    "dnsmasq": "dnsmasq",
    "iperf3": "iperf3",
}

# kernel feature -> (its Kconfig symbols (any, y or m), what shows it in a running kernel)
KERNEL: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "nftables": (("CONFIG_NF_TABLES",), ("/sys/module/nf_tables",)),
    "iptables": (("CONFIG_IP_NF_IPTABLES",), ("/proc/net/ip_tables_names",)),
    "conntrack": (("CONFIG_NF_CONNTRACK",), ("/proc/sys/net/netfilter/nf_conntrack_max",
                                              "/sys/module/nf_conntrack")),
    # IPsec: the xfrm framework with its netlink interface (strongSwan's kernel backend), ESP.
    "xfrm": (("CONFIG_XFRM_USER",), ("/sys/module/xfrm_user",)),
    "esp": (("CONFIG_INET_ESP",), ("/sys/module/esp4",)),
    "bridge": (("CONFIG_BRIDGE",), ("/sys/module/bridge", "/proc/sys/net/bridge")),
    "tun": (("CONFIG_TUN",), ("/dev/net/tun",)),
    "vxlan": (("CONFIG_VXLAN",), ("/sys/module/vxlan",)),
    "wireguard": (("CONFIG_WIREGUARD",), ("/sys/module/wireguard",)),
    "htb": (("CONFIG_NET_SCH_HTB",), ("/sys/module/sch_htb",)),
    "netns": (("CONFIG_NET_NS",), ("/proc/self/ns/net",)),
    "cgroup-memory": (("CONFIG_MEMCG",), ("/sys/fs/cgroup/memory",)),
}

# CPU flag (as /proc/cpuinfo spells it) -> hardware capability
CPU_FLAGS = {
    "aes": "aes-ni",  # x86 AES-NI; ARM's "aes" Feature is the same capability
    "sha_ni": "sha-ni",
    "sha2": "sha2",
    "avx2": "avx2",
    "avx512f": "avx512",
    "rdrand": "rdrand",
    "pclmulqdq": "pclmul",
    "neon": "neon",
    "asimd": "neon",
}


def functional(root: Path = Path("/")) -> set[str]:
    """Every capability this node detects (see the module's doc). `root`: where /proc, /sys
    and /dev are looked for (tests point it at a fake tree); tools are looked up on PATH."""
    found = {cap for cap, exes in TOOLS.items()
             if any(shutil.which(e, path=_path()) for e in _many(exes))}
    if (root / "proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        found.add("bridge")  # a package capability the catalogue's NFs name (br_netfilter)
    found |= {capability_key(k, "kernel") for k in kernel_features(root)}
    found |= {capability_key(h, "hardware") for h in hardware(root)}
    return found


def kernel_features(root: Path = Path("/")) -> set[str]:
    """KERNEL's features this kernel has: built in or as a module by its configuration when it
    publishes one (/proc/config.gz), else shown by the running kernel."""
    config = _kernel_config(root / "proc/config.gz")
    out = set()
    for name, (symbols, shown) in KERNEL.items():
        if config is not None:
            if any(config.get(s) in ("y", "m") for s in symbols):
                out.add(name)
        elif any((root / p.lstrip("/")).exists() for p in shown):
            out.add(name)
    return out


def hardware(root: Path = Path("/")) -> set[str]:
    """CPU_FLAGS' capabilities the first CPU in /proc/cpuinfo reports."""
    try:
        text = (root / "proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            flags.update(value.split())
            break
    return {CPU_FLAGS[f] for f in flags if f in CPU_FLAGS}


def _kernel_config(path: Path) -> dict[str, str] | None:
    try:
        with gzip.open(path, "rt", errors="replace") as fh:
            text = fh.read(4 * 1024 * 1024)  # a few hundred KiB in practice
    except (OSError, EOFError):
        return None
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("CONFIG_"):
            out[key] = value.strip()
    return out


def _many(exes: str | tuple[str, ...]) -> tuple[str, ...]:
    return (exes,) if isinstance(exes, str) else exes


def _path() -> str:
    return os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin"


# The tools a flavour's driver needs on the node: a node advertises a flavour only when its
# driver is registered and these are present (the driver may check more when it is built).
FLAVOUR_TOOLS: dict[str, tuple[str, ...]] = {
    "container": ("runc",),
    "vm": ("qemu-system-x86_64",) if platform.machine() == "x86_64" else ("qemu-system-aarch64",),
}


def hostable(flavours: Iterable[str]) -> tuple[list[str], list[str]]:
    """Of `flavours`, those this node can host (a compute driver is registered for it and the
    tools in FLAVOUR_TOOLS are on PATH), in order, and why each other one is left out."""
    known = set(registry.available())
    ok: list[str] = []
    why: list[str] = []
    for f in dict.fromkeys(flavours):
        missing = [t for t in FLAVOUR_TOOLS.get(f, ()) if not shutil.which(t, path=_path())]
        if f not in known:
            why.append(f"{f}: no compute driver registered")
        elif missing:
            why.append(f"{f}: {', '.join(missing)} not found")
        else:
            ok.append(f)
    return ok, why


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
