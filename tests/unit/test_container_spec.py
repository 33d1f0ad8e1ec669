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


def test_a_pooled_spec_becomes_exactly_the_instance_spec() -> None:
    """A pre-made container's spec, given the instance's names, is the spec made for the
    instance (container_spec.for_instance)."""
    from pathlib import Path

    from netfate.drivers import container_spec as cs

    common = {"rootfs": Path("/r"), "args": ["/bin/sleep", "inf"], "env": ["PATH=/bin"],
              "memory_mb": 64, "cpu_percent": 20, "capabilities": ["CAP_NET_ADMIN"],
              "bundle_dir": Path("/b"), "notify_dir": Path("/q"), "cache_dir": Path("/c")}
    pooled = cs.spec(hostname="nf", netns="fate-cwarm-n1-1-1", cgroup="cwarm-n1-1-1",
                     nf_dir=Path("/p/dir"), **common)  # type: ignore[arg-type]
    own = cs.spec(hostname="n1-u-fw", netns="fate-n1-u-fw", cgroup="n1-u-fw",
                  nf_dir=Path("/nfs/n1-u-fw"), **common)  # type: ignore[arg-type]
    got = cs.for_instance(pooled, hostname="n1-u-fw", netns="fate-n1-u-fw", cgroup="n1-u-fw",
                          nf_dir=Path("/nfs/n1-u-fw"))
    assert got == own
    assert pooled["hostname"] == "nf", "the pooled spec is left as it was"


def test_the_descriptors_network_sysctls_are_set_by_the_runtime() -> None:
    base = {"name": "x", "version": "1", "ports": [{"name": "lan"}]}
    d = parse_descriptor({**base, "sysctls": {"net.ipv4.ip_forward": "1"}})
    assert d.sysctls == {"net.ipv4.ip_forward": "1"}
    for bad, msg in (({"kernel.panic": "1"}, "not a network namespace's sysctl"),
                     ({"net.ipv4.ip_forward": "1; reboot"}, "must be 1-32"),
                     ({"net": "1"}, "not a network namespace's sysctl")):
        with pytest.raises(Exception, match=msg):
            parse_descriptor({**base, "sysctls": bad})
    s = container_spec.spec(
        rootfs=Path("/r"), args=["/s"], env=[], hostname="h", netns="n", cgroup="c",
        memory_mb=16, cpu_percent=50, capabilities=[], bundle_dir=Path("/b"),
        nf_dir=Path("/n"), notify_dir=Path("/q"), cache_dir=Path("/c"),
        sysctl=dict(d.sysctls))
    assert s["linux"]["sysctl"] == {"net.ipv4.ip_forward": "1"}  # type: ignore[index]
    assert "sysctl" not in spec()["linux"]  # type: ignore[operator]


@pytest.mark.parametrize("nf", ["nat", "load-balancer", "content-filter"])
def test_the_new_nfs_ship_a_container_flavour_with_what_it_needs(nf: str) -> None:
    from netfate import catalogue, safe_yaml
    from netfate.bundle import DESCRIPTOR, DESCRIPTOR_LIMITS

    src = catalogue.source_dir(nf) / DESCRIPTOR
    d = parse_descriptor(safe_yaml.load(src.read_bytes(), DESCRIPTOR, DESCRIPTOR_LIMITS))
    assert d.flavours[:2] == ("native", "container")
    assert "CAP_NET_ADMIN" in d.linux_capabilities
    if nf != "content-filter":  # routes de-NATted replies: IP forwarding in its namespace
        assert d.sysctls["net.ipv4.ip_forward"] == "1"
