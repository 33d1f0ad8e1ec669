"""Access for real devices (issue #16), the pure parts: the captive resolver's and dnsmasq's
arguments, the nft redirect, DHCPRELEASE bytes, CAPPORT answers, the testbed's new MAC."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from netfate.access import capport, dhcp_release, local_zone
from netfate.access.addressing import CAPPORT_PATH, capport_url, for_index
from netfate.access.captive_dns import CaptiveDns
from netfate.access.dnsmasq import Dnsmasq
from netfate.access.services import nft_ruleset
from netfate.errors import InvalidInput

CPE = for_index("10.90.0.0/16", "10.90.0.1", "cpe1", 0)


def test_the_captive_resolver_answers_every_name_with_the_portal_and_asks_no_one(
        tmp_path: Path) -> None:
    argv = CaptiveDns("ns", CPE.services_ip, tmp_path, records={"portal.netfate": "10.90.16.1"}
                      ).argv()
    assert f"--address=/#/{CPE.services_ip}" in argv
    assert "--port=5353" in argv and "--no-resolv" in argv and "--local-ttl=0" in argv
    assert not any(a.startswith(("--server", "--dhcp-range", "--resolv-file")) for a in argv)
    with pytest.raises(InvalidInput):
        CaptiveDns("ns", "not-an-ip", tmp_path)


def test_the_captive_resolver_answers_the_local_zone_for_real(tmp_path: Path) -> None:
    """Before login, names the CPE answers without recursing get their real address (so a
    browser's cached answer is right after login); the platform's domain is authoritative
    (unknown names NXDOMAIN); every other name is the portal, TTL 0, nothing forwarded."""
    names = local_zone.zone({"portal.netfate": CPE.services_ip, "inet.netfate": "10.255.0.1"},
                            {"Intranet.Corp.Example.": "10.1.2.3"})
    argv = CaptiveDns("ns", CPE.services_ip, tmp_path, records=names).argv()
    assert "--host-record=inet.netfate,10.255.0.1" in argv
    assert "--host-record=intranet.corp.example,10.1.2.3" in argv
    assert "--local=/netfate/" in argv
    assert f"--address=/#/{CPE.services_ip}" in argv and "--local-ttl=0" in argv
    # The ordinary resolver (after login) answers the same local zone.
    post = Dnsmasq("ns", CPE, tmp_path, records=names, other_names="10.255.0.1").argv()
    assert {a for a in argv if a.startswith("--host-record=")} == {
        a for a in post if a.startswith("--host-record=")}
    with pytest.raises(InvalidInput):
        CaptiveDns("ns", CPE.services_ip, tmp_path, local_domains=("bad domain",))


def test_local_records_are_checked_and_cannot_repoint_the_portal() -> None:
    assert local_zone.parse_records("") == {}
    assert local_zone.parse_records(" a.example=10.1.2.3 , b.example=10.1.2.4") == {
        "a.example": "10.1.2.3", "b.example": "10.1.2.4"}
    for bad in ("a.example", "a.example=999.1.1.1", "a.example=\u0661.1.1.1",
                "nodot=10.1.2.3", "-a.example=10.1.2.3", "a.example=1.1.1.1,A.example=1.1.1.2",
                "a b.example=10.1.2.3", "é.example=10.1.2.3",
                # a name that is an address, or an address no device can be served at
                "10.1.2.3=10.1.2.4", "a.123=10.1.2.3", "a.example=0.0.0.0",
                "a.example=127.0.0.1", "a.example=224.0.0.1", "a.example=255.255.255.255",
                "a.example=240.0.0.1",
                ",".join(f"h{i}.example=10.1.{i // 250}.{i % 250 + 1}" for i in range(6000))):
        with pytest.raises(InvalidInput):
            local_zone.parse_records(bad)
    with pytest.raises(InvalidInput, match="clashes"):
        local_zone.zone({"portal.netfate": "10.90.16.1"}, {"portal.netfate": "10.9.9.9"})
    assert local_zone.zone({"portal.netfate": "10.90.16.1"},
                           {"portal.netfate": "10.90.16.1"}) == {"portal.netfate": "10.90.16.1"}


def test_access_settings_read_local_records_and_tls_paths(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from netfate.settings import load_settings

    monkeypatch.setenv("NETFATE_ACCESS_LOCAL_RECORDS", "a.example=10.1.2.3")
    monkeypatch.setenv("NETFATE_ACCESS_TLS_CERT", "/etc/portal.pem")
    s = load_settings().access
    assert s.local_records == "a.example=10.1.2.3" and str(s.tls_cert) == "/etc/portal.pem"
    monkeypatch.setenv("NETFATE_ACCESS_LOCAL_RECORDS", "a.example=999.1.1.1")
    with pytest.raises(InvalidInput, match="NETFATE_ACCESS_LOCAL_RECORDS"):
        load_settings()


def test_dnsmasq_announces_the_capport_api_and_leases_short_before_login(
        tmp_path: Path) -> None:
    d = Dnsmasq("ns", CPE, tmp_path, lease_time="2m", host_lease_time="1h",
                other_names="10.255.0.1", capport_url=capport_url())
    argv = d.argv()
    assert "--dhcp-option=114,https://portal.netfate/capport/api" in argv  # RFC 8910
    assert "--address=/#/10.255.0.1" in argv
    assert any(a.startswith("--dhcp-range=") and a.endswith(",2m") for a in argv)
    d.set_hosts({"02:aa:00:00:00:01": "10.90.100.7"})
    assert d.hostsfile.read_text() == "02:aa:00:00:00:01,10.90.100.7,1h\n"
    assert d.hosts() == {"02:aa:00:00:00:01": "10.90.100.7"}
    for bad in ({"capport_url": 'http://x/"a'}, {"capport_url": "ftp://x/"},
                {"host_lease_time": "1 h"}, {"other_names": "999.1.1.1"}):
        with pytest.raises(InvalidInput):
            Dnsmasq("ns", CPE, tmp_path, **bad)  # type: ignore[arg-type]
    assert CAPPORT_PATH in capport_url()


def test_nft_takes_captive_dns_to_any_address_and_http() -> None:
    rules = nft_ruleset(8080)
    assert 'udp dport 5353 redirect to :5353' in rules
    assert 'tcp dport 5353 redirect to :5353' in rules
    assert "tcp dport 80 redirect to :8080" in rules


def test_dhcprelease_bytes_name_the_lease() -> None:
    pkt = dhcp_release.packet("02:aa:00:00:00:01", "10.90.16.23", "10.90.16.1", b"\x01abc")
    assert pkt[0] == 1 and pkt[1] == 1 and pkt[2] == 6  # BOOTREQUEST, Ethernet, 6 bytes
    assert ipaddress.IPv4Address(pkt[12:16]) == ipaddress.IPv4Address("10.90.16.23")
    assert pkt[28:34] == bytes.fromhex("02aa00000001")
    assert pkt[236:240] == b"\x63\x82\x53\x63"
    opts = pkt[240:]
    assert opts[:3] == bytes([53, 1, 7])
    assert opts[3:9] == bytes([54, 4]) + ipaddress.IPv4Address("10.90.16.1").packed
    assert opts[9:15] == bytes([61, 4]) + b"\x01abc" and opts[-1] == 255
    with pytest.raises(ValueError):
        dhcp_release.packet("02:aa", "10.90.16.23", "10.90.16.1")


def test_lease_entries_read_macs_addresses_and_client_ids() -> None:
    text = ("1700000000 02:aa:00:00:00:01 10.90.16.23 * 01:02:aa:00:00:00:01\n"
            "1700000000 02:AA:00:00:00:02 10.90.100.7 phone *\n"
            "garbage\n")
    assert dhcp_release.lease_entries(text) == [
        ("02:aa:00:00:00:01", "10.90.16.23", bytes.fromhex("0102aa00000001")),
        ("02:aa:00:00:00:02", "10.90.100.7", None)]


def test_capport_logins_fresh_remaining_and_bounded() -> None:
    now = [100.0]
    logins = capport.Logins(grace=30, max_devices=2, clock=lambda: now[0])
    logins.accepted("m1", "alice", 600)
    logins.accepted("m2", "bob", None)
    assert logins.fresh("m1") and logins.seconds_remaining("m1") == 600
    assert logins.seconds_remaining("m2") is None and logins.seconds_remaining("m9") is None
    now[0] += 31
    assert not logins.fresh("m1") and logins.seconds_remaining("m1") == 569
    now[0] += 10_000
    assert logins.seconds_remaining("m1") == 0
    logins.accepted("m3", "carol", None)  # over the bound: the oldest goes
    assert logins.get("m1") is None and logins.get("m3") is not None
    assert capport.status(True, "http://p/login", 5) == {"captive": True,
                                                         "user-portal-url": "http://p/login"}
    assert capport.status(False, "http://p/login", 5)["seconds-remaining"] == 5


def test_a_new_mac_for_a_testbed_client_is_checked() -> None:
    from netfate.testbed.station import _check_mac

    assert _check_mac("02:5A:11:22:33:44") == "02:5a:11:22:33:44"
    for bad in ("01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "02:5a:11:22:33", "nope"):
        with pytest.raises(InvalidInput):
            _check_mac(bad)
