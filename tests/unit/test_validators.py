"""Issue #16, input 4: addresses that are not addresses. The shared validators refuse them
(ASCII digits only, a station's MAC unicast), and so do the controller's model and the CLI,
before anything is stored or sent."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from netfate import validators
from netfate.bus.messages import ClientSeen
from netfate.cli.main import app
from netfate.controller.model import Client
from netfate.validators import UnicastMac

ARABIC_IP = "\u0661\u0660.\u0669\u0660.\u0661.\u0661"  # 10.90.1.1, Arabic-Indic digits


@pytest.mark.parametrize(("kind", "value", "words"), [
    ("station-ipv4", "999.1.1.1", "not an IPv4"),
    ("station-ipv4", ARABIC_IP, "ASCII"),
    ("station-ipv4", "10.90.1.\u0661", "ASCII"),
    ("station-ipv4", "010.0.0.1", "leading zeros"),
    ("station-ipv4", "10.0.0", "not an IPv4"),
    ("station-ipv4", " 10.0.0.1", "not an IPv4"),
    ("station-ipv4", "10.0.0.1\n", "not an IPv4"),
    ("station-ipv4", "0.0.0.0", "host"),
    ("station-ipv4", "255.255.255.255", "host"),
    ("station-ipv4", "224.0.0.1", "host"),
    ("station-ipv4", "127.0.0.1", "host"),
    ("unicast-mac", "ff:ff:ff:ff:ff:ff", "group"),
    ("unicast-mac", "01:00:5e:00:00:01", "group"),
    ("unicast-mac", "03:00:00:00:00:01", "group"),
    ("unicast-mac", "33:33:00:00:00:01", "group"),
    ("unicast-mac", "00:00:00:00:00:00", "all zeros"),
    ("unicast-mac", "02:00:00:00:00:\u0660\u0661", "ASCII"),
    ("unicast-mac", "02-00-00-00-00-01", "not a MAC"),
    ("mac", "02:00:00:00:00:0g", "not a MAC"),
    ("ipv4-prefix", "10.0.0.0/33", "not an IPv4 network"),
    ("ipv4-prefix", "10.0.0.0/2\u0664", "ASCII"),
    ("ipv4-prefix", "10.0.0.0/024", "not an IPv4 network"),
    ("port", "80", "integer"),
    ("port", True, "integer"),
    ("port", -1, "greater"),
    ("port", 65536, "less"),
    ("name", "cpe\u0661", "ASCII"),
    ("name", "CPE1", "pattern"),
    ("name", "a" * 33, "pattern"),
    ("name", "-cpe", "pattern"),
    ("name", "\uff43\uff50\uff451", "ASCII"),  # fullwidth letters
    ("instance-id", "cpe1/../x", "pattern"),
    ("token", "a b", "identifier"),
])
def test_not_an_address_or_identifier_is_refused(kind: str, value: object, words: str) -> None:
    with pytest.raises(ValueError, match="(?i)" + words):
        validators.check(kind, value)


@pytest.mark.parametrize(("kind", "value", "canonical"), [
    ("station-ipv4", "10.90.1.1", "10.90.1.1"),
    ("ipv4", "0.0.0.0", "0.0.0.0"),
    ("unicast-mac", "02:AA:00:00:00:01", "02:aa:00:00:00:01"),
    ("mac", "ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff"),
    ("ipv4-prefix", "10.0.0.0/24", "10.0.0.0/24"),
    ("ipv4-prefix", "10.0.0.5/32", "10.0.0.5/32"),
    ("ipv4-prefix", "10.0.0.5", "10.0.0.5/32"),
    ("port", 0, 0),
    ("port", 65535, 65535),
    ("name", "cpe-1_a.b", "cpe-1_a.b"),
    ("instance-id", "cpe1-user1-firewall", "cpe1-user1-firewall"),
])
def test_real_ones_pass_in_canonical_form(kind: str, value: object, canonical: object) -> None:
    assert validators.check(kind, value) == canonical


def test_the_error_names_the_field() -> None:
    class Body(BaseModel):
        mac: UnicastMac

    with pytest.raises(ValidationError) as exc:
        Body(mac="ff:ff:ff:ff:ff:ff")
    assert exc.value.errors()[0]["loc"] == ("mac",)


def test_the_controllers_model_refuses_the_same() -> None:
    for mac, ip in (("03:00:00:00:00:01", "10.90.1.1"), ("02:00:00:00:00:01", ARABIC_IP),
                    ("02:00:00:00:00:01", "999.1.1.1")):
        with pytest.raises(ValidationError):
            Client(name="u", mac=mac, ip=ip, port="a1")


def test_a_group_mac_is_no_client_seen_on_the_bus() -> None:
    with pytest.raises(ValidationError):
        ClientSeen(node="cpe1", mac="03:00:00:00:00:01", port="a1", ts=0)


@pytest.mark.parametrize("argv", [
    ["users", "associate", "user1", "cpe1", "--ip", "999.1.1.1"],
    ["users", "associate", "user1", "cpe1", "--ip", ARABIC_IP],
    ["users", "associate", "user1", "cpe1", "--mac", "ff:ff:ff:ff:ff:ff"],
    ["users", "associate", "user1", "cpe1", "--mac", "01:00:5e:00:00:01"],
    ["users", "associate", "user1", "cpe\u0661"],
    ["users", "delete", "User 1"],
    ["nfs", "migrate", "cpe1-user1-firewall", "cpe\u0661"],
    ["access", "serve", "--node", "cpe1", "--gateway", ARABIC_IP],
])
def test_the_cli_refuses_them_before_any_request(argv: list[str]) -> None:
    r = CliRunner().invoke(app, argv, env={"NETFATE_API": "http://127.0.0.1:9"})
    assert r.exit_code == 2, r.output
    assert "Invalid value" in r.output


@pytest.mark.parametrize("argv", [
    ["orchestrator", "--port", "\u0668\u0660"],
    ["orchestrator", "--port", "70000"],
    ["controller", "--port", "\uff16\uff16\uff15\uff13"],
    ["access", "serve", "--node", "cpe1", "--portal-port", "\u0668\u0660"],
    ["access", "serve", "--node", "cpe1", "--prefixlen", "2\u0664"],
])
def test_the_cli_takes_port_numbers_in_ascii_digits_only(argv: list[str]) -> None:
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 2, r.output
    assert "Invalid value" in r.output


def test_the_cli_still_takes_real_numbers() -> None:
    from netfate.cli.common import ascii_int
    assert ascii_int(1, 65535)("8181") == 8181 and ascii_int(1, 65535)(80) == 80


def test_api_user_names_follow_the_credentials_rule() -> None:
    """The API checks user names with validators.Name; the portal and RADIUS with
    credentials: one rule for both."""
    from netfate import credentials, validators

    assert validators.NAME_PATTERN == credentials.USERNAME_PATTERN


@pytest.mark.parametrize("value", ["10.0.0.5/24", "10.0.0.1/8", "192.168.1.1/0"])
def test_a_network_with_host_bits_set_is_refused(value: str) -> None:
    """Host or network? It was silently taken as the network (probe of 2026-12-06)."""
    with pytest.raises(ValueError, match="host bits set"):
        validators.check("ipv4-prefix", value)
