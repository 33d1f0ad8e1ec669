"""The VPN NF's container and VM flavours, pure parts: the TUN device and the node's key file
in the runtime spec, the descriptor's node-files, the image plan and the VM guest holding
strongSwan's plugins, and which flavours `scenario vpn` measures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netfate import catalogue, safe_yaml
from netfate.bundle import DESCRIPTOR, DESCRIPTOR_LIMITS
from netfate.descriptor import parse_descriptor
from netfate.drivers import container_spec, vm_image
from netfate.errors import InvalidInput
from netfate.oci import build
from netfate.scenarios import vpn

from .catalogue_nf import load


def spec(**kw: Any) -> dict[str, Any]:
    return container_spec.spec(
        rootfs=Path("/r/rootfs"), args=["/usr/bin/busybox", "sleep", "inf"], env=["PATH=/bin"],
        hostname="h", netns="fate-n", cgroup="c", memory_mb=64, cpu_percent=100,
        capabilities=["CAP_NET_ADMIN"], bundle_dir=Path("/b"), nf_dir=Path("/n"),
        notify_dir=Path("/q"), cache_dir=Path("/c"), **kw)


def test_kernel_tun_grants_exactly_the_tun_device() -> None:
    s = spec(devices=["tun", "kernel:tun", "kernel:xfrm", "strongswan"])
    devs = s["linux"]["devices"]
    assert devs == [{"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200,
                     "fileMode": 0o666, "uid": 0, "gid": 0}]
    rules = s["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}  # everything else stays denied
    assert rules[1:] == [{"allow": True, "type": "c", "major": 10, "minor": 200,
                          "access": "rwm"}]
    plain = spec()
    assert "devices" not in plain["linux"]
    assert plain["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]


def test_node_files_are_bound_read_only_at_their_own_path_under_run_or_tmp() -> None:
    s = spec(node_files=["/run/netfate/vpn-scenario/psk", "/run/netfate/vpn-scenario/psk"])
    binds = [m for m in s["mounts"] if m["destination"] == "/run/netfate/vpn-scenario/psk"]
    assert len(binds) == 1
    assert binds[0]["source"] == "/run/netfate/vpn-scenario/psk"
    assert "ro" in binds[0]["options"] and "rw" not in binds[0]["options"]
    # after the container's own /run tmpfs, so the mount point is made there
    dests = [m["destination"] for m in s["mounts"]]
    assert dests.index("/run") < dests.index("/run/netfate/vpn-scenario/psk")
    for bad in ("relative/psk", "/etc/psk", "/run/../etc/shadow", "/run", "/nf/dir/x",
                "/proc/1/mem"):
        with pytest.raises(ValueError, match="node file"):
            spec(node_files=[bad])


def test_node_files_in_the_descriptor() -> None:
    base = {"name": "x", "version": "1", "ports": [{"name": "lan"}]}
    assert parse_descriptor(base).node_files == ()
    assert parse_descriptor({**base, "node-files": ["psk_file", "psk_file"]}).node_files == \
        ("psk_file",)
    for bad in (["../etc"], ["PSK"], ["a b"]):
        with pytest.raises(Exception, match="node-files"):
            parse_descriptor({**base, "node-files": bad})


def _vpn_descriptor() -> Any:
    src = catalogue.source_dir("vpn") / DESCRIPTOR
    return parse_descriptor(safe_yaml.load(src.read_bytes(), DESCRIPTOR, DESCRIPTOR_LIMITS),
                            DESCRIPTOR)


def test_the_vpn_offers_the_container_and_vm_flavours_with_what_charon_needs() -> None:
    d = _vpn_descriptor()
    assert d.flavours == ("native", "container", "vm")
    assert "kernel:tun" in d.capabilities  # -> /dev/net/tun in the container
    assert {"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"} <= set(d.linux_capabilities)
    assert d.sysctls["net.ipv4.ip_forward"] == "1"
    assert d.node_files == ("psk_file",)
    assert "vpn" in build.container_nfs()


def test_the_image_carries_every_plugin_the_vpns_strongswan_conf_loads() -> None:
    swan = load("vpn", "swan")
    assert set(swan.PLUGINS.split()) == set(build.STRONGSWAN_PLUGINS)


def test_the_vm_guest_carries_charon_swanctl_every_plugin_and_the_tun_module() -> None:
    swan = load("vpn", "swan")
    assert {"charon-systemd", "swanctl"} <= vm_image.executables()
    assert {f"/usr/lib/ipsec/plugins/libstrongswan-{p}.so" for p in swan.PLUGINS.split()} \
        <= set(vm_image.STRONGSWAN_LIBS)
    # the vpn's scripts start exactly the daemon the guest carries
    lib = (catalogue.source_dir("vpn") / "files" / "vpnlib.sh").read_text()
    assert all(f in lib or f.endswith("swanctl") for f in vm_image.STRONGSWAN)
    # nothing makes /dev/net/tun in the guest but the module loaded by /init
    assert "tun" in vm_image.MODULES
    assert " tun" in vm_image.INIT.read_text().split("; do")[0]


def test_the_vpn_image_plan_holds_charon_swanctl_and_the_plugins_libraries() -> None:
    if not Path("/usr/sbin/charon-systemd").is_file():
        pytest.skip("strongSwan (charon-systemd) is not installed")
    d = _vpn_descriptor()
    fs = build.plan_rootfs(catalogue.source_dir("vpn"), d.capabilities)
    for f in ("usr/sbin/charon-systemd", "usr/sbin/swanctl", "usr/lib/ipsec/libcharon.so.0",
              "usr/lib/ipsec/libstrongswan.so.0", "usr/lib/ipsec/libipsec.so.0",
              "usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so",
              "usr/lib/ipsec/plugins/libstrongswan-openssl.so"):
        assert f in fs.files, f
    assert any("libcrypto" in f for f in fs.files)  # the openssl plugin's (ldd of a plugin)
    assert any(f.endswith("usr/sbin/nft") for f in fs.files)


def test_scenario_flavours_plan() -> None:
    hosted, offered = ["container", "native", "vm"], ["native", "container", "vm"]
    run, skipped = vpn.plan_flavours(None, hosted, offered)
    assert run == ["native", "container", "vm"] and skipped == {}
    run, skipped = vpn.plan_flavours(None, hosted, ["native", "container"])
    assert run == ["native", "container"] and "not offered" in skipped["vm"]
    run, skipped = vpn.plan_flavours(("vm", "native"), ["native", "container"], offered)
    assert run == ["native"] and skipped == {"vm": "not hosted by cpe1 (hosts: container, "
                                                   "native)"}
    run, skipped = vpn.plan_flavours(("container", "native", "container"), ["native"], offered)
    assert run == ["native"] and "not hosted" in skipped["container"]
    with pytest.raises(InvalidInput, match="docker"):
        vpn.plan_flavours(("docker",), hosted, offered)


def test_scenario_refuses_an_unknown_flavour_before_touching_anything() -> None:
    with pytest.raises(InvalidInput, match="flavours: docker unknown"):
        vpn.run(vpn.Options(flavours=("docker",)), lambda t, m: None)
