"""Topology files (YAML): nodes with switches, hosts attached to them. Pure."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from netfate import naming, safe_yaml, validators
from netfate.errors import InvalidInput
from netfate.flavours import check_flavour

MAX_NODES = 64
MAX_HOSTS = 256
# RFC 1918: the overlay's endpoints are addresses of the host's own namespace, where a
# loopback (127/8), link-local (169.254/16) or "this network" (0/8) subnet would break it.
RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12",
                                                     "192.168.0.0/16"))


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ROLE_BUDGET = {"cpe": (256, 1.0), "pe": (1024, 1.0), "dc": (8192, 2.0)}
# The flavours a node runs unless its topology entry says otherwise (its infrastructure
# capabilities): the DC all three, a CPE native only (the NNF paper's domestic CPE).
ROLE_FLAVOURS: dict[str, tuple[str, ...]] = {
    "cpe": ("native",), "pe": ("native", "container"), "dc": ("native", "container", "vm")}


class NodeSpec(_M):
    name: str = Field(pattern=r"^[a-z][a-z0-9]{0,7}$")
    role: Literal["cpe", "pe", "dc"]
    uplink: str | None = None
    # Emulated nodes share one host, so each declares what its NFs may use (the NNF paper's
    # domestic CPE has 256 MB); defaults by role.
    mem_mb: int | None = Field(default=None, ge=1, le=1 << 20)
    # On the overlay (a tunnel endpoint, tunnels to every other such node); false: a node
    # with no route to the others (chains through it are refused).
    overlay: bool = True
    cpus: float | None = Field(default=None, gt=0, le=256)
    # The flavours its agent may host (of those whose driver is registered and whose tools
    # are present: the agent advertises only what it can run); default by role.
    flavours: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=8)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        return naming.check_node_name(v)

    @field_validator("flavours")
    @classmethod
    def _flavours(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None:
            for f in v:
                check_flavour(f)
            if len(set(v)) != len(v):
                raise ValueError(f"flavours repeat: {list(v)}")
        return v

    @property
    def runs(self) -> tuple[str, ...]:
        """The flavours its agent is asked to host."""
        return self.flavours or ROLE_FLAVOURS[self.role]

    @property
    def budget(self) -> tuple[int, float]:
        mem, cpus = ROLE_BUDGET[self.role]
        return self.mem_mb or mem, self.cpus or cpus

    @property
    def lsi(self) -> str:
        """The node's LSI-0 (an OVS bridge named after the node)."""
        return naming.lsi(self.name)

    @property
    def uplink_port(self) -> str | None:
        return naming.ifname(self.name, "up") if self.uplink else None

    @property
    def uplink_peer(self) -> str | None:
        return naming.ifname(self.uplink, self.name) if self.uplink else None


