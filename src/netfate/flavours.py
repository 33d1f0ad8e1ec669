"""Flavours: the implementations of an NF (native, container, VM, ...). Pure.

An NF's descriptor lists the flavours it ships, in order of preference; a node advertises the
flavours it has compute drivers for (its capability report's `infrastructure.flavours`). Which
one an NF runs in on a node is the resolver's choice (netfate.resolver, NNF section III).

Flavour names are open: a new flavour is a compute driver registered under the entry-point
group `netfate.compute` (see netfate.drivers.registry and docs/drivers.md), not a change here.
"""

from __future__ import annotations

import re

# What an NF, a node or an instance spec that says nothing about flavours means: everything
# before flavours travelled end to end was native.
DEFAULT_FLAVOUR = "native"

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def check_flavour(name: str) -> str:
    """`name` if it is a valid flavour name (a-z0-9 and '-', starting with a letter, at most
    32 characters); ValueError naming it otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):  # not "native\n"
        raise ValueError(f"flavour {name!r} must be a-z0-9 and '-', starting with a letter")
    return name


def advertised(infrastructure: dict[str, object] | None) -> frozenset[str]:
    """The flavours in a node's infrastructure report. A report without any (an agent from
    before flavours were reported, or a node not yet registered) means the default flavour."""
    raw = (infrastructure or {}).get("flavours")
    if isinstance(raw, list | tuple) and raw:
        return frozenset(str(f) for f in raw)
    return frozenset({DEFAULT_FLAVOUR})
