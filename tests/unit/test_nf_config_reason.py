"""The reason a check-config script gives is shown to the caller (422): its last stderr
line, bounded, with no control characters (a script's 500 NULs reached the detail: probe
of 2026-12-05)."""

from __future__ import annotations

from netfate.orchestrator.nf_config_check import _last_line


def test_the_reason_is_the_last_line_without_control_characters() -> None:
    err = b"starting\n" + b"\x00" * 500 + b"error: [fw/check-config] bad\x1b[31m port\x7f\n"
    assert _last_line(err) == "bad[31m port"


def test_the_reason_is_bounded_and_may_be_empty() -> None:
    assert len(_last_line(b"x" * 10_000)) == 500
    assert _last_line(b"\x00\x01\n\n") == ""
