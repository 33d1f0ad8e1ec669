"""The flows of users whose traffic is not (only) local: a chain stretch hosted here for a
user of another node (transit: in and out by the overlay's tunnel, NetFATE section II's path
joining NFs across NFVI nodes) and a user anchored here while their NFs migrate (traffic from
the uplink both ways). Part of `flows.build`, which imports this lazily (it builds on flows)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from netfate.controller import pipeline as pl
from netfate.controller.flowmod import ETH_IPV4, FlowMod
from netfate.controller.flows import (
    _chain,
    _flow,
    _hop,
    _nf_ingress,
    _Ports,
    _steps,
    _tunnel_ingress,
)
from netfate.controller.model import Anchored, SwitchState, Transit
from netfate.controller.pipeline import Kind


def transit(t: Transit, port: _Ports) -> Iterator[FlowMod]:
    """In by the tunnel with the OUT keys, across the local NFs, back with the BACK keys."""
    tun = port(t.port)
    yield from _tunnel_ingress(Kind.TRANSIT, t.name, t.mac, tun, t.segment, pl.UP_OUT,
                               pl.DOWN_OUT)
    hop_ports = [(port(h.lan), port(h.wan), h.vlan) for h in t.chain]
    for meta, (leg_in, leg_out), order in (
        (pl.metadata(t.name, pl.UP), (pl.UP_OUT, pl.UP_BACK), hop_ports),
        (pl.metadata(t.name, pl.DOWN), (pl.DOWN_OUT, pl.DOWN_BACK),
         [(w, ln, v) for ln, w, v in reversed(hop_ports)]),
    ):
        src: dict[str, Any] = {"in_port": tun,
                               "tunnel_id": pl.tunnel_key(t.name, t.segment, leg_in)}
        for into, out_of, vlan in order:
            yield _hop(t.name, pl.P_CHAIN, src, meta, {}, into, vlan=vlan, kind=Kind.TRANSIT)
            src = {"in_port": out_of}
        yield _flow(Kind.TRANSIT, t.name, pl.STEER, pl.P_CHAIN,
                    {**src, "metadata": meta, "eth_type": ETH_IPV4}, (tun,),
                    set_fields=(("tunnel_id", pl.tunnel_key(t.name, t.segment, leg_out)),))
    for ln, w, vlan in hop_ports:
        yield from _nf_ingress(t.name, t.mac, ln, w, Kind.TRANSIT, vlan=vlan)


def anchored(state: SwitchState, a: Anchored, port: _Ports) -> Iterator[FlowMod]:
    """The user's traffic arrives from the uplink both ways, crosses the chain, and leaves
    by the uplink again (the core takes it on to the internet, or down to the user).

    Traffic between the anchored user and a user local to this CPE never goes up and back:
    the core cannot tell a packet that has crossed one user's chain from one that has not
    (both come from this CPE), so the hand-off is made here, from the end of one user's
    chain into the start of the other's (anchor_local.py). The anchored user's upstream
    flow is also above a local user's downstream one (P_ANCHORED_UP): a packet from the
    uplink with the anchored user's source and a local user's destination is theirs first."""
    assert state.uplink is not None
    up = port(state.uplink)
    yield _flow(Kind.USER, a.name, pl.INGRESS, pl.P_ANCHORED_UP,
                {"in_port": up, "eth_src": a.mac, "eth_type": ETH_IPV4, "ipv4_src": a.ip},
                write_metadata=(pl.metadata(a.name, pl.UP), pl.ALL_ONES), goto_table=pl.STEER)
    yield _flow(Kind.USER, a.name, pl.INGRESS, pl.P_USER,
                {"in_port": up, "eth_dst": a.mac, "eth_type": ETH_IPV4, "ipv4_dst": a.ip},
                write_metadata=(pl.metadata(a.name, pl.DOWN), pl.ALL_ONES), goto_table=pl.STEER)
    yield from _chain(a.name, pl.P_CHAIN, {}, {}, _steps(a.chain, port), up, up)
    for h in a.chain:
        yield from _nf_ingress(a.name, a.mac, port(h.lan), port(h.wan), vlan=h.vlan)
