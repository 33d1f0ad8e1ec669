"""The troubleshooting report's reasoning (netfate.troubleshoot.report): what each point saw
-> the first point where traffic stops. Pure."""

from __future__ import annotations

import pytest

from netfate.drivers import ovs_port_states as links
from netfate.troubleshoot.report import (
    Element,
    PointObservation,
    firewall_drops,
    first_break,
    port_down,
    summary,
)


def pt(point: str, role: str, flow: int | None = None, ping: bool | None = True,
       on_path: bool = True, ping_user: bool | None = None) -> PointObservation:
    return PointObservation(point, role, on_path, ping_dest=ping, ping_user=ping_user,
                            flow_packets=flow)


FW = "user1's firewall on cpe1"


def elements(fw_drops: int = 0, link_down: bool = False) -> list[Element]:
    return [Element("nf", FW, "cpe1", dropped=fw_drops, detail="rule 0 (deny out): 7"
                    if fw_drops else ""),
            Element("link", "link cpe1-core", "cpe1", down=link_down)]


DC = pt("dc", "dc", on_path=False)


def test_nothing_broken_when_every_point_sees_the_flow_and_the_destination_answers() -> None:
    v = first_break([pt("cpe1", "cpe", 8), pt("core", "pe", 8)], elements(), [DC])
    assert not v.broken and v.kind == "none" and v.stops_at is None


def test_a_denied_port_is_blamed_on_the_users_firewall() -> None:
    v = first_break([pt("cpe1", "cpe", 9), pt("core", "pe", 0)], elements(fw_drops=7), [DC])
    assert v.broken and v.kind == "nf" and v.stops_at == FW
    assert (v.after, v.before) == ("cpe1", "core")
    assert "rule 0" in v.reason
    assert any("9 packets" in e for e in v.evidence)


def test_a_link_down_is_blamed_on_the_link_not_on_the_nf_before_it() -> None:
    v = first_break([pt("cpe1", "cpe", 9, ping=False), pt("core", "pe", 0)],
                    elements(link_down=True), [DC])
    assert v.kind == "link" and v.stops_at == "link cpe1-core"


def test_the_first_element_that_reports_a_drop_wins_in_path_order() -> None:
    v = first_break([pt("cpe1", "cpe", 9), pt("core", "pe", 0)],
                    elements(fw_drops=3, link_down=True))
    assert v.kind == "nf"


def test_a_stretch_with_no_element_reporting_names_the_stretch() -> None:
    v = first_break([pt("cpe1", "cpe", 9), pt("core", "pe", 0)], elements())
    assert v.kind == "stretch" and v.stops_at == "cpe1 -> core"


def test_no_flow_at_the_first_point_is_the_access_side() -> None:
    v = first_break([pt("cpe1", "cpe", 0, ping_user=False), pt("core", "pe", 0)], elements())
    assert v.kind == "access" and v.before == "cpe1"
    assert "cannot ping the user's device" in v.reason


def test_an_nf_counting_the_users_drops_outweighs_a_capture_that_missed_them() -> None:
    """A denied device sends about one SYN a second, so a short capture at the first point
    can miss them all; the user's firewall counted them over the whole question (the
    intermittent 'access' verdict of test_scenario_troubleshoot)."""
    v = first_break([pt("cpe1", "cpe", 0), pt("core", "pe", 0)], elements(fw_drops=4), [DC])
    assert v.kind == "nf" and v.stops_at == FW and (v.after, v.before) == ("cpe1", "core")
    assert any("counted 4" in e for e in v.evidence)
    v = first_break([pt("cpe1", "cpe", ping=None), pt("core", "pe", ping=None)],
                    elements(fw_drops=2))  # nothing else could tell
    assert v.kind == "nf" and v.stops_at == FW


def test_a_link_down_outweighs_a_capture_at_the_first_point_that_missed_the_flow() -> None:
    """A failing device retries about once a second (less often on a loaded node), so the
    first point's capture can miss every try; a link down on the path stops the traffic
    anyway (the link fault of test_scenario_troubleshoot). If the device cannot be pinged
    either, its own side is broken too and the access is named first."""
    v = first_break([pt("cpe1", "cpe", 0, ping=False, ping_user=True), pt("core", "pe", 0)],
                    elements(link_down=True), [DC])
    assert v.broken and v.kind == "link" and v.stops_at == "link cpe1-core"
    assert (v.after, v.before) == ("cpe1", "core")
    assert "no packet of the user's flow was captured at cpe1" in v.reason
    v = first_break([pt("cpe1", "cpe", 0, ping=False), pt("core", "pe", 0)],
                    elements(link_down=True), [DC])  # the device's ping not measured
    assert v.kind == "link"
    v = first_break([pt("cpe1", "cpe", 0, ping=False, ping_user=False), pt("core", "pe", 0)],
                    elements(link_down=True), [DC])
    assert v.kind == "access" and "cannot ping the user's device" in v.reason


