"""The VPN NF's pure parts (catalogue/vpn/files/swan.py): config checks and defaults, and the
strongSwan and nftables texts both ends of a tunnel are rendered from."""

from __future__ import annotations

from typing import Any

import pytest

from .catalogue_nf import load

swan = load("vpn", "swan")

CFG: dict[str, Any] = {"address": "10.90.1.254/16", "gateway": "10.90.0.1",
                       "peer": "172.30.0.2", "local_ts": ["10.90.1.0/24"],
                       "psk_file": "/run/netfate/vpn-scenario/psk"}
PSK = "0123456789abcdef0123"


def test_defaults_filled() -> None:
    n = swan.normalise(CFG)
    assert n["suite"] == "aes128gcm16" and n["remote_ts"] == ["0.0.0.0/0"]
    assert n["local_id"] == "10.90.1.254" and n["remote_id"] == "172.30.0.2"
    assert n["mtu"] == 1400 and n["rekey_s"] == 3600


@pytest.mark.parametrize("change, key", [
    ({"address": "10.90.1.254"}, "address"),
    ({"gateway": "10.91.0.1"}, "gateway"),
    ({"gateway": "10.90.1.254"}, "gateway"),
    ({"peer": "224.0.0.1"}, "peer"),
    ({"local_ts": []}, "local_ts"),
    ({"local_ts": ["10.90.1.300/32"]}, "local_ts[0]"),
    ({"local_ts": ["10.90.1.1/32"]}, "the NF's own address"),
    ({"remote_ts": ["10.90.1.0/24"]}, "remote_ts"),
    ({"suite": "des-md5"}, "suite"),
    ({"psk_file": "relative/psk"}, "psk_file"),
    ({"psk_file": "/run/../etc/shadow"}, "psk_file"),
    ({"local_id": "a b"}, "local_id"),
    ({"mtu": 9000}, "mtu"),
    ({"mtu": True}, "mtu"),
    ({"psk": "inline"}, "unknown keys"),
])
def test_bad_values_are_named(change: dict[str, Any], key: str) -> None:
    with pytest.raises(swan.ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        swan.normalise({**CFG, **change})


def test_psk_file_text() -> None:
    assert swan.read_psk(PSK + "\nignored\n", "/k") == PSK
    for bad in ("short", 'has"quote0123456789', "x" * 300, ""):
        with pytest.raises(swan.ConfigError, match="psk_file /k"):
            swan.read_psk(bad, "/k")


@pytest.mark.parametrize("suite, esp, ike", [
    ("aes128-sha1", "aes128-sha1", "aes128-sha1-modp2048"),
    ("aes128gcm16", "aes128gcm16", "aes128-sha256-modp2048"),
])
def test_initiator_conf(suite: str, esp: str, ike: str) -> None:
    text = swan.swanctl_conf(swan.normalise({**CFG, "suite": suite}), PSK, initiator=True)
    assert f"esp_proposals = {esp}\n" in text and f"proposals = {ike}\n" in text
    assert "local_addrs = 10.90.1.254\n" in text and "remote_addrs = 172.30.0.2\n" in text
    assert "local_ts = 10.90.1.0/24\n" in text and "remote_ts = 0.0.0.0/0\n" in text
    assert "encap = yes" in text and "start_action = start" in text
    assert f'secret = "{PSK}"' in text


def test_responder_conf_swaps_the_ends() -> None:
    text = swan.swanctl_conf(swan.normalise(CFG), PSK, initiator=False)
    assert "local_addrs = 172.30.0.2\n" in text and "remote_addrs = %any\n" in text
    assert "local_ts = 0.0.0.0/0\n" in text and "remote_ts = 10.90.1.0/24\n" in text
    assert "id = 172.30.0.2\n" in text.split("remote {")[0]  # its own identity
    assert "start_action = none" in text and "unique = replace" in text


def test_strongswan_conf_is_the_nfs_own() -> None:
    text = swan.strongswan_conf("/run/netfate/nfs/x/run", 1400)
    assert "socket = unix:///run/netfate/nfs/x/run/charon.vici" in text
    assert "path = /run/netfate/nfs/x/run/charon.log" in text
    assert "kernel-libipsec" in text and "mtu = 1400" in text
    assert "/etc/" not in text
    with pytest.raises(swan.ConfigError):
        swan.strongswan_conf("/run/x y", 1400)


def test_ruleset() -> None:
    text = swan.ruleset(swan.normalise({**CFG, "local_ts": ["10.90.1.0/24", "10.90.2.0/24"]}),
                        "02:00:00:00:00:01", "lan", "wan")
    assert "elements = { 10.90.1.0/24, 10.90.2.0/24 }" in text
    assert "ether daddr set 02:00:00:00:00:01 meta pkttype set host" in text
    assert 'iifname "lan"' in text and "maxseg size set rt mtu" in text
    # fail closed: no IPv4 crosses the bridge in the clear, from local_ts or not
    assert 'iifname "lan" ether type ip counter drop comment "clear out"' in text
    assert 'iifname "wan" ether type ip counter drop comment "clear in"' in text
    assert text.index("delete table bridge fate_vpn") < text.index("table bridge fate_vpn {")
    with pytest.raises(swan.ConfigError):
        swan.ruleset(swan.normalise(CFG), "02:00:00:00:00:01;", "lan", "wan")
    with pytest.raises(swan.ConfigError):
        swan.ruleset(swan.normalise(CFG), "02:00:00:00:00:01", "lan\"", "wan")


def test_gateway_ruleset_masquerades_what_leaves_the_tunnel() -> None:
    text = swan.gateway_ruleset(swan.normalise(CFG), "eth0")
    assert 'oifname "eth0" ip saddr @users masquerade' in text
    assert 'iifname "ipsec0" ip saddr @users' in text


def test_status_parses_sas() -> None:
    vpn = load("vpn", "vpn")
    assert vpn.sa_state("vpn: #1, ESTABLISHED, IKEv2\n  user: #1, INSTALLED, TUNNEL") == {
        "ike_established": True, "child_installed": True}
    assert vpn.sa_state("") == {"ike_established": False, "child_installed": False}


def test_bundle_ships_its_borrowed_and_shared_helpers() -> None:
    import io
    import tarfile

    from netfate import catalogue

    data = catalogue.bundle_bytes("vpn")
    try:
        names = set(tarfile.open(fileobj=io.BytesIO(data)).getnames())
    except tarfile.ReadError:
        pytest.skip("bundles are not tar archives")
    for f in ("files/arpd.py", "files/l3bump.py", "files/nfcommon.py", "files/common.sh",
              "files/swan.py", "files/vpn.py", "scripts/start", "descriptor.yaml"):
        assert any(n.lstrip("./").endswith(f) for n in names), f


@pytest.mark.parametrize("opts, what", [
    ({"suites": ("des-md5",)}, "suite"),
    ({"runs": 0}, "runs"),
    ({"mtu": 100}, "mtu"),
])
def test_scenario_refuses_bad_options_before_touching_anything(
        opts: dict[str, Any], what: str) -> None:
    from netfate.errors import InvalidInput
    from netfate.scenarios import vpn

    with pytest.raises(InvalidInput, match=what):
        vpn.run(vpn.Options(**opts), lambda t, m: None)


def test_the_peer_may_be_the_gateway_but_not_the_nfs_own_address() -> None:
    """The CI-sized VPN scenario's CPE reaches its VPN gateway as its next hop."""
    gw = {**CFG, "peer": CFG["gateway"]}
    assert swan.normalise(gw)["peer"] == CFG["gateway"]
    with pytest.raises(swan.ConfigError, match="NF's own address"):
        swan.normalise({**CFG, "peer": CFG["address"].split("/")[0]})
