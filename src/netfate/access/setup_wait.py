"""The portal's wait for a login's NFs: after the orchestrator's 202 to an association, the
lifecycle operations it opened (ETSI SOL003 VnfLcmOpOcc, `GET /vnf_lcm_op_occs/{id}`) are
read until each is final or SETUP_WAIT_S has passed, so a login whose NFs cannot start is not
reported as a success (probe of 2026-12-06: a VPN whose key file was missing was answered
"logged in" while its user stayed captive).

An operation that failed because of the user's configuration (its error's status is 4xx:
an NF refused its configuration, errors.ConfigRefused, 422) is a fault of the configuration;
one that failed otherwise (5xx: the node, the platform) is worth another try. Operations
still running at the deadline are left to finish: the user is told they are logged in, and
the portal's "setting up" page covers the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import httpx

from netfate.access.portal import AcceptError

SETUP_WAIT_S = 8.0  # a VM flavour starts in ≤ 5 s under TCG; within a client's usual 10 s
MAX_OPS = 64  # a login opens one operation per NF of the user's chain (and its releases)
_FINAL_FAILED = frozenset({"FAILED", "FAILED_TEMP", "ROLLED_BACK"})
_FINAL = _FINAL_FAILED | {"COMPLETED"}
# Operations that set up the user's service; a RELEASE or TERMINATE of what they had
# before (at another node, or an NF they no longer require) is neither waited for nor
# reported: its failure does not stop them being served.
_SETS_UP = frozenset({"INSTANTIATE", "MIGRATE", "UPDATE"})
_POLL_S = (0.02, 0.05, 0.1, 0.2)  # then every 0.2 s: a native NF starts in 20-60 ms


def op_ids(body: Any) -> list[str]:
    """The operation ids in an association's 202 body (``vnf_lcm_op_occs``): at most
    MAX_OPS strings; [] for anything else (an orchestrator of before)."""
    ops = body.get("vnf_lcm_op_occs") if isinstance(body, dict) else None
    if not isinstance(ops, list):
        return []
    return [o for o in ops if isinstance(o, str) and 0 < len(o) <= 64][:MAX_OPS]


def wait_for_ops(http: httpx.Client, api_url: str, ops: Iterable[str],
                 deadline_s: float = SETUP_WAIT_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """Read each operation at ``{api_url}/api/v1/vnf_lcm_op_occs/{id}`` that sets the
    user's service up (INSTANTIATE, MIGRATE, UPDATE) until it is final, for at most
    ``deadline_s`` seconds in all. Returns when all completed, or some are still
    running at the deadline, or the orchestrator cannot be read (the login itself was taken:
    its outcome is then unknown, not failed).

    Raises AcceptError (``config_fault`` True) naming the failed operations' details when any
    failed with a 4xx error, else AcceptError (a 502) when any failed with another."""
    pending = list(dict.fromkeys(ops))
    failed: list[tuple[int, str]] = []
    end = time.monotonic() + deadline_s
    k = 0
    while pending:
        still = []
        for op in pending:
            try:
                r = http.get(f"{api_url}/api/v1/vnf_lcm_op_occs/{quote(op, safe='')}")
                occ = r.json() if r.is_success else None
            except (httpx.HTTPError, ValueError):
                return
            if not isinstance(occ, dict):
                return
            state = occ.get("operation_state")
            if occ.get("operation") not in _SETS_UP:
                continue  # releasing what the user had elsewhere: not their service here
            if state in _FINAL_FAILED:
                failed.append(_failure(occ))
            elif state not in _FINAL:
                still.append(op)
        pending = still
        if not pending or time.monotonic() >= end:
            break
        sleep(min(_POLL_S[min(k, len(_POLL_S) - 1)], max(0.0, end - time.monotonic())))
        k += 1
    if not failed:
        return
    mine = [d for status, d in failed if 400 <= status < 500]
    if mine:
        raise AcceptError("; ".join(mine), config_fault=True)
    raise AcceptError("; ".join(d for _, d in failed))


def _failure(occ: dict[str, Any]) -> tuple[int, str]:
    """(status, what to tell the user) of a failed operation: its error's detail (the
    NF's own reason, bounded), or its title."""
    err = occ.get("error")
    if not isinstance(err, dict):
        err = {}
    status = err.get("status")
    detail = str(err.get("detail") or err.get("title") or "it failed")[:300]
    op = str(occ.get("operation") or "operation").lower()
    return (status if isinstance(status, int) else 500, f"{op} of {occ.get('vnf_instance_id')}: "
            f"{detail}")
