"""The controller's desired state for one switch (LSI-0 of a node, or the core/PE switch).

The orchestrator owns it and publishes the whole of it on `netfate.controller.{node}.desired`
every time it changes (level-triggered): the controller never merges partial updates. Ports
are named as on the switch; the controller maps names to OpenFlow port numbers itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    model_validator,
)

from netfate import validators

PortName = str
# A TS rule's own priority: it is placed at pipeline.P_TS_RULE_BASE + priority (<= 65535).
MAX_TS_PRIORITY = 64535

# The same strict checks as the API's (netfate.validators): a station's MAC is unicast, its
# address a host's, and every address ASCII only.
_mac = validators.unicast_mac
_ipv4 = validators.station_ipv4
_net = validators.ipv4_prefix
Mac = Annotated[str, AfterValidator(_mac)]
IPv4 = Annotated[str, AfterValidator(_ipv4)]

log = logging.getLogger("netfate.ts_rules")


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hop(_M):
    """One bump-in-the-wire NF of a chain: its LAN-side and WAN-side switch ports."""

    lan: PortName = Field(min_length=1)
    wan: PortName = Field(min_length=1)
    # The NF's own interfaces (say a troubleshooter's address): reached from the uplink
    # directly on the WAN side, and allowed out of it to the uplink.
    own_macs: tuple[Mac, ...] = ()
    # A shared NF (one instance for many tenants, NNF paper IV.E): the user's traffic enters
    # its ports tagged with this VLAN (pipeline.tenant_vlan) and comes back with it, popped
    # by the switch; None: an NF of its own, untagged.
    vlan: int | None = Field(default=None, ge=1, le=4094)

    @model_validator(mode="after")
    def _distinct(self) -> Hop:
        if self.lan == self.wan:
            raise ValueError(f"NF hop uses port {self.lan} for both sides")
        return self


# A user's remote stretches are numbered 0..MAX_SEGMENT: the number is part of the tunnel key
# (pipeline.tunnel_key), so the far switch knows which stretch (hop) a packet is on.
MAX_SEGMENT = 15


class Remote(_M):
    """A stretch of the chain on another node (issue 11: chains across CPE, PE and DC): the
    user's traffic goes into the tunnel `port` toward `node`, crosses that node's NFs of
    this stretch (a Transit there) and comes back through the same tunnel, both ways. The
    tunnel key carries the user and `segment`, never read from the user's addresses."""

    node: str = Field(min_length=1, max_length=64)
    port: PortName = Field(min_length=1)
    segment: int = Field(ge=0, le=MAX_SEGMENT)


Step = Hop | Remote


def hops(chain: tuple[Step, ...]) -> list[Hop]:
    """The chain's local NFs (its Remote stretches left out)."""
    return [h for h in chain if isinstance(h, Hop)]


def _check_chain(chain: tuple[Step, ...], what: str) -> None:
    ports = [p for h in hops(chain) for p in (h.lan, h.wan)]
    if len(set(ports)) != len(ports):
        raise ValueError(f"{what}: an NF port appears twice in the chain")
    remote = [(r.node, r.segment) for r in chain if isinstance(r, Remote)]
    if len({seg for _, seg in remote}) != len(remote):
        raise ValueError(f"{what}: a remote segment appears twice in the chain")


