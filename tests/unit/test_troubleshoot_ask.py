"""The question's checks and helpers (netfate.troubleshoot.ask) without a testbed: a bad
question is refused before anything is deployed; probe addresses, the PE's way out, and
traceroute hops."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from netfate.errors import InvalidInput
from netfate.scenarios import troubleshoot
from netfate.troubleshoot import ask


def _tb() -> Any:
    topo = troubleshoot.topology()
    return SimpleNamespace(topology=topo, host=topo.host)


def test_a_bad_question_is_refused() -> None:
    tb = _tb()
    assert ask._check(tb, ask.Question("user1"))[:2] == ("10.90.1.21", "10.255.0.1")
    for q, msg in ((ask.Question("nobody"), "nobody"),
                   (ask.Question("inet"), "not a user's device"),
                   (ask.Question("user1", dest="10.0.0.300"), "not an IPv4 address"),
                   (ask.Question("user1", port=0), "port 0"),
                   (ask.Question("user1", seconds=99), "capture")):
        with pytest.raises(InvalidInput, match=msg):
            ask._check(tb, q)


def test_probe_addresses_are_free_addresses_of_the_subnet() -> None:
    assert ask._addresses(_tb(), 3) == ["10.90.255.254/16", "10.90.255.253/16",
                                        "10.90.255.252/16"]


def test_the_pe_probe_hands_traffic_to_the_destinations_port() -> None:
    tb = _tb()
    inet = tb.topology.host("inet")
    assert ask._toward(tb, "core", "10.255.0.1") == tb.topology.host_port(inet)
    assert ask._toward(tb, "dc", "10.255.0.1") == tb.topology.node("dc").uplink_port
    # beyond the subnet: through the internet host, which holds the gateway
    assert ask._toward(tb, "core", "10.1.2.3") == tb.topology.host_port(inet)
    with pytest.raises(InvalidInput, match="no uplink"):
        ask._toward(tb, "core", "10.90.7.7")  # in the subnet, but no host has it


def test_traceroute_hops() -> None:
    out = ("traceroute to 10.255.0.1 (10.255.0.1), 30 hops max\n"
           " 1  10.90.0.1  0.3 ms\n 2  *\n 3  *\n 4  *\n")
    assert ask._hops(out) == ("10.90.0.1", "*")
    assert ask._hops("traceroute to x\n 1  10.255.0.1  0.2 ms\n") == ("10.255.0.1",)


@pytest.mark.parametrize("dest", ["0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255",
                                  "240.0.0.1", "10.90.1.21", "10.90.255.255", "10.90.0.0",
                                  "\u0661\u0660.0.0.1", " 10.255.0.1"])
def test_a_destination_no_flow_can_have_is_refused(dest: str) -> None:
    """--dest took any IPv4 address: the unspecified, loopback, multicast, broadcast and
    reserved ones, the subnet's own network/broadcast address and the user's own address
    (no flow of the user goes there; the probes would ping and trace nonsense)."""
    with pytest.raises(InvalidInput, match="destination"):
        ask._check(_tb(), ask.Question("user1", dest=dest))


def test_removing_probes_goes_on_whatever_fails_and_reports_it() -> None:
    """Review finding: unsteer and remove shared one try (a probe whose rules could not be
    removed stayed running) and only NetfateError was caught (an OSError ended the cleanup of
    the other probes and hid the question's own error)."""
    from types import SimpleNamespace

    from netfate.interfaces import NFInfo, NFState
    from netfate.troubleshoot.ask import Probe, _remove

    removed: list[str] = []

    class Tb:
        ts_rules = SimpleNamespace(rules_of=lambda node, lsi: [])

        def node(self, name: str) -> Any:
            return SimpleNamespace(lsi=f"br-{name}")

        def unsteer(self, node: str, rules: list[Any]) -> None:
            if node == "cpe1":
                raise OSError("ovsdb socket gone")

        def remove_nf(self, node: str, iid: str) -> None:
            if node == "core":
                raise TimeoutError("agent silent")
            removed.append(iid)

    probes = [Probe(n, "r", True, NFInfo(f"{n}-operator-troubleshooter", n, "operator",
                                         "troubleshooter", "native", "0" * 64,
                                         NFState.RUNNING, []), {})
              for n in ("cpe1", "core", "dc")]
    left = _remove(Tb(), probes)  # type: ignore[arg-type]
    assert removed == ["cpe1-operator-troubleshooter", "dc-operator-troubleshooter"]
    assert len(left) == 2 and "rules: ovsdb socket gone" in left[0] and "agent silent" in left[1]
