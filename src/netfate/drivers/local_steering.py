"""TS rules (NNF paper, Table I) on a node without an SDN controller.

The node keeps its LSI's TS rules itself (one JSON file per LSI, so separate processes share
them) and converges the switch the way the controller does: `controller/flows.py` decides the
flows from a SwitchState holding those rules, `controller/sync.py` diffs them against what the
switch reports, and they travel through the one encoder (`controller/ofmsg.py`) over the
switch's management socket. A node WITH a controller never uses this: the orchestrator holds
its TS rules in the switch's desired state (PUT /api/v1/nodes/{node}/ts_rules).

A change reads and writes the whole file and rebuilds every flow, but does not dump and
decode the switch's flows each time: what this process last installed stands for them as
long as the file is the one it last wrote (no other process changed the rules) and the
OpenFlow session is the same (the switch did not restart). Each dump cost ~1-1.5 ms here
with a handful of flows, two per NF start, and grows with the flows of every NF on the node.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from netfate.controller.flowmod import FlowMod
from netfate.controller.flows import build
from netfate.controller.model import SwitchState, TSRule, stored_rules
from netfate.controller.sync import SyncPlan, diff
from netfate.drivers.openflow import OpenFlowChannel
from netfate.errors import Conflict, DriverError, NotFound

Stamp = tuple[int, int, int]  # the rules file's inode, size and mtime (ns)


@dataclass
class _Known:
    """What this process knows of one LSI: its rules as of the file's `stamp`, and the flows
    it installed to match them in OpenFlow session `session` (None: ask the switch)."""

    stamp: Stamp | None
    rules: dict[str, TSRule]
    flows: list[FlowMod] | None = None
    session: int = -1
    # Each rule as the file holds it (TSRule is frozen: the same object dumps the same), so
    # a write serialises only new rules (2000 model_dumps took 40 ms, json.dumps 8).
    dumped: dict[str, Any] = field(default_factory=dict)


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
        self._known: dict[str, _Known] = {}

    # -- the rules, kept per LSI ------------------------------------------------------------
    def _file(self, lsi: str) -> Path:
        return self.rules_dir / f"{lsi}.json"

    def _stamp(self, lsi: str) -> Stamp | None:
        try:
            st = self._file(lsi).stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _load(self, lsi: str) -> dict[str, TSRule]:
        """The LSI's rules (a copy): from memory while the file is the one this process last
        read or wrote, else read again (and the flows it remembers are asked again)."""
        stamp = self._stamp(lsi)
        known = self._known.get(lsi)
        if known is None or known.stamp != stamp:
            data: dict[str, Any] = {}
            if stamp is not None:
                with contextlib.suppress(FileNotFoundError):
                    data = json.loads(self._file(lsi).read_text())
            rules = {r.rule_id: r for r in stored_rules(data.values(), f"LSI {lsi}")}
            known = self._known[lsi] = _Known(stamp, rules, dumped=data)
        return dict(known.rules)

    def _save(self, lsi: str, rules: dict[str, TSRule]) -> None:
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.rules_dir / f".{lsi}.json.tmp"
        known = self._known.setdefault(lsi, _Known(None, {}))
        dumped = {k: known.dumped[k] if known.rules.get(k) is r and k in known.dumped
                  else r.model_dump(mode="json") for k, r in rules.items()}
        tmp.write_text(json.dumps(dumped))
        os.replace(tmp, self._file(lsi))
        known.stamp, known.rules, known.dumped = self._stamp(lsi), dict(rules), dumped

    def forget(self, lsi: str) -> None:
        """The LSI is gone: drop its rules."""
        self._file(lsi).unlink(missing_ok=True)
        with self._lock:
            self._known.pop(lsi, None)

    def rules_of(self, lsi: str) -> list[TSRule]:
        with self._lock:
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
        """Converge the switch to the rules kept for it (say after OVS restarted), asking
        the switch for its flows."""
        with self._lock:
            self._known.pop(lsi, None)
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
        known = self._known.get(lsi)
        installed = known.flows if known is not None and known.session == ch.sessions else None
        if known is not None:
            known.flows = None  # unknown until this change has gone through
        plan = diff(flows.flows, ch.flows() if installed is None else installed)
        # Adds first, then deletes (sync's order): never a moment with neither flow.
        ch.add_flows(plan.add)
        ch.delete_strict(plan.delete)
        if known is not None:  # as the switch now has them
            known.flows, known.session = plan.desired, ch.sessions
        return plan
