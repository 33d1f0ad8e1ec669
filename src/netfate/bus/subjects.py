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
