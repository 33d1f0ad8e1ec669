"""Ports for the servers the project starts come from below the kernel's ephemeral range,
where no outgoing connection can take them before the server binds (netfate.ports)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from netfate import ports


def test_a_port_is_free_and_below_the_ephemeral_range() -> None:
    top = ports.ephemeral_start()
    for _ in range(50):
        p = ports.free_port()
        assert max(1024, top - ports.SPAN) <= p < top
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))  # free indeed


def test_a_taken_port_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        picks = iter([port, port, port + 1 if port < 65535 else port - 1])
        monkeypatch.setattr(ports.random, "randint", lambda a, b: next(picks))
        monkeypatch.setattr(ports, "ephemeral_start", lambda: 65536)
        assert ports.free_port() != port


def test_without_the_kernels_range_the_default_holds(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "RANGE_FILE", tmp_path / "missing")
    assert ports.ephemeral_start() == 32768
    (tmp_path / "bad").write_text("garbage")
    monkeypatch.setattr(ports, "RANGE_FILE", tmp_path / "bad")
    assert ports.ephemeral_start() == 32768
    assert 1024 <= ports.free_port() < 32768
