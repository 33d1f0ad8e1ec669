"""The OVSDB client of a network driver: an ovsdbapp Open_vSwitch API on its own connection.

The IDL keeps an in-memory replica of what it monitors, and parses every update the server
sends for it in this process. It monitors every table and column but the counters that
ovs-vswitchd rewrites every 5 s for every interface whose counters changed
(`Interface.statistics`): the driver never reads them, and with traffic on a node's NF
ports (two per NF) they are most of the updates. (Idle ports cost nothing either way:
measured with 400 idle ports, 1-2 ms of CPU per 20 s with them, 0 without.)
`ovs.db.idl.SchemaHelper.register_columns` is OVS's way to leave columns out.

The IDL also tells watchers when a switch's ports change (OVS's `Idl.notify` hook, called
once an update from the server has been applied), so the agent sees a station associate
within a millisecond instead of at its next look (every 50 ms: 25 ms of every handover).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

from netfate.drivers import ovs_import

log = logging.getLogger("netfate.drivers.ovs_idl")

# Columns the driver never reads and ovs-vswitchd rewrites on its own, by table.
UNMONITORED = {"Interface": frozenset({"statistics"})}
# Tables whose changes are a change of some switch's ports (a port, its interface's
# external_ids such as attached-mac, a bridge's port list).
PORT_TABLES = frozenset({"Bridge", "Port", "Interface"})


class PortWatchers:
    """Callbacks run (in the IDL's thread; they must not block) after an update that changed
    a port, an interface or a bridge. One that raises is logged and kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def add(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def remove(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def fire(self) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for cb in callbacks:
            try:
                cb()
            except Exception:  # a watcher's bug must not stop the IDL's thread
                log.exception("a port watcher failed")


@cache
def _idl_class() -> type:
    ovs_import.load_ovs()
    from ovsdbapp.backend.ovs_idl import connection

    class WatchedIdl(connection.OvsdbIdl):  # type: ignore[misc]
        """ovsdbapp's IDL that fires `port_watchers` after each update touching ports."""

        port_watchers: PortWatchers

        def notify(self, event: Any, row: Any, updates: Any = None) -> None:
            if row._table.name in PORT_TABLES:
                self._ports_changed = True

        def run(self) -> Any:
            self._ports_changed = False
            changed = super().run()
            if self._ports_changed:
                self.port_watchers.fire()
            return changed

    return WatchedIdl


def connect(db: str, timeout: float, watchers: PortWatchers | None = None) -> Any:
    """An ovsdbapp Open_vSwitch API for the server at `db` (e.g. ``unix:/run/.../db.sock``),
    on a connection of its own (ovsdbapp keeps one per Backend *class*: a second driver in
    this process would get the first one's connection, to whatever server that was, and
    once it had been stopped restart it through the IDL's reconnect back-off, 1-8 s a time;
    a class of its own gives each API its own connection, ended by ``ovsdb_connection.stop``).
    `watchers` are told of every change to ports (a fresh set if None; the caller keeps
    its own across reconnections).
    Raises what ovsdbapp raises when the server cannot be reached within `timeout` (s)."""
    ovs_import.load_ovs()  # before ovsdbapp: without eventlet (see ovs_import)
    from ovsdbapp.backend.ovs_idl import connection, idlutils
    from ovsdbapp.schema.open_vswitch import impl_idl

    helper = idlutils.get_schema_helper(db, "Open_vSwitch")
    for table, spec in helper.schema_json["tables"].items():
        skip = UNMONITORED.get(table)
        if skip:
            helper.register_columns(table, [c for c in spec["columns"] if c not in skip])
        else:
            helper.register_table(table)
    idl = _idl_class()(db, helper)
    idl.port_watchers = watchers if watchers is not None else PortWatchers()
    conn = connection.Connection(idl=idl, timeout=timeout)
    backend = type("OvsdbIdl", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
    return backend(conn)
