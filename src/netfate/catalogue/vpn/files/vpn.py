"""The VPN NF's helper: config checks, strongSwan files, the datapath around the tunnel,
state documents and status.

Usage: vpn.py check CONFIG | render | up | load | routes | export OUT | import IN |
       status [CHARON_PID] | validate CONFIG
Runs inside the NF's network namespace with "$NF_PYTHON" (stdlib only). The pure parts are
in swan.py (its sibling).

The user's IPv4 entering on `lan` is handed to the NF's own stack (nft bridge prerouting),
routed by a policy rule (from the user's networks, in on br0: table 221) into kernel-libipsec's
TUN `ipsec0`, where charon (one charon-systemd per NF, its config in NF_STATE_DIR, its vici
socket and log in NF_RUN_DIR) wraps it in ESP-in-UDP to the gateway `peer`, from br0's outside
`address`. What comes back leaves the TUN and is routed to the user through br0. The user's
device is not configured at all.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if TYPE_CHECKING:  # checked in the source tree; in the bundle they are packed next to this
    from netfate.catalogue._shared import ctstate as st
    from netfate.catalogue._shared import l3bump as l3
    from netfate.catalogue._shared import nfcommon as nf

    from . import swan
else:
    import ctstate as st
    import l3bump as l3
    import nfcommon as nf
    import swan

CHARON = "/usr/sbin/charon-systemd"
SWANCTL = "swanctl"
VICI_WAIT_S = 5.0
RULE_PREF = 110
RULE_TO_USER = 100


def _cfg(path: str | None = None) -> dict[str, Any]:
    raw = nf.load_config_file(path) if path else nf.load_active_config()
    try:
        return swan.normalise(raw)
    except swan.ConfigError as e:
        nf.config_error(str(e))


def _psk(cfg: dict[str, Any]) -> str:
    path = cfg["psk_file"]
    try:  # O_NONBLOCK: a FIFO there must not hold the script until its timeout
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
        with os.fdopen(fd, encoding="ascii") as f:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                nf.config_error(f"psk_file {path}: not a regular file")
            text = f.read(4096)
    except (OSError, UnicodeDecodeError) as e:
        nf.config_error(f"psk_file {path}: cannot read it: {e}")
    if info.st_mode & 0o077:
        nf.config_error(f"psk_file {path}: readable by others (mode "
                        f"{info.st_mode & 0o777:o}); chmod 600 it")
    try:
        return swan.read_psk(text, path)
    except swan.ConfigError as e:
        nf.config_error(str(e))


def _paths() -> dict[str, str]:
    state, run = nf.env("NF_STATE_DIR"), nf.env("NF_RUN_DIR")
    return {"conf": f"{state}/strongswan.conf", "swanctl": f"{state}/swanctl.conf",
            "ruleset": f"{state}/ruleset.nft", "vici": f"{run}/charon.vici", "run": run}


def _run(argv: list[str], what: str, check: bool = True,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(argv, capture_output=True, text=True, check=False,
                       env={**os.environ, **(env or {})})
    if check and p.returncode != 0:
        nf.die(f"{what} failed: {(p.stderr or p.stdout).strip()[-400:]}")
    return p


def _swanctl(args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    p = _paths()
    return _run([SWANCTL, *args, "--uri", f"unix://{p['vici']}"], f"swanctl {args[0]}",
                check=check, env={"STRONGSWAN_CONF": p["conf"]})


def _write_private(path: str, text: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def cmd_check(path: str) -> None:
    """Validate a config file (and its key file); print it normalised."""
    cfg = _cfg(path)
    _psk(cfg)
    nf.print_json(cfg)


def cmd_validate(path: str) -> None:
    """Validate a config file alone: check-config, which the orchestrator runs before it
    takes a config (its key file is on the node; create and start read it there)."""
    _cfg(path)


def cmd_render() -> None:
    """strongswan.conf and swanctl.conf (mode 600: it holds the key) from the active config."""
    cfg, p = _cfg(), _paths()
    if len(p["vici"]) > 100:
        nf.die(f"the NF's run directory is too long for a unix socket: {p['vici']}")
    st.write_text(p["conf"], swan.strongswan_conf(p["run"], cfg["mtu"]))
    _write_private(p["swanctl"], swan.swanctl_conf(cfg, _psk(cfg), initiator=True))


def _br_mac() -> str:
    link = nf.read_links().get(l3.BRIDGE)
    if not link:
        nf.die("br0 does not exist")
    return str(link.get("address"))


def cmd_up() -> None:
    """The datapath around the tunnel, before br0 is up: its ruleset and sysctls."""
    cfg, p = _cfg(), _paths()
    lan, wan = nf.two_ports("vpn")
    st.write_text(p["ruleset"], swan.ruleset(cfg, _br_mac(), lan, wan))
    st.nft_load(p["ruleset"])
    # The bridged frames must not go through the ip hooks (br_netfilter): only what is handed
    # to the NF's stack is routed and filtered there.
    for key, val in (("net/bridge/bridge-nf-call-iptables", "0"),
                     ("net/ipv4/conf/all/rp_filter", "0"),
                     ("net/ipv4/conf/default/rp_filter", "0")):
        try:
            with open(f"/proc/sys/{key}", "w") as f:
                f.write(val)
        except OSError:
            pass  # br_netfilter absent: nothing to turn off


def cmd_load() -> None:
    """Wait for charon's vici socket, load the connection (it initiates: start_action), and
    route the user's traffic into the TUN."""
    p = _paths()
    end = time.monotonic() + VICI_WAIT_S
    while not os.path.exists(p["vici"]):
        if time.monotonic() > end:
            nf.die(f"charon did not open {p['vici']} within {VICI_WAIT_S:.0f} s "
                   f"(see {p['run']}/charon.log)")
        time.sleep(0.02)
    _swanctl(["--load-all", "--noprompt", "--file", p["swanctl"]])
    cmd_routes()


