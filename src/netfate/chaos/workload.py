"""The chaos workload: users on the testbed's clients log in, roam, go idle, have their
chains edited and their firewalls updated, in a seeded random order, and keep a model of
what the platform must end up doing for each (the checker's expectations).

A user is "active" while a keeper thread sends them traffic (a TCP connection attempt to the
internet host every KEEP_S): their idle flow stays fresh. An idle user gets no traffic at all
and must be released within the idle timeout. Every step tolerates the faults the nemesis
injects: a step that fails (a portal down, an API restarting) is counted as such and leaves
the model as the platform left it.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from netfate.errors import NetfateError
from netfate.roaming.probes import reachable
from netfate.roaming.session import portal_login
from netfate.testbed import lifecycle
from netfate.testbed.move import move
from netfate.testbed.topology import Topology

INET = "10.255.0.1"
ALLOWED, DENIED, EXTRA = 5201, 2323, 2424  # EXTRA: denied or not, as the NF updates say
KEEP_S = 0.5
CHAINS = (("firewall",), ("firewall", "packet-inspector"))


def rules(deny_extra: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"action": "deny", "proto": "tcp", "dport": DENIED}]
    if deny_extra:
        out.append({"action": "deny", "proto": "tcp", "dport": EXTRA})
    return out


@dataclass
class User:
    """What the workload did to one user (the model): `logged_in` after a portal login that
    answered, `active` while the keeper sends their traffic."""

    name: str
    host: str
    logged_in: bool = False
    chain: tuple[str, ...] = CHAINS[0]
    _keep: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self._keep.is_set()

    @property
    def password(self) -> str:
        return f"{self.name}-chaos-secret"

    def keep(self, ns: str) -> None:
        """Start sending traffic (idempotent)."""
        self._keep.set()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, args=(ns,), daemon=True)
            self._thread.start()

    def quiet(self) -> None:
        self._keep.clear()
        if self._thread is not None:
            self._thread.join(3)
            self._thread = None

    def _run(self, ns: str) -> None:
        while self._keep.is_set():
            reachable(ns, INET, ALLOWED, timeout=KEEP_S)  # the attempt is the traffic
            time.sleep(KEEP_S / 2)


@dataclass
class Step:
    at: float          # seconds into the run
    kind: str
    user: str
    ok: bool
    detail: str = ""


class Workload:
    """`steps(n)` random steps for the users of `topo`'s clients."""

    def __init__(self, topo: Topology, api: httpx.Client, rng: random.Random) -> None:
        self.topo = topo
        self.api = api
        self.rng = rng
        self.users = [User(f"chaos{k + 1}", h.name)
                      for k, h in enumerate(x for x in topo.hosts if x.role == "client")]
        self.cpes = [n.name for n in topo.nodes if n.role == "cpe"]
        self.log: list[Step] = []

    def setup(self) -> None:
        """Create the users (NetfateError if the API refuses)."""
        for u in self.users:
            r = self.api.post("/users", json={
                "name": u.name, "password": u.password, "required_nfs": list(u.chain),
                "nf_config": {"firewall": {"rules": rules(False)}}})
            if r.status_code not in (201, 409):
                raise NetfateError(f"creating {u.name}: {r.status_code} {r.text}")

    def where(self, u: User) -> tuple[str, str]:
        """The user's host's namespace and the CPE it is attached to now."""
        topo = Topology.model_validate((lifecycle.load_state() or {})["topology"])
        h = topo.host(u.host)
        return h.netns, h.attach

    def step(self, t: float) -> Step:
        u = self.rng.choice(self.users)
        kinds = ["roam", "chain", "update"] + (["idle", "idle"] if u.logged_in and u.active
                                               else ["login", "login", "login"])
        kind = self.rng.choice(kinds)
        try:
            detail = getattr(self, f"_{kind}")(u)
            s = Step(t, kind, u.name, True, detail)
        except (NetfateError, httpx.HTTPError, OSError, KeyError, ValueError) as exc:
            s = Step(t, kind, u.name, False, f"{type(exc).__name__}: {exc}"[:300])
        self.log.append(s)
        return s

    # -- the steps ------------------------------------------------------------------------
    def _login(self, u: User) -> str:
        ns, at = self.where(u)
        u.keep(ns)  # a device that logs in uses the network
        try:
            portal_login(self.topo_now(), u.host, u.name, u.password)
        except BaseException:
            # Refused, or no answer (the portal or RADIUS killed): the login may still have
            # gone through; a device that gives up goes quiet, so it must be released.
            u.quiet()
            raise
        u.logged_in = True
        return f"at {at}"

    def _idle(self, u: User) -> str:
        u.quiet()
        u.logged_in = False  # released within the idle timeout; captive again after
        return "traffic stopped"

    def _roam(self, u: User) -> str:
        _, at = self.where(u)
        to = self.rng.choice([c for c in self.cpes if c != at])
        move(u.host, to)
        return f"{at} -> {to}"

    def _chain(self, u: User) -> str:
        new = CHAINS[1] if u.chain == CHAINS[0] else CHAINS[0]
        r = self.api.patch(f"/users/{u.name}", json={"required_nfs": list(new)})
        if r.status_code != 200:
            raise NetfateError(f"PATCH {u.name}: {r.status_code} {r.text[:200]}")
        u.chain = new
        return "+".join(new)

    def _update(self, u: User) -> str:
        fws = [i for i in self.api.get("/vnf_instances").json()
               if i["owner"] == u.name and i["nf_name"] == "firewall"
               and i["desired_state"] == "present"]
        if not fws:
            return "no firewall to update"
        deny = self.rng.random() < 0.5
        r = self.api.patch(f"/vnf_instances/{fws[0]['id']}",
                           json={"config": {"rules": rules(deny)}})
        if r.status_code >= 500:
            raise NetfateError(f"update {fws[0]['id']}: {r.status_code} {r.text[:200]}")
        return f"{fws[0]['id']} deny {EXTRA}: {deny} ({r.status_code})"

    def topo_now(self) -> Topology:
        return Topology.model_validate((lifecycle.load_state() or {})["topology"])

    def stop(self) -> None:
        for u in self.users:
            u.quiet()
