"""TS rules (NNF paper, Table I) on a node without an SDN controller.

The node keeps its LSI's TS rules itself (one JSON file per LSI, so separate processes share
them) and converges the switch the way the controller does: `controller/flows.py` decides the
flows from a SwitchState holding those rules, `controller/sync.py` diffs them against what the
switch reports, and they travel through the one encoder (`controller/ofmsg.py`) over the
switch's management socket. A node WITH a controller never uses this: the orchestrator holds
its TS rules in the switch's desired state (PUT /api/v1/nodes/{node}/ts_rules).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from netfate.controller.flows import build
from netfate.controller.model import SwitchState, TSRule
from netfate.controller.sync import SyncPlan, diff
from netfate.drivers.openflow import OpenFlowChannel
from netfate.errors import Conflict, DriverError, NotFound


class LocalSteering:
    """The TS rules of each LSI of one node, and the switch converged to them.

    channel(lsi) is the LSI's OpenFlow session, ofports(lsi) its port numbers by name, and
    settle() waits until the datapath forwards by new flows (OvsNetwork.settle), and
    controlled(lsi) says whether an SDN controller is connected to the LSI: then it owns every
    flow, and converging behind its back would remove them, so Conflict is raised instead.
    """

    def __init__(self, rules_dir: Path, channel: Callable[[str], OpenFlowChannel],
                 ofports: Callable[[str], dict[str, int]], settle: Callable[[], None],
                 controlled: Callable[[str], bool] = lambda lsi: False) -> None:
        self.rules_dir = rules_dir
        self._controlled = controlled
        self._channel = channel
        self._ofports = ofports
        self._settle = settle
        self._lock = threading.Lock()

    # -- the rules, kept per LSI ------------------------------------------------------------
    def _file(self, lsi: str) -> Path:
        return self.rules_dir / f"{lsi}.json"

    def _load(self, lsi: str) -> dict[str, TSRule]:
        try:
            data: dict[str, Any] = json.loads(self._file(lsi).read_text())
        except FileNotFoundError:
            return {}
        return {k: TSRule.model_validate(v) for k, v in data.items()}

    def _save(self, lsi: str, rules: dict[str, TSRule]) -> None:
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.rules_dir / f".{lsi}.json.tmp"
        tmp.write_text(json.dumps({k: r.model_dump(mode="json") for k, r in rules.items()}))
        os.replace(tmp, self._file(lsi))

    def forget(self, lsi: str) -> None:
        """The LSI is gone: drop its rules."""
        self._file(lsi).unlink(missing_ok=True)

    def rules_of(self, lsi: str) -> list[TSRule]:
        return list(self._load(lsi).values())

    # -- Table I ----------------------------------------------------------------------------
    def apply(self, lsi: str, rules: Iterable[TSRule], *, settle: bool = True) -> SyncPlan:
        """Add or replace rules (by rule_id) and converge the switch. Raises NotFound when a
        rule names a port not on the LSI (nothing changes then), DriverError when the switch
        refuses. settle=False when no traffic can have used the old flows (new ports)."""
        new = list(rules)
        if not new:
            return SyncPlan()
        with self._lock:
            known = self._load(lsi)
            for r in new:
                known[r.rule_id] = r
            plan = self._sync(lsi, known, check=tuple(r.rule_id for r in new))
            self._save(lsi, known)
        if settle and not plan.empty:
            self._settle()
        return plan

    def delete(self, lsi: str, rule_ids: Iterable[str]) -> SyncPlan:
        """Remove rules by id (an unknown id is not an error) and converge the switch."""
        ids = list(rule_ids)
        if not ids:
            return SyncPlan()
        with self._lock:
            known = self._load(lsi)
            for rid in ids:
                known.pop(rid, None)
            plan = self._sync(lsi, known)
            self._save(lsi, known)
        if not plan.empty:
            self._settle()
        return plan

    def sync(self, lsi: str) -> SyncPlan:
        """Converge the switch to the rules kept for it (say after OVS restarted)."""
        with self._lock:
            return self._sync(lsi, self._load(lsi))

    def _sync(self, lsi: str, rules: dict[str, TSRule], check: tuple[str, ...] = ()
              ) -> SyncPlan:
        ofports = self._ofports(lsi)  # NotFound for an LSI that does not exist
        if self._controlled(lsi):
            raise Conflict(f"LSI {lsi} is programmed by an SDN controller: its TS rules go "
                           "through the orchestrator (/api/v1/nodes/{node}/ts_rules)")
        try:
            state = SwitchState(node=lsi, role="cpe", ts_rules=tuple(rules.values()))
        except ValidationError as exc:
            raise DriverError(f"TS rules on {lsi}: {exc}") from exc
        flows = build(state, ofports)
        bad = [s for s in flows.skipped if any(s.startswith(f"TS rule {rid}:") for rid in check)]
        if bad:
            raise NotFound(f"TS rule on {lsi}: {'; '.join(bad)}")
        ch = self._channel(lsi)
        plan = diff(flows.flows, ch.flows())
        # Adds first, then deletes (sync's order): never a moment with neither flow.
        ch.add_flows(plan.add)
        ch.delete_strict(plan.delete)
        return plan
