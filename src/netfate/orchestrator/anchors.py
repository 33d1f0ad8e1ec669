"""The bookkeeping of make-before-break anchors (no I/O; `Switches` acts on it).

While a user's NFs still run at their old CPE after they associated at another (the
visited CPE), a core diverts their traffic through the old CPE (the anchor), and the visited
CPE lets them out by its uplink with no NF of its own. Two orders keep the user's rules
over their traffic throughout:

- make: the visited CPE lets them out only once the core's anchor is confirmed by the
  controller (its barrier) and the core's datapath is settled (its cached flows purged):
  `ready`;
- break: the core stops diverting them only once every CPE that let them out raw has its
  new state (their own chain there, or none) confirmed and settled. A CPE that does not
  confirm keeps the anchor held (`hold`): the user's traffic goes on to the old CPE, whose
  NFs may be gone (it is dropped), never out raw. It is tried again when that CPE confirms
  (`released_by`).

Generations are the publisher's; `synced` maps a node to the newest generation the
controller confirmed there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from netfate.controller.model import SwitchState


class Anchors:
    def __init__(self) -> None:
        self.gen: dict[str, int] = {}           # user -> core generation anchoring them
        self.cores: dict[str, set[str]] = {}    # user -> the cores anchoring them
        self.visits: dict[str, set[str]] = {}   # user -> CPEs that let them out raw
        self.settled: dict[str, int] = {}       # node -> generation its datapath forwards by
        self.unconfirmed: dict[str, int] = {}   # CPE -> its generation not confirmed in time

    # -- make ----------------------------------------------------------------------------
    def ready(self, user: str, synced: Mapping[str, int]) -> bool:
        """Whether a core anchoring `user` has confirmed the anchor and settled its
        datapath since: only then may the visited CPE let the user out."""
        need = self.gen.get(user)
        return need is not None and any(
            synced.get(n, -1) >= need and self.settled.get(n, -1) >= need
            for n in self.cores.get(user, ()))

    def all_ready(self, synced: Mapping[str, int]) -> frozenset[str]:
        return frozenset(u for u in self.gen if self.ready(u, synced))

    def made(self, core: str, state: SwitchState, prev: SwitchState | None,
             anchors: Mapping[str, tuple[object, str]]) -> None:
        """`state` (numbered) is published for `core`: its new anchors start waiting for
        their own confirmation; `anchors` maps a user to (their rule, the CPE of their
        session), as SwitchingRecords.anchors."""
        for loc in state.locations:
            if loc.anchor is not None and (prev is None or loc not in prev.locations):
                self.gen[loc.user] = state.generation
                self.cores[loc.user] = {core}
                if (a := anchors.get(loc.user)) is not None:
                    self.visits.setdefault(loc.user, set()).add(a[1])

    def mark_settled(self, gens: Mapping[str, int]) -> None:
        for n, g in gens.items():
            self.settled[n] = max(self.settled.get(n, -1), g)

    def to_settle(self, gens: Mapping[str, int | None]) -> dict[str, int]:
        return {n: g for n, g in gens.items() if g is not None and self.settled.get(n, -1) < g}

    # -- break ---------------------------------------------------------------------------
    def ending(self, core: str, state: SwitchState) -> list[str]:
        """The users `core` anchors now and `state` (not yet published) no longer does."""
        now = {loc.user for loc in state.locations if loc.anchor is not None}
        return [u for u, cores in self.cores.items() if core in cores and u not in now]

    def visited_by(self, users: Iterable[str]) -> dict[str, set[str]]:
        return {u: set(self.visits.get(u, ())) for u in users}

    def end(self, users: Iterable[str]) -> None:
        """Those moves are over: a next one waits for its own anchor."""
        for u in users:
            self.gen.pop(u, None)
            self.cores.pop(u, None)
            self.visits.pop(u, None)

    @staticmethod
    def hold(state: SwitchState, prev: SwitchState, held: set[str]) -> SwitchState:
        """`state` with the anchored locations of `held` users kept as `prev` had them."""
        kept = {loc.user: loc for loc in prev.locations if loc.user in held}
        locs = [kept.pop(loc.user, loc) if loc.user in held else loc for loc in state.locations]
        return state.model_copy(update={"locations": (*locs, *kept.values())})

    def released_by(self, node: str, generation: int) -> list[str]:
        """`node` confirmed `generation`: the cores whose held anchors may now end."""
        if self.unconfirmed.get(node, generation + 1) > generation:
            return []
        del self.unconfirmed[node]
        return sorted({c for u, vs in self.visits.items() if node in vs
                       for c in self.cores.get(u, ())})
