"""A thread whose work first loaded the `ovs` package stays joinable (eventlet issue #230):
`netfate nf deploy` printed its result and then never exited."""

from __future__ import annotations

import subprocess
import sys

# In a fresh interpreter: nothing has imported ovs or eventlet yet.
_PROBE = """
import sys, threading
from netfate.drivers import ovs_idl

def first_use():
    ovs_idl._idl_class()  # imports ovsdbapp, as the first OVSDB call in a process does

t = threading.Thread(target=first_use)
t.start()
t.join(10)
print("joined" if not t.is_alive() else "stuck", "eventlet" in sys.modules)
import ovs.poller
print(ovs.poller.eventlet_patcher is None)
sys.stdout.flush()
import os
os._exit(0)
"""


def test_a_worker_thread_that_first_loads_ovs_can_be_joined() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == ["joined", "False", "True"], out


def test_a_process_that_uses_eventlet_keeps_it() -> None:
    """The controller imports eventlet (os-ken's hub) first: ovs then sees it, as before."""
    probe = ("import eventlet, sys\nfrom netfate.drivers import ovs_import\n"
             "ovs_import.load_ovs()\nimport ovs.poller\n"
             "print(ovs.poller.eventlet_patcher is not None)\n")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", probe], capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    assert out == ["True"], out
