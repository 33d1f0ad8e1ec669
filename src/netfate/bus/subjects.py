"""Subject names. Agents dial out and only publish or answer on their own node's subjects."""

from __future__ import annotations

REGISTER = "netfate.agent.register"          # agent -> orchestrator (request/reply)
TELEMETRY = "netfate.agent.{node}.telemetry"  # agent -> orchestrator
EVENTS = "netfate.agent.{node}.events"        # client association, NF state changes
NOTIFY = "netfate.agent.{node}.notifications"  # NF notifications, forwarded from the queue
COMMAND = "netfate.node.{node}.cmd"           # orchestrator -> agent (request/reply)


def telemetry(node: str) -> str:
    return TELEMETRY.format(node=node)


def events(node: str) -> str:
    return EVENTS.format(node=node)


def notify(node: str) -> str:
    return NOTIFY.format(node=node)


def command(node: str) -> str:
    return COMMAND.format(node=node)


ALL_TELEMETRY = TELEMETRY.format(node="*")
ALL_EVENTS = EVENTS.format(node="*")
ALL_NOTIFY = NOTIFY.format(node="*")

# SDN controller
CONTROLLER_DESIRED = "netfate.controller.{node}.desired"  # orchestrator -> controller (SwitchState)
CONTROLLER_SYNCED = "netfate.controller.{node}.synced"    # controller -> orchestrator
CONTROLLER_CLIENT_SEEN = "netfate.controller.{node}.client_seen"
CONTROLLER_IDLE = "netfate.controller.idle"               # UserIdleReport
CONTROLLER_HELLO = "netfate.controller.hello"             # controller started or reconnected


def controller_desired(node: str) -> str:
    return CONTROLLER_DESIRED.format(node=node)


def controller_synced(node: str) -> str:
    return CONTROLLER_SYNCED.format(node=node)


def controller_client_seen(node: str) -> str:
    return CONTROLLER_CLIENT_SEEN.format(node=node)


ALL_CONTROLLER_DESIRED = CONTROLLER_DESIRED.format(node="*")
ALL_CONTROLLER_SYNCED = CONTROLLER_SYNCED.format(node="*")
ALL_CONTROLLER_CLIENT_SEEN = CONTROLLER_CLIENT_SEEN.format(node="*")
