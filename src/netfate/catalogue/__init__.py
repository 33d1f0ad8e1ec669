"""The native NF catalogue shipped with NetFATE: firewall, rate-limiter, packet-inspector,
troubleshooter, content-filter, nat, load-balancer. Each folder here is a bundle source;
`bundle_bytes` packs it reproducibly."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from netfate.bundle import Bundle, BundleStore, build_bundle
from netfate.errors import NotFound

NAMES = ("firewall", "rate-limiter", "packet-inspector", "troubleshooter", "content-filter",
         "nat", "load-balancer")


def source_dir(name: str) -> Path:
    if name not in NAMES:
        raise NotFound(f"no NF {name!r} in the catalogue; it has {list(NAMES)}")
    return Path(str(resources.files("netfate.catalogue").joinpath(name)))


SHARED = ("common.sh", "nfcommon.py")  # helpers every catalogue NF ships in files/
# helpers only some NFs ship: l3bump.py for those that rewrite addresses in the wire
EXTRAS: dict[str, tuple[str, ...]] = {"nat": ("l3bump.py",), "load-balancer": ("l3bump.py",)}


def bundle_bytes(name: str) -> bytes:
    shared = Path(str(resources.files("netfate.catalogue").joinpath("_shared")))
    files = (*SHARED, *EXTRAS.get(name, ()))
    return build_bundle(source_dir(name), {f"files/{f}": shared / f for f in files})


def install(store: BundleStore, name: str) -> Bundle:
    return store.add(bundle_bytes(name))
