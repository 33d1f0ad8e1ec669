"""DHCP for the testbed's clients: busybox udhcpc, one shot, inside the client's namespace.

udhcpc runs the event script shipped next to this module (udhcpc.script): it flushes the
interface's IPv4 addresses, adds the leased one and the default route, and writes the lease
to the file named by $NETFATE_LEASE_FILE. It never writes a resolv.conf: the DNS servers are
reported in the Lease. Against dnsmasq on a veth a lease takes well under 0.1 s.
"""

from __future__ import annotations

import math
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from netfate import naming, paths
from netfate.errors import DriverError
from netfate.proc import NETNS_DIR, netns_argv, run

SCRIPT = "udhcpc.script"


@dataclass(frozen=True)
class Lease:
    ip: str
    prefixlen: int
    router: str | None
    dns: tuple[str, ...]
    server: str | None
    lease_time: int | None = None
    capport: str | None = None  # DHCP option 114 (RFC 8910): the captive portal API's URL

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{self.prefixlen}"


def script_path() -> Path:
    """The event script, executable. A wheel may have dropped its mode bits: then a copy
    under the run dir is made executable."""
    src = Path(str(resources.files("netfate.access") / SCRIPT))
    if os.access(src, os.X_OK):
        return src
    dst = paths.run_dir() / "access" / SCRIPT
    if not os.access(dst, os.X_OK) or dst.read_bytes() != src.read_bytes():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        dst.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return dst


def _parse(text: str) -> Lease:
    kv = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    if not kv.get("ip"):
        raise ValueError("no ip")
    lease = kv.get("lease", "")
    return Lease(
        capport=_option_text(kv.get("opt114", "")),
        ip=kv["ip"],
        prefixlen=int(kv.get("prefixlen") or 24),
        router=(kv.get("router") or "").split()[0] if kv.get("router") else None,
        dns=tuple((kv.get("dns") or "").split()),
        server=kv.get("server") or None,
        lease_time=int(lease) if lease.isascii() and lease.isdigit() and len(lease) <= 10
        else None,
    )


def _option_text(value: str) -> str | None:
    """An option udhcpc has no name for comes as hex; a string option as text."""
    value = value.strip()
    if not value:
        return None
    try:
        return bytes.fromhex(value).decode("utf-8", errors="replace")
    except ValueError:
        return value


def lease(netns: str, ifname: str = "eth0", timeout: float = 5.0,
          requested_ip: str | None = None, client_id: bytes | None = None) -> Lease:
    """Get a lease for ``ifname`` in ``netns`` and apply it (address, default route).
    ``requested_ip``: ask for this address (a renewal); the server may give another.
    ``client_id``: the DHCP client identifier to send (option 61; default: udhcpc's, the
    MAC), as a device that changes it would.
    DriverError naming the namespace if no lease comes within ``timeout`` seconds."""
    if not os.path.exists(os.path.join(NETNS_DIR, netns)):
        raise DriverError(f"DHCP in {netns}: the namespace does not exist")
    if timeout <= 0:
        raise ValueError("timeout must be > 0")
    # udhcpc waits in whole seconds: one discover a second, as many as fit in the timeout.
    tries = max(1, math.ceil(timeout))
    argv = ["busybox", "udhcpc", "-f", "-q", "-n", "-i", ifname, "-s", str(script_path()),
            "-t", str(tries), "-T", "1", "-A", "1", "-O", "114"]
    if client_id is not None:
        if not 1 <= len(client_id) <= 255:
            raise ValueError("client_id must be 1-255 bytes")
        argv += ["-x", f"0x3d:{client_id.hex()}"]
    if requested_ip:
        argv += ["-r", requested_ip]
    tmp = Path(tempfile.mkdtemp(prefix=naming.PREFIX + "dhcp-"))
    out_file = tmp / "lease"
    try:
        try:
            cp = subprocess.run(  # noqa: S603 - argument list
                netns_argv(netns, argv), capture_output=True, check=False,
                env={**os.environ, "NETFATE_LEASE_FILE": str(out_file)},
                timeout=timeout + 2.0,  # select/request may add a retry past the discovers
            )
        except FileNotFoundError as exc:
            raise DriverError(f"DHCP in {netns}: cannot run busybox udhcpc: {exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise DriverError(f"DHCP in {netns} on {ifname}: udhcpc still running after "
                              f"{timeout + 2.0:g} s") from exc
        said = (cp.stderr + cp.stdout).decode(errors="replace").strip().splitlines()
        tail = "; ".join(said[-3:])
        if cp.returncode != 0 or not out_file.exists():
            raise DriverError(f"DHCP in {netns} on {ifname}: no lease within {timeout:g} s "
                              f"(udhcpc exit {cp.returncode}: {tail})")
        try:
            return _parse(out_file.read_text())
        except ValueError as exc:
            raise DriverError(f"DHCP in {netns} on {ifname}: unreadable lease "
                              f"({exc}): {out_file.read_text()!r}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def release(netns: str, ifname: str = "eth0") -> None:
    """Drop the interface's IPv4 addresses (and so the routes through them). The server's
    lease stays until it expires. Idempotent; DriverError if the namespace or link is gone."""
    try:
        run(["ip", "-4", "addr", "flush", "dev", ifname], netns=netns, timeout=5.0)
    except DriverError as exc:
        raise DriverError(f"DHCP release in {netns}: cannot flush the addresses of {ifname}: "
                          f"{exc}") from exc
