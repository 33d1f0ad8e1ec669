"""The resolver (NNF paper, section III): which implementation of a generic NF runs on a node,
from what the node advertises and what each implementation needs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from netfate import resolver
from netfate.engine import NodeView
from netfate.resolver import Implementation, capability_key, needed_on_host, resolve

NATIVE = Implementation("native", memory_mb=8)
CONTAINER = Implementation("container", memory_mb=16, disk_mb=5)
VM = Implementation("vm", memory_mb=256, disk_mb=500)
ALL = (NATIVE, CONTAINER, VM)
EVERY_FLAVOUR = frozenset({"native", "container", "vm"})


def node(role: str = "cpe", *, flavours: frozenset[str] = EVERY_FLAVOUR,
         caps: frozenset[str] = frozenset({"iptables", "kernel:nftables"}),
         total: int = 256, free: int = 200) -> NodeView:
    return NodeView(name="n1", role=role, flavours=flavours, capabilities=caps,  # type: ignore[arg-type]
                    mem_total_mb=total, mem_free_mb=free, cpu_util=0.1)


@pytest.fixture(autouse=True)
def _default_rule() -> Iterator[None]:
    yield
    resolver.select(resolver.DEFAULT_RULE)


def test_native_on_the_cpe_container_in_the_dc() -> None:
    assert resolve(ALL, (), node("cpe")).flavour == "native"
    assert resolve(ALL, (), node("pe")).flavour == "native"
    assert resolve(ALL, (), node("dc", total=8192, free=8000)).flavour == "container"


def test_vm_where_the_nf_exists_only_as_a_vm() -> None:
    dc = node("dc", total=8192, free=8000)
    assert resolve((VM,), (), dc).flavour == "vm"
    # ... and only where it fits: a 256 MB CPE has no room for it.
    res = resolve((VM,), (), node("cpe", free=200))
    assert res.implementation is None
    assert res.reasons == ("200 MB free < 256 MB",)


def test_native_where_it_fits_else_the_next_that_does() -> None:
    big_native = Implementation("native", memory_mb=300)
    res = resolve((big_native, CONTAINER), (), node("cpe"))
    assert res.flavour == "container"
    assert res.reasons == ("native: 200 MB free < 300 MB",)


def test_only_advertised_flavours_run() -> None:
    cpe = node("cpe", flavours=frozenset({"native"}))
    assert resolve((CONTAINER, NATIVE), (), cpe).flavour == "native"
    res = resolve((CONTAINER, VM), (), cpe)
    assert res.implementation is None
    assert res.reasons == ("runs none of its flavours container,vm (node has native)",)


def test_capabilities_by_kind_and_flavour() -> None:
    # A package is needed on the host only by flavours that use the host's user space; a
    # kernel feature by all but a VM (its own kernel); hardware by all.
    assert needed_on_host("iptables", "native") and not needed_on_host("iptables", "container")
    assert needed_on_host("kernel:xfrm", "container") and not needed_on_host("kernel:xfrm", "vm")
    assert needed_on_host("hardware:aes-ni", "vm")
    bare = node("cpe", caps=frozenset({"kernel:nftables"}))  # no iptables binary
    res = resolve((NATIVE, CONTAINER), ("iptables", "kernel:nftables"), bare)
    assert res.flavour == "container"
    assert res.reasons == ("native: lacks capabilities iptables",)
    res = resolve((NATIVE, CONTAINER), ("kernel:xfrm",), bare)
    assert res.implementation is None
    assert "container: lacks capabilities kernel:xfrm" in res.reasons


def test_capability_keys() -> None:
    assert capability_key("iptables") == "iptables"
    assert capability_key("xfrm", "kernel") == "kernel:xfrm"
    assert capability_key("aes-ni", "hardware") == "hardware:aes-ni"
    with pytest.raises(ValueError, match="kind"):
        capability_key("x", "firmware")


def test_unreported_memory_is_not_held_against_a_node() -> None:
    assert resolve(ALL, (), node("cpe", total=0, free=0)).flavour == "native"


def test_the_rule_is_pluggable() -> None:
    dc = node("dc", total=8192, free=8000)
    assert resolve((NATIVE, CONTAINER), (), dc, rule=resolver.get_rule("first")).flavour \
        == "native"
    resolver.select("first")
    assert resolve((NATIVE, CONTAINER), (), dc).flavour == "native"

    class Heaviest:
        name = "heaviest"

        def rank(self, runnable, node):  # type: ignore[no-untyped-def]
            return sorted(runnable, key=lambda i: -i.memory_mb)

    resolver.register(Heaviest(), replace=True)
    resolver.select("heaviest")
    assert resolve(ALL, (), dc).flavour == "vm"
    assert "heaviest" in resolver.available()
    with pytest.raises(ValueError, match="already registered"):
        resolver.register(Heaviest())
    resolver.RULES.pop("heaviest")


def test_unknown_rule_names_the_known_ones_and_keeps_the_selection() -> None:
    with pytest.raises(KeyError, match=r"no resolver rule named 'fastest'.*nnf"):
        resolver.select("fastest")
    assert resolver.selected().name == "nnf"
    with pytest.raises(TypeError, match="not a resolver rule"):
        resolver.register(object())  # type: ignore[arg-type]


def test_cpu_and_disk_the_node_reports() -> None:
    two_vcpus = Implementation("vm", memory_mb=64, cpu_percent=200, disk_mb=500)
    small = node("cpe").model_copy(update={"cpus": 1.0, "disk_free_mb": 100})
    res = resolve((two_vcpus, CONTAINER), (), small)
    assert res.flavour == "container"
    assert res.reasons == ("vm: needs 200% CPU, node has 1 core",)
    budget = node("cpe").model_copy(update={"cpus": 0.1})  # a cap is a ceiling, not a need
    assert resolve((Implementation("native", memory_mb=8, cpu_percent=50),), (), budget).flavour \
        == "native"
    res = resolve((Implementation("vm", memory_mb=64, disk_mb=500),), (), small)
    assert res.reasons == ("100 MB disk free < 500 MB",)
