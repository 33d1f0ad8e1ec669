"""A small pool of pre-made NF namespaces with their veths, that a native NF is born into
(SOCK and Catalyzer start sandboxes in under a millisecond from pre-made ones; here the
kernel work of a namespace and its ports, ~5-10 ms on a small CPE, leaves the critical path).

An entry is what the script contract promises before `create` (catalogue/README.md): a fresh
namespace, `lo` up, IPv6 off, and each port a veth whose inside end has the port's name, is
up, has tx checksum offload off and the node's MTU. Its outer end is down under a temporary
name until an NF adopts the entry: then the namespace takes the NF's name (a second bind
mount, the first one removed) and each outer end takes its port's name and comes up.

Privacy: entries are only ever made fresh and handed out once. An NF's namespace is never
returned to the pool (deleting the NF destroys it), so no user is ever given a namespace with
anything of another user's in it.

Entries are named `fate-pool-<node>-<pid>-<n>` (host ends `fate-q<hex>`), so `testbed down`
removes them with everything else of ours, and `leftovers` finds those of a process that
is gone. The pool is refilled by a background thread; its size is the setting
`compute.nf_pool_size` (0: no pool).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from netfate import naming
from netfate.drivers import netns, netns_release
from netfate.drivers.refill_pool import Refill, RefillPool
from netfate.errors import Conflict, DriverError

log = logging.getLogger(__name__)
POOL_TAG = "pool"
# The interface group of an NF's ports inside its namespace, so a pool entry's ports go in
# one request (netns.delete_group; an NF's go with its namespace, netns_release). Any value
# but 0 (lo's) does: the namespace is the NF's alone.
PORT_GROUP = 0x4E46
BUSY_WAIT = 0.002  # s a filler sleeps, before looking again, while another makes the rest
# The refill waits REFILL_DELAY s after a take, at nice REFILL_NICE, as the container pool's
# does: made at once, the next entry's namespace and veths took the RTNL lock and a core
# from the NF being born, and a pooled NF started slower than a cold one (bench nf-start
# --runs 20, 5 paired runs, 2026-12-06: pooled create_nf p50 27-37 ms against 19-23 with
# the delay; pooled/cold 0.91-1.44 against 0.61-0.80).
REFILL_DELAY = 0.1
REFILL_NICE = 10


@dataclass(frozen=True)
class Entry:
    netns: str
    host_ifs: tuple[str, ...]  # outer ends, in the order of the pool's ports


def _prefix(node: str, tag: str = POOL_TAG) -> str:
    return f"{naming.PREFIX}{tag}-{node}-"


def make_entry(name: str, ports: tuple[str, ...], mtu: int,
               host_ifs: tuple[str, ...] | None = None) -> Entry:
    """A fresh namespace `name` with one veth per port, as the module docstring says; with
    `host_ifs`, the outer ends have those names and are up (an NF's own, made cold).
    DriverError if the kernel refuses; then nothing of it is left."""
    if host_ifs:  # an NF's own names: a released namespace of the same NF may still hold them
        _clear(host_ifs)
    netns.create(name)
    try:
        host = host_ifs or tuple(naming.PREFIX + "q" + secrets.token_hex(5)[:9] for _ in ports)
        with netns.iproute() as ipr:
            for h, p in zip(host, ports, strict=True):
                netns.veth_into(h, name, p, ipr=ipr, mtu=mtu, host_up=host_ifs is not None)
        netns.disable_ipv6(name)
        netns.filter_vlan_tagged(name)
        netns.set_up(name, list(ports), group=PORT_GROUP)
        for p in ports:
            netns.tx_checksum_off(name, p)
    except BaseException:
        netns.delete(name)  # its veths go with it
        raise
    return Entry(name, host)


def adopt(entry: Entry, name: str, host_ifs: list[str]) -> None:
    """Give the entry its NF's names: the namespace becomes `name`, each outer end its
    port's name (up). DriverError if a name is taken; the entry is then unusable."""
    _clear(host_ifs)
    netns.rename(entry.netns, name)
    index = netns.indexes(None, entry.host_ifs)
    with netns.iproute() as ipr:
        for old, new in zip(entry.host_ifs, host_ifs, strict=True):
            if old not in index:
                raise DriverError(f"pooled port {old} is gone")
            ipr.link("set", index=index[old], ifname=new, state="up")


def _clear(host_ifs: Iterable[str]) -> None:
    """netns_release.clear; Conflict if a link of another kind holds a name (the tap of a
    VM NF of the same instance id)."""
    other = netns_release.clear(host_ifs)
    if other:
        raise Conflict(f"interface {other[0]} exists and is not a veth of this NF (another "
                       "flavour's NF of the same instance id?)")


class NamespacePool(RefillPool[Entry]):
    """Entries for one port layout and MTU on one node, refilled in the background
    (refill_pool, at nice REFILL_NICE, REFILL_DELAY s after a take)."""

    def __init__(self, node: str, ports: tuple[str, ...], mtu: int, size: int,
                 tag: str = POOL_TAG) -> None:
        """``tag``: part of the entries' names, one per driver (flavour) of a node, so one
        driver's garbage collection never takes another's entries."""
        self.node = node
        self.tag = tag
        self.ports = ports
        self.mtu = mtu
        super().__init__(_prefix(node, tag), size, self._make_entry, self._delete_entry,
                         Refill(thread_name=f"nf-pool-{node}",
                                what=f"NF namespace pool of {node}", log=log,
                                busy_wait=BUSY_WAIT, join_timeout=5,
                                delay=REFILL_DELAY, nice=REFILL_NICE))

    def names(self) -> set[str]:
        """The namespaces the pool holds now."""
        return {e.netns for e in self.entries()}

    def _make_entry(self, name: str) -> Entry:
        return make_entry(name, self.ports, self.mtu)

    @staticmethod
    def _delete_entry(entry: Entry) -> None:
        delete_entry(entry.netns)


def delete_entry(ns: str) -> None:
    """Remove a pool entry's namespace and its ports: the veths in one request first, so
    their outer ends are gone when this returns (left to the kernel's cleanup of the
    namespace, they go some milliseconds later), then the namespace."""
    if netns.exists(ns):
        netns.delete_group(ns, PORT_GROUP)
    netns.delete(ns)


def leftovers(node: str, keep: set[str], tag: str = POOL_TAG) -> list[str]:
    """Pool namespaces of `node` (under `tag`) that no live pool holds: those of a process
    that has ended, and this process's own that are not in `keep`."""
    return orphans(_prefix(node, tag), netns.list_names(), keep)


def orphans(prefix: str, names: Iterable[str], keep: set[str]) -> list[str]:
    """Of `names`, those that start with `prefix` + "<pid>-" (pool entries: namespaces,
    container ids, directories) and no live pool holds: of a process that has ended, or of
    this one and not in `keep`."""
    out = []
    me = os.getpid()
    for n in names:
        if not n.startswith(prefix) or n in keep:
            continue
        pid_s = n[len(prefix):].split("-", 1)[0]
        if not (pid_s.isdigit() and int(pid_s) != me and _alive(int(pid_s))):
            out.append(n)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
