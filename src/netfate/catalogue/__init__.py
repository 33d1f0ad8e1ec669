"""The native NF catalogue shipped with NetFATE: firewall, rate-limiter, packet-inspector,
troubleshooter, content-filter, nat, load-balancer, vpn. Each folder here is a bundle source;
`bundle_bytes` packs it reproducibly."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from netfate.bundle import Bundle, BundleStore, build_bundle
from netfate.errors import NotFound

NAMES = ("firewall", "rate-limiter", "packet-inspector", "troubleshooter", "content-filter",
         "nat", "load-balancer", "vpn")


def source_dir(name: str) -> Path:
    if name not in NAMES:
        raise NotFound(f"no NF {name!r} in the catalogue; it has {list(NAMES)}")
    return Path(str(resources.files("netfate.catalogue").joinpath(name)))


SHARED = ("common.sh", "nfcommon.py")  # helpers every catalogue NF ships in files/
# helpers only some NFs ship: ctstate.py for those whose state is nft rules plus conntrack
# entries, l3bump.py for those that rewrite addresses in the wire
EXTRAS: dict[str, tuple[str, ...]] = {"firewall": ("ctstate.py",),
                                      "nat": ("ctstate.py", "l3bump.py"),
                                      "load-balancer": ("ctstate.py", "l3bump.py"),
                                      "vpn": ("ctstate.py", "l3bump.py")}
# files one NF ships from another's folder: the VPN's outside address needs the NAT's
# neighbour helper (the testbed's switches never flood into an NF's ports)
BORROWED: dict[str, dict[str, tuple[str, str]]] = {"vpn": {"files/arpd.py": ("nat", "arpd.py")}}


def bundle_bytes(name: str) -> bytes:
    shared = Path(str(resources.files("netfate.catalogue").joinpath("_shared")))
    files = (*SHARED, *EXTRAS.get(name, ()))
    extra = {f"files/{f}": shared / f for f in files}
    for dest, (nf, f) in BORROWED.get(name, {}).items():
        extra[dest] = source_dir(nf) / "files" / f
    return build_bundle(source_dir(name), extra)


def install(store: BundleStore, name: str) -> Bundle:
    return store.add(bundle_bytes(name))
