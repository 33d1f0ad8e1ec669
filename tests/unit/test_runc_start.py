"""Starting a created container without running runc (drivers/runc.py Runc.start): what
`runc start` does (read the exec fifo until `runc init` has exec'd, remove it), and
everything else left to runc itself. No runc needed: a fake state directory and a thread
playing `runc init`'s part."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from netfate.drivers.runc import EXEC_FIFO, Runc
from netfate.errors import DriverError
from netfate.supervisor.records import start_time

CID = "fate-n1-u-fw"


def _created(tmp_path: Path, pid: int, fifo: bool = True) -> Runc:
    """A runc root holding container CID, created: its init `pid`, its exec fifo."""
    d = tmp_path / "runc" / CID
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps(
        {"id": CID, "init_process_pid": pid, "init_process_start": start_time(pid)}))
    if fifo:
        os.mkfifo(d / EXEC_FIFO, 0o622)
    return Runc(tmp_path / "runc")


def _never_runc(runc: Runc, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    called: list[tuple[str, ...]] = []
    monkeypatch.setattr(runc, "_run", lambda *a, **_k: called.append(a) or "")
    return called


def _init(fifo: Path, data: bytes = b"0", hold: float = 0.0) -> threading.Thread:
    """runc init's part: open the fifo for writing (blocks until a reader comes), write its
    byte, keep it `hold` s (the exec), close."""
    def run() -> None:
        fd = os.open(fifo, os.O_WRONLY)
        if data:
            os.write(fd, data)
        time.sleep(hold)
        os.close(fd)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_a_created_container_starts_through_its_exec_fifo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runc = _created(tmp_path, os.getpid())
    called = _never_runc(runc, monkeypatch)
    init = _init(runc.root / CID / EXEC_FIFO, hold=0.05)
    t0 = time.monotonic()
    runc.start(CID)
    assert time.monotonic() - t0 >= 0.04, "it returns once init's end is closed (its exec)"
    init.join(1)
    assert not (runc.root / CID / EXEC_FIFO).exists(), "runc then sees it running"
    assert called == []


def test_without_an_exec_fifo_runc_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runc = _created(tmp_path, os.getpid(), fifo=False)  # running already, say
    called = _never_runc(runc, monkeypatch)
    runc.start(CID)
    assert called == [("start", CID)]


def test_an_init_that_is_gone_is_left_to_runc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    child = subprocess.Popen(["sleep", "30"])
    runc = _created(tmp_path, child.pid)
    child.kill()
    child.wait()
    called = _never_runc(runc, monkeypatch)
    t0 = time.monotonic()
    runc.start(CID)  # no writer will ever come: it must not hang
    assert time.monotonic() - t0 < 2
    assert called == [("start", CID)]
    assert (runc.root / CID / EXEC_FIFO).exists()


def test_an_init_that_ends_without_its_byte_fails_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runc = _created(tmp_path, os.getpid())
    called = _never_runc(runc, monkeypatch)
    _init(runc.root / CID / EXEC_FIFO, data=b"")
    with pytest.raises(DriverError, match="ended before"):
        runc.start(CID)
    assert called == []


def test_a_symlink_in_the_fifos_place_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runc = _created(tmp_path, os.getpid(), fifo=False)
    os.mkfifo(tmp_path / "elsewhere")
    (runc.root / CID / EXEC_FIFO).symlink_to(tmp_path / "elsewhere")
    called = _never_runc(runc, monkeypatch)
    runc.start(CID)
    assert called == [("start", CID)]
