"""What ovs-vswitchd logged goes into the errors of a change it did not apply."""

from __future__ import annotations

from pathlib import Path

from netfate.drivers.ovs import OvsNetwork, OvsServer


def test_the_last_warnings_and_errors_of_vswitchd_are_named(tmp_path: Path) -> None:
    net = OvsNetwork(OvsServer(tmp_path))
    assert net._vswitchd_complaints().startswith("unknown (no ")
    lines = [f"2026-12-02T01:00:{i:02d}Z|{i:05d}|bridge|INFO|added port p{i}" for i in range(9)]
    lines += ["2026-12-02T01:01:00Z|00010|timeval|WARN|Unreasonably long 12040ms poll interval",
              "2026-12-02T01:01:01Z|00011|dpif_netdev|ERR|ovs-netdev: could not create: busy"]
    (tmp_path / "ovs-vswitchd.log").write_text("\n".join(lines) + "\n")
    said = net._vswitchd_complaints()
    assert said.startswith("ovs-vswitchd logged: ")
    assert "Unreasonably long 12040ms" in said and "could not create" in said
    assert "added port" not in said
    (tmp_path / "ovs-vswitchd.log").write_text("\n".join(lines[:3]) + "\n")
    assert net._vswitchd_complaints() == "unknown (ovs-vswitchd logged no warning)"
