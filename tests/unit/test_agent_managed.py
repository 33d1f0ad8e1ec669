"""Which NFs the agent may remove: only those it deployed for the orchestrator."""

from __future__ import annotations

from pathlib import Path

from netfate.agent.managed import ManagedNFs


def test_first_start_adopts_what_is_there_then_remembers(tmp_path: Path) -> None:
    f = tmp_path / "n" / "agent-nfs.json"
    m = ManagedNFs(f, ["old-1"])
    assert "old-1" in m and "bench-1" not in m
    m.add("cpe1-user1-firewall")
    again = ManagedNFs(f, ["old-1", "bench-1", "cpe1-user1-firewall"])  # a restart
    assert "cpe1-user1-firewall" in again and "bench-1" not in again
    again.discard("old-1")
    assert "old-1" not in ManagedNFs(f, [])
