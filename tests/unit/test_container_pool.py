"""The container pool's bookkeeping (drivers/container_pool.py) without runc: entries are
handed out once, refilled, destroyed on close; adoption renames runc's state and the cgroup
v1 directories (v2's membership stays) and rewrites the state to match; leftovers are only
those of ended processes."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from netfate.drivers import container_pool as cp
from netfate.drivers.nf_pool import Entry
from netfate.errors import DriverError


def _pool(tmp_path: Path, size: int) -> tuple[cp.ContainerPool, list[str], list[str]]:
    made: list[str] = []
    gone: list[str] = []
    lock = threading.Lock()

    def make(name: str) -> cp.Pooled:
        with lock:
            made.append(name)
        return cp.Pooled(name, Entry(name, ()), tmp_path / name)

    return cp.ContainerPool("n1", size, make, lambda p: gone.append(p.name)), made, gone


def test_entries_are_handed_out_once_and_the_rest_destroyed_on_close(tmp_path: Path) -> None:
    pool, made, gone = _pool(tmp_path, 2)
    pool.fill()
    assert len(pool) == 2
    first = pool.take()
    assert first is not None and first.name.startswith(cp.prefix("n1"))
    pool.fill()
    taken = {first.name}
    second = pool.take()
    assert second is not None and second.name not in taken
    pool.close()
    assert len(made) == len(set(made)), "every entry is made fresh"
    assert not set(gone) & {first.name, second.name}, "a taken entry is never destroyed"
    assert set(gone) == set(made) - {first.name, second.name}
    assert pool.take() is None


def test_a_pool_of_size_zero_makes_nothing(tmp_path: Path) -> None:
    pool, made, _ = _pool(tmp_path, 0)
    pool.fill()
    assert pool.take() is None and made == []


def _runc_state(tmp_path: Path, name: str) -> tuple[Path, dict[str, Path]]:
    """A fake runc root with container `name` and its cgroup dirs in three hierarchies."""
    root = tmp_path / "runc"
    (root / name).mkdir(parents=True)
    cgs = {k: tmp_path / "cg" / h / "fate-nfs" / name.removeprefix("fate-")
           for k, h in (("memory", "memory"), ("freezer", "freezer"), ("", "unified"))}
    for d in cgs.values():
        d.mkdir(parents=True)
    state = {"id": name, "init_process_pid": os.getpid(),
             "cgroup_paths": {k: str(v) for k, v in cgs.items()},
             "config": {"cgroups": {"path": f"/fate-nfs/{name.removeprefix('fate-')}"},
                        "labels": ["bundle=/old/bundle", "other=1"],
                        "namespaces": [{"type": "NEWNET", "path": "/run/netns/old"},
                                       {"type": "NEWPID", "path": ""}]}}
    (root / name / "state.json").write_text(json.dumps(state))
    return root, cgs


def test_adoption_renames_the_container_and_its_cgroups(tmp_path: Path) -> None:
    name = f"{cp.prefix('n1')}1-1"
    root, cgs = _runc_state(tmp_path, name)
    already = cgs["memory"].with_name("n1-u-fw")
    already.mkdir()  # an empty one the driver made (cgroups.create)
    state = cp.rename_state(root, name, "fate-n1-u-fw", "n1-u-fw", Path("/new/bundle"),
                            "/run/netns/fate-n1-u-fw")
    assert not (root / name).exists()
    saved = json.loads((root / "fate-n1-u-fw" / "state.json").read_text())
    assert saved == state and saved["id"] == "fate-n1-u-fw"
    for key in ("memory", "freezer"):
        new = cgs[key].with_name("n1-u-fw")
        assert saved["cgroup_paths"][key] == str(new) and new.is_dir()
    assert not cgs["memory"].exists() and not cgs["freezer"].exists()
    # v2 (no controllers): the membership stays where runc put it, and runc's state says so
    assert saved["cgroup_paths"][""] == str(cgs[""]) and cgs[""].is_dir()
    assert not cgs[""].with_name("n1-u-fw").exists()
    assert saved["config"]["cgroups"]["path"] == "/fate-nfs/n1-u-fw"
    assert saved["config"]["labels"] == ["bundle=/new/bundle", "other=1"]
    assert saved["config"]["namespaces"][0]["path"] == "/run/netns/fate-n1-u-fw"


def test_adoption_refuses_a_taken_id(tmp_path: Path) -> None:
    name = f"{cp.prefix('n1')}1-1"
    root, _ = _runc_state(tmp_path, name)
    (root / "fate-n1-u-fw").mkdir()
    with pytest.raises(DriverError, match="exists already"):
        cp.rename_state(root, name, "fate-n1-u-fw", "n1-u-fw", Path("/b"), "/run/netns/x")
    assert (root / name / "state.json").exists()


def test_leftovers_are_those_of_ended_processes_and_own_unkept() -> None:
    pre = cp.prefix("n1")
    me = os.getpid()
    names = [f"{pre}{me}-1", f"{pre}{me}-2", f"{pre}999999999-1", f"{pre}1-1",
             "fate-n1-u-fw", f"{cp.prefix('n2')}{me}-1"]
    got = cp.leftovers("n1", names, keep={f"{pre}{me}-1"})
    assert f"{pre}{me}-2" in got and f"{pre}999999999-1" in got
    assert f"{pre}{me}-1" not in got and "fate-n1-u-fw" not in got
    assert f"{cp.prefix('n2')}{me}-1" not in got
    assert f"{pre}1-1" not in got  # PID 1 runs: another live process's pool