class HostSpec(_M):
    name: str = Field(pattern=r"^[a-z][a-z0-9]{0,11}$")
    role: Literal["client", "internet", "server"]
    attach: str
    address: str | None = None  # in the topology's subnet; the internet host takes the gateway
    mac: str | None = Field(default=None, pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")

    @field_validator("mac")
    @classmethod
    def _station_mac(cls, v: str | None) -> str | None:
        # a group or all-zero MAC: the kernel refuses the veth ("Cannot assign requested
        # address") after the rest of the testbed was made
        return None if v is None else validators.unicast_mac(v)

    @property
    def netns(self) -> str:
        return naming.host_netns(self.name)

    @property
    def a_role(self) -> str:
        """'a client host', 'an internet host': for messages."""
        return f"{'an' if self.role == 'internet' else 'a'} {self.role} host"

    def default_mac(self) -> str:
        h = hashlib.sha1(self.name.encode()).hexdigest()
        return "02:fa:" + ":".join(h[i : i + 2] for i in range(0, 8, 2))


_Spec = TypeVar("_Spec", NodeSpec, HostSpec)


def _named(kind: str, specs: Sequence[_Spec], name: str) -> _Spec:
    """The node or host called `name`; InvalidInput (listing the known ones) if none is."""
    for spec in specs:
        if spec.name == name:
            return spec
    known = [spec.name for spec in specs]
    raise InvalidInput(f"unknown {kind} {name!r}; the topology has {known}")


class Topology(_M):
    # It is shown and recorded: a name of any characters broke rich's markup after `up`.
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    subnet: str = "10.90.0.0/16"
    gateway: str = "10.90.0.1"
    internet_address: str = "10.255.0.1"
    # Emulated links carry jumbo frames: the userspace datapath is bound by packets per
    # second, so 9000 bytes gives ~3x the throughput of 1500 (see README figures).
    mtu: int = Field(default=9000, ge=1280, le=9000)
    # The infrastructure network's addresses: one tunnel endpoint per node (testbed.underlay).
    overlay_subnet: str = "172.31.0.0/24"
    nodes: tuple[NodeSpec, ...] = Field(min_length=1, max_length=MAX_NODES)
    hosts: tuple[HostSpec, ...] = Field(default=(), max_length=MAX_HOSTS)

    @model_validator(mode="after")
    def _check(self) -> Topology:
        net = ipaddress.IPv4Network(self.subnet)
        if not net.is_private:
            raise ValueError(f"subnet {self.subnet} is not private; the testbed stays sealed")
        gateway = ipaddress.IPv4Address(self.gateway)
        if gateway not in net:
            raise ValueError(f"gateway {self.gateway} is not in {self.subnet}")
        if gateway in (net.network_address, net.broadcast_address):
            raise ValueError(f"gateway {self.gateway} is {self.subnet}'s network or "
                             "broadcast address")
        inet = ipaddress.IPv4Address(self.internet_address)
        if not any(inet in r for r in RFC1918):  # not loopback, 0.0.0.0, link-local: sealed
            raise ValueError(f"internet_address {self.internet_address} must be private "
                             "(RFC 1918)")
        if inet in net:
            raise ValueError(f"internet_address {self.internet_address} is in subnet "
                             f"{self.subnet}: it stands for a host beyond the gateway")
        ovl = ipaddress.IPv4Network(self.overlay_subnet)
        if not any(ovl.subnet_of(r) for r in RFC1918) or ovl.overlaps(net):
            raise ValueError(f"overlay_subnet {self.overlay_subnet} must be private (RFC 1918) "
                             f"and apart from {self.subnet}")
        if ipaddress.IPv4Address(self.internet_address) in ovl:
            raise ValueError(f"internet_address {self.internet_address} is in overlay_subnet "
                             f"{self.overlay_subnet}")
        if ovl.num_addresses - 2 < sum(1 for n in self.nodes if n.overlay):
            raise ValueError(f"overlay_subnet {self.overlay_subnet} is too small for the nodes")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names repeat: {names}")
        for n in self.nodes:
            if n.uplink is not None and n.uplink not in names:
                raise ValueError(f"node {n.name}: uplink {n.uplink!r} is not a node")
            if n.uplink == n.name:
                raise ValueError(f"node {n.name} cannot be its own uplink")
        self._no_uplink_cycle()
        hosts = [h.name for h in self.hosts]
        if len(set(hosts)) != len(hosts):
            raise ValueError(f"host names repeat: {hosts}")
        internet = [h.name for h in self.hosts if h.role == "internet"]
        if len(internet) > 1:
            raise ValueError(f"one internet host at most, not {len(internet)}: {internet}")
        seen: set[str] = set()
        for h in self.hosts:
            if h.attach not in names:
                raise ValueError(f"host {h.name}: attach {h.attach!r} is not a node")
            addr = self.host_address(h)
            if ipaddress.IPv4Address(addr) not in net:
                raise ValueError(f"host {h.name}: address {addr} is not in {self.subnet}")
            if addr in seen:
                raise ValueError(f"host {h.name}: address {addr} is used twice")
            if ipaddress.IPv4Address(addr) in (net.network_address, net.broadcast_address) or (
                    h.role != "internet" and addr == self.gateway):
                raise ValueError(f"host {h.name}: address {addr} is {self.subnet}'s network, "
                                 "broadcast or gateway address")
            seen.add(addr)
        macs: dict[str, str] = {}
        for h in self.hosts:
            mac = h.mac or h.default_mac()
            if mac in macs:
                raise ValueError(f"host {h.name}: MAC {mac} is host {macs[mac]}'s too (two "
                                 "stations on one MAC get one DHCP lease)")
            macs[mac] = h.name
        if sum(1 for h in self.hosts if h.role == "internet") > 1:
            raise ValueError("at most one internet host")
        self._unique_interfaces()
        return self

    def _no_uplink_cycle(self) -> None:
        """Uplinks form a tree: a loop of them would be a loop of patch links between the
        LSIs (a broadcast storm in the datapath)."""
        up = {n.name: n.uplink for n in self.nodes}
        for start in up:
            path = [start]
            cur = up[start]
            while cur is not None:
                if cur in path:
                    raise ValueError(f"uplinks loop: {' -> '.join([*path[path.index(cur):], cur])}")
                path.append(cur)
                cur = up.get(cur)

    def _unique_interfaces(self) -> None:
        """Every interface the testbed creates for the topology (testbed.lifecycle and
        testbed.underlay name them) is named once: a host called like a child node of the node
        it attaches to, or "up", "ul", "uu", would get another link's interface."""
        owner: dict[str, str] = {}

        def claim(name: str, what: str) -> None:
            if name in owner:
                raise ValueError(f"{what} would get interface {name}, already {owner[name]}; "
                                 "rename one")
            owner[name] = what
        for n in self.nodes:
            claim(n.lsi, f"node {n.name}'s switch")
            if n.overlay:
                claim(naming.ifname(n.name, "ul"), f"node {n.name}'s underlay bridge")
            if n.uplink:
                claim(naming.ifname(n.name, "up"), f"node {n.name}'s uplink")
                claim(naming.ifname(n.uplink, n.name), f"node {n.name}'s uplink peer")
                claim(naming.ifname(n.name, "uu"), f"node {n.name}'s underlay link")
                claim(naming.ifname(n.uplink, n.name, "u"), f"node {n.name}'s underlay peer")
        overlay = [n.name for n in self.nodes if n.overlay]
        for a in overlay:
            for b in overlay:
                if a != b:
                    claim(naming.ifname(a, "t", b), f"node {a}'s tunnel to {b}")
        for n in self.nodes:
            if n.role == "cpe":  # access.addressing.services_port
                claim(naming.ifname(n.name, "svc"), f"node {n.name}'s access services port")
        for h in self.hosts:
            claim(self.host_port(h), f"host {h.name}'s link")
        for h in self.hosts:  # a client may roam to any CPE (testbed move: hosts.stale_ports)
            if h.role == "client":
                for n in self.nodes:
                    if n.role == "cpe" and n.name != h.attach:
                        claim(naming.ifname(n.name, h.name),
                              f"client {h.name}'s link when it roams to {n.name}")

    def node(self, name: str) -> NodeSpec:
        return _named("node", self.nodes, name)

    def host(self, name: str) -> HostSpec:
        return _named("host", self.hosts, name)

    def host_address(self, h: HostSpec) -> str:
        if h.address:
            return h.address
        if h.role == "internet":
            return self.gateway
        raise ValueError(f"host {h.name} needs an address")

    def host_port(self, h: HostSpec) -> str:
        """The switch-side interface of the host's link."""
        return naming.ifname(h.attach, h.name)

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen


def parse_topology(text: str, source: str = "topology") -> Topology:
    data = safe_yaml.load(text, source)  # bounded: aliases, depth, size
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: must be a mapping")
    try:
        return Topology.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors()
        # A tuple whose items failed also reads as too short: only the items' errors say why.
        errs = [e for e in errs if not (e["type"] == "too_short" and any(
            len(o["loc"]) > len(e["loc"]) and o["loc"][:len(e["loc"])] == e["loc"]
            for o in errs))]
        problems = [
            f"{'.'.join(str(x) for x in e['loc']) or '(top)'}: {e['msg']}" for e in errs
        ]
        raise InvalidInput(f"{source}: " + "; ".join(problems)) from None


def load_topology(path: Path | None = None) -> Topology:
    if path is None:
        text = resources.files("netfate.testbed").joinpath("default.yaml").read_text()
        return parse_topology(text, "default topology")
    try:
        if not str(path) or not path.exists():
            raise InvalidInput(f"topology {str(path)!r}: no such file")
        if not path.is_file():  # a fifo or /dev/zero would never end
            raise InvalidInput(f"topology {path} is "
                               f"{'a directory' if path.is_dir() else 'not a regular file'}; "
                               "give a YAML file")
        with path.open("rb") as fh:
            data = fh.read(safe_yaml.DEFAULT.max_bytes + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read topology {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"topology {path} is not UTF-8 text (byte {exc.start})") from None
    return parse_topology(text, str(path))


def two_cpes_yaml(name: str, dcs: Sequence[str], cpe1_mem_mb: int = 8) -> str:
    """The YAML of a topology of two CPEs and the DCs `dcs` under a PE `core`: the internet
    host on the PE, a client on each CPE (client1 on cpe1, client2 on cpe2). The PE and cpe2
    get 8 MB for NFs (no room for a firewall), cpe1 `cpe1_mem_mb`, a DC its role's budget.
    The failover benchmark's topology (bench/chain_failover.py), and tests' of chains across
    nodes."""
    nodes = [
        "  - {name: core, role: pe, mem_mb: 8}",
        *(f"  - {{name: {dc}, role: dc, uplink: core}}" for dc in dcs),
        f"  - {{name: cpe1, role: cpe, uplink: core, mem_mb: {cpe1_mem_mb}}}",
        "  - {name: cpe2, role: cpe, uplink: core, mem_mb: 8}",
    ]
    hosts = [
        "  - {name: inet, role: internet, attach: core}",
        "  - {name: client1, role: client, attach: cpe1, address: 10.90.1.1}",
        "  - {name: client2, role: client, attach: cpe2, address: 10.90.1.2}",
    ]
    return "\n".join([f"name: {name}", "nodes:", *nodes, "hosts:", *hosts, ""])
