"""The load generator: users who log in, roam and go idle at a set rate, open loop (events go
out on schedule whether or not earlier ones are done), one event in flight per user. Each
event is a Sample, timed from when it was due to when its operations ended."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import httpx

from netfate.bench.control_plane.api import ERRORS, Api, OpWatch
from netfate.bench.control_plane.params import Params, hash_name, mac_of


@dataclass
class Sample:
    kind: str           # login | roam | idle
    phase: str          # login | roam
    t_due: float        # time.time() when the request was due (open loop)
    user: str
    node: str | None    # where the user associates; None: the user goes idle
    t_sent: float = 0.0
    t_accepted: float | None = None
    t_done: float | None = None  # when its last operation entered its final state
    ops: list[tuple[str, str]] = field(default_factory=list)  # (operation kind, op id)
    error: str | None = None
    refused: bool = False  # 429 past capacity: not admitted (nothing done), not an error
    # Its operation was ended by the leader's sweep after the replica running it was killed
    # (orchestrator/orphans.py): the fault's, not an error, if the user is served at the end.
    cut_short: bool = False


class Users:
    """Who is where, and who has an event in flight (one at a time per user)."""

    def __init__(self, names: list[str], cpes: list[str], rng: random.Random) -> None:
        self.rng = rng
        self.cpes = cpes
        self.at: dict[str, str | None] = dict.fromkeys(names)
        self.free = list(names)
        self._pos = {u: i for i, u in enumerate(self.free)}

    def take(self, name: str | None = None) -> str | None:
        if not self.free:
            return None
        if name is None:
            name = self.free[self.rng.randrange(len(self.free))]
        elif name not in self._pos:
            return None
        i = self._pos.pop(name)
        last = self.free.pop()
        if last != name:
            self.free[i] = last
            self._pos[last] = i
        return name

    def give_back(self, name: str) -> None:
        self._pos[name] = len(self.free)
        self.free.append(name)

    def home(self, name: str) -> str:
        return self.cpes[hash_name(name) % len(self.cpes)]

    def elsewhere(self, name: str) -> str:
        cur = self.at[name]
        while True:
            cpe = self.cpes[self.rng.randrange(len(self.cpes))]
            if cpe != cur or len(self.cpes) == 1:
                return cpe


class Load:
    def __init__(self, p: Params, api: Api, watch: OpWatch, users: Users) -> None:
        self.p = p
        self.api = api
        self.watch = watch
        self.users = users
        self.samples: list[Sample] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.lag: list[float] = []

    async def phase(self, name: str, count: int | None, duration: float | None) -> None:
        """Events at `rate`, open loop, until `count` events or `duration` s."""
        interval = 1.0 / self.p.rate
        start = time.perf_counter()
        wall0 = time.time() - start
        i = 0
        while True:
            if count is not None and i >= count:
                break
            due = start + i * interval
            if duration is not None and due - start >= duration:
                break
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                self.lag.append(now - due)
            s = self.next_event(name, wall0 + due)
            i += 1
            if s is None:
                continue
            self.samples.append(s)
            t = asyncio.create_task(self.run_event(s))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)

    def next_event(self, phase: str, due: float) -> Sample | None:
        u = self.users
        if phase == "login":
            name = next((n for n in self._login_order if u.take(n)), None)
            return None if name is None else Sample("login", phase, due, name, u.home(name))
        name = u.take()
        if name is None:
            return None
        if u.at[name] is None:
            return Sample("login", phase, due, name, u.home(name))
        if u.rng.random() < self.p.idle_fraction:
            return Sample("idle", phase, due, name, None)
        return Sample("roam", phase, due, name, u.elsewhere(name))

    def plan_logins(self) -> None:
        order = list(self.users.at)
        self.users.rng.shuffle(order)
        self._login_order = iter(order)

    async def run_event(self, s: Sample) -> None:
        name, node = s.user, s.node
        try:
            s.t_sent = time.time()
            if node is None:
                status, body = await self.api.request("POST", f"/api/v1/users/{name}/idle")
            else:
                status, body = await self.api.request(
                    "POST", f"/api/v1/users/{name}/associate",
                    {"node": node, "mac": mac_of(name)})
            s.t_accepted = time.time()
            if status == 429:  # graceful overload: refused at once, nothing was done
                s.refused = True
                return
            if status != 202:
                s.error = f"HTTP {status}: {str(body)[:200]}"
                return
            self.users.at[name] = node
            lifecycle = [i["kind"] for i in body["intents"]
                         if i["kind"] in ("place", "migrate", "release")]
            s.ops = list(zip(lifecycle, body["vnf_lcm_op_occs"], strict=False))
            ends = [await self.watch.wait(op, self.p.op_timeout) for _, op in s.ops]
            bad = [st for _, st in ends if st not in ("COMPLETED", "ENDED")]
            if bad:
                s.error = f"operation {bad[0]}"
            s.t_done = max([t for t, _ in ends], default=s.t_accepted)
        except (TimeoutError, httpx.TimeoutException):
            s.error = "timeout"
        except (*ERRORS, KeyError) as exc:
            s.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.users.give_back(name)

    async def settle(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)