class Classifier(_M):
    """Traffic of the user that matches goes through `chain` instead of the user's default.

    Upstream it matches the remote end as destination; the return traffic is matched with the
    same fields mirrored (remote as source), so both directions cross the same NFs.
    """

    name: str = Field(min_length=1, max_length=64)
    priority: int = Field(ge=1, le=799)  # higher wins among one user's classifiers
    ip_proto: int | None = Field(default=None, ge=0, le=255)
    remote_port: int | None = Field(default=None, ge=0, le=65535)  # TCP/UDP port of the far end
    remote: Annotated[str, AfterValidator(_net)] | None = None  # IPv4 network of the far end
    chain: tuple[Step, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Classifier:
        if self.remote_port is not None and self.ip_proto not in (6, 17):
            raise ValueError(f"classifier {self.name}: a port match needs ip_proto 6 or 17")
        if self.ip_proto is None and self.remote is None:
            raise ValueError(f"classifier {self.name} matches nothing more than the default")
        _check_chain(self.chain, f"classifier {self.name}")
        return self


class Client(_M):
    """A client attached to an access port of this switch."""

    name: str = Field(min_length=1, max_length=128)
    mac: Mac
    ip: IPv4 | None = None  # the address it was given (DHCP / RADIUS Framed-IP); None: none yet
    # An authenticated user's pre-login DHCP address, served like `ip` until the device's
    # next renewal moves it to `ip` (so it is served at once after login, with no reconnect).
    extra_ips: tuple[IPv4, ...] = Field(default=(), max_length=4)
    port: PortName = Field(min_length=1)  # the access port it is behind
    authenticated: bool = False  # False: captive portal; chain, classifiers, idle unused
    chain: tuple[Step, ...] = ()  # default chain, in upstream order; empty: straight out
    classifiers: tuple[Classifier, ...] = ()
    idle_timeout: int = Field(default=0, ge=0, le=65535)  # seconds; 0: no idle detection

    @model_validator(mode="after")
    def _check(self) -> Client:
        _check_chain(self.chain, f"user {self.name}")
        if self.extra_ips and (not self.authenticated or self.ip is None
                               or self.ip in self.extra_ips):
            raise ValueError(f"user {self.name}: extra addresses need an authenticated user "
                             "with another address")
        prios = [c.priority for c in self.classifiers]
        if len(set(prios)) != len(prios):
            raise ValueError(f"user {self.name}: two classifiers have the same priority")
        return self


class Anchored(_M):
    """A user whose NFs still run here while they are at another CPE (mid-migration): their
    traffic comes up the uplink both ways (the core diverts it), crosses the chain, and goes
    back up the uplink. Make-before-break: the user is served by the old NFs, with their
    state, until the new ones have taken it over."""

    name: str = Field(min_length=1, max_length=128)
    mac: Mac
    ip: IPv4
    chain: tuple[Hop, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Anchored:
        _check_chain(self.chain, f"anchored user {self.name}")
        return self


class Transit(_M):
    """A stretch of another node's user's chain hosted here (issue 11): their traffic comes
    in by the tunnel `port` with the keys of (`name`, `segment`), crosses `chain` (in
    upstream order, or the reverse downstream) and goes back into the same tunnel with the
    return keys. The user's MAC is what the NF ports may hand back (as for a local user)."""

    name: str = Field(min_length=1, max_length=128)
    mac: Mac
    port: PortName = Field(min_length=1)  # the tunnel toward the user's access node
    segment: int = Field(ge=0, le=MAX_SEGMENT)
    chain: tuple[Hop, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Transit:
        _check_chain(self.chain, f"transit of {self.name}")
        return self


class ServicesAttachment(_M):
    """The CPE's access services namespace: captive portal, dnsmasq (DHCP and DNS)."""

    port: PortName = Field(min_length=1)
    mac: Mac
    ip: IPv4  # the portal's address; also the DHCP server and DNS resolver unless dns_ip says
    dns_ip: IPv4 | None = None
    portal_port: int = Field(default=80, ge=1, le=65535)
    # Where an unauthenticated client's DNS goes (the switch rewrites port 53 to it, and back
    # in the replies): the services' captive resolver, which answers every name with the
    # portal's address and never recurses (access.addressing.CAPTIVE_DNS_PORT).
    captive_dns_port: int = Field(default=5353, ge=1, le=65535)

    @property
    def resolver(self) -> str:
        return self.dns_ip or self.ip


class Location(_M):
    """On the core/PE switch: the downstream port (CPE link) a user's MAC is behind now."""

    user: str = Field(min_length=1, max_length=128)
    mac: Mac
    ip: IPv4 | None = None
    port: PortName = Field(min_length=1)
    # Mid-migration, the CPE that still runs the user's NFs: the user's IPv4 from `port` goes
    # there, and comes back from there to `port` (ARP always goes to `port`).
    anchor: PortName | None = None

    @model_validator(mode="after")
    def _check(self) -> Location:
        if self.anchor is not None and (self.anchor == self.port or self.ip is None):
            raise ValueError(f"location of {self.user}: an anchor needs an IP and another port")
        return self


_any_mac = validators.mac


# A TS rule's id and the port names it uses: printable ASCII without spaces (a database key).
_Token = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
# TCP/UDP/SCTP port matches need the protocol (an OpenFlow 1.3 prerequisite).
TP_FIELDS = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst"), 132: ("sctp_src", "sctp_dst")}
# Outputs that are OpenFlow reserved ports rather than switch ports.
RESERVED_OUTPUTS = ("normal", "flood", "controller", "in_port")


class Match(_M):
    """What a TS rule matches: ports by name, headers as OpenFlow 1.3 names them. Fields left
    out match anything. IPv4 fields imply IPv4; a TCP/UDP/SCTP port needs its ip_proto.
    Numbers are JSON integers (StrictInt): `true` or "80" is refused, not read as 1 or 80."""

    in_port: _Token | None = None
    eth_src: Annotated[str, AfterValidator(_any_mac)] | None = None
    eth_dst: Annotated[str, AfterValidator(_any_mac)] | None = None  # broadcast allowed
    eth_type: StrictInt | None = Field(default=None, ge=0, le=0xFFFF)
    ipv4_src: Annotated[str, AfterValidator(_net)] | None = None  # an address or a network
    ipv4_dst: Annotated[str, AfterValidator(_net)] | None = None
    ip_proto: StrictInt | None = Field(default=None, ge=0, le=255)
    tp_src: StrictInt | None = Field(default=None, ge=0, le=65535)
    tp_dst: StrictInt | None = Field(default=None, ge=0, le=65535)

    @model_validator(mode="after")
    def _check(self) -> Match:
        # OpenFlow 1.3 §7.2.3.6: each field's prerequisite; a switch refuses a match that
        # breaks one (OFPBMC_BAD_PREREQ), so it is refused here, naming it.
        if (self.tp_src is not None or self.tp_dst is not None) \
                and self.ip_proto not in TP_FIELDS:
            raise ValueError("a TCP/UDP/SCTP port match needs ip_proto 6, 17 or 132")
        if (self.ipv4_src is not None or self.ipv4_dst is not None) \
                and self.eth_type not in (None, ETH_IPV4):
            raise ValueError(f"ipv4_src/ipv4_dst need eth_type {ETH_IPV4} (IPv4), not "
                             f"{self.eth_type}")
        if self.ip_proto is not None and self.eth_type not in (None, ETH_IPV4, ETH_IPV6):
            raise ValueError(f"ip_proto needs eth_type {ETH_IPV4} (IPv4) or {ETH_IPV6} "
                             f"(IPv6), not {self.eth_type}")
        if self.eth_src is not None and int(self.eth_src[:2], 16) & 1:
            raise ValueError(f"eth_src {self.eth_src} is a group address: no frame comes "
                             "from one")
        return self


class TSRule(_M):
    """A traffic steering rule (NNF paper, Table I: createTSRule): on the node's LSI, traffic
    that matches goes out of `output` (port names or a reserved port: normal, flood,
    controller, in_port); an empty output drops it. Rendered in table 0 above everything the
    controller derives itself (pipeline.P_TS_RULE_BASE + priority): it is an explicit order.
    Its priority is a JSON integer: `true` is not priority 1."""

    rule_id: _Token
    priority: StrictInt = Field(default=100, ge=1, le=MAX_TS_PRIORITY)
    match: Match = Field(default_factory=Match)
    output: tuple[_Token, ...] = Field(default=(), max_length=64)


def stored_rules(rows: Iterable[dict[str, Any]], where: str) -> list[TSRule]:
    """Stored rules (JSON-able mappings) as TSRules, leaving out (and logging) any the
    model refuses now: a rule stored before a check was added must not stop the node's
    switch state from being built (the switch refused such a rule anyway)."""
    out = []
    for data in rows:
        try:
            out.append(TSRule.model_validate(data))
        except ValidationError as exc:
            log.warning("%s: stored TS rule %r left out: %s", where, data.get("rule_id"),
                        "; ".join(e["msg"] for e in exc.errors())[:300])
    return out


class SwitchState(_M):
    """Everything the controller installs on one switch."""

    node: str = Field(min_length=1, max_length=64)
    role: Literal["cpe", "pe", "dc"]
    generation: int = 0
    uplink: PortName | None = None  # toward the core / the internet
    access_ports: tuple[PortName, ...] = ()  # client ports: only known addresses pass
    # Infrastructure ports switched by L2 NORMAL at the lowest priority (a PE's CPE links and
    # internet port, a DC's uplink). Never client or NF ports: NORMAL would bypass security.
    infra_ports: tuple[PortName, ...] = ()
    services: ServicesAttachment | None = None
    users: tuple[Client, ...] = ()
    anchored: tuple[Anchored, ...] = ()
    locations: tuple[Location, ...] = ()
    transits: tuple[Transit, ...] = ()  # other nodes' users' chain stretches hosted here
    tunnels: tuple[PortName, ...] = ()  # overlay ports: only a user's keyed traffic passes
    ts_rules: tuple[TSRule, ...] = ()  # Table I rules (an operator's, a benchmark's)
    # DHCP from MACs the switch has no flows for, per access port: an OpenFlow meter drops
    # what exceeds this many packets a second (burst: as many again); 0: no limit.
    dhcp_pps: int = Field(default=0, ge=0, le=100_000)

    @model_validator(mode="after")
    def _check(self) -> SwitchState:
        rids = [r.rule_id for r in self.ts_rules]
        if len(set(rids)) != len(rids):
            raise ValueError(f"switch {self.node}: a TS rule id is listed twice")
        names = [u.name for u in self.users]
        if len(set(names)) != len(names):
            raise ValueError(f"switch {self.node}: a user is listed twice")
        macs = [u.mac for u in self.users]
        if len(set(macs)) != len(macs):
            raise ValueError(f"switch {self.node}: two users share a MAC")
        ips = [ip for u in self.users for ip in (u.ip, *u.extra_ips) if ip is not None]
        if len(set(ips)) != len(ips):
            raise ValueError(f"switch {self.node}: two users share an IP address")
        for u in self.users:
            if u.port not in self.access_ports:
                raise ValueError(f"user {u.name}: port {u.port} is not an access port")
            if self.uplink is None:
                raise ValueError(f"switch {self.node} has users but no uplink")
        special = set(self.access_ports) | ({self.uplink} if self.uplink else set())
        if self.services is not None:
            special.add(self.services.port)
        nf = {p for u in self.users for c in chains(u) for h in hops(c) for p in (h.lan, h.wan)}
        nf |= {p for a in self.anchored for h in a.chain for p in (h.lan, h.wan)}
        nf |= {p for t in self.transits for h in t.chain for p in (h.lan, h.wan)}
        tun = {r.port for u in self.users for c in chains(u) for r in c if isinstance(r, Remote)}
        tun |= {t.port for t in self.transits}
        if missing := tun - set(self.tunnels):
            raise ValueError(f"switch {self.node}: {sorted(missing)} are not tunnel ports")
        if clash := set(self.tunnels) & (nf | special | set(self.infra_ports)):
            raise ValueError(f"switch {self.node}: tunnel ports {sorted(clash)} have "
                             "another part too")
        segs = [(t.name, t.segment) for t in self.transits]
        if len(set(segs)) != len(segs):
            raise ValueError(f"switch {self.node}: a transit is listed twice")
        if self.anchored and self.uplink is None:
            raise ValueError(f"switch {self.node} anchors users but has no uplink")
        if clash := ({a.mac for a in self.anchored} & set(macs)):
            raise ValueError(f"switch {self.node}: {sorted(clash)} both attached and anchored")
        if clash := (set(self.infra_ports) & (set(self.access_ports) | nf)):
            raise ValueError(f"switch {self.node}: infra ports {sorted(clash)} are also "
                             "client or NF ports")
        if clash := nf & special:
            raise ValueError(f"switch {self.node}: NF ports {sorted(clash)} are also "
                             "access, uplink or services ports")
        if self.services is not None and self.services.port in self.access_ports:
            raise ValueError("the services port cannot be an access port")
        locs = [loc.mac for loc in self.locations]
        if len(set(locs)) != len(locs):
            raise ValueError(f"switch {self.node}: a MAC has two locations")
        return self


def chains(u: Client) -> list[tuple[Step, ...]]:
    """The user's default chain and its classifiers' chains."""
    return [u.chain, *(c.chain for c in u.classifiers)]
