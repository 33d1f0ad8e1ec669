"""Node files (netfate.drivers.node_files) and their copy into a VM's guest (vm_guest): read
bounded and checked before anything is copied, placed at their own path with mode 0400 by a
fixed program (the paths are its arguments), the staged copies removed when that fails; the
VM driver refuses a VPN whose key file is missing or too big before it makes a VM."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from netfate import catalogue, paths
from netfate.bundle import Bundle, BundleStore
from netfate.drivers import node_files, vm_guest
from netfate.drivers.vm import VmCompute
from netfate.errors import DriverError, InvalidInput
from netfate.interfaces import NFInfo, NFState


def bundle(*keys: str) -> Bundle:
    return cast(Bundle, SimpleNamespace(descriptor=SimpleNamespace(node_files=keys)))


def key_file(d: Path, data: bytes = b"0123456789abcdef0123\n", name: str = "psk") -> str:
    f = d / name
    f.write_bytes(data)
    f.chmod(0o600)
    return str(f)


def test_read_gives_the_named_files_and_skips_unset_keys(tmp_path: Path) -> None:
    path = key_file(tmp_path)
    assert node_files.read(bundle("psk_file"), {"psk_file": path}) == \
        {path: b"0123456789abcdef0123\n"}
    assert node_files.read(bundle("psk_file", "cert_file"), {"psk_file": path}) == \
        {path: b"0123456789abcdef0123\n"}
    assert node_files.read(bundle(), {"psk_file": path}) == {}
    assert node_files.paths(bundle("psk_file"), {"psk_file": path}) == [path]


def test_the_size_is_bounded(tmp_path: Path) -> None:
    at = key_file(tmp_path, b"k" * node_files.MAX_BYTES, "at")
    over = key_file(tmp_path, b"k" * (node_files.MAX_BYTES + 1), "over")
    assert len(node_files.read(bundle("k"), {"k": at})[at]) == node_files.MAX_BYTES
    with pytest.raises(InvalidInput, match=rf"config k: {over} is {node_files.MAX_BYTES + 1} "
                                           rf"bytes; .* at most {node_files.MAX_BYTES} bytes"):
        node_files.read(bundle("k"), {"k": over})
    with pytest.raises(InvalidInput, match="at most 8 bytes"):
        node_files.read(bundle("k"), {"k": at}, limit=8)


def test_a_missing_file_or_one_that_is_no_regular_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=f"config psk_file: {tmp_path}/gone is not a file "
                                           "on the node"):
        node_files.read(bundle("psk_file"), {"psk_file": str(tmp_path / "gone")})
    with pytest.raises(InvalidInput, match="not a file on the node"):
        node_files.paths(bundle("psk_file"), {"psk_file": str(tmp_path / "gone")})
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opened without blocking, then refused: nobody writes to it
    for p in (fifo, tmp_path):
        with pytest.raises(InvalidInput, match="not a regular file"):
            node_files.read(bundle("psk_file"), {"psk_file": str(p)})


@pytest.mark.parametrize("value", ["/etc/hostname", "/run", "/tmp/../etc/shadow",
                                   "relative/psk", 7])
def test_only_an_absolute_path_under_run_or_tmp_is_taken(value: object) -> None:
    with pytest.raises(InvalidInput, match="config psk_file"):
        node_files.read(bundle("psk_file"), {"psk_file": value})


class LocalAgent:
    """A guest agent whose guest is this machine: write_file writes, run runs (so the real
    program that places the files runs); ``fail`` makes the n-th run exit 1."""

    def __init__(self, fail: int = -1) -> None:
        self.runs: list[list[str]] = []
        self.fail = fail
        self.closed = False

    def write_file(self, path: str, data: bytes) -> None:
        Path(path).write_bytes(data)

    def run(self, argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str]:
        self.runs.append(argv)
        if len(self.runs) - 1 == self.fail:
            return 1, "", "mv: no room"
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                           check=False)
        return p.returncode, p.stdout, p.stderr

    def close(self) -> None:
        self.closed = True


def info() -> NFInfo:
    return NFInfo(instance_id="n1-u1-vpn", node="n1", owner="u1", name="vpn", flavour="vm",
                  bundle_sha256="0" * 64, state=NFState.CREATED, ports=[],
                  config={"psk_file": "x"})


def test_the_copy_lands_at_its_path_read_only_and_the_config_after_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stage = tmp_path / "nf"
    stage.mkdir()
    monkeypatch.setattr(vm_guest, "_STAGE", str(stage / ".node-file"))
    monkeypatch.setattr(vm_guest, "G_DIR", str(stage))
    dest = tmp_path / "guest" / "run" / "netfate" / "vpn-scenario" / "psk"
    other = tmp_path / "guest" / "tmp" / "it's a key"  # a path is an argument, never code
    ga = LocalAgent()
    vm_guest.push_config(cast(Any, ga), info(), {str(dest): b"key1\n", str(other): b"key2"})
    assert dest.read_bytes() == b"key1\n" and other.read_bytes() == b"key2"
    assert dest.stat().st_mode & 0o777 == 0o400 and other.stat().st_mode & 0o777 == 0o400
    assert (stage / "config.json").is_file() and ga.closed
    assert ga.runs[0][:2] == ["/bin/sh", "-c"] and ga.runs[0][3:] == \
        [str(stage / ".node-file"), str(dest), str(other)]
    assert not list(stage.glob(".node-file*"))
    # again (an update naming the same file): replaced, still 0400
    vm_guest.push_config(cast(Any, LocalAgent()), info(), {str(dest): b"key3\n"})
    assert dest.read_bytes() == b"key3\n" and dest.stat().st_mode & 0o777 == 0o400


def test_a_failed_copy_says_so_and_leaves_no_staged_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stage = tmp_path / "nf"
    stage.mkdir()
    monkeypatch.setattr(vm_guest, "_STAGE", str(stage / ".node-file"))
    monkeypatch.setattr(vm_guest, "G_DIR", str(stage))
    dest = tmp_path / "run" / "psk"
    ga = LocalAgent(fail=0)
    with pytest.raises(DriverError, match=r"copying the node files .* failed: mv: no room"):
        vm_guest.push_config(cast(Any, ga), info(), {str(dest): b"key\n"})
    assert ga.closed and len(ga.runs) == 2  # the placing, then the removal of what was staged
    assert not dest.exists() and not list(stage.glob(".node-file*"))
    assert not (stage / "config.json").exists()  # the config is not pushed without its files


def test_the_vm_driver_refuses_a_vpn_whose_key_file_is_missing_or_too_big_before_any_vm(
        tmp_path: Path) -> None:
    store = BundleStore(tmp_path / "bundles")
    b = catalogue.install(store, "vpn")
    drv = VmCompute("n1", tmp_path, store)
    drv._caps = set(b.descriptor.capabilities)
    cfg = {"address": "10.90.1.254/16", "gateway": "10.90.0.1", "peer": "10.255.0.2",
           "local_ts": ["10.90.1.0/24"]}
    paths.configure(tmp_path)  # restored by conftest
    mine = Path(node_files.owner_dir("u1"))
    mine.mkdir(parents=True)
    big = key_file(mine, b"k" * (node_files.MAX_BYTES + 1), "big")
    for path, why in ((str(mine / "gone"), "is not a file on the node"),
                      (big, "a node file copied into a VM is at most")):
        with pytest.raises(InvalidInput, match=why):
            drv.create_nf("n1", "u1", "vpn", b.sha256, {**cfg, "psk_file": path})
    assert drv.list_nfs() == []
    assert not drv.vms_dir.exists() or not list(drv.vms_dir.iterdir())


def test_an_nf_names_only_its_owners_node_files(tmp_path: Path) -> None:
    """A user names the file their NF reads: never another tenant's key nor a file of the
    node's, by path, by "..", or by a link out of their directory (hostile probe, 12-03)."""
    paths.configure(tmp_path)  # restored by conftest
    mine, theirs = Path(node_files.owner_dir("u1")), Path(node_files.owner_dir("u2"))
    for d in (mine, theirs):
        d.mkdir(parents=True)
    ok = key_file(mine)
    node_files.check_owned(("psk_file",), "u1", {"psk_file": ok})
    node_files.check_owned(("psk_file",), "u1", {"psk_file": str(mine / "not-yet")})
    node_files.check_owned(("psk_file",), "u1", {})  # unset
    (mine / "out").symlink_to(key_file(theirs))
    os.mkfifo(mine / "fifo")  # would hold the NF's scripts, and the agent, until a timeout
    (mine / "sub").mkdir()
    for value, why in ((key_file(theirs), "may name only files in"),
                       ("/etc/shadow", "may name only files in"),
                       (f"{mine}/../u2/psk", "may name only files in"),
                       (f"{mine}//psk", "may name only files in"),
                       (str(mine), "may name only files in"),
                       (7, "may name only files in"),
                       (f"{mine}/p\x00sk", "may name only files in"),
                       (f"{mine}/psk/", "may name only files in"),
                       (f"{mine}/./psk", "may name only files in"),
                       (str(mine / "out"), "symbolic link"),
                       (str(mine / "fifo"), "not a regular file"),
                       (str(mine / "sub"), "not a regular file")):
        with pytest.raises(InvalidInput, match=f"config psk_file: .*{why}"):
            node_files.check_owned(("psk_file",), "u1", {"psk_file": value})
    # every flavour's create goes through it (here the VM's, before any VM is made)
    store = BundleStore(tmp_path / "bundles")
    b = catalogue.install(store, "vpn")
    drv = VmCompute("n1", tmp_path, store)
    drv._caps = set(b.descriptor.capabilities)
    cfg = {"address": "10.90.1.254/16", "gateway": "10.90.0.1", "peer": "10.255.0.2",
           "local_ts": ["10.90.1.0/24"], "psk_file": key_file(theirs)}
    with pytest.raises(InvalidInput, match="may name only files in"):
        drv.create_nf("n1", "u1", "vpn", b.sha256, cfg)
    assert drv.list_nfs() == []