def cmd_routes() -> None:
    """br0's outside address and default route (br0 must be up); table 221: the remote
    networks through the TUN; rules: from each of the user's networks, in on br0, use it.
    Idempotent."""
    cfg = _cfg()
    if nf.forwarding():
        l3.set_l3(cfg["address"], cfg["gateway"], [])
    end = time.monotonic() + VICI_WAIT_S
    while swan.TUN not in nf.read_links():
        if time.monotonic() > end:
            nf.die(f"charon did not create {swan.TUN}")
        time.sleep(0.02)
    t = str(swan.ROUTE_TABLE)
    _run(["ip", "link", "set", "dev", swan.TUN, "mtu", str(cfg["mtu"]), "up"], "TUN up")
    for key in ("all", swan.TUN):
        _run(["sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0"], "rp_filter", check=False)
    _run(["ip", "route", "flush", "table", t], "flush table", check=False)
    for net in cfg["remote_ts"]:
        dest = "default" if net == "0.0.0.0/0" else net
        _run(["ip", "route", "replace", dest, "dev", swan.TUN, "table", t], f"route {dest}")
    for pref in (RULE_TO_USER, RULE_PREF):
        while _run(["ip", "rule", "del", "pref", str(pref)], "rule", check=False) \
                .returncode == 0:
            pass
    for net in cfg["local_ts"]:
        # what leaves the tunnel for the user goes to br0, never back into charon's routes
        # (table 220: everything into the TUN, from its own address in local_ts)
        _run(["ip", "rule", "add", "pref", str(RULE_TO_USER), "to", net, "lookup", "main"],
             f"rule to {net}")
        _run(["ip", "rule", "add", "pref", str(RULE_PREF), "from", net, "iif", l3.BRIDGE,
              "lookup", t], f"rule from {net}")


def sa_state(listing: str) -> dict[str, bool]:
    """From `swanctl --list-sas` text: is the IKE SA established, the CHILD_SA installed."""
    return {"ike_established": "ESTABLISHED" in listing,
            "child_installed": "INSTALLED" in listing}


def cmd_export(out: str) -> None:
    """The state document: the config (a moved VPN re-keys: IKE SAs are not exported)."""
    nf.write_state_doc(out, "vpn", nf.load_active_config())


def cmd_import(path: str) -> None:
    """Take the document's config; print "changed" or "same" (same: nothing to restart)."""
    doc = nf.read_state_doc(path, "vpn")
    try:
        new = swan.normalise(doc["config"])  # validate before touching anything
    except swan.ConfigError as e:
        nf.die(f"{path}: {e}")
    try:
        same = swan.normalise(nf.load_active_config()) == new
    except SystemExit:
        same = False
    nf.save_active_config(doc["config"])
    cmd_render()
    print("same" if same else "changed")


def cmd_status(charon_pid: str = "") -> None:
    try:
        cfg: dict[str, Any] = _cfg()
    except SystemExit:
        cfg = {}
    loaded, c = st.counters("bridge", swan.TABLE)
    _, ci = st.counters("ip", swan.TABLE)
    zero = {"packets": 0, "bytes": 0}
    sas = {"ike_established": False, "child_installed": False}
    if charon_pid:
        sas = sa_state(_swanctl(["--list-sas"], check=False).stdout)
    links = nf.read_links()
    nf.print_json({
        "nf": "vpn",
        "running": loaded and nf.forwarding(links) and bool(charon_pid),
        "paused": nf.paused(),
        "charon_pid": int(charon_pid) if charon_pid.isdigit() else None,
        **sas,
        "suite": cfg.get("suite"),
        "peer": cfg.get("peer"),
        "address": cfg.get("address"),
        "to_tunnel": c.get("to tunnel", zero),
        "tunnel_out": ci.get("out", zero),
        "tunnel_in": ci.get("in", zero),
        "clear_dropped": {k: c.get("clear out", zero)[k] + c.get("clear in", zero)[k]
                          for k in ("packets", "bytes")},
        "ports": nf.port_stats(links=links),
    })


if __name__ == "__main__":
    try:
        nf.main(sys.argv[1:], globals(), __doc__)
    except json.JSONDecodeError as e:
        nf.die(f"bad JSON: {e}")
