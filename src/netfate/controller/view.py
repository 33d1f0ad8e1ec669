"""What the controller believes a switch's flow table holds, so a sync can skip reading it.

A sync used to start with a flow-stats read of the whole table (OFPMP_FLOW): a round trip
that costs 3-10 ms on a loaded 2-core machine, twice on a handover's critical path (the
anchor's round, then the visited CPE's). Only this controller writes a switch it masters,
so once it has read the table and sent a diff, the table is the plan's desired flows plus
the foreign ones it left alone; the next sync diffs against that.

The belief is dropped (the next sync reads the table again) whenever it may be wrong:
- the switch refused a message sent since the last answered barrier (OFPT_ERROR);
- the switch removed a flow on its own (OFPT_FLOW_REMOVED: idle or hard timeout, a meter or
  group deleted) or a port went away;
- the controller's role changed (another master may have written the switch meanwhile);
- it is older than `ttl` seconds since the read it descends from: a safety net against
  writes by hand (`ovs-ofctl add-flow`), which the controller is not told about.

A new connection starts with no belief. Pure bookkeeping: `ControllerApp` acts on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netfate.controller.flowmod import FlowMod

VIEW_TTL_S = 30.0  # a belief older than this is checked against the switch (a full read)


@dataclass
class FlowView:
    """One switch's believed flow table. Times are `time.monotonic()` seconds."""

    ttl: float = VIEW_TTL_S
    flows: list[FlowMod] | None = None
    read_at: float = 0.0                              # the read it descends from
    unconfirmed: set[int] = field(default_factory=set)  # xids sent since the last barrier

    def current(self, now: float) -> list[FlowMod] | None:
        """The believed table, or None: read it from the switch."""
        if self.flows is None or now - self.read_at >= self.ttl:
            return None
        return self.flows

    def read(self, at: float) -> None:
        """A read of the whole table was asked for at `at` (its reply is what `expect`
        builds on). The old belief goes now: a read that is never answered must not
        leave it looking fresh."""
        self.flows = None
        self.read_at = at

    def expect(self, desired: list[FlowMod], foreign: list[FlowMod]) -> None:
        """A diff was sent: the table will hold `desired` (ours) and `foreign` (left)."""
        self.flows = [*desired, *foreign]

    def sent(self, xid: int) -> None:
        self.unconfirmed.add(xid)

    def refused(self, xid: int) -> None:
        """The switch answered `xid` with an error: if it was one of ours since the last
        answered barrier, the table is not what was expected."""
        if xid in self.unconfirmed:
            self.drop()

    def confirmed(self) -> None:
        """The last barrier was answered: every message before it was applied or refused
        (a refusal arrives before the barrier's reply)."""
        self.unconfirmed.clear()

    def drop(self) -> None:
        self.flows = None
