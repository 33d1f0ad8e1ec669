"""`re.match(r"...$")` accepts a trailing newline (``$`` matches before a final "\\n"): every
anchored check must be a fullmatch. The kind is checked over the whole source, and each place
that had it with its newline case."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

import netfate
from netfate.errors import InvalidInput
from netfate.radius.settings import RadiusSettings

SRC = Path(netfate.__file__).parent
_COMPILED = re.compile(r'(\w+)\s*=\s*re\.compile\(\s*r?[bf]?"((?:[^"\\]|\\.)*)"')


def _anchored_prefix_matches() -> list[str]:
    """Every `NAME.match(` / `re.match("...$"` of a pattern ending in `$`, as file:line."""
    found = []
    files = {p: p.read_text() for p in SRC.rglob("*.py")}
    ending = {}
    for text in files.values():
        ending.update({n: p for n, p in _COMPILED.findall(text) if p.endswith("$")})
    for path, text in files.items():
        for name in ending:
            for m in re.finditer(rf"\b{re.escape(name)}\.(match|search)\(", text):
                found.append(f"{path.relative_to(SRC)}:{text.count(chr(10), 0, m.start()) + 1}")
        for m in re.finditer(r're\.(match|search)\(\s*r?"[^"]*\$"', text):
            found.append(f"{path.relative_to(SRC)}:{text.count(chr(10), 0, m.start()) + 1}")
    return found


def test_no_anchored_pattern_is_matched_as_a_prefix() -> None:
    assert _anchored_prefix_matches() == []


def test_a_radius_secret_with_a_trailing_newline_is_refused() -> None:
    good = "portal-secret-0123456789"
    RadiusSettings(secret=good, api_key="api-key-0123456789abcdef").check()
    for bad in (good + "\n", "api-key-0123456789abcdef\n"):
        # refused as the settings are read (ValidationError), and by check() (defence in depth)
        with pytest.raises((InvalidInput, ValidationError), match="16-128 characters"):
            RadiusSettings(secret=bad if bad.startswith("portal") else good,
                           api_key=bad if bad.startswith("api") else
                           "api-key-0123456789abcdef").check()


def test_a_lease_or_port_mac_with_a_newline_is_not_a_mac(tmp_path: Path) -> None:
    from netfate.access.dnsmasq import normalise_mac
    from netfate.agent.ports import read_leases, switch_ports

    assert normalise_mac(" 02:00:00:00:00:01 ") == "02:00:00:00:00:01"
    f = tmp_path / "leases"
    f.write_text("1 02:00:00:00:00:01 10.0.0.2 h *\n1 02:00:00:00:00:02\r 10.0.0.3 h *\n"
                 "1 02:00:00:00:00:03 999.1.1.1 h *\n1 02:00:00:00:00:04 10.0.0.\u0665 h *\n"
                 "1 02:00:00:00:00:05 fe80::1 h *\n")
    # A lease whose address is no IPv4 address is skipped, not handed to the controller.
    assert read_leases(f) == {"02:00:00:00:00:01": "10.0.0.2"}
    ports = switch_ports("cpe", "up0", {
        "sta1": {"attached-mac": "02:00:00:00:00:05\n"},
        "sta2": {"attached-mac": "02:00:00:00:00:06"}}, {})
    assert list(ports.stations) == ["02:00:00:00:00:06"]


def test_the_troubleshooter_refuses_ids_and_filters_with_a_newline() -> None:
    from tests.unit.catalogue_nf import load

    tslib = load("troubleshooter", "tslib")
    assert tslib.ID_RE.fullmatch("r1") and not tslib.ID_RE.fullmatch("r1\n")
    assert tslib.FILTER_RE.fullmatch("tcp port 80")
    assert not tslib.FILTER_RE.fullmatch("tcp port 80\n")


def test_a_bundle_content_path_with_a_newline_gets_no_key_access() -> None:
    from netfate.orchestrator.api import auth
    path = "/api/v1/vnf_packages/" + "a" * 64 + "/content"
    assert auth._CONTENT.fullmatch(path) and not auth._CONTENT.fullmatch(path + "\n")
