"""The rtnetlink requests of an NF's start path (drivers/rtnl.py): their encoding, and, as
root, what they do in a namespace of their own, checked against `ip -d link`."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from netfate.drivers import netns, rtnl
from netfate.errors import DriverError


def test_attributes_are_padded_and_read_back() -> None:
    a = rtnl._attr(rtnl.IFLA_IFNAME, b"br0\0") + rtnl._attr(rtnl.IFLA_MASTER,
                                                           struct.pack("=I", 7))
    assert len(a) % 4 == 0
    got = rtnl._attrs(a)
    assert got[rtnl.IFLA_IFNAME] == b"br0\0"
    assert struct.unpack("=I", got[rtnl.IFLA_MASTER]) == (7,)
    assert rtnl._attrs(b"\x02\x00\x01\x00") == {}, "a malformed length ends the walk"


@pytest.mark.parametrize("name", ["", "x" * 16, "a/b", "a\0b"])
def test_names_the_kernel_would_refuse_are_refused_here(name: str) -> None:
    with pytest.raises(DriverError, match="not an interface name"):
        rtnl._name(name)


@pytest.fixture
def ns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root: a network namespace")
    name = f"fate-rtnl-{uuid.uuid4().hex[:8]}"
    netns.create(name)
    try:
        yield name
    finally:
        netns.delete(name)


def _ip(ns: str) -> dict[str, dict[str, object]]:
    out = subprocess.run(["ip", "-n", ns, "-d", "-j", "link"], check=True,
                         capture_output=True, text=True).stdout
    return {str(d["ifname"]): d for d in json.loads(out)}


def test_a_bridge_with_its_ports_as_the_firewall_makes_it(ns: str) -> None:
    subprocess.run(["ip", "-n", ns, "link", "add", "name", "lan", "type", "veth", "peer",
                    "name", "wan"], check=True)
    with rtnl.Rtnl(ns) as r:
        r.add_bridge("br0")
        with pytest.raises(rtnl.RtnlError, match="File exists"):
            r.add_bridge("br0")
        idx = {link.name: link.index for link in r.links()}
        assert set(idx) == {"lo", "br0", "lan", "wan"}
        for p in ("lan", "wan"):
            r.set(idx[p], master=idx["br0"], up=True, group=0x4E46)
        assert r.index("br0") == idx["br0"] and r.index("nothere") is None
    links = _ip(ns)
    br = links["br0"]["linkinfo"]["info_data"]  # type: ignore[index]
    assert br["stp_state"] == 0 and br["forward_delay"] == 0  # type: ignore[index]
    assert "UP" not in links["br0"]["flags"]  # type: ignore[operator]
    for p in ("lan", "wan"):
        assert links[p]["master"] == "br0" and "UP" in links[p]["flags"]  # type: ignore[operator]
        assert links[p]["group"] in ("0x4e46", 0x4E46, "20038")
    macs = rtnl.own_macs(ns, {"lan", "wan"})
    assert macs == [links["br0"]["address"]]


def test_set_up_and_rename(ns: str) -> None:
    subprocess.run(["ip", "-n", ns, "link", "add", "name", "a", "type", "veth", "peer",
                    "name", "b"], check=True)
    rtnl.set_up(ns, ["a", "b"], group=7)
    links = _ip(ns)
    assert all("UP" in links[n]["flags"] for n in ("lo", "a", "b"))  # type: ignore[operator]
    with pytest.raises(DriverError, match="c is missing"):
        rtnl.set_up(ns, ["c"])
    with netns.entered(ns):
        rtnl.rename_up([("a", "a2")])
        with pytest.raises(DriverError, match="gone"):
            rtnl.rename_up([("a", "a3")])
        with pytest.raises(rtnl.RtnlError, match="exists"):
            rtnl.rename_up([("a2", "b")])
    assert "a2" in _ip(ns)
