"""Compute drivers by flavour: the entry-point group `netfate.compute` and its loader.

Each flavour is one entry point whose name is the flavour and whose value is a factory: a
callable taking a `ComputeContext` and returning a `ComputeDriver` for that flavour (a class
whose constructor takes the context, or a classmethod such as
`netfate.drivers.native:NativeCompute.from_context`). This package registers `native` in its
pyproject.toml; another package adds a flavour the same way (docs/drivers.md). Factories load
the first time a flavour is asked for, so a broken plugin only affects nodes that use it.
Entry points come from the installed package's metadata: after editing pyproject.toml,
reinstall (`make install`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from importlib import metadata

from netfate import plugins
from netfate.errors import NetfateError, UnknownFlavour
from netfate.flavours import check_flavour
from netfate.interfaces import ComputeContext, ComputeDriver

ENTRY_POINT_GROUP = "netfate.compute"

ComputeFactory = Callable[[ComputeContext], ComputeDriver]

log = logging.getLogger("netfate.drivers")

__all__ = ["ENTRY_POINT_GROUP", "ComputeFactory", "UnknownFlavour", "available", "build",
           "build_all", "factory", "register", "unregister"]

# flavour -> factory: registered in code (tests, embedded setups) or loaded from entry points.
_FACTORIES: dict[str, ComputeFactory] = {}


def register(flavour: str, factory: ComputeFactory, *, replace: bool = False) -> None:
    """Make `flavour` buildable with `factory` without an entry point (tests, embedding).
    ValueError if the name is not a flavour name, or is taken and `replace` is false."""
    check_flavour(flavour)
    if flavour in _FACTORIES and _FACTORIES[flavour] is not factory and not replace:
        raise ValueError(f"a compute driver for flavour {flavour!r} is already registered")
    _FACTORIES[flavour] = factory


def unregister(flavour: str) -> None:
    """Forget a flavour registered in code (entry points are found again on next use)."""
    _FACTORIES.pop(flavour, None)


def available() -> list[str]:
    """Every flavour with a registered factory or an entry point, loaded or not, sorted."""
    return sorted(set(_FACTORIES) | {ep.name for ep in _entry_points()})


def factory(flavour: str) -> ComputeFactory:
    """The factory for `flavour`. UnknownFlavour, naming the flavour, the known ones and why
    an entry point failed to load, if there is none that loads."""
    if flavour in _FACTORIES:
        return _FACTORIES[flavour]
    fac, errors = plugins.load(_entry_points(), flavour, _as_factory, failed="failed to load")
    if fac is not None:
        _FACTORIES[flavour] = fac
        return fac
    known = ", ".join(available()) or "none (is the netfate package installed?)"
    detail = "; ".join(errors)
    raise UnknownFlavour(f"no compute driver for flavour {flavour!r} (known: {known})"
                         + (f"; {detail}" if detail else ""))


def build(flavour: str, ctx: ComputeContext) -> ComputeDriver:
    """A driver for `flavour` on the node `ctx` describes. UnknownFlavour as `factory`;
    NetfateError if the driver can't run on this node or says it is another flavour."""
    driver = factory(flavour)(ctx)
    if driver.flavour != flavour:
        raise NetfateError(f"the compute driver registered as {flavour!r} runs flavour "
                           f"{driver.flavour!r}")
    return driver


def build_all(ctx: ComputeContext, flavours: Iterable[str] | None = None,
              ) -> dict[str, ComputeDriver]:
    """Drivers for `flavours` (default: every available one) on the node: flavour -> driver.

    A flavour that can't be built here (its plugin is broken, or a tool it needs is missing)
    is left out with a warning, so the node advertises only what it really runs. An unknown
    flavour asked for by name raises UnknownFlavour; so does ending up with no driver at all.
    """
    wanted = available() if flavours is None else list(dict.fromkeys(flavours))
    # Asked for by name (an agent's flavours), a flavour left out is news; found by trying
    # every one (the testbed's direct CLI), that one node lacks QEMU is not, on every command.
    level = logging.DEBUG if flavours is None else logging.WARNING
    drivers: dict[str, ComputeDriver] = {}
    failed: list[str] = []
    for flavour in wanted:
        try:
            drivers[flavour] = build(flavour, ctx)
        except UnknownFlavour as exc:
            if flavours is not None:
                raise
            failed.append(f"{flavour}: {exc}")
            log.log(level, "compute driver for flavour %s does not load (%s); not hosting "
                    "it", flavour, exc)
        except Exception as exc:
            failed.append(f"{flavour}: {exc}")
            log.log(level, "compute driver for flavour %s can't run on node %s (%s); "
                    "not hosting it", flavour, ctx.node, exc)
    if not drivers:
        known = ", ".join(available()) or "none (is the netfate package installed?)"
        raise UnknownFlavour(f"node {ctx.node}: no compute driver could be built (known: "
                             f"{known})" + (f"; {'; '.join(failed)}" if failed else ""))
    return drivers


def _as_factory(obj: object) -> ComputeFactory:
    if not callable(obj):
        raise plugins.Refused("is not callable")
    fac: ComputeFactory = obj
    return fac


def _entry_points() -> metadata.EntryPoints:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)
