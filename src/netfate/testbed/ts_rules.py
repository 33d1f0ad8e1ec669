"""Where a testbed's TS rules (NNF paper, Table I) go: to the orchestrator when the testbed
runs one (its SDN controller owns every flow, so a rule written behind its back would be
removed, and its table-miss drops), else straight to the node's LSI (local steering).

Both paths end in the same place: `controller/flows.py` renders the rules, `controller/sync.py`
diffs them and `controller/ofmsg.py` encodes them.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import httpx

from netfate.api_auth import BearerAuth
from netfate.controller.model import TSRule
from netfate.drivers.ovs import OvsNetwork
from netfate.errors import DriverError, NetfateError


class TSRules(Protocol):
    """Table I on one testbed: create (or replace) and delete TS rules at a node's LSI."""

    def apply(self, node: str, lsi: str, rules: list[TSRule]) -> None: ...
    def delete(self, node: str, lsi: str, rule_ids: list[str]) -> None: ...
    def rules_of(self, node: str, lsi: str) -> list[TSRule]: ...


class LocalTSRules:
    """No controller: the node's network driver keeps and converges its LSI's rules."""

    def __init__(self, network: OvsNetwork) -> None:
        self.network = network

    def apply(self, node: str, lsi: str, rules: list[TSRule]) -> None:
        self.network.apply_ts_rules(lsi, rules)

    def delete(self, node: str, lsi: str, rule_ids: list[str]) -> None:
        self.network.delete_ts_rules(lsi, rule_ids)

    def rules_of(self, node: str, lsi: str) -> list[TSRule]:
        return self.network.list_ts_rules(lsi)


class ApiTSRules:
    """With a controller: the orchestrator holds the rules in the node's switch state
    (/api/v1/nodes/{node}/ts_rules). A write returns once the controller has installed the
    rules (none of them left out for a port it has not seen yet) and the datapath uses them;
    DriverError after `timeout` seconds otherwise."""

    def __init__(self, api_url: str, network: OvsNetwork, timeout: float = 10.0) -> None:
        self.url = api_url.rstrip("/") + "/api/v1"
        self.network = network
        self.timeout = timeout
        self.http = httpx.Client(timeout=timeout + 5, auth=BearerAuth())

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self.http.request(method, self.url + path, **kw)
        except httpx.HTTPError as exc:
            raise DriverError(f"the orchestrator at {self.url} did not answer: {exc}") from exc
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise NetfateError(f"{method} {path}: HTTP {r.status_code}: {detail}")
        return r.json()

    def apply(self, node: str, lsi: str, rules: list[TSRule]) -> None:
        if not rules:
            return
        body = [r.model_dump(mode="json", exclude_none=True) for r in rules]
        out = self._call("POST", f"/nodes/{node}/ts_rules", json=body,
                         params={"wait": min(self.timeout, 30)})
        self._installed(node, out, [r.rule_id for r in rules])

    def delete(self, node: str, lsi: str, rule_ids: list[str]) -> None:
        if not rule_ids:
            return
        out = self._call("DELETE", f"/nodes/{node}/ts_rules",
                         params={"rule_id": rule_ids, "wait": min(self.timeout, 30)})
        self._installed(node, out, [])

    def rules_of(self, node: str, lsi: str) -> list[TSRule]:
        rows = self._call("GET", f"/nodes/{node}/ts_rules")
        return [TSRule.model_validate({k: r[k] for k in ("rule_id", "priority", "match",
                                                         "output")}) for r in rows]

    def _installed(self, node: str, out: dict[str, Any], ids: list[str]) -> None:
        """Until the controller confirmed the state with none of `ids` left out; then make
        the datapath forward by the new flows at once (its cache would lag)."""
        deadline = time.monotonic() + self.timeout
        report = out
        while not (report.get("installed", report.get("in_sync"))
                   and not _left_out(report.get("skipped", []), ids)):
            if time.monotonic() > deadline:
                raise DriverError(f"the SDN controller did not install TS rules {ids} at "
                                  f"{node} within {self.timeout:g}s: {report}")
            time.sleep(0.02)
            sw = [s for s in self._call("GET", "/switches") if s["node"] == node]
            report = sw[0] if sw else {}
        if report.get("errors"):
            raise DriverError(f"the SDN controller refused flows at {node}: {report['errors']}")
        self.network.settle()


def _left_out(skipped: list[str], ids: list[str]) -> list[str]:
    return [s for s in skipped if any(s.startswith(f"TS rule {rid}:") for rid in ids)]