def test_without_captures_pings_bound_the_break() -> None:
    v = first_break([pt("cpe1", "cpe", ping=False), pt("core", "pe", ping=True)],
                    elements(link_down=True))
    assert v.kind == "link"


def test_a_destination_no_one_reaches_is_the_destination() -> None:
    path = [pt("cpe1", "cpe", 5, ping=False), pt("core", "pe", 5, ping=False)]
    v = first_break(path, [], [pt("dc", "dc", on_path=False, ping=False)])
    assert v.kind == "destination" and v.stops_at == "destination"


def test_flow_past_the_last_point_but_unanswered_is_the_last_stretch() -> None:
    path = [pt("cpe1", "cpe", 5, ping=False), pt("core", "pe", 5, ping=False)]
    v = first_break(path, [], [DC])
    assert v.broken and v.kind == "stretch" and v.stops_at == "core -> destination"


def test_nothing_measured_is_unknown_not_ok() -> None:
    v = first_break([pt("cpe1", "cpe", ping=None), pt("core", "pe", ping=None)], elements())
    assert not v.broken and v.kind == "unknown"


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="no point"):
        first_break([], [])
    with pytest.raises(ValueError, match="unknown point"):
        first_break([pt("cpe1", "cpe", 1)], [Element("link", "l", "nowhere")])


def test_firewall_drops_count_what_grew_in_deny_rules_and_policies() -> None:
    before = {"rules": [{"index": 0, "action": "deny", "direction": "out", "packets": 2},
                        {"index": 1, "action": "allow", "packets": 5}],
              "default_out": {"policy": "allow", "packets": 1},
              "default_in": {"policy": "deny", "packets": 4}, "invalid": {"packets": 0}}
    after = {"rules": [{"index": 0, "action": "deny", "direction": "out", "packets": 9},
                       {"index": 1, "action": "allow", "packets": 50}],
             "default_out": {"policy": "allow", "packets": 100},
             "default_in": {"policy": "deny", "packets": 6}, "invalid": {"packets": 1}}
    n, detail = firewall_drops(before, after)
    assert n == 7  # inbound and invalid drops do not stop the user's outgoing traffic
    assert detail == "rule 0 (deny out): 7, not counted: default_in (deny): 2, invalid: 1"
    out_deny = {"default_out": {"policy": "deny", "packets": 5}}
    assert firewall_drops({}, out_deny) == (5, "default_out (deny): 5")
    assert firewall_drops({}, {"error": "status failed"}) == (0, "")


def test_port_states_from_ovs_ofctl_show() -> None:
    text = (" 1(fate-cpe1-up): addr:aa:bb:cc:dd:ee:ff\n     config:     PORT_DOWN NO_RECV "
            "NO_FWD\n     state:      0\n     speed: 0 Mbps now\n"
            " 2(fate-h-user1): addr:11:22:33:44:55:66\n     config:     0\n"
            "     state:      LINK_DOWN\n LOCAL(fate-cpe1): addr:..\n     config:     0\n")
    ports = links.parse_show(text)
    assert ports["fate-cpe1-up"] == (["PORT_DOWN", "NO_RECV", "NO_FWD"], [])
    assert port_down(*ports["fate-cpe1-up"]) and port_down(*ports["fate-h-user1"])
    assert "fate-cpe1" not in ports or not port_down(*ports["fate-cpe1"])


def test_summary_names_the_break_and_every_point() -> None:
    obs = [pt("cpe1", "cpe", 9), pt("core", "pe", 0), DC]
    v = first_break(obs[:2], elements(fw_drops=7), [DC])
    text = summary(v, obs, 6.5)
    assert text.startswith(f"BROKEN: traffic stops at {FW}")
    assert "3 points in 6.5 s" in text and "dc" in text


def test_a_link_is_down_when_either_end_passes_nothing() -> None:
    from netfate.troubleshoot.report import link_element

    up = [{"node": "cpe1", "port": "p1", "config": [], "state": []},
          {"node": "core", "port": "p2", "config": [], "state": ["LIVE"]}]
    assert not link_element("cpe1", "core", up).down
    down = [up[0], {**up[1], "config": ["PORT_DOWN"]}]
    e = link_element("cpe1", "core", down)
    assert e.down and e.name == "link cpe1-core" and e.after == "cpe1"
    assert e.detail == "core:p2 PORT_DOWN LIVE"
