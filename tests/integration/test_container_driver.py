"""What only the container flavour promises, on the real data plane: its scripts run inside
the container with a read-only root and only the descriptor's capabilities, and an NF whose
image is missing or fails verification is refused with nothing left behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from netfate import paths
from netfate.errors import InvalidInput, NotFound
from netfate.oci.store import ImageStore
from netfate.testbed.context import Testbed

from .test_compute_contract import nothing_left, probe

CAP_NET_ADMIN = 1 << 12  # linux/capability.h


def test_scripts_run_confined_read_only_root_and_declared_capabilities(
    tb: Testbed, tmp_path: Path
) -> None:
    sha = probe(tb, tmp_path, {"create": (
        'grep ^CapEff: /proc/self/status > "$NF_DIR/caps"; '
        'if touch /etc/written 2>/dev/null; then echo yes; else echo no; fi > "$NF_DIR/rw"; '
        'cat /proc/1/cmdline | tr "\\0" " " > "$NF_DIR/pid1"')})
    node = tb.node("cpe1")
    info = node.deploy_nf("erin", "probe", sha, {}, flavour="container")
    d = paths.run_dir() / "nodes" / "cpe1" / "nfs" / info.instance_id
    assert int((d / "caps").read_text().split()[1], 16) == CAP_NET_ADMIN
    assert (d / "rw").read_text().strip() == "no", "the root must be read-only"
    assert "sleep" in (d / "pid1").read_text(), "own PID namespace: the image's process is 1"
    assert node.driver("container").status(info.instance_id).detail[
        "container_status"] == "running"
    node.remove_nf(info.instance_id)


def test_a_missing_or_tampered_image_is_refused_and_leaves_nothing(
    tb: Testbed, tmp_path: Path
) -> None:
    sha = probe(tb, tmp_path, {})
    store = ImageStore(paths.run_dir() / "images")
    node = tb.node("cpe1")
    before = nothing_left()
    saved = tmp_path / "layout"
    shutil.copytree(store.layout, saved)
    try:
        store.remove("probe-1")
        with pytest.raises(NotFound, match="no image 'probe-1'"):
            node.deploy_nf("erin", "probe", sha, {}, flavour="container")
        assert nothing_left() == before
        shutil.rmtree(store.layout)
        shutil.copytree(saved, store.layout)
        shutil.rmtree(store.unpacked, ignore_errors=True)  # force a fresh unpack
        info = store.resolve("probe-1")
        manifest = store.layout / "blobs" / "sha256" / info.digest.split(":")[1]
        layer = json.loads(manifest.read_bytes())["layers"][0]["digest"].split(":")[1]
        blob = store.layout / "blobs" / "sha256" / layer
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
        with pytest.raises(InvalidInput, match="digest mismatch"):
            node.deploy_nf("erin", "probe", sha, {}, flavour="container")
        assert nothing_left() == before
        assert not any(store.unpacked.glob("*/rootfs")), "nothing was unpacked"
    finally:
        shutil.rmtree(store.layout, ignore_errors=True)
        shutil.copytree(saved, store.layout)
