"""Prometheus metrics of every NetFATE process, one module per process.

- `common`: what every process exports (the `netfate.counters` error counters through a
  custom collector, the process's own CPU/memory) and the loopback HTTP listener of the
  processes that have no web server (controller, agents).
- `orchestrator`: LCM operations, placement and handover latencies, users, NF instances,
  nodes, switch sync lag, agent command latency, RADIUS requests; served at ``/metrics`` of
  the orchestrator's FastAPI app.
- `controller`: flow-mods, barriers, syncs and generation lag of each switch.
- `agent`: command handling latency, node resources and per-NF CPU/memory.
- `scrape`: a prometheus.yml for the processes of a running testbed.

Names follow Prometheus's conventions (https://prometheus.io/docs/practices/naming/): the
``netfate_`` prefix, base units (``_seconds``, ``_bytes``, ``_ratio``) and ``_total`` for
counters. Instrumented code calls small functions here; the counting stays out of its way.
"""
