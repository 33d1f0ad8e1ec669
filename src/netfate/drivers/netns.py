"""Network namespaces, veth pairs and addresses, through netlink (pyroute2) and a few syscalls.

Namespaces are made with unshare(2) in a short-lived thread and bind-mounted under /run/netns,
as `ip netns add` does, but without forking a process: about 1 ms instead of 9.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from pyroute2 import IPRoute

from netfate.errors import DriverError
from netfate.proc import NETNS_DIR

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x00000017
SIOCGIFINDEX = 0x8933   # linux/sockios.h
SIOCGIFHWADDR = 0x8927
ARPHRD_ETHER = 1        # linux/if_arp.h
_IFREQ = "16s16s"       # struct ifreq: the name, then a union of 16 bytes (index, address)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise DriverError(f"{what}: {os.strerror(err)}")


def _mount(src: str, target: str, flags: int) -> None:
    rc = _libc.mount(src.encode(), target.encode(), None, ctypes.c_ulong(flags), None)
    _check(rc, f"mount {src} on {target}")


def _ensure_run_dir() -> None:
    """Make /run/netns a shared mount point, as ip-netns does, so its mounts propagate."""
    os.makedirs(NETNS_DIR, exist_ok=True)
    rc = _libc.mount(b"none", NETNS_DIR.encode(), None, ctypes.c_ulong(MS_SHARED | MS_REC), None)
    if rc != 0 and ctypes.get_errno() == errno.EINVAL:
        _mount(NETNS_DIR, NETNS_DIR, MS_BIND | MS_REC)
        _mount("none", NETNS_DIR, MS_SHARED | MS_REC)


def exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def list_names() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def create(name: str) -> bool:
    """Create the namespace; return False if it already existed (idempotent)."""
    if exists(name):
        return False
    _ensure_run_dir()
    path = os.path.join(NETNS_DIR, name)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    failure: list[BaseException] = []

    def worker() -> None:
        # unshare() moves only this thread to the new namespace; the thread then ends.
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            tid = threading.get_native_id()
            _mount(f"/proc/self/task/{tid}/ns/net", path, MS_BIND)
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)

    t = threading.Thread(target=worker, name=f"netns-{name}")
    t.start()
    t.join()
    if failure:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise DriverError(f"cannot create namespace {name}: {failure[0]}")
    return True


def delete(name: str) -> bool:
    """Unmount and remove the namespace file; False if it did not exist (idempotent)."""
    path = os.path.join(NETNS_DIR, name)
    if not os.path.exists(path):
        return False
    _libc.umount2(path.encode(), MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True


def rename(old: str, new: str) -> None:
    """Give namespace `old` the name `new` (a second bind mount of it, then the first one
    removed): processes and sockets in it are unaffected. DriverError if `new` exists or
    `old` does not."""
    src = os.path.join(NETNS_DIR, old)
    dst = os.path.join(NETNS_DIR, new)
    if not os.path.exists(src):
        raise DriverError(f"namespace {old} does not exist")
    try:
        fd = os.open(dst, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    except FileExistsError:
        raise DriverError(f"namespace {new} already exists") from None
    os.close(fd)
    try:
        _mount(src, dst, MS_BIND)
    except DriverError:
        with contextlib.suppress(OSError):
            os.unlink(dst)
        raise
    delete(old)


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with this thread inside the namespace; sockets made here stay in it."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY)
    except FileNotFoundError as exc:
        os.close(own)
        raise DriverError(f"namespace {name} does not exist") from exc
    try:
        _check(_libc.setns(target, CLONE_NEWNET), f"setns {name}")
        try:
            yield
        finally:
            _check(_libc.setns(own, CLONE_NEWNET), "setns back")
    finally:
        os.close(target)
        os.close(own)


def socket_in(name: str | None, family: int, type_: int, proto: int = 0) -> socket.socket:
    if name is None:
        return socket.socket(family, type_, proto)
    with entered(name):
        return socket.socket(family, type_, proto)


def tcp_connect(
    name: str | None, ip: str, port: int, timeout: float = 1.0
) -> socket.socket | None:
    """A TCP connection from inside a namespace, or None if it cannot be made in time."""
    s = socket_in(name, socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
        return s
    except OSError:
        s.close()
        return None


def iproute(name: str | None = None) -> IPRoute:
    """A netlink socket bound to the namespace (the root one when name is None)."""
    if name is None:
        return IPRoute()
    with entered(name):
        return IPRoute()


def tx_checksum_off(name: str | None, ifname: str) -> None:
    """`ethtool -K IF tx off` by ioctl: TCP through the OVS netdev datapath needs it."""
    sock = socket_in(name, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0), 8)
        ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value))
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    except OSError as exc:
        raise DriverError(f"cannot turn tx checksum offload off on {ifname}: {exc}") from exc
    finally:
        sock.close()


def _ifreq(sock: socket.socket, request: int, ifname: str) -> bytes:
    """One interface ioctl: the struct ifreq the kernel filled in. OSError as it fails."""
    return bytes(fcntl.ioctl(sock.fileno(), request, struct.pack(_IFREQ, ifname.encode(), b"")))


def indexes(name: str | None, ifnames: Iterable[str]) -> dict[str, int]:
    """Interface name -> index in namespace `name` (None: the root one) of those of
    `ifnames` that exist there, by ioctl (SIOCGIFINDEX, what if_nametoindex(3) does) on one
    socket: microseconds, where a netlink dump decodes every attribute of every link in
    Python (0.5-3 ms each on a start's path, and one link per NF at density)."""
    sock = socket_in(name, socket.AF_INET, socket.SOCK_DGRAM)
    out: dict[str, int] = {}
    try:
        for n in ifnames:
            try:
                got = _ifreq(sock, SIOCGIFINDEX, n)
            except OSError:  # ENODEV: no such interface
                continue
            out[n] = struct.unpack_from("i", got, 16)[0]
    finally:
        sock.close()
    return out


def own_macs(ns: str, skip: set[str]) -> list[str]:
    """The Ethernet MACs of the interfaces in ns other than lo and `skip` (an NF's own
    bridge, say): their names from if_nameindex(3) in the namespace, each MAC by ioctl
    (SIOCGIFHWADDR), as netns.indexes does without a netlink dump decoded in Python."""
    with entered(ns):
        names = [n for _, n in socket.if_nameindex() if n != "lo" and n not in skip]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out = []
    try:
        for n in names:
            try:
                got = _ifreq(sock, SIOCGIFHWADDR, n)
            except OSError:  # gone meanwhile
                continue
            if struct.unpack_from("H", got, 16)[0] != ARPHRD_ETHER:
                continue  # a tunnel's "address" (an IP), or none: not a MAC it sends from
            mac = ":".join(f"{b:02x}" for b in got[18:24])
            if mac != "00:00:00:00:00:00":
                out.append(mac)
    finally:
        sock.close()
    return sorted(out)


def link_index(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


def veth_into(
    host_if: str,
    ns: str,
    ns_if: str,
    *,
    ipr: IPRoute | None = None,
    mtu: int | None = None,
    mac: str | None = None,
    host_up: bool = True,
) -> None:
    """A veth pair: host_if, up (unless host_up is False), stays in the root namespace; its
    peer ns_if goes into ns (still down: bring it up from inside). Idempotent."""
    own = ipr is None
    root = ipr if ipr is not None else iproute()
    try:
        peer: dict[str, Any] = {"ifname": ns_if, "net_ns_fd": ns}
        kw: dict[str, Any] = {}
        if mac:
            peer["address"] = mac
        if mtu:
            kw["mtu"] = mtu
            peer["mtu"] = mtu
        try:
            if host_up:
                kw["state"] = "up"
            root.link("add", ifname=host_if, kind="veth", peer=peer, **kw)
        except Exception as exc:
            if "File exists" in str(exc) and link_index(root, host_if) is not None:
                return
            raise DriverError(f"cannot create veth {host_if} <-> {ns}/{ns_if}: {exc}") from exc
    finally:
        if own:
            root.close()


def disable_ipv6(ns: str) -> None:
    """Turn IPv6 off for every interface of the namespace, present and future."""
    with entered(ns):
        for key in ("default", "all"):
            with contextlib.suppress(OSError), open(
                f"/proc/sys/net/ipv6/conf/{key}/disable_ipv6", "w"
            ) as fh:
                fh.write("1")


def filter_vlan_tagged(ns: str) -> None:
    """Let br_netfilter hand VLAN-tagged IPv4 to the namespace's inet hooks: a shared NF
    (NNF paper IV.E) gets each tenant's traffic tagged with the tenant's VLAN, and its
    filters must see it (per namespace since Linux 5.3; absent without br_netfilter)."""
    with entered(ns), contextlib.suppress(OSError), open(
            "/proc/sys/net/bridge/bridge-nf-filter-vlan-tagged", "w") as fh:
        fh.write("1")


def set_up(ns: str, ifnames: list[str], group: int | None = None) -> None:
    """Bring lo and the named interfaces up inside ns, with one netlink socket; with
    `group`, the named interfaces join that interface group (see delete_group)."""
    index = indexes(ns, ["lo", *ifnames])
    with iproute(ns) as ipr:
        for name in ["lo", *ifnames]:
            if name not in index:
                raise DriverError(f"{name} is missing in namespace {ns}")
            extra = {"group": group} if group is not None and name != "lo" else {}
            ipr.link("set", index=index[name], state="up", **extra)


def delete_group(ns: str, group: int) -> bool:
    """Delete every interface of `group` inside ns in one netlink request (RTM_DELLINK
    with IFLA_GROUP): the kernel unregisters them, and their veth peers outside, as one
    batch with one RCU grace period, where a delete per veth waits for one each. False
    if the kernel refused (the caller then deletes them one by one)."""
    try:
        with iproute(ns) as ipr:
            ipr.link("del", group=group)
    except Exception:
        return False
    return True


def delete_index(index: int, ipr: IPRoute | None = None, what: str | None = None) -> bool:
    """Delete the root namespace's link with this interface index (not a newer link that
    took the same name); False if there is none. DriverError naming `what` if refused."""
    own = ipr is None
    root = ipr if ipr is not None else iproute()
    try:
        root.link("del", index=index)
    except Exception as exc:
        if "No such device" in str(exc):
            return False
        raise DriverError(f"cannot delete link {what or f'#{index}'}: {exc}") from exc
    finally:
        if own:
            root.close()
    return True


def link_kinds(names: Iterable[str]) -> dict[str, str]:
    """Name -> kind ("veth", "tun", "bridge"; "" if none) of those of `names` that exist in
    the root namespace (one netlink request each)."""
    out: dict[str, str] = {}
    with iproute() as ipr:
        for n in names:
            try:
                msgs = ipr.link("get", ifname=n)
            except Exception:  # ENODEV: gone meanwhile
                continue
            for m in msgs:
                info = m.get_attr("IFLA_LINKINFO")
                out[n] = str(info.get_attr("IFLA_INFO_KIND") or "") if info else ""
    return out


def delete_link(ifname: str, ipr: IPRoute | None = None) -> bool:
    """Delete the root namespace's link `ifname`; False if there is none."""
    own = ipr is None
    root = ipr if ipr is not None else iproute()
    try:
        idx = link_index(root, ifname)
        return idx is not None and delete_index(idx, root, ifname)
    finally:
        if own:
            root.close()


def list_links(prefix: str, ipr: IPRoute | None = None) -> list[str]:
    own = ipr is None
    root = ipr if ipr is not None else iproute()
    try:
        names = [str(link.get("ifname")) for link in root.get_links()]
    finally:
        if own:
            root.close()
    return sorted(n for n in names if n.startswith(prefix))


def configure_inside(
    ns: str,
    ifname: str,
    *,
    addresses: list[str] | None = None,
    gateway: str | None = None,
    tx_off: bool = True,
) -> None:
    """Bring lo and ifname up inside ns, add CIDR addresses and a default route."""
    with iproute(ns) as ipr:
        lo = link_index(ipr, "lo")
        ipr.link("set", index=lo, state="up")
        idx = link_index(ipr, ifname)
        if idx is None:
            raise DriverError(f"{ifname} is missing in namespace {ns}")
        for cidr in addresses or []:
            addr, plen = cidr.split("/")
            try:
                ipr.addr("add", index=idx, address=addr, prefixlen=int(plen))
            except Exception as exc:
                if "File exists" not in str(exc):
                    raise DriverError(f"cannot add {cidr} to {ns}/{ifname}: {exc}") from exc
        ipr.link("set", index=idx, state="up")
        if gateway:
            try:
                ipr.route("add", dst="0.0.0.0/0", gateway=gateway)
            except Exception as exc:
                if "File exists" not in str(exc):
                    raise DriverError(f"cannot route {ns} via {gateway}: {exc}") from exc
    if tx_off:
        tx_checksum_off(ns, ifname)
