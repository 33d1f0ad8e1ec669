"""Capability detection: what a node advertises is what it detects (tools on PATH, kernel
features from its configuration or the running kernel, CPU flags), named by kind; and it
advertises a flavour only when that flavour's driver is registered and its tools present."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from netfate.drivers import capabilities, registry

CPUINFO_X86 = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 aes avx2 rdrand sha_ni
processor\t: 1
flags\t\t: fpu
"""
CPUINFO_ARM = "processor\t: 0\nFeatures\t: fp asimd aes sha2 crc32\n"


def _root(tmp_path: Path, *, config: str | None, shown: tuple[str, ...] = (),
          cpuinfo: str = CPUINFO_X86) -> Path:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text(cpuinfo)
    if config is not None:
        with gzip.open(tmp_path / "proc/config.gz", "wt") as fh:
            fh.write(config)
    for p in shown:
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).mkdir()
    return tmp_path


def test_kernel_features_from_the_kernels_configuration(tmp_path: Path) -> None:
    root = _root(tmp_path, config="CONFIG_NF_TABLES=m\nCONFIG_XFRM_USER=y\n"
                                  "# CONFIG_WIREGUARD is not set\nCONFIG_BRIDGE=n\n",
                 shown=("sys/module/wireguard",))  # the configuration wins
    assert capabilities.kernel_features(root) == {"nftables", "xfrm"}


def test_kernel_features_from_the_running_kernel_without_a_configuration(tmp_path: Path
                                                                        ) -> None:
    root = _root(tmp_path, config=None, shown=("sys/module/nf_tables", "sys/module/xfrm_user"))
    assert capabilities.kernel_features(root) == {"nftables", "xfrm"}


@pytest.mark.parametrize(("cpuinfo", "want"), [
    (CPUINFO_X86, {"aes-ni", "avx2", "rdrand", "sha-ni"}),
    (CPUINFO_ARM, {"aes-ni", "neon", "sha2"}),
    ("", set()),
])
def test_hardware_from_cpu_flags(tmp_path: Path, cpuinfo: str, want: set[str]) -> None:
    assert capabilities.hardware(_root(tmp_path, config=None, cpuinfo=cpuinfo)) == want


def test_functional_names_each_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _root(tmp_path, config="CONFIG_XFRM_USER=y\n")
    monkeypatch.setattr(capabilities.shutil, "which",
                        lambda exe, path=None: "/x" if exe in ("iptables", "swanctl") else None)
    assert capabilities.functional(root) == {
        "iptables", "strongswan", "kernel:xfrm",
        "hardware:aes-ni", "hardware:avx2", "hardware:rdrand", "hardware:sha-ni"}


def test_a_flavour_is_hostable_only_with_its_driver_and_tools(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "available", lambda: ["native", "container"])
    monkeypatch.setattr(capabilities.shutil, "which", lambda exe, path=None: None)
    ok, why = capabilities.hostable(["native", "container", "vm"])
    assert ok == ["native"]
    assert why == ["container: runc not found", "vm: no compute driver registered"]
    monkeypatch.setattr(capabilities.shutil, "which", lambda exe, path=None: "/usr/sbin/runc")
    assert capabilities.hostable(["container", "native"])[0] == ["container", "native"]


def test_the_agent_hosts_what_it_can_and_says_why_not(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    from netfate.cli.services import _hostable

    monkeypatch.setattr(registry, "available", lambda: ["native"])
    assert _hostable("native,container,vm") == ["native"]
    assert _hostable(None) == ["native"]
    with pytest.raises(typer.BadParameter, match="no flavour can be hosted"):
        _hostable("vm")
    with pytest.raises(typer.BadParameter, match="flavour"):
        _hostable("Native VM")


def test_an_unknown_resolver_setting_fails_naming_the_known_rules() -> None:
    from netfate import resolver

    with pytest.raises(KeyError, match="known: first, nnf"):
        resolver.select("fastest")
