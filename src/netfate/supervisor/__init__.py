"""The one supervisor of every process the project starts (OVS, NATS, FreeRADIUS, dnsmasq,
the controller, agents, access services, the orchestrator in the benches).

    sup = Supervised("nats-server", [binary, "-p", "4222"], run_dir, programs=("nats-server",))
    sup.start(ready=probes.tcp_port(4222), timeout=5)   # StartError: exit code + log tail
    ...
    sup.stop()                                          # by the recorded PID
    stop_recorded(run_dir / "nats-server.pid", ("nats-server",))   # an orphan, from anywhere

A Group ends together the processes started together.
"""

from netfate.supervisor import probes
from netfate.supervisor.group import Group
from netfate.supervisor.process import Probe, StartError, Supervised, stop_recorded
from netfate.supervisor.records import Record, ours, read_record

__all__ = ["Group", "Probe", "Record", "StartError", "Supervised", "ours", "probes",
           "read_record", "stop_recorded"]
