"""What an NF can write, it cannot turn against the driver or another NF:

- a container NF gets only its own notification queue and cache (per-NF directories bound
  at /nf/notify and /nf/cache), and a notification in its queue is always in its own name;
- a lifecycle script's output (and export-state's document, runc's log) is read without
  following a link, only from a regular file, bounded: a planted symlink to a host file,
  a FIFO or a huge file is refused, never read (drivers/nf_files.py).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from netfate.drivers import nf_files
from netfate.drivers.container import ContainerCompute
from netfate.drivers.nf_script import run_script
from netfate.drivers.nf_state import export_state, import_state
from netfate.errors import ConfigRefused, DriverError, http_status
from netfate.interfaces import NFInfo, NFState
from netfate.queue import NotificationQueue

SECRET = "host secret: root's password hash\n"


def _info(iid: str = "cpe1-u1-fw") -> NFInfo:
    return NFInfo(instance_id=iid, node="cpe1", owner="u1", name="fw", flavour="container",
                  bundle_sha256="0" * 64, state=NFState.RUNNING, ports=[])


@pytest.fixture
def host_secret(tmp_path: Path) -> Path:
    f = tmp_path / "host" / "shadow"
    f.parent.mkdir()
    f.write_text(SECRET)
    return f


# -- per-NF queue and cache ----------------------------------------------------------------

def _container(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ContainerCompute:
    c = ContainerCompute("cpe1", tmp_path / "run", store=None)  # type: ignore[arg-type]
    monkeypatch.setattr(c, "image_for", lambda _b: "img")
    monkeypatch.setattr(c.images, "rootfs", lambda _t: tmp_path / "rootfs")
    monkeypatch.setattr(c.images, "config", lambda _t: {"config": {"Cmd": ["/bin/sleep"]}})
    monkeypatch.setattr(c.images, "resolve", lambda _t: SimpleNamespace(digest="sha256:0"))
    monkeypatch.setattr(c.runc, "run", lambda *_a: None)
    return c


def _bundle(tmp_path: Path) -> Any:
    desc = SimpleNamespace(name="fw", version="1", linux_capabilities=(), sysctls={},
                           node_files=(), capabilities=[],
                           resources=SimpleNamespace(memory_mb=16, cpu_percent=50))
    return SimpleNamespace(descriptor=desc, root=tmp_path / "bundle", sha256="a" * 64)


def test_each_container_is_bound_only_its_own_queue_and_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = _container(tmp_path, monkeypatch)
    binds: dict[str, dict[str, str]] = {}
    for iid in ("cpe1-u1-fw", "cpe1-u2-fw"):
        c._idir(iid).mkdir(parents=True)
        c._provision(_info(iid), _bundle(tmp_path), [])
        cfg = json.loads((c._cdir(iid) / "config.json").read_text())
        binds[iid] = {m["destination"]: m["source"] for m in cfg["mounts"]}
    a, b = binds["cpe1-u1-fw"], binds["cpe1-u2-fw"]
    for dest in ("/nf/notify", "/nf/cache"):
        assert a[dest] != b[dest]
        # neither the node's queue (every NF's notes) nor the bundle's shared cache
        assert Path(a[dest]) not in (c.queue.root, c._cache_dir(_bundle(tmp_path)))
        assert c._cache_dir(_bundle(tmp_path)) not in Path(a[dest]).parents
        assert Path(a[dest]).name == "cpe1-u1-fw" and Path(b[dest]).name == "cpe1-u2-fw"
    # Nothing of the node's own queue (new/, tmp/, other NFs' queues) is under a bind.
    assert not (Path(a["/nf/notify"]) / "nf").exists()
    # Teardown forwards what is still queued and removes the NF's directories.
    NotificationQueue(Path(a["/nf/notify"])).post({"type": "late", "nf_id": "cpe1-u2-fw"})
    monkeypatch.setattr(c.runc, "delete", lambda _cid: None)
    c._teardown(_info("cpe1-u1-fw"))
    assert not Path(a["/nf/notify"]).exists() and not Path(a["/nf/cache"]).exists()
    assert [(n["type"], n["nf_id"]) for n in c.queue.drain()] == [("late", "cpe1-u1-fw")]


def test_a_notification_in_an_nfs_queue_is_in_its_own_name(tmp_path: Path) -> None:
    q = NotificationQueue(tmp_path / "queue")
    q.post({"type": "node-note", "nf_id": None})
    q.for_nf("cpe1-u1-fw").post({"type": "alarm", "nf_id": "cpe1-u2-fw"})  # a spoof
    (q.root / "nf" / "cpe1-u3-fw").symlink_to(tmp_path)  # not a queue: skipped
    notes = q.drain()
    assert [(n["type"], n["nf_id"]) for n in notes] == [("node-note", None),
                                                        ("alarm", "cpe1-u1-fw")]
    for bad in ("", ".", "..", "a/b", "a\x00"):
        with pytest.raises(ValueError):
            q.for_nf(bad)


# -- script output through a planted symlink -----------------------------------------------

def _script(tmp_path: Path, body: str) -> Any:
    script = tmp_path / "scripts" / "start"
    script.parent.mkdir(exist_ok=True)
    script.write_text("#!/bin/bash\n" + body)
    script.chmod(0o755)
    return SimpleNamespace(script=lambda action: script if action == "start" else None)


def _nf_dir(tmp_path: Path) -> Path:
    d = tmp_path / "nfs" / "cpe1-u1-fw"
    (d / "run").mkdir(parents=True)
    return d


@pytest.mark.parametrize("plant", [
    'ln -sf "$SECRET" "$PWD/run/.start.out"',             # the output file itself
    'mv run run.old && ln -s "$(dirname "$SECRET")" run && cp "$SECRET" run.old/x'
    ' && ln -sf "$SECRET" run.old/.start.out',            # the directory on the way
    'rm run/.start.out && mkfifo run/.start.out',          # a read that would block
    'ln -f "$SECRET" run/.start.out 2>/dev/null || ln -sf "$SECRET" run/.start.out',
    'head -c 2000000 /dev/zero > run/.start.out.big && mv run/.start.out.big run/.start.out',
])
def test_native_script_output_is_not_read_through_what_the_nf_planted(
        tmp_path: Path, host_secret: Path, plant: str) -> None:
    d = _nf_dir(tmp_path)
    bundle = _script(tmp_path, f"echo ok\n{plant}\n")
    env = {"PATH": os.environ["PATH"], "SECRET": str(host_secret), "NF_CGROUP_PROCS": ""}
    with pytest.raises(DriverError, match="output") as e:
        run_script(_info(), bundle, "start", env, d, timeout=10)
    assert SECRET.strip() not in str(e.value)
    assert host_secret.read_text() == SECRET  # not deleted, not written
    assert not (d / "run" / ".start.out").exists() or (d / "run").is_symlink()


def test_native_script_output_is_read_when_it_is_the_nfs_own(tmp_path: Path) -> None:
    d = _nf_dir(tmp_path)
    bundle = _script(tmp_path, "echo hello; echo oops >&2\n")
    env = {"PATH": os.environ["PATH"], "NF_CGROUP_PROCS": ""}
    assert run_script(_info(), bundle, "start", env, d, timeout=10) == "hello\n"
    assert sorted(os.listdir(d / "run")) == []
    # A file planted before the run is replaced, not written through.
    (d / "run" / ".start.out").symlink_to(tmp_path / "elsewhere")
    assert run_script(_info(), bundle, "start", env, d, timeout=10) == "hello\n"
    assert not (tmp_path / "elsewhere").exists()


def test_container_script_output_through_a_symlink_is_refused(
        tmp_path: Path, host_secret: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = _container(tmp_path, monkeypatch)
    d = c._idir("cpe1-u1-fw")
    (d / "run").mkdir(parents=True)

    def runc_exec(argv: list[str], **_kw: Any) -> subprocess.CompletedProcess[bytes]:
        # What the container's script did: its output replaced by a link to a host file.
        (d / "run" / ".start.out").symlink_to(host_secret)
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    monkeypatch.setattr("netfate.drivers.container.subprocess.run", runc_exec)
    bundle = SimpleNamespace(script=lambda a: Path("/x"), sha256="a" * 64,
                             descriptor=SimpleNamespace(name="fw"))
    monkeypatch.setattr("netfate.drivers.container.script_env", lambda *a, **k: {})
    with pytest.raises(DriverError, match="output") as e:
        c._run_script(_info(), bundle, "start")
    assert SECRET.strip() not in str(e.value) and host_secret.read_text() == SECRET
    assert not (d / "run" / ".start.out").exists() and not (d / "run" / ".start.out").is_symlink()


def test_export_state_through_a_symlink_is_refused(tmp_path: Path, host_secret: Path) -> None:
    d = _nf_dir(tmp_path)
    bundle = SimpleNamespace(descriptor=SimpleNamespace(state=SimpleNamespace(exportable=True)))
    host_secret.write_text('{"format": "netfate-state/1", "secret": 1}')

    def run(action: str, extra: dict[str, str]) -> str:
        Path(extra["NF_EXPORT_FILE"]).symlink_to(host_secret)
        return ""

    with pytest.raises(DriverError, match="export-state"):
        export_state(_info(), bundle, d, run)  # type: ignore[arg-type]
    assert host_secret.exists()


def test_nf_files_refuse_links_fifos_and_size(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "ok").write_bytes(b"x" * 10)
    assert nf_files.read(tmp_path, "run/ok", limit=10) == b"x" * 10
    assert nf_files.read(tmp_path, "run/ok", limit=4, tail=True) == b"xxxx"
    assert nf_files.read(tmp_path, "run/none", limit=10) is None
    with pytest.raises(nf_files.UnsafeFile):
        nf_files.read(tmp_path, "run/ok", limit=9)
    os.mkfifo(tmp_path / "run" / "fifo")
    with pytest.raises(nf_files.UnsafeFile):
        nf_files.read(tmp_path, "run/fifo", limit=10)
    (tmp_path / "run" / "link").symlink_to(tmp_path / "run" / "ok")
    with pytest.raises(nf_files.UnsafeFile):
        nf_files.read(tmp_path, "run/link", limit=10)
    for rel in ("../x", "run/../ok", "/etc/passwd", ""):
        with pytest.raises(ValueError):
            nf_files.read(tmp_path, rel, limit=10)
    fd = nf_files.create(tmp_path, "run/link")  # the link goes, a new file comes
    os.close(fd)
    assert not (tmp_path / "run" / "link").is_symlink()
    assert (tmp_path / "run" / "ok").read_bytes() == b"x" * 10


def test_import_state_is_not_written_through_a_symlink(tmp_path: Path, host_secret: Path) -> None:
    d = _nf_dir(tmp_path)
    (d / "run" / "import.json").symlink_to(host_secret)  # planted by the NF
    desc = SimpleNamespace(name="fw", state=SimpleNamespace(exportable=True))
    seen: list[str] = []

    def run(action: str, extra: dict[str, str]) -> str:
        seen.append(Path(extra["NF_IMPORT_FILE"]).read_text())
        return ""

    import_state(_info(), SimpleNamespace(descriptor=desc), d,  # type: ignore[arg-type]
                 {"format": "netfate-state/1", "nf": "fw"}, run)
    assert host_secret.read_text() == SECRET and json.loads(seen[0])["nf"] == "fw"
    assert not (d / "run" / "import.json").exists()


# -- the NF's record, beside its directory ------------------------------------------------

def _records(tmp_path: Path) -> Any:
    from netfate.drivers.nf_records import InstanceRecords
    from netfate.interfaces import NFPort
    from netfate.naming import nf_netns, nf_port

    recs = InstanceRecords("cpe1", tmp_path / "nfs", "container")
    iid = "cpe1-u1-fw"
    recs.dir(iid).mkdir(parents=True)
    info = _info(iid)
    info.netns = nf_netns("cpe1", "u1", "fw")
    info.ports = [NFPort("lan", nf_port(iid, "lan"))]
    recs.save(info)
    return recs, info


@pytest.mark.parametrize(("field", "value"), [
    ("netns", "../../proc/1/ns/net"),      # the driver would enter the host's namespace
    ("netns", "fate-cpe1-u2-fw"),          # another NF's
    ("ports", [{"name": "lan", "host_if": "eth0"}]),  # a host interface to delete
    ("owner", "u2"), ("instance_id", "cpe1-u2-fw"), ("bundle_sha256", "../x"),
])
def test_a_record_rewritten_by_its_nf_is_not_acted_on(
        tmp_path: Path, field: str, value: Any) -> None:
    from netfate.errors import NotFound

    recs, info = _records(tmp_path)
    assert recs.load(info.instance_id) == info
    f = recs.records_dir / f"{info.instance_id}.json"  # defence in depth: no NF can write it
    doc = json.loads(f.read_text())
    doc[field] = value
    f.write_text(json.dumps(doc))
    with pytest.raises(NotFound, match="not its own"):
        recs.load(info.instance_id)
    assert recs.all() == []


def test_a_record_is_neither_read_nor_written_through_a_symlink(
        tmp_path: Path, host_secret: Path) -> None:
    from netfate.errors import NotFound

    recs, info = _records(tmp_path)
    d = recs.records_dir
    tmp = f".{info.instance_id}.json.tmp"
    (d / tmp).symlink_to(host_secret)  # planted before the next save
    recs.save(info)
    assert host_secret.read_text() == SECRET and recs.load(info.instance_id) == info
    (d / f"{info.instance_id}.json").unlink()
    (d / f"{info.instance_id}.json").symlink_to(host_secret)
    with pytest.raises(NotFound):
        recs.load(info.instance_id)


def test_the_record_is_out_of_the_nfs_reach(tmp_path: Path) -> None:
    """A container has its instance directory at /nf/dir, read-write: a record there could
    be rewritten by the NF in fields the identity check cannot judge (its own MACs: claim
    another device's, and have its traffic steered to the NF). The record is beside the
    directory, and what the NF writes in it is never read as one."""
    recs, info = _records(tmp_path)
    info.own_macs = ["02:00:00:00:00:01"]
    recs.save(info)
    d = recs.dir(info.instance_id)
    assert not list(d.glob("*.json*")) and not recs.records_dir.is_relative_to(d)
    forged = {**json.loads((recs.records_dir / f"{info.instance_id}.json").read_text()),
              "own_macs": ["02:aa:bb:cc:dd:ee"]}
    (d / "instance.json").write_text(json.dumps(forged))  # what an NF could do
    assert recs.load(info.instance_id).own_macs == ["02:00:00:00:00:01"]
    recs.forget(info.instance_id)
    assert not recs.has(info.instance_id) and recs.all() == []


def test_a_record_without_its_directory_or_with_a_path_for_id_is_not_found(
        tmp_path: Path) -> None:
    from netfate.errors import NotFound

    recs, info = _records(tmp_path)
    for bad in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(NotFound):
            recs.load(bad)
    import shutil

    shutil.rmtree(recs.dir(info.instance_id))  # a record left by a crash mid-delete
    with pytest.raises(NotFound):
        recs.load(info.instance_id)
    assert recs.all() == []


def test_nf_files_append_refuses_a_hard_link(tmp_path: Path, host_secret: Path) -> None:
    """`append` (a container's log) checked for a symlink and a FIFO but not for a hard
    link: an NF that linked its log name to a host file had the driver append to that file
    (`read` refuses a file with more than one link; `append` now too). A directory in the
    name's place is UnsafeFile too, not a bare OSError."""
    (tmp_path / "run").mkdir()
    before = host_secret.read_bytes()
    os.link(host_secret, tmp_path / "run" / "log")
    with pytest.raises(nf_files.UnsafeFile):
        nf_files.append(tmp_path, "run/log")
    assert host_secret.read_bytes() == before
    (tmp_path / "run" / "dir").mkdir()
    (tmp_path / "run" / "dir" / "x").write_text("x")
    with pytest.raises(nf_files.UnsafeFile):
        nf_files.append(tmp_path, "run/dir")


def test_nf_files_create_over_a_directory_is_unsafe_not_a_bare_oserror(tmp_path: Path) -> None:
    (tmp_path / "run" / "x").mkdir(parents=True)
    (tmp_path / "run" / "x" / "f").write_text("the NF's")
    with pytest.raises(nf_files.UnsafeFile, match="run/x"):
        nf_files.create(tmp_path, "run/x")
    assert (tmp_path / "run" / "x" / "f").read_text() == "the NF's"


# -- a script's exit status: the configuration's fault or the node's -----------------------

def test_a_script_exiting_ex_config_refuses_the_configuration(tmp_path: Path) -> None:
    """Exit 78 (EX_CONFIG, sysexits.h) is the NF refusing its configuration: ConfigRefused,
    a 422 the orchestrator records as the user's fault, with the NF's reason."""
    d = _nf_dir(tmp_path)
    bundle = _script(tmp_path, "echo 'error: [vpn/start] psk_file /x: cannot read it' >&2\n"
                               "exit 78\n")
    env = {"PATH": os.environ["PATH"], "NF_CGROUP_PROCS": ""}
    with pytest.raises(ConfigRefused, match=r"refused its configuration.*psk_file /x") as e:
        run_script(_info(), bundle, "start", env, d, timeout=10)
    assert isinstance(e.value, DriverError) and http_status(e.value) == 422


@pytest.mark.parametrize("code", [1, 2, 77, 79, 127])
def test_a_script_exiting_otherwise_is_a_failure_of_the_node(tmp_path: Path, code: int) -> None:
    d = _nf_dir(tmp_path)
    bundle = _script(tmp_path, f"echo broken >&2; exit {code}\n")
    env = {"PATH": os.environ["PATH"], "NF_CGROUP_PROCS": ""}
    with pytest.raises(DriverError, match=f"failed \\(exit {code}\\): broken") as e:
        run_script(_info(), bundle, "start", env, d, timeout=10)
    assert not isinstance(e.value, ConfigRefused) and http_status(e.value) == 500
