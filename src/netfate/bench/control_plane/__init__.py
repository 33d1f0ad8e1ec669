"""netfate bench control-plane: the orchestrator under load from simulated agents and users.

No root, no data plane. The bench starts, in a fresh state directory under a ``fate-`` temp
dir:

- the orchestrator (``netfate orchestrator``) as a subprocess, with SQLite and its embedded
  nats-server on free loopback ports, so its CPU use is its own (the machine has 2 cores);
- the simulated agents (``netfate.bench.sim_agents``): N nodes (~90% CPE, some PE, a few DC) as
  real NATS clients that register, report telemetry and answer commands at once;
- M users, created through the API (``POST /users``, firewall required), who log in
  (``POST /users/{u}/associate`` at their home CPE), then roam to other CPEs or go idle
  (``POST /users/{u}/idle``) at a set rate (open loop: events go out on schedule whether or not
  earlier ones are done), for a duration.

Placement latency runs from the moment an associate request is due to the moment its
instantiate or migrate operation is COMPLETED, as the orchestrator's server-sent events
(``GET /events``, ``op`` events) report it. Every process started is stopped by its recorded
PID at the end, on failure and on Ctrl-C too, and the temp dir is removed.

Modules: params (parameters, targets), procs (the supervised processes), api (httpx client
and the operations' end states), load (the load generator), meter (CPU, memory), report
(figures), seed (users written into the database), run (one run).
"""

from __future__ import annotations

from netfate.bench.control_plane.params import PEERS, TARGETS, BenchError, Params
from netfate.bench.control_plane.run import run

__all__ = ["PEERS", "TARGETS", "BenchError", "Params", "run"]
