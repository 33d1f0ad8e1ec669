"""The VPN's pure parts: its config checked and normalised, and the strongSwan and nftables
texts rendered from it. Stdlib only; no I/O. Used by the NF's helper (files/vpn.py) at the
CPE end and by the platform (netfate.scenarios.vpn_gateway) at the gateway end, so both ends
of a tunnel come from one definition.

Shapes: `normalise(cfg) -> cfg` raises ConfigError naming the key; the renderers return text.

Why these choices:
- IKEv2 (RFC 7296) with a pre-shared key read from a file (`psk_file`, never a string in the
  config or on a command line); the two ESP suites the issue names: the NNF paper's
  AES-CBC-128 with HMAC-SHA1-96 (RFC 3602, RFC 2404) and the AEAD AES-GCM-128 with a 16-byte
  ICV (RFC 4106).
- ESP in UDP (RFC 3948, `encap = yes`) handled by strongSwan's kernel-libipsec (a TUN device,
  userspace ESP): the target kernel has no ESP (CONFIG_INET_ESP is not set, no modules), so
  the xfrm SAD refuses ESP states. Policies, routes and the TUN are per network namespace.
- charon-systemd: the charon daemon without a PID file (so one per namespace can run), with
  its config (STRONGSWAN_CONF), vici socket and log under the NF's own directories.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

SUITES = {
    # name -> (ESP proposal, IKE proposal), strongSwan's keywords
    "aes128-sha1": ("aes128-sha1", "aes128-sha1-modp2048"),  # NNF paper, Table IV
    "aes128gcm16": ("aes128gcm16", "aes128-sha256-modp2048"),  # modern AEAD
}
DEFAULT_SUITE = "aes128gcm16"
MTU_MIN, MTU_MAX, MTU_DEFAULT = 576, 8900, 1400  # of the TUN (inner packets)
REKEY_MIN, REKEY_MAX, REKEY_DEFAULT = 60, 86400, 3600
PLUGINS = ("random nonce openssl aes sha1 sha2 hmac gcm gmp kdf pem pkcs1 x509 pubkey "
           "kernel-libipsec kernel-netlink socket-default vici")
TABLE = "fate_vpn"
TUN = "ipsec0"  # kernel-libipsec's device name
ROUTE_TABLE = 221  # the user's traffic into the tunnel (charon's own is 220)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.@:_-]{0,63}$")
_PATH = re.compile(r"^/[A-Za-z0-9._/+-]{1,255}$")
_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_KEYS = {"address", "gateway", "peer", "local_ts", "remote_ts", "suite", "psk_file",
         "local_id", "remote_id", "mtu", "rekey_s"}


class ConfigError(ValueError):
    """A config value that is wrong; the message names its key."""


def _ip(v: Any, key: str) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"{key}: must be an IPv4 address string")
    try:
        ip = ipaddress.IPv4Address(v)
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from None
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_reserved:
        raise ConfigError(f"{key}: {ip} is not a unicast host address")
    return str(ip)


def _nets(v: Any, key: str, default: list[str] | None) -> list[str]:
    if v is None and default is not None:
        v = default
    if not isinstance(v, list) or not 1 <= len(v) <= 32:
        raise ConfigError(f"{key}: must be a list of 1-32 IPv4 networks")
    out: list[str] = []
    for i, n in enumerate(v):
        if not isinstance(n, str):
            raise ConfigError(f"{key}[{i}]: must be an IPv4 network string")
        try:
            out.append(str(ipaddress.IPv4Network(n, strict=False)))
        except ValueError as e:
            raise ConfigError(f"{key}[{i}]: {e}") from None
    return list(dict.fromkeys(out))


def _int(cfg: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    v = cfg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"{key}: must be an integer in {lo}..{hi}")
    return v


def normalise(cfg: Any, address_in_ts: bool = True) -> dict[str, Any]:
    """The config with defaults filled and every value checked (ConfigError otherwise):
    address "a.b.c.d/len" (the CPE end's outside address, on br0), gateway (its router),
    peer (the VPN gateway), local_ts (the user's networks), remote_ts (default everything),
    suite, psk_file (absolute path), local_id/remote_id (IKE identities, default the
    addresses), mtu (bytes, of the tunnel), rekey_s (seconds, CHILD_SA rekeying).
    `address_in_ts`: require `address` inside local_ts (the NF; a host whose local_ts holds
    an address of its own elsewhere, like the bare baseline's loopback, passes False)."""
    if not isinstance(cfg, dict):
        raise ConfigError("config: must be an object")
    extra = set(cfg) - _KEYS
    if extra:
        raise ConfigError(f"config: unknown keys {sorted(extra)}")
    addr = cfg.get("address")
    if not isinstance(addr, str) or "/" not in addr:
        raise ConfigError("address: must be an IPv4 address with a prefix length")
    try:
        iface = ipaddress.IPv4Interface(addr)
    except ValueError as e:
        raise ConfigError(f"address: {e}") from None
    _ip(str(iface.ip), "address")
    gateway = _ip(cfg.get("gateway"), "gateway")
    if ipaddress.IPv4Address(gateway) not in iface.network or gateway == str(iface.ip):
        raise ConfigError(f"gateway: {gateway} must be another address inside {iface.network}")
    peer = _ip(cfg.get("peer"), "peer")
    if peer == str(iface.ip):  # (the gateway may well be the VPN gateway itself)
        raise ConfigError(f"peer: {peer} is the NF's own address, not a VPN gateway")
    local_ts = _nets(cfg.get("local_ts"), "local_ts", None)
    if address_in_ts and not any(iface.ip in ipaddress.IPv4Network(n) for n in local_ts):
        # kernel-libipsec routes a CHILD_SA's traffic into its TUN with a source address of
        # its own inside the local traffic selector; without one the CHILD_SA fails
        raise ConfigError(f"local_ts: one of them must contain the NF's own address "
                          f"{iface.ip} (e.g. the user's LAN with the CPE's address in it)")
    remote_ts = _nets(cfg.get("remote_ts"), "remote_ts", ["0.0.0.0/0"])
    if any(ipaddress.IPv4Network(n).overlaps(ipaddress.IPv4Network(r))
           for n in local_ts for r in remote_ts if ipaddress.IPv4Network(r).prefixlen):
        raise ConfigError("remote_ts: overlaps local_ts (the tunnel would carry the user's "
                          "traffic to itself)")
    suite = cfg.get("suite", DEFAULT_SUITE)
    if suite not in SUITES:
        raise ConfigError(f"suite: one of {sorted(SUITES)}")
    psk = cfg.get("psk_file")
    if not isinstance(psk, str) or not _PATH.fullmatch(psk) or ".." in psk.split("/"):
        raise ConfigError("psk_file: must be an absolute path (letters, digits, ._/+-)")
    ids = {}
    for key, default in (("local_id", str(iface.ip)), ("remote_id", peer)):
        v = cfg.get(key, default)
        if not isinstance(v, str) or not _ID.fullmatch(v):
            raise ConfigError(f"{key}: 1-64 characters A-Z a-z 0-9 . @ : _ -")
        ids[key] = v
    return {"address": str(iface), "gateway": gateway, "peer": peer, "local_ts": local_ts,
            "remote_ts": remote_ts, "suite": suite, "psk_file": psk, **ids,
            "mtu": _int(cfg, "mtu", MTU_DEFAULT, MTU_MIN, MTU_MAX),
            "rekey_s": _int(cfg, "rekey_s", REKEY_DEFAULT, REKEY_MIN, REKEY_MAX)}


def read_psk(text: str, path: str) -> str:
    """The PSK in a key file's text (its first line, trimmed): 16-256 printable ASCII
    characters without quotes or backslashes (swanctl.conf quotes it). ConfigError if not."""
    lines = text.splitlines()
    psk = lines[0].strip() if lines else ""
    if not 16 <= len(psk) <= 256 or any(c in psk for c in '"\\') or not psk.isprintable() \
            or not psk.isascii():
        raise ConfigError(f"psk_file {path}: the key must be one line of 16-256 printable "
                          "ASCII characters without quotes or backslashes")
    return psk


def _check_path(v: str, what: str) -> str:
    if not _PATH.fullmatch(v):
        raise ConfigError(f"{what}: not a plain absolute path: {v!r}")
    return v


def strongswan_conf(run_dir: str, mtu: int, threads: int = 16) -> str:
    """strongswan.conf for one charon-systemd: plugins, its vici socket and log in `run_dir`,
    no routes of its own (the helper routes the user's traffic), the TUN's MTU."""
    d = _check_path(run_dir, "run_dir")
    return (
        "charon-systemd {\n"
        "  load_modular = no\n"
        f"  load = {PLUGINS}\n"
        f"  threads = {threads}\n"
        "  install_routes = no\n"
        "  install_virtual_ip = no\n"
        # first IKE retransmission after 0.5 s (default 4 s): an NF's first packets may be
        # dropped until it is steered; 8 tries with base 1.4 still wait ~25 s in all
        "  retransmit_timeout = 0.5\n"
        "  retransmit_base = 1.4\n"
        "  retransmit_tries = 8\n"
        "  plugins {\n"
        f"    vici {{\n      socket = unix://{d}/charon.vici\n    }}\n"
        f"    kernel-libipsec {{\n      mtu = {mtu}\n      allow_peer_ts = no\n    }}\n"
        "  }\n"
        "  journal {\n    default = -1\n  }\n"
        "  filelog {\n    vpn {\n"
        f"      path = {d}/charon.log\n"
        "      default = 1\n      ike = 1\n      flush_line = yes\n      append = no\n"
        "    }\n  }\n"
        "}\n"
        "swanctl {\n  load = pem pkcs1 x509 pubkey random nonce\n}\n"
    )


def swanctl_conf(cfg: dict[str, Any], psk: str, initiator: bool) -> str:
    """swanctl.conf for one end. `cfg` is normalise()d from the CPE's point of view; the
    gateway end (initiator False) swaps the ends, accepts the CPE from any address (it moves)
    and answers only. `psk` from read_psk."""
    esp, ike = SUITES[cfg["suite"]]
    me, them = str(ipaddress.IPv4Interface(cfg["address"]).ip), cfg["peer"]
    lts, rts = ",".join(cfg["local_ts"]), ",".join(cfg["remote_ts"])
    lid, rid = cfg["local_id"], cfg["remote_id"]
    if not initiator:
        me, them, lts, rts, lid, rid = cfg["peer"], "%any", rts, lts, rid, lid
    start = "start" if initiator else "none"
    return (
        "connections {\n  vpn {\n    version = 2\n"
        f"    local_addrs = {me}\n    remote_addrs = {them}\n"
        f"    proposals = {ike}\n"
        "    encap = yes\n    mobike = no\n    dpd_delay = 5s\n"
        f"    unique = {'never' if initiator else 'replace'}\n"
        f"    local {{\n      auth = psk\n      id = {lid}\n    }}\n"
        f"    remote {{\n      auth = psk\n      id = {rid}\n    }}\n"
        "    children {\n      user {\n"
        f"        local_ts = {lts}\n        remote_ts = {rts}\n"
        f"        esp_proposals = {esp}\n"
        f"        rekey_time = {cfg['rekey_s']}s\n"
        f"        start_action = {start}\n"
        f"        dpd_action = {'restart' if initiator else 'clear'}\n"
        f"        close_action = {'start' if initiator else 'none'}\n"
        "      }\n    }\n  }\n}\n"
        "secrets {\n  ike-vpn {\n"
        f"    id-1 = {lid}\n    id-2 = {rid}\n"
        f'    secret = "{psk}"\n'
        "  }\n}\n"
    )


def _check_ifname(name: str, what: str) -> None:
    """ConfigError naming `what` unless `name` can be a network interface's (it goes into
    nft rules, quoted, as it is)."""
    if not _IFNAME.fullmatch(name):
        raise ConfigError(f"{what}: {name!r}")


def _users_set(cfg: dict[str, Any]) -> str:
    """A table's set `users`: the user's networks (local_ts), which every rule selects on."""
    return ("  set users { type ipv4_addr; flags interval; elements = { "
            + ", ".join(cfg["local_ts"]) + " } }\n")


def _ip_through_head(cfg: dict[str, Any]) -> str:
    """`table ip TABLE` opened, with its set `users` and the start of its forward chain
    `through` (policy drop): TCP SYNs get their MSS clamped to the route's MTU, so nothing
    is fragmented. The caller adds the chain's rules and closes both."""
    return (f"table ip {TABLE} {{\n" + _users_set(cfg)
            + "  chain through {\n    type filter hook forward priority 0; policy drop;\n"
            "    tcp flags syn tcp option maxseg size set rt mtu\n")


def ruleset(cfg: dict[str, Any], br_mac: str, lan: str, wan: str) -> str:
    """The CPE end's nftables ruleset (one transaction, replaces the table):
    - bridge prerouting: the user's IPv4 entering on `lan` is handed to the NF's own stack
      (its destination MAC set to br0's, RFC-less but the kernel's documented way), so it is
      routed into the tunnel instead of being bridged;
    - bridge forward: no IPv4 crosses the bridge in the clear, either way (the tunnel or
      nothing: fail closed), from the user's networks or not: before, IPv4 from an address
      outside `local_ts` (a Framed-IP the operator's local_ts does not cover) was bridged
      out unencrypted (probe of 2026-12-06);
    - ip forward: only user -> tunnel and tunnel -> user; TCP SYNs get their MSS clamped to
      the route's MTU, so nothing is fragmented."""
    if not _MAC.fullmatch(br_mac):
        raise ConfigError(f"br0 MAC: {br_mac!r}")
    for n in (lan, wan):
        _check_ifname(n, "port name")
    return (
        f"table bridge {TABLE}\ndelete table bridge {TABLE}\n"
        f"table ip {TABLE}\ndelete table ip {TABLE}\n"
        f"table bridge {TABLE} {{\n"
        + _users_set(cfg)
        + "  chain divert {\n    type filter hook prerouting priority -300; policy accept;\n"
        f'    iifname "{lan}" ether type ip ip saddr @users ether daddr set {br_mac} '
        'meta pkttype set host counter comment "to tunnel"\n'
        "  }\n"
        "  chain through {\n    type filter hook forward priority 0; policy accept;\n"
        f'    iifname "{lan}" ether type ip counter drop comment "clear out"\n'
        f'    iifname "{wan}" ether type ip counter drop comment "clear in"\n'
        "  }\n}\n"
        + _ip_through_head(cfg)
        + f'    iifname "br0" oifname "{TUN}" ip saddr @users counter accept comment "out"\n'
        f'    iifname "{TUN}" oifname "br0" ip daddr @users counter accept comment "in"\n'
        '    counter comment "dropped"\n'
        "  }\n}\n"
    )


def gateway_ruleset(cfg: dict[str, Any], out_if: str) -> str:
    """The gateway end's ruleset: what leaves the tunnel is forwarded and masqueraded behind
    the gateway's address on `out_if` (the traffic leaves there; replies come back to it),
    MSS clamped; nothing else is forwarded to the user's networks."""
    _check_ifname(out_if, "interface name")
    return (
        f"table ip {TABLE}\ndelete table ip {TABLE}\n"
        + _ip_through_head(cfg)
        + f'    iifname "{TUN}" ip saddr @users counter accept\n'
        f'    oifname "{TUN}" ip daddr @users ct state established,related counter accept\n'
        "  }\n"
        "  chain nat_out {\n    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    oifname "{out_if}" ip saddr @users masquerade\n'
        "  }\n}\n"
    )
