"""The container flavour's runtime spec (pure) and the descriptor's linux-capabilities."""

from __future__ import annotations

from pathlib import Path

import pytest

from netfate.descriptor import parse_descriptor
from netfate.drivers import container_spec
from netfate.drivers.runc import Runc, container_id


def spec() -> dict[str, object]:
    return container_spec.spec(
        rootfs=Path("/r/rootfs"), args=["/usr/bin/busybox", "sleep", "inf"], env=["PATH=/bin"],
        hostname="cpe1-u-fw", netns="fate-cpe1-u-fw", cgroup="cpe1-u-fw", memory_mb=16,
        cpu_percent=50, capabilities=["CAP_NET_ADMIN", "CAP_NET_ADMIN"],
        bundle_dir=Path("/b"), nf_dir=Path("/n"), notify_dir=Path("/q"), cache_dir=Path("/c"))


def test_the_spec_confines_the_container_to_what_the_descriptor_declares() -> None:
    s = spec()
    process = s["process"]
    assert isinstance(process, dict)
    caps = process["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == ["CAP_NET_ADMIN"]
    assert caps["ambient"] == [] and caps["inheritable"] == []
    assert process["noNewPrivileges"] is True
    assert s["root"] == {"path": "/r/rootfs", "readonly": True}
    linux = s["linux"]
    assert isinstance(linux, dict)
    assert {"type": "network", "path": "/run/netns/fate-cpe1-u-fw"} in linux["namespaces"]
    assert {"type": "pid"} in linux["namespaces"]
    assert linux["cgroupsPath"] == "/fate-nfs/cpe1-u-fw"
    assert linux["resources"]["memory"] == {"limit": 16 * 1024 * 1024}
    assert linux["resources"]["cpu"] == {"period": 100_000, "quota": 50_000}
    assert "/proc/sys" in linux["readonlyPaths"]
    mounts = {m["destination"]: m for m in s["mounts"]}  # type: ignore[attr-defined]
    assert "ro" in mounts["/nf/bundle"]["options"] and "rw" in mounts["/nf/dir"]["options"]


def test_paths_are_shown_as_the_container_sees_them_and_ids_carry_the_prefix() -> None:
    assert container_spec.inside("/n/run/export.json", Path("/n")) == "/nf/dir/run/export.json"
    assert container_spec.inside("/n", Path("/n")) == "/nf/dir"
    assert container_spec.inside("/elsewhere/x", Path("/n")) == "/elsewhere/x"
    assert container_id("cpe1-u-fw") == "fate-cpe1-u-fw"
    argv = Runc(Path("/run/netfate/runc")).exec_argv("fate-x", ["/s"], {"B": "2", "A": "1"}, "/")
    assert argv[:3] == ["runc", "--root", "/run/netfate/runc"]
    assert argv[argv.index("--env") + 1] == "A=1"  # sorted, each its own argument


def test_linux_capabilities_in_the_descriptor() -> None:
    base = {"name": "x", "version": "1", "ports": [{"name": "lan"}]}
    d = parse_descriptor({**base, "linux-capabilities": ["CAP_NET_ADMIN", "CAP_NET_RAW"]})
    assert d.linux_capabilities == ("CAP_NET_ADMIN", "CAP_NET_RAW")
    assert parse_descriptor(base).linux_capabilities == ()
    with pytest.raises(Exception, match="CAP_NET_ADMIN"):
        parse_descriptor({**base, "linux-capabilities": ["net_admin; rm -rf /"]})
