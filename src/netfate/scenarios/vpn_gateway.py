"""The far end of the VPN scenario's tunnels, and the bare strongSwan baseline.

`Gateway`: a namespace (fate-h-vpngw) joined to the internet host by a veth, running its own
charon-systemd (config, vici socket and log under the run directory; never the host's
/etc/strongswan*), answering the CPE end whose config (the VPN NF's, normalised) it is given.
What leaves the tunnel is masqueraded behind the gateway's address: the traffic leaves there.

`Bare`: the NNF paper's baseline, strongSwan with no platform: two namespaces joined by a
veth, a charon in each, the same suite; the client and the server sit on each end's loopback.

Both render their files with the VPN NF's own pure module (catalogue/vpn/files/swan.py), so
each end of every tunnel comes from one definition. Every process is ended by its own PID.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from netfate import catalogue, paths
from netfate.drivers import netns
from netfate.proc import netns_argv

CHARON = "/usr/sbin/charon-systemd"
SYS_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GW_NS, GW_IF, INET_IF = "fate-h-vpngw", "eth0", "fate-vgw-i"
GW_LINK = ipaddress.IPv4Network("172.30.0.0/30")  # inet end .1, gateway end .2
BARE_A, BARE_B = "fate-vpnb-cpe", "fate-vpnb-gw"
BARE_LINK = ipaddress.IPv4Network("172.30.1.0/30")
BARE_INNER = ("10.201.0.1", "10.202.0.1")  # the baseline's client and server (loopbacks)


def swan() -> ModuleType:
    """The VPN NF's pure module, loaded from the catalogue as its bundle runs it."""
    path = catalogue.source_dir("vpn") / "files" / "swan.py"
    spec = importlib.util.spec_from_file_location("netfate_vpn_swan", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def ip(ns: str | None, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(netns_argv(ns, ["ip", *args]), capture_output=True, text=True,
                       check=False)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} in {ns or 'host'}: {p.stderr.strip()}")
    return p


def sysctl(ns: str, key: str, value: str) -> str:
    """Set /proc/sys/KEY in `ns`; the old value."""
    p = subprocess.run(netns_argv(ns, ["sysctl", "-n", key]), capture_output=True, text=True,
                       check=False)
    subprocess.run(netns_argv(ns, ["sysctl", "-qw", f"{key}={value}"]), check=False,
                   capture_output=True)
    return p.stdout.strip()


class Charon:
    """One charon-systemd in `ns` with its files in `conf_dir`: started, loaded, ended."""

    def __init__(self, ns: str, conf_dir: Path, mtu: int) -> None:
        self.ns, self.dir, self.mtu = ns, conf_dir, mtu
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self, swanctl_text: str) -> None:
        s = swan()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "strongswan.conf").write_text(s.strongswan_conf(str(self.dir), self.mtu))
        sw = self.dir / "swanctl.conf"
        fd = os.open(sw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(swanctl_text)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "charon.vici").unlink()
        self.started_at = time.monotonic()
        with open(self.dir / "charon.out", "wb") as out:
            self.proc = subprocess.Popen(
                netns_argv(self.ns, [CHARON]), stdout=out, stderr=subprocess.STDOUT,
                env={**self.env, "PATH": SYS_PATH},
                start_new_session=True)
        end = time.monotonic() + 5
        while not (self.dir / "charon.vici").exists():
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError(f"charon in {self.ns} did not start (see {self.dir})")
            time.sleep(0.02)
        self.swanctl("--load-all", "--noprompt", "--file", str(sw))

    @property
    def env(self) -> dict[str, str]:
        return {"STRONGSWAN_CONF": str(self.dir / "strongswan.conf")}

    def swanctl(self, *args: str) -> str:
        p = subprocess.run(netns_argv(self.ns, ["swanctl", *args, "--uri",
                                                f"unix://{self.dir}/charon.vici"]),
                           capture_output=True, text=True, check=False,
                           env={"PATH": SYS_PATH, **self.env})
        if p.returncode != 0:
            raise RuntimeError(f"swanctl {args[0]} in {self.ns}: {p.stderr.strip()[-300:]}")
        return p.stdout

    def child_up(self) -> bool:
        try:
            return "INSTALLED" in self.swanctl("--list-sas")
        except RuntimeError:
            return False

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def _tun_mtu(ns: str, mtu: int) -> None:
    """The TUN's MTU (charon's kernel-libipsec routes the remote networks into it)."""
    end = time.monotonic() + 5
    while ip(ns, "link", "show", "dev", "ipsec0", check=False).returncode != 0:
        if time.monotonic() > end:
            raise RuntimeError(f"no ipsec0 in {ns}")
        time.sleep(0.02)
    ip(ns, "link", "set", "dev", "ipsec0", "mtu", str(mtu), "up")


def _nft(ns: str, text: str) -> None:
    p = subprocess.run(netns_argv(ns, ["nft", "-f", "-"]), input=text, text=True,
                       capture_output=True, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"nft in {ns}: {p.stderr.strip()}")


