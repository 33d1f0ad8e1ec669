"""Subject names. Agents dial out and only publish or answer on their own node's subjects."""

from __future__ import annotations

from collections.abc import Callable

REGISTER = "netfate.agent.register"          # agent -> orchestrator (request/reply)
TELEMETRY = "netfate.agent.{node}.telemetry"  # agent -> orchestrator
EVENTS = "netfate.agent.{node}.events"        # client association, NF state changes
NOTIFY = "netfate.agent.{node}.notifications"  # NF notifications, forwarded from the queue
COMMAND = "netfate.node.{node}.cmd"           # orchestrator -> agent (request/reply)
SETTLED = "netfate.agent.{node}.settled"      # DatapathSettled, after a flow change

# Orchestrator replicas (issue #15)
ORCHESTRATOR_ALIVE = "netfate.orchestrator.alive"        # ReplicaAlive, every second
ORCHESTRATOR_SWITCHES = "netfate.orchestrator.switches"  # SwitchRequest -> the leader

# SDN controller
CONTROLLER_DESIRED = "netfate.controller.{node}.desired"  # orchestrator -> controller (SwitchState)
CONTROLLER_SYNCED = "netfate.controller.{node}.synced"    # controller -> orchestrator
CONTROLLER_CLIENT_SEEN = "netfate.controller.{node}.client_seen"
CONTROLLER_IDLE = "netfate.controller.idle"               # UserIdleReport
CONTROLLER_HELLO = "netfate.controller.hello"             # controller started or reconnected
CONTROLLER_ALIVE = "netfate.controller.alive"             # ControllerAlive, every second
CONTROLLER_COUNTERS = "netfate.controller.{node}.counters"  # UserCounters, periodically


def _per_node(template: str) -> Callable[[str], str]:
    """The function giving `template`'s subject for one node ("*" matches every node)."""

    def subject(node: str) -> str:
        return template.format(node=node)

    return subject


telemetry = _per_node(TELEMETRY)
events = _per_node(EVENTS)
notify = _per_node(NOTIFY)
command = _per_node(COMMAND)
datapath_settled = _per_node(SETTLED)
controller_desired = _per_node(CONTROLLER_DESIRED)
controller_synced = _per_node(CONTROLLER_SYNCED)
controller_client_seen = _per_node(CONTROLLER_CLIENT_SEEN)
controller_counters = _per_node(CONTROLLER_COUNTERS)

# Every node's subjects, for a subscriber that serves them all.
ALL_TELEMETRY = telemetry("*")
ALL_EVENTS = events("*")
ALL_NOTIFY = notify("*")
ALL_DATAPATH_SETTLED = datapath_settled("*")
ALL_CONTROLLER_DESIRED = controller_desired("*")
ALL_CONTROLLER_SYNCED = controller_synced("*")
ALL_CONTROLLER_CLIENT_SEEN = controller_client_seen("*")
ALL_CONTROLLER_COUNTERS = controller_counters("*")
