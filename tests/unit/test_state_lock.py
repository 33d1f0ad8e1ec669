"""One orchestrator per state directory (orchestrator/state_lock.py), and the orchestrator
command's bad input ending in one line naming it, before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netfate.cli.main import app
from netfate.errors import Conflict, InvalidInput
from netfate.orchestrator import state_lock

HOLDER = """
import sys, time
from pathlib import Path
from netfate.orchestrator import state_lock
state_lock.hold(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_process_is_refused_with_the_holders_pid_until_it_dies(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(state)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(Conflict, match=rf"another orchestrator \(PID {holder.pid}\)"):
            state_lock.hold(state)
        with pytest.raises(Conflict, match=str(state)):
            state_lock.probe(state)
    finally:
        holder.kill()  # SIGKILL: the kernel lets the lock go all the same
        holder.wait(10)
    held = state_lock.hold(state)
    try:
        assert (state / state_lock.LOCK_NAME).read_text().strip() == str(os.getpid())
    finally:
        held.release()


def test_this_process_cannot_hold_it_twice_and_can_again_after_release(
        tmp_path: Path) -> None:
    held = state_lock.hold(tmp_path)
    try:
        with pytest.raises(Conflict, match="this process already runs an orchestrator"):
            state_lock.hold(tmp_path)
    finally:
        held.release()
    state_lock.probe(tmp_path)
    again = state_lock.hold(tmp_path)
    held.release()  # (review, 2026-12-05) a released handle lets go of nothing more
    with pytest.raises(Conflict, match="this process already runs an orchestrator"):
        state_lock.hold(tmp_path)
    again.release()
    again.release()  # not held: nothing
    state_lock.probe(tmp_path)


def test_a_directory_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("")
    with pytest.raises(InvalidInput, match=rf"state directory {afile}/sub"):
        state_lock.hold(afile / "sub")


@pytest.mark.parametrize(("args", "words"), [
    (["--policy", "bogus"], "no policy named 'bogus'"),
    (["--resolver", "bogus"], "no resolver rule named 'bogus'"),
    (["--db-url", "bogus://x"], "database URL"),
    (["--db-url", "::::"], "database URL"),
    (["--state-dir", "/proc/1/nope"], "state directory /proc/1/nope"),
])
def test_orchestrator_bad_input_is_one_line_and_starts_nothing(
        tmp_path: Path, args: list[str], words: str) -> None:
    if "--state-dir" not in args:
        args = [*args, "--state-dir", str(tmp_path / "s")]
    t = time.monotonic()
    r = CliRunner().invoke(app, ["orchestrator", "--port", "1", *args])
    assert r.exit_code == 1, r.output
    assert words in r.output, r.output
    assert "Traceback" not in r.output
    assert time.monotonic() - t < 20
    assert not (tmp_path / "s" / "nats").exists()


def test_orchestrator_on_a_held_state_dir_is_refused(tmp_path: Path) -> None:
    held = state_lock.hold(tmp_path)
    try:
        r = CliRunner().invoke(app, ["orchestrator", "--port", "1",
                                     "--state-dir", str(tmp_path)])
    finally:
        held.release()
    assert r.exit_code == 1, r.output
    assert "already runs an orchestrator" in r.output and str(tmp_path) in r.output
    assert not (tmp_path / "nats").exists()