class Gateway:
    """The VPN gateway host: `up(cfg, psk)` for the CPE end's normalised config (its
    `peer` must be `address`), `down()` undoes all of it (idempotent)."""

    address = str(GW_LINK[2])

    def __init__(self, inet_ns: str, mtu: int = 9000) -> None:
        self.inet_ns, self.mtu = inet_ns, mtu
        self.charon = Charon(GW_NS, paths.run_dir() / "vpngw", 1400)
        self._forward_was: str | None = None

    def up(self, cfg: dict[str, Any], psk: str) -> None:
        s = swan()
        self.down()
        netns.create(GW_NS)
        ip(None, "link", "add", INET_IF, "netns", self.inet_ns, "mtu", str(self.mtu), "type",
           "veth", "peer", "name", GW_IF, "netns", GW_NS, "mtu", str(self.mtu))
        ip(self.inet_ns, "addr", "add", f"{GW_LINK[1]}/30", "dev", INET_IF)
        ip(self.inet_ns, "link", "set", INET_IF, "up")
        ip(GW_NS, "link", "set", "lo", "up")
        ip(GW_NS, "addr", "add", f"{self.address}/30", "dev", GW_IF)
        ip(GW_NS, "link", "set", GW_IF, "up")
        ip(GW_NS, "route", "add", "default", "via", str(GW_LINK[1]))
        sysctl(GW_NS, "net.ipv4.ip_forward", "1")
        sysctl(GW_NS, "net.ipv4.conf.all.rp_filter", "0")
        # the internet host routes between its LAN (the CPEs) and the gateway's link
        self._forward_was = sysctl(self.inet_ns, "net.ipv4.ip_forward", "1")
        _nft(GW_NS, s.gateway_ruleset(cfg, GW_IF))
        self.charon.mtu = cfg["mtu"]
        self.charon.start(s.swanctl_conf(cfg, psk, initiator=False))
        _tun_mtu(GW_NS, cfg["mtu"])

    def down(self) -> None:
        self.charon.stop()
        ip(None, "-n", self.inet_ns, "link", "del", INET_IF, check=False)
        netns.delete(GW_NS)
        if self._forward_was is not None:
            sysctl(self.inet_ns, "net.ipv4.ip_forward", self._forward_was)
            self._forward_was = None


class Bare:
    """Bare strongSwan: `up(suite, psk, mtu)` builds both ends and waits for the CHILD_SA
    (its start time, seconds, is `start_s`); `down()` removes everything (idempotent)."""

    def __init__(self, link_mtu: int = 9000) -> None:
        self.link_mtu = link_mtu
        self.a = Charon(BARE_A, paths.run_dir() / "vpnb-cpe", 1400)
        self.b = Charon(BARE_B, paths.run_dir() / "vpnb-gw", 1400)
        self.start_s = 0.0

    def up(self, suite: str, psk_file: str, psk: str, mtu: int) -> None:
        s = swan()
        self.down()
        a_ip, b_ip = str(BARE_LINK[1]), str(BARE_LINK[2])
        for ns in (BARE_A, BARE_B):
            netns.create(ns)
            ip(ns, "link", "set", "lo", "up")
        ip(None, "link", "add", "fate-vpnb-a", "netns", BARE_A, "mtu", str(self.link_mtu),
           "type", "veth", "peer", "name", "fate-vpnb-b", "netns", BARE_B,
           "mtu", str(self.link_mtu))
        for ns, dev, addr, inner in ((BARE_A, "fate-vpnb-a", a_ip, BARE_INNER[0]),
                                     (BARE_B, "fate-vpnb-b", b_ip, BARE_INNER[1])):
            ip(ns, "addr", "add", f"{addr}/30", "dev", dev)
            ip(ns, "addr", "add", f"{inner}/32", "dev", "lo")
            ip(ns, "link", "set", dev, "up")
        cfg = s.normalise({"address": f"{a_ip}/30", "gateway": b_ip, "peer": b_ip,
                           "local_ts": [f"{BARE_INNER[0]}/32"],
                           "remote_ts": [f"{BARE_INNER[1]}/32"], "suite": suite,
                           "psk_file": psk_file, "mtu": mtu}, address_in_ts=False)
        self.b.mtu = self.a.mtu = mtu
        t0 = time.monotonic()
        self.b.start(s.swanctl_conf(cfg, psk, initiator=False))
        self.a.start(s.swanctl_conf(cfg, psk, initiator=True))
        _tun_mtu(BARE_A, mtu)
        _tun_mtu(BARE_B, mtu)
        end = time.monotonic() + 15
        while not self.a.child_up():
            if time.monotonic() > end:
                raise RuntimeError("the bare tunnel did not come up")
            time.sleep(0.02)
        self.start_s = time.monotonic() - t0

    def down(self) -> None:
        self.a.stop()
        self.b.stop()
        ip(None, "-n", BARE_A, "link", "del", "fate-vpnb-a", check=False)
        for ns in (BARE_A, BARE_B):
            netns.delete(ns)
