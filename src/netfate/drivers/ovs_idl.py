"""The OVSDB client of a network driver: an ovsdbapp Open_vSwitch API on its own connection.

The IDL keeps an in-memory replica of what it monitors, and parses every update the server
sends for it in this process. It monitors every table and column but the counters that
ovs-vswitchd rewrites every 5 s for every interface whose counters changed
(`Interface.statistics`): the driver never reads them, and with traffic on a node's NF
ports (two per NF) they are most of the updates. (Idle ports cost nothing either way:
measured with 400 idle ports, 1-2 ms of CPU per 20 s with them, 0 without.)
`ovs.db.idl.SchemaHelper.register_columns` is OVS's way to leave columns out.
"""

from __future__ import annotations

import warnings
from typing import Any

# Columns the driver never reads and ovs-vswitchd rewrites on its own, by table.
UNMONITORED = {"Interface": frozenset({"statistics"})}


def connect(db: str, timeout: float) -> Any:
    """An ovsdbapp Open_vSwitch API for the server at `db` (e.g. ``unix:/run/.../db.sock``),
    on a connection of its own (ovsdbapp keeps one per Backend *class*: a second driver in
    this process would get the first one's connection, to whatever server that was, and
    once it had been stopped restart it through the IDL's reconnect back-off, 1-8 s a time;
    a class of its own gives each API its own connection, ended by ``ovsdb_connection.stop``).
    Raises what ovsdbapp raises when the server cannot be reached within `timeout` (s)."""
    # ovs.poller imports eventlet when present (os-ken brings it) and eventlet warns about
    # its own deprecation on import; we do not use eventlet.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    from ovsdbapp.backend.ovs_idl import connection, idlutils
    from ovsdbapp.schema.open_vswitch import impl_idl

    helper = idlutils.get_schema_helper(db, "Open_vSwitch")
    for table, spec in helper.schema_json["tables"].items():
        skip = UNMONITORED.get(table)
        if skip:
            helper.register_columns(table, [c for c in spec["columns"] if c not in skip])
        else:
            helper.register_table(table)
    idl = connection.OvsdbIdl(db, helper)
    conn = connection.Connection(idl=idl, timeout=timeout)
    backend = type("OvsdbIdl", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
    return backend(conn)
