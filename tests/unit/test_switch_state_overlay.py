"""The orchestrator's switch states for chains across nodes (issue 11), pure: a Remote step at
the access switch, a Transit at the hosting node, refusal without a tunnel, and locations
down a tree of PEs under a DC."""

from __future__ import annotations

from netfate import naming
from netfate.bus.messages import SwitchPorts
from netfate.controller.model import Hop, Remote, Transit
from netfate.db.repo.switching import ChainNf, SteeredRule, SwitchingRecords
from netfate.orchestrator.switch_state import World, switch_state

from .test_switch_state import FW_PORTS, IP1, M1, UNKNOWN_CLIENT, cpe_ports

ROLES = {"cpe1": "cpe", "core": "pe", "dc1": "dc"}


def hop(iid: str) -> Hop:
    return Hop(lan=naming.nf_port(iid, "lan"), wan=naming.nf_port(iid, "wan"))


def world(chain: tuple[str, ...], tunnels: bool = True) -> World:
    nfs = {iid: ChainNf(node=iid.split("-")[0], nf=iid.split("-", 2)[2], ports=FW_PORTS)
           for iid in chain}
    rec = SwitchingRecords(roles=ROLES, rules=(SteeredRule(
        user="user1", node="cpe1", mac=M1, ip=IP1, chain=chain),),
        sessions={"user1": "cpe1"}, nfs=nfs)
    cpe1 = cpe_ports("cpe1", {M1: "cpe1-a1"})
    if tunnels:
        cpe1 = cpe1.model_copy(update={"tunnels": {"dc1": "t-dc1", "core": "t-core"}})
    dc1 = SwitchPorts(uplink="dc-up", links={"dc-up": "core"},
                      tunnels={"cpe1": "t-cpe1"} if tunnels else {})
    core = SwitchPorts(infra=["k-c1", "k-dc"], links={"k-c1": "cpe1", "k-dc": "dc1"})
    return World(records=rec, ports={"cpe1": cpe1, "dc1": dc1, "core": core})


def test_a_split_chain_is_a_local_hop_then_a_remote_stretch_hosted_as_a_transit() -> None:
    chain = ("cpe1-user1-firewall", "dc1-user1-inspector", "dc1-user1-shaper")
    w = world(chain)
    st = switch_state(w, "cpe1")
    assert st is not None
    [u] = st.users
    assert u.authenticated and u.chain == (hop(chain[0]), Remote(node="dc1", port="t-dc1",
                                                                  segment=0))
    dc = switch_state(w, "dc1")
    assert dc is not None and dc.tunnels == ("t-cpe1",)
    assert dc.transits == (Transit(name="user1", mac=M1, port="t-cpe1", segment=0,
                                   chain=(hop(chain[1]), hop(chain[2]))),)


def test_no_tunnel_to_the_hosting_node_refuses_the_whole_chain() -> None:
    w = world(("cpe1-user1-firewall", "dc1-user1-inspector"), tunnels=False)
    st = switch_state(w, "cpe1")
    assert st is not None
    [u] = st.users
    assert u.name == UNKNOWN_CLIENT + M1 and not u.authenticated  # behind the portal
    dc = switch_state(w, "dc1")
    assert dc is not None and dc.transits == ()


def test_a_switch_locates_users_down_a_tree_of_pes() -> None:
    rec = SwitchingRecords(roles={"cpe1": "cpe", "pe1": "pe", "dc": "dc"}, rules=(
        SteeredRule(user="user1", node="cpe1", mac=M1, ip=IP1, chain=()),),
        sessions={"user1": "cpe1"})
    w = World(records=rec, ports={
        "cpe1": cpe_ports("cpe1", {M1: "cpe1-a1"}).model_copy(
            update={"links": {"cpe1-up": "pe1"}}),
        "pe1": SwitchPorts(uplink="pe1-up", infra=["p-c1"],
                           links={"pe1-up": "dc", "p-c1": "cpe1"}),
        "dc": SwitchPorts(infra=["d-p1", "d-inet"], links={"d-p1": "pe1"})})
    dc = switch_state(w, "dc")
    assert dc is not None and [(loc.user, loc.port) for loc in dc.locations] == [
        ("user1", "d-p1")]


def test_a_node_whose_name_starts_with_p_has_no_nf_ports_by_name() -> None:
    # The agent collects NF ports left by a crash by name: a PE called pe1 keeps its own.
    assert naming.is_nf_port(naming.nf_port("pe1-user1-firewall", "lan"))
    for own in ("fate-pe1-up", "fate-pe1-cpe1", "fate-pe1-t-dc", naming.ifname("pe1", "ul")):
        assert not naming.is_nf_port(own), own
