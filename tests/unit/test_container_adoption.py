"""A pre-made container's adoption (drivers/container_pooling.py) runs beside the rest of
create, and still: its process starts only once the NF's own files are where its /nf/dir
is bound, create returns only once it runs, and a create that fails leaves nothing of the
NF behind and never starts it. Without runc or root: runc and the cgroup move are fakes
that record what they were asked, when."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from netfate.drivers import container_pool as cpool
from netfate.drivers import container_pooling, nf_pool
from netfate.drivers.container import ContainerCompute
from netfate.errors import DriverError
from netfate.interfaces import NFInfo, NFPort, NFState

IID = "cpe1-u1-fw"


def _info() -> NFInfo:
    return NFInfo(instance_id=IID, node="cpe1", owner="u1", name="fw", flavour="container",
                  bundle_sha256="a" * 64, state=NFState.CREATED,
                  ports=[NFPort("lan", "fate-x0"), NFPort("wan", "fate-x1")],
                  netns="fate-cpe1-u1-fw")


def _pooled(c: ContainerCompute) -> cpool.Pooled:
    p = cpool.Pooled("fate-cwarm-cpe1-1-1", nf_pool.Entry("fate-cwarm-cpe1-1-1", ()),
                     c.dir / "cpool" / "fate-cwarm-cpe1-1-1", "img", "sha256:0")
    for sub in ("dir/state", "dir/run", "notify", "cache", "bundle"):
        (p.home / sub).mkdir(parents=True)
    (p.bundle / "config.json").write_text(json.dumps({
        "hostname": "nf", "mounts": [], "linux": {"cgroupsPath": "/x", "namespaces": []}}))
    return p


@pytest.fixture
def drv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ContainerCompute, list[Any]]:
    """A container driver whose pool hands out one pre-made container; `events` records
    each step as (what, whether config.json was at the container's /nf/dir then)."""
    c = ContainerCompute("cpe1", tmp_path / "run", store=None)  # type: ignore[arg-type]
    pooled = _pooled(c)
    events: list[Any] = []
    pool = SimpleNamespace(take=lambda: pooled)
    monkeypatch.setattr(c, "container_pool", lambda _b, _p: pool)

    def rename_state(*_a: Any) -> None:
        time.sleep(0.05)  # the cgroup move's wait for the kernel
        events.append(("renamed", None))
    monkeypatch.setattr(cpool, "rename_state", rename_state)
    monkeypatch.setattr(c.runc, "start", lambda _cid: events.append(
        ("started", (c._idir(IID) / "config.json").is_file())))
    monkeypatch.setattr(c, "_discard", lambda p, iid=None: events.append(("discarded", iid)))
    d = c._idir(IID)
    (d / "state").mkdir(parents=True)
    (d / "run").mkdir()
    (d / "config.json").write_text("{}")
    return c, events


def _bundle() -> Any:
    return SimpleNamespace(descriptor=SimpleNamespace(node_files=()))


def test_the_pooled_container_starts_after_its_files_and_before_create_returns(
    drv: tuple[ContainerCompute, list[Any]]
) -> None:
    c, events = drv
    undo: list[Any] = []
    entry = c._take_entry(_info(), _bundle(), undo)
    assert entry is not None
    assert events == [], "the adoption goes on beside create"
    assert (c._idir(IID) / "config.json").is_file(), "the NF's files are in its directory"
    assert (c.queue.root / "nf" / IID).is_dir() and (c.dir / "nf-cache" / IID).is_dir()
    c._created(_info())
    assert events == [("renamed", None), ("started", True)]
    spec = json.loads((c._cdir(IID) / "config.json").read_text())
    assert spec["hostname"] == IID and spec["linux"]["cgroupsPath"].endswith("/" + IID)


def test_a_failed_create_never_starts_the_pooled_container(
    drv: tuple[ContainerCompute, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, events = drv

    def broken(*_a: Any) -> None:
        raise OSError("no space left")
    monkeypatch.setattr(c, "_adopt_dirs", broken)
    undo: list[Any] = []
    with pytest.raises(OSError):
        c._take_entry(_info(), _bundle(), undo)
    for step in reversed(undo):  # what create does on a failure
        step()
    assert ("started", True) not in events and ("started", False) not in events
    assert events[-1] == ("discarded", IID)
    assert IID not in c._adopting


def test_an_adoption_that_fails_fails_the_create(
    drv: tuple[ContainerCompute, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, events = drv

    def refused(*_a: Any) -> None:
        raise DriverError("cannot move the pooled container to cgroup")
    monkeypatch.setattr(cpool, "rename_state", refused)
    undo: list[Any] = []
    c._take_entry(_info(), _bundle(), undo)
    with pytest.raises(DriverError, match="cannot move"):
        c._created(_info())
    for step in reversed(undo):
        step()
    assert events == [("discarded", IID)]


def test_the_gate_is_decided_once() -> None:
    g = container_pooling.Gate()
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(g.wait(5)))
    t.start()
    g.decide(False)
    g.decide(True)  # too late: the first decision counts
    t.join(5)
    assert got == [False] and not g.wait(0)
    assert not container_pooling.Gate().wait(0.01), "no decision in time: no"


def test_a_container_never_paused_is_not_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = ContainerCompute("cpe1", tmp_path / "run", store=None)  # type: ignore[arg-type]
    asked: list[str] = []
    monkeypatch.setattr(c.runc, "resume", lambda cid: asked.append(cid))
    monkeypatch.setattr(c.runc, "state", lambda cid: pytest.fail("runc state is not needed"))
    c._freeze(IID, False)  # no such container: nothing
    (c.runc.root / f"fate-{IID}").mkdir(parents=True)
    states = iter(["THAWED", "FROZEN", None])
    monkeypatch.setattr(container_pooling.cgroups, "freezer_state", lambda _cg: next(states))
    c._freeze(IID, False)
    assert asked == []
    c._freeze(IID, False)
    c._freeze(IID, False)  # unknown: runc decides
    assert asked == [f"fate-{IID}"] * 2
