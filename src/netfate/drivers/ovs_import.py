"""Loading Open vSwitch's Python package (`ovs`, under ovsdbapp) without eventlet.

`ovs.poller` imports eventlet whenever it is installed (os-ken brings it, for the controller's
hub), only to ask whether `select` is monkey-patched. An import of eventlet in any thread but
the main one leaves that thread unjoinable: when it ends its tstate lock is never released,
so `Thread.join()` waits for ever (eventlet issue #230, still open with eventlet 0.41 on
Python 3.11). A `netfate nf deploy` whose first OVSDB call ran in a worker thread therefore
printed its result and never exited: the interpreter's exit joins the pool's threads.

Every process but the controller has no use for eventlet, so `ovs.poller` is loaded with
eventlet hidden and takes the branch it takes where eventlet is not installed (plain
`select.poll`). A process that has imported eventlet already (the controller, through
os-ken) loads it as it is.
"""

from __future__ import annotations

import importlib
import sys
import threading

_lock = threading.Lock()


def load_ovs() -> None:
    """Import `ovs.poller` (and so every `ovs` module after it) without importing eventlet;
    a no-op once it is loaded. Call before the first `ovs`/`ovsdbapp` import."""
    with _lock:
        if "ovs.poller" in sys.modules or "eventlet" in sys.modules:
            return
        # A None entry makes `from eventlet import patcher` raise ImportError (PEP 451).
        sys.modules["eventlet"] = None  # type: ignore[assignment]
        try:
            importlib.import_module("ovs.poller")
        finally:
            if "eventlet" in sys.modules and sys.modules["eventlet"] is None:
                del sys.modules["eventlet"]
