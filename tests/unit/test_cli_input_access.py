"""`netfate access serve | cleanup` refuse bad input with one line naming it, before root or
anything else is needed (tester's report, bugs 1 and 3): a state dir that is a file or a
fifo (NotADirectoryError traceback; never block), an MTU out of the testbed's range
((22, 'Invalid argument') from pyroute2 later), an empty path."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from netfate.access.services import STATE_FILES, check_state_dir
from netfate.cli import access
from netfate.cli.main import app
from netfate.errors import InvalidInput


@pytest.fixture(autouse=True)
def _not_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As a user: a check that came after need_root() would exit 2 "needs root" here,
    never touch namespaces (the tests run as root in some CI jobs)."""
    monkeypatch.setenv("NETFATE_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)


def _invoke(argv: list[str], timeout: float = 20.0) -> Result:
    """The command in a thread: a fifo it opened would block it, and fail the test here."""
    out: list[Result] = []
    t = threading.Thread(target=lambda: out.append(CliRunner().invoke(app, argv)),
                         daemon=True)
    t.start()
    t.join(timeout)
    assert out, f"{argv} blocked"
    return out[0]


def _one_line(r: Result, code: int, words: str) -> None:
    assert r.exit_code == code, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output and "needs root" not in r.output, r.output
    assert words in " ".join(r.output.replace("│", " ").split()), r.output  # rich's box


@pytest.fixture
def odd_paths(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "plainfile").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir-with-fifo").mkdir()
    os.mkfifo(tmp_path / "dir-with-fifo" / "dnsmasq.pid")
    return {"plainfile": tmp_path / "plainfile", "fifo": tmp_path / "fifo",
            "under-a-file": tmp_path / "plainfile" / "sub",
            "dir-with-fifo": tmp_path / "dir-with-fifo"}


CLEANUP = ["access", "cleanup", "--node", "cpe9", "--state-dir"]
SERVE = ["access", "serve", "--node", "cpe9", "--index", "0", "--state-dir"]


@pytest.mark.parametrize("command", [CLEANUP, SERVE])
@pytest.mark.parametrize(("kind", "words"), [
    ("plainfile", "plainfile is not a directory"),
    ("fifo", "fifo is not a directory"),
    ("under-a-file", "plainfile/sub: Not a directory"),
    ("dir-with-fifo", "dir-with-fifo/dnsmasq.pid in the state dir is not a regular file"),
])
def test_a_state_dir_that_is_not_one_is_named_in_one_line(
        command: list[str], kind: str, words: str, odd_paths: dict[str, Path]) -> None:
    _one_line(_invoke([*command, str(odd_paths[kind])]), 1, words)


@pytest.mark.parametrize("command", [CLEANUP, SERVE,
                                     ["access", "serve", "--node", "cpe9", "--index", "0",
                                      "--radius-state-dir"]])
@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_path_is_not_the_current_directory(command: list[str], blank: str) -> None:
    _one_line(_invoke([*command, blank]), 2, "the path is empty")


@pytest.mark.parametrize(("mtu", "words"), [
    ("70000", "70000 is not in 1280-9000"),
    ("-5", "-5 is not in 1280-9000"),
    ("0", "0 is not in 1280-9000"),
    ("1279", "1279 is not in 1280-9000"),
    ("9001", "9001 is not in 1280-9000"),
    ("٩٠٠٠", "is not a number written in digits 0-9"),
    ("1500.0", "is not a number written in digits 0-9"),
    ("9" * 5000, "(5000 characters) is not a number"),
])
def test_the_mtu_is_range_checked_up_front(mtu: str, words: str) -> None:
    r = _invoke(["access", "serve", "--node", "cpe9", "--index", "0", "--mtu", mtu])
    _one_line(r, 2, words)
    assert "--mtu" in r.output and len(r.output) < 2000


def test_the_mtu_bounds_are_the_testbed_topologys() -> None:
    """serve's --mtu comes from the topology (testbed.lifecycle passes topo.mtu): the same
    bounds, so every topology's MTU is taken and nothing else is."""
    from annotated_types import Ge, Le

    from netfate.testbed.topology import Topology

    meta = Topology.model_fields["mtu"].metadata
    assert [m.ge for m in meta if isinstance(m, Ge)] == [access.MTU_MIN]
    assert [m.le for m in meta if isinstance(m, Le)] == [access.MTU_MAX]


@pytest.mark.parametrize(("option", "value", "words"), [
    ("--index", "-1", "-1 is not in 0-65535"),
    ("--prefixlen", "31", "31 is not in 1-30"),
    ("--portal-port", "70000", "70000 is not in 1-65535"),
])
def test_other_numbers_are_range_checked(option: str, value: str, words: str) -> None:
    _one_line(_invoke(["access", "serve", "--node", "cpe9", option, value]), 2, words)


def test_check_state_dir(odd_paths: dict[str, Path], tmp_path: Path) -> None:
    check_state_dir(tmp_path / "absent" / "dir")  # made when needed
    good = tmp_path / "good"
    good.mkdir()
    for name in STATE_FILES:
        (good / name).write_text("")
    check_state_dir(good)
    for kind in ("plainfile", "fifo", "under-a-file", "dir-with-fifo"):
        with pytest.raises(InvalidInput, match=str(odd_paths[kind])):
            check_state_dir(odd_paths[kind])


def test_cleanup_refuses_before_anything_is_done(odd_paths: dict[str, Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The library's cleanup too (not only the CLI's check): no dnsmasq ended, no
    namespace removed, for a state dir that is not one."""
    from netfate.access import services

    def never(*_a: object) -> tuple[bool, bool]:
        raise AssertionError("the namespace was removed")

    monkeypatch.setattr(services, "_remove_net", never)
    with pytest.raises(InvalidInput, match="is not a directory"):
        services.cleanup("cpe9", odd_paths["plainfile"])
