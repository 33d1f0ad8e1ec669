"""RADIUS accounting of real traffic on the testbed: a user logs in through the captive
portal, sends traffic, and FreeRADIUS records a Start, Interim-Updates whose octets and
packets come from the switch's counters of the user's flows (read by the SDN controller),
and a Stop with Acct-Terminate-Cause Idle-Timeout when the user goes quiet. Real
namespaces, dnsmasq, FreeRADIUS, os-ken and OVS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from netfate import paths
from netfate.api_auth import BearerAuth
from netfate.radius.accounting import read_detail
from netfate.testbed import lifecycle
from netfate.testbed.context import Testbed
from netfate.testbed.settings import TestbedSettings
from netfate.testbed.topology import load_topology

from .conftest import Server, echo_ok, tcp_connect
from .test_access_e2e import C1, INET, connects, login_and_renew, wait_for

API = lifecycle.api_url() + "/api/v1"
IDLE_S = 4


@pytest.fixture(scope="module")
def acct_stack(testbed_up: None) -> Iterator[Testbed]:
    topo = load_topology()
    lifecycle.down()
    with pytest.MonkeyPatch.context() as mp:
        # The orchestrator (a child process) reads its settings from the environment.
        mp.setenv("NETFATE_RADIUS_ACCT_INTERIM_INTERVAL", "2")
        try:
            lifecycle.up(topo, settings=TestbedSettings(idle_timeout=IDLE_S))
            with Testbed.attach() as tb:
                yield tb
        finally:
            lifecycle.down()
            lifecycle.up(topo, services=False)


def records(**match: str) -> list[dict[str, str]]:
    detail = paths.run_dir() / "orchestrator" / "fate-radius" / "log" / "radacct" / "detail"
    return [r for r in read_detail(detail) if all(r.get(k) == v for k, v in match.items())]


def test_accounting_counts_the_users_traffic_from_login_to_idle(
        acct_stack: Testbed, servers: list[Server]) -> None:
    servers.append(Server("fate-h-inet", INET, 5201))
    r = httpx.post(f"{API}/users", json={"name": "acct1", "password": "acct1-secret"},
                   auth=BearerAuth())
    assert r.status_code == 201, r.text
    login_and_renew(C1, "cpe1", "acct1", "acct1-secret")
    wait_for(lambda: connects(C1, 5201), 15, "acct1's steering")
    wait_for(lambda: records(**{"User-Name": "acct1", "Acct-Status-Type": "Start"}), 10,
             "the Start")
    sid = records(**{"User-Name": "acct1", "Acct-Status-Type": "Start"})[0]["Acct-Session-Id"]

    def counted() -> list[dict[str, Any]]:
        s = tcp_connect(C1, INET, 5201)  # traffic while we wait: never idle meanwhile
        if s is not None:
            echo_ok(s, b"x" * 1000)
            s.close()
        return [x for x in records(**{"Acct-Session-Id": sid,
                                      "Acct-Status-Type": "Interim-Update"})
                if int(x["Acct-Input-Octets"]) > 1000 and int(x["Acct-Output-Octets"]) > 1000]

    deadline = time.monotonic() + 30
    while not counted():
        assert time.monotonic() < deadline, "no Interim-Update with the user's traffic"
        time.sleep(0.3)
    interim = counted()[-1]
    assert interim["NAS-Identifier"] == "cpe1" and int(interim["Acct-Input-Packets"]) > 0

    # Quiet: the idle flow expires, the session ends, and the Stop says why, with at least
    # what the interim counted.
    wait_for(lambda: records(**{"Acct-Session-Id": sid, "Acct-Status-Type": "Stop"}),
             IDLE_S + 30, "the Stop")
    stop = records(**{"Acct-Session-Id": sid, "Acct-Status-Type": "Stop"})[0]
    assert stop["Acct-Terminate-Cause"] == "Idle-Timeout"
    assert int(stop["Acct-Input-Octets"]) >= int(interim["Acct-Input-Octets"])
    assert int(stop["Acct-Output-Octets"]) >= int(interim["Acct-Output-Octets"])
