"""netfate bench control-plane: the orchestrator under load from simulated agents and users.

No root, no data plane. The bench starts, in a fresh state directory under a ``fate-`` temp
dir:

- the orchestrator (``netfate orchestrator``) as a subprocess, with SQLite and its embedded
  nats-server on free loopback ports, so its CPU use is its own (the machine has 2 cores);
- the simulated agents (``netfate.bench.sim_agents``): N nodes (~90% CPE, some PE, a few DC) as
  real NATS clients that register, report telemetry and answer commands at once;
- M users, created through the API (``POST /users``, firewall required), who log in
  (``POST /users/{u}/associate`` at their home CPE), then roam to other CPEs or go idle
  (``POST /users/{u}/idle``) at a set rate (open loop: events go out on schedule whether or not
  earlier ones are done), for a duration.

Placement latency runs from the moment an associate request is due to the moment its
instantiate or migrate operation is COMPLETED, as the orchestrator's server-sent events
(``GET /events``, ``op`` events) report it. Every process started is stopped by its recorded
PID at the end, on failure and on Ctrl-C too, and the temp dir is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from netfate.bench.sim_agents import SIM_FLAVOURS, node_names
from netfate.errors import NetfateError
from netfate.flavours import DEFAULT_FLAVOUR, pick

TARGETS = {"nodes": 1000, "users": 10000, "p99_ms": 100, "events_per_s": 500}
PEERS = {
    "note": "published ceilings of the peer platforms, for contrast",
    "netfate_paper": "a testbed of a few CPEs, one user's firewall",
    "gnf_glasgow": "~100 NFs (containers) across the edge devices of the testbed",
    "nnf_native_nfs": "~100 native NFs per CPE-class node",
    "nfs_ceiling": 100,
}
PASSWORD = "bench-password"  # the simulated users' password
DONE_STATES = {"COMPLETED", "FAILED", "FAILED_TEMP", "ROLLED_BACK"}


class BenchError(NetfateError):
    """The benchmark could not set up or run."""


@dataclass
class Params:
    nodes: int = 1000
    users: int = 10000
    rate: float = 500.0
    duration: float = 60.0
    telemetry_interval: float = 2.0
    idle_fraction: float = 0.1
    agent_procs: int = 1
    agents_per_conn: int = 50
    users_via: str = "api"
    warm: bool = False
    idle_window: float = 5.0
    op_timeout: float = 30.0
    apply_delay_ms: float = 0.0
    seed: int = 1
    http_conns: int = 64
    profile: str | None = None


# -- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float | None:
    """utime + stime of a process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float | None:
    """CPU seconds all cores spent busy (not idle or waiting for I/O) since boot."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _is(pid: int, exe_name: str) -> bool:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith(exe_name)
    except OSError:
        return False


def _end(pid: int, grace: float, sig: int = signal.SIGTERM) -> None:
    """`sig` (SIGTERM), then SIGKILL after `grace` s, one recorded PID."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child: poll /proc
            done = 0 if os.path.exists(f"/proc/{pid}") else pid
        if done:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@dataclass
class Procs:
    """What the bench started, by PID, to stop in order: agents, orchestrator, nats-server."""

    tmp: Path
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)
    orchestrator: subprocess.Popen[bytes] | None = None
    nats_pid: int | None = None
    # uvicorn re-raises the SIGTERM it caught after its shutdown, which would end a profiled
    # run before cProfile writes its file; SIGINT unwinds through it.
    stop_signal: int = signal.SIGTERM

    def pids(self) -> dict[str, Any]:
        return {"orchestrator": self.orchestrator.pid if self.orchestrator else None,
                "nats_server": self.nats_pid, "agents": [p.pid for p in self.agents]}

    def stop_agents(self) -> None:
        for p in self.agents:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        for p in self.agents:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self) -> None:
        self.stop_agents()
        if self.orchestrator is not None and self.orchestrator.poll() is None:
            _end(self.orchestrator.pid, 20, self.stop_signal)
        if self.orchestrator is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.orchestrator.wait(timeout=1)
        # The orchestrator stops its nats-server; if it died first, the server is orphaned.
        if self.nats_pid is not None and _is(self.nats_pid, "nats-server"):
            _end(self.nats_pid, 5)

    def leftovers(self) -> list[int]:
        pids = [p.pid for p in self.agents]
        if self.orchestrator is not None:
            pids.append(self.orchestrator.pid)
        if self.nats_pid is not None:
            pids.append(self.nats_pid)
        alive = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    state = fh.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive.append(pid)
        return alive


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM to the bench unwinds like Ctrl-C, so everything it started is stopped."""
    def raise_interrupt(sig: int, _frame: object) -> None:
        sys.stderr.write(f"control-plane bench: signal {sig}: stopping\n")
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _python() -> list[str]:
    return [sys.executable]


def start_orchestrator(procs: Procs, state: Path, api_port: int, nats_port: int,
                       profile: str | None) -> None:
    args = ["-m", "netfate.cli.main", "orchestrator", "--state-dir", str(state),
            "--port", str(api_port), "--nats-port", str(nats_port)]
    cmd = [*_python(), *(["-m", "cProfile", "-o", profile] if profile else []), *args]
    log = (procs.tmp / "orchestrator.log").open("wb")
    env = dict(os.environ)
    env.pop("NETFATE_NATS_URL", None)
    env.pop("NETFATE_DB_URL", None)
    procs.orchestrator = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        start_new_session=True,
    )


def start_agents(procs: Procs, p: Params, nats_url: str) -> list[tuple[Path, Path]]:
    files = []
    n = max(1, min(p.agent_procs, p.nodes))
    share = -(-p.nodes // n)
    for k in range(n):
        stats, ready = procs.tmp / f"agents{k}.json", procs.tmp / f"agents{k}.ready"
        cmd = [
            *_python(), "-m", "netfate.bench.sim_agents", "--nats", nats_url,
            "--nodes", str(p.nodes), "--first", str(k * share), "--count", str(share), "--per-conn",
            str(p.agents_per_conn), "--telemetry-interval", str(p.telemetry_interval),
            "--apply-delay-ms", str(p.apply_delay_ms), "--stats", str(stats),
            "--ready", str(ready),
        ]
        log = (procs.tmp / f"agents{k}.log").open("wb")
        procs.agents.append(subprocess.Popen(  # noqa: S603 - our own interpreter and module
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True))
        files.append((stats, ready))
    return files


def seed_users_in_db(state: Path, users: list[str], warm_at: dict[str, str] | None) -> None:
    """--users-via db: the users written straight into a fresh database (one scrypt hash for
    all), which skips the API's ~50 ms of scrypt per user. Same rows as POST /users.

    `warm_at` (user -> CPE): each user also starts logged in there, with their firewall placed
    and steered, as a login through the API would leave them; the nodes' agents get these
    instances in their registration's desired state."""
    import sqlalchemy as sa

    from netfate import catalogue
    from netfate.bundle import inspect_bundle
    from netfate.db import Database, repo, sqlite_url
    from netfate.db.models import (
        ActualState,
        DesiredState,
        Node,
        SessionState,
        SteeringRule,
        User,
        UserSession,
        VnfInstance,
    )
    from netfate.db.passwords import hash_password

    db = Database.create(sqlite_url(state))
    try:
        h = hash_password(PASSWORD)
        now = time.time()
        with db.session() as s:
            if warm_at:  # the nodes first (users refer to them); their agents fill them in
                s.execute(sa.insert(Node), [
                    {"name": n, "role": "cpe", "online": False, "capabilities": [],
                     "infrastructure": {}, "resources": {}, "registered_at": now}
                    for n in sorted(set(warm_at.values()))])
            s.execute(sa.insert(User), [
                {"name": u, "password_hash": h, "required_nfs": ["firewall"], "nf_config": {},
                 "created_at": now,
                 **({"access_node": warm_at[u], "mac": mac_of(u), "last_seen": now}
                    if warm_at else {})} for u in users])
        if not warm_at:
            return
        with db.session() as s:
            data = catalogue.bundle_bytes("firewall")
            desc, _ = inspect_bundle(data)
            sha = repo.add_bundle(s, data, name=desc.name, version=desc.version,
                                  descriptor=desc.model_dump(mode="json", by_alias=True)).sha256
            s.execute(sa.insert(UserSession), [
                {"id": f"warm-{u}", "user_name": u, "node_name": n, "mac": mac_of(u),
                 "started_at": now, "state": SessionState.ACTIVE} for u, n in warm_at.items()])
            s.execute(sa.insert(VnfInstance), [
                {"id": f"{n}-{u}-firewall", "nf_name": "firewall", "bundle_sha256": sha,
                 "flavour": pick(desc.flavours, SIM_FLAVOURS) or DEFAULT_FLAVOUR,
                 "owner": u, "node_name": n,
                 "desired_state": DesiredState.PRESENT, "actual_state": ActualState.PENDING,
                 "config": {}, "active_users": [], "created_at": now, "updated_at": now}
                for u, n in warm_at.items()])
            s.execute(sa.insert(SteeringRule), [
                {"user_name": u, "node_name": n, "mac": mac_of(u), "ip": None,
                 "chain": [f"{n}-{u}-firewall"], "desired": True, "installed": True,
                 "updated_at": now} for u, n in warm_at.items()])
    finally:
        db.dispose()


# -- a small HTTP/1.1 client: keep-alive pool, JSON bodies, cheap on CPU --------------------


class HttpError(Exception):
    pass


class Http:
    # uvicorn closes a keep-alive connection idle for 5 s: don't reuse one idle that long.
    IDLE_S = 4.0

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self._gate = asyncio.Semaphore(size)

    async def request(self, method: str, path: str, body: Any = None,
                      timeout: float = 60.0) -> tuple[int, Any]:
        async with self._gate:
            while self._idle:
                reader, writer, since = self._idle.pop()
                if time.monotonic() - since < self.IDLE_S:
                    try:
                        return await self._on((reader, writer), method, path, body, timeout)
                    except (ConnectionError, asyncio.IncompleteReadError) as exc:
                        # Closed by the server while idle (before it read the request, so
                        # sending it again does not repeat it): retry on a fresh connection.
                        if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                            raise
                else:
                    writer.close()
            conn = await asyncio.open_connection(self.host, self.port)
            return await self._on(conn, method, path, body, timeout)

    async def _on(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], method: str,
                  path: str, body: Any, timeout: float) -> tuple[int, Any]:
        try:
            status, data, keep = await asyncio.wait_for(
                self._exchange(conn, method, path, body), timeout)
        except BaseException:
            conn[1].close()
            raise
        if keep:
            self._idle.append((conn[0], conn[1], time.monotonic()))
        else:
            conn[1].close()
        return status, data

    async def _exchange(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                        method: str, path: str, body: Any) -> tuple[int, Any, bool]:
        reader, writer = conn
        payload = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        writer.write(head.encode() + payload)
        status, headers = await read_head(reader)
        if headers.get("transfer-encoding") == "chunked":
            raw = b"".join([c async for c in read_chunks(reader)])
        else:
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
        keep = headers.get("connection", "keep-alive").lower() != "close"
        return status, (json.loads(raw) if raw else None), keep

    def close(self) -> None:
        for _, w, _ in self._idle:
            w.close()
        self._idle.clear()


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise HttpError(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return int(parts[1]), headers


async def read_chunks(reader: asyncio.StreamReader) -> Any:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return
        data = await reader.readexactly(size + 2)
        yield data[:-2]


# -- the load -------------------------------------------------------------------------------


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


class OpWatch:
    """Lifecycle operations' end states, by op id: live from the SSE stream, which a slow
    reader can miss events of (the hub drops them rather than grow), with the API as the
    fallback for an operation the stream has not reported after a while."""

    def __init__(self, http: Http) -> None:
        self.http = http
        self.done: dict[str, tuple[float, str]] = {}
        self.waiters: dict[str, asyncio.Future[tuple[float, str]]] = {}
        self.events = 0
        self.polls = 0
        self.by_sse = 0
        self.by_poll = 0
        self.connected = asyncio.Event()
        self._since: dict[str, float] = {}

    def saw(self, op_id: str, state: str, t: float) -> None:
        if (state not in DONE_STATES and state != "ENDED") or op_id in self.done:
            return
        self.done[op_id] = (t, state)
        self._since.pop(op_id, None)
        fut = self.waiters.pop(op_id, None)
        if fut is not None and not fut.done():
            fut.set_result((t, state))

    async def wait(self, op_id: str, timeout: float) -> tuple[float, str]:
        """(time it ended as seen here, final state or "ENDED" when only the poller saw it
        end; the exact time and state come from the records at the end of the run)."""
        if op_id in self.done:
            return self.done[op_id]
        fut = self.waiters.get(op_id)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self.waiters[op_id] = fut
            self._since[op_id] = time.monotonic()
        return await asyncio.wait_for(asyncio.shield(fut), timeout)

    async def poll(self, quiet: float = 3.0, every: float = 1.0) -> None:
        """Operations waited on for `quiet` s that the SSE stream has not reported: one
        request a second lists the operations still PROCESSING; a waited-on one that is not
        among them has ended. (Per-operation polling would load the orchestrator.)"""
        while True:
            await asyncio.sleep(every)
            asked = time.monotonic()
            stale = [op for op, t in self._since.items()
                     if op in self.waiters and asked - t >= quiet]
            if not stale:
                continue
            self.polls += 1
            with contextlib.suppress(OSError, HttpError, asyncio.IncompleteReadError,
                                     TimeoutError, ValueError):
                status, body = await self.http.request(
                    "GET", "/api/v1/vnf_lcm_op_occs?state=PROCESSING", timeout=30)
                if status != 200:
                    continue
                running = {o["id"] for o in body}
                now = time.time()
                for op in stale:
                    if op not in running and op in self.waiters:
                        self.by_poll += 1
                        self.saw(op, "ENDED", now)

    async def follow(self, host: str, port: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET /api/v1/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
                         "Accept: text/event-stream\r\n\r\n".encode())
            status, _ = await read_head(reader)
            if status != 200:
                raise HttpError(f"GET /events: HTTP {status}")
            self.connected.set()
            kind = b""
            buf = b""
            async for chunk in read_chunks(reader):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                now = time.time()
                for line in lines:
                    if line.startswith(b"event: "):
                        kind = line[7:]
                    elif line.startswith(b"data: ") and kind == b"op":
                        self.events += 1
                        d = json.loads(line[6:])["data"]
                        if d["state"] in DONE_STATES and d["id"] not in self.done:
                            self.by_sse += 1
                        self.saw(d["id"], d["state"], now)
        finally:
            writer.close()


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


def hash_name(name: str) -> int:
    return int(name.lstrip("u") or 0)


def mac_of(name: str) -> str:
    n = hash_name(name)
    return ":".join(["02", "fa"] + [f"{(n >> k) & 255:02x}" for k in (24, 16, 8, 0)])


class Load:
    def __init__(self, p: Params, http: Http, watch: OpWatch, users: Users) -> None:
        self.p = p
        self.http = http
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
                status, body = await self.http.request("POST", f"/api/v1/users/{name}/idle")
            else:
                status, body = await self.http.request(
                    "POST", f"/api/v1/users/{name}/associate",
                    {"node": node, "mac": mac_of(name)})
            s.t_accepted = time.time()
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
        except TimeoutError:
            s.error = "timeout"
        except (OSError, HttpError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
            s.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.users.give_back(name)

    async def settle(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)


# -- figures --------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    s = sorted(values)

    def pct(q: float) -> float:
        k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
        return round(s[k], 2)

    return {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": round(s[-1], 2),
            "mean": round(sum(s) / len(s), 2), "n": len(s)}


def summarise(samples: list[Sample], rate: float) -> dict[str, Any]:
    placement: list[float] = []
    by_op: dict[str, list[float]] = {"place": [], "migrate": [], "release": []}
    accept: list[float] = []
    errors: dict[str, int] = {}
    handled = 0
    first_due = min((s.t_due for s in samples), default=0.0)
    last_done = first_due
    for s in samples:
        if s.t_accepted is not None:
            accept.append((s.t_accepted - s.t_due) * 1000)
        if s.error:
            key = s.error.split(":")[0] if not s.error.startswith("operation") else s.error
            errors[key] = errors.get(key, 0) + 1
            continue
        if s.t_done is None:
            continue
        handled += 1
        last_done = max(last_done, s.t_done)
        ms = (s.t_done - s.t_due) * 1000
        kinds = {k for k, _ in s.ops}
        for k in kinds:
            by_op[k].append(ms)
        if kinds & {"place", "migrate"}:
            placement.append(ms)
    span = max(last_done - first_due, 1e-9)
    return {
        "events_sent": len(samples),
        "events_handled": handled,
        "offered_events_per_s": rate,
        "handled_events_per_s": round(handled / span, 1) if samples else 0.0,
        "placement_ms": percentiles(placement),
        "by_operation_ms": {k: percentiles(v) for k, v in by_op.items()},
        "accepted_ms": percentiles(accept),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "event_kinds": {k: sum(1 for s in samples if s.kind == k)
                        for k in ("login", "roam", "idle")},
    }


class Meter:
    """CPU (average over a window) and RSS of the processes, sampled every 0.5 s."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.rss_max: dict[str, float] = {}
        self.marks: dict[str, tuple[float, dict[str, float | None]]] = {}

    def cpu(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {k: _cpu_s(pid) for k, pid in self.pids.items()}
        out["machine"] = _machine_busy_s()
        return out

    def mark(self, name: str) -> None:
        self.marks[name] = (time.perf_counter(), self.cpu())

    def cpu_seconds(self, a: str, b: str, key: str) -> float | None:
        x, y = self.marks[a][1].get(key), self.marks[b][1].get(key)
        return None if x is None or y is None else y - x

    def window(self, a: str, b: str) -> dict[str, float | None]:
        (t0, c0), (t1, c1) = self.marks[a], self.marks[b]
        out: dict[str, float | None] = {}
        for k in [*self.pids, "machine"]:
            x, y = c0.get(k), c1.get(k)
            out[k] = (round(100 * (y - x) / (t1 - t0), 1)
                      if x is not None and y is not None and t1 > t0 else None)
        ours = [out[k] for k in self.pids]
        if out["machine"] is not None and all(v is not None for v in ours):
            # Everything else the machine ran meanwhile (it is shared): 200% is both cores.
            out["others"] = round(max(0.0, out["machine"] - sum(v or 0.0 for v in ours)), 1)
        return out

    async def sample(self) -> None:
        while True:
            for k, pid in self.pids.items():
                r = _rss_mb(pid)
                if r is not None:
                    self.rss_max[k] = max(self.rss_max.get(k, 0.0), r)
            await asyncio.sleep(0.5)


# -- the run --------------------------------------------------------------------------------


async def _wait_health(http: Http, procs: Procs, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if procs.orchestrator is not None and procs.orchestrator.poll() is not None:
            raise BenchError("the orchestrator exited at start: " + _tail(procs.tmp /
                                                                            "orchestrator.log"))
        with contextlib.suppress(OSError, HttpError, asyncio.IncompleteReadError,
                                 TimeoutError):
            status, body = await http.request("GET", "/api/v1/health", timeout=2)
            if status == 200:
                return dict(body)
        await asyncio.sleep(0.1)
    raise BenchError(f"the orchestrator's API did not come up in {timeout:g}s: "
                     + _tail(procs.tmp / "orchestrator.log"))


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


async def _create_users(http: Http, names: list[str], concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)
    failed = 0

    async def one(name: str) -> None:
        nonlocal failed
        async with gate:
            status, body = await http.request("POST", "/api/v1/users", {
                "name": name, "password": PASSWORD, "required_nfs": ["firewall"]})
            if status != 201:
                failed += 1
                if failed <= 3:
                    raise BenchError(f"POST /users {name}: HTTP {status} {body}")

    await asyncio.gather(*(one(n) for n in names))
    return failed


async def _wait_nodes(http: Http, procs: Procs, ready: list[tuple[Path, Path]], n: int,
                      timeout: float) -> float:
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs.agents:
            if p.poll() is not None:
                raise BenchError("simulated agents exited: " + _tail(procs.tmp / "agents0.log"))
        if all(r.exists() for _, r in ready):
            with contextlib.suppress(OSError, HttpError, asyncio.IncompleteReadError,
                                     TimeoutError):
                status, body = await http.request("GET", "/api/v1/nodes", timeout=30)
                if status == 200 and sum(1 for x in body if x.get("online")) >= n:
                    return time.perf_counter() - t0
        await asyncio.sleep(0.5)
    raise BenchError(f"not all {n} simulated nodes registered in {timeout:g}s")


async def _settle_from_records(http: Http, samples: list[Sample]) -> dict[str, Any]:
    """Each event's end from the operations' own records (state and state_entered_time, as
    the orchestrator stamped them), which the SSE stream may have missed or seen late."""
    status, body = await http.request("GET", "/api/v1/vnf_lcm_op_occs", timeout=120)
    if status != 200:
        return {"unavailable": 1}
    ops = {o["id"]: (float(o["state_entered_time"]), o["operation_state"]) for o in body}
    fixed: dict[str, Any] = {"late_or_missed_by_sse": 0, "still_processing": 0}
    why: dict[str, int] = {}
    for o in body:
        if o["operation_state"] not in ("COMPLETED", "PROCESSING"):
            detail = str((o.get("error") or {}).get("detail", "?"))
            key = " ".join(w if not any(c.isdigit() for c in w) else "#"
                           for w in detail.split())[:120]
            why[key] = why.get(key, 0) + 1
    fixed["failed_ops_why"] = dict(sorted(why.items(), key=lambda kv: -kv[1])[:8])
    for s in samples:
        if not s.ops or s.t_accepted is None:
            continue
        ends = [ops.get(op) for _, op in s.ops]
        if any(e is None or e[1] not in DONE_STATES for e in ends):
            fixed["still_processing"] += 1
            continue
        t_done = max(e[0] for e in ends if e is not None)
        bad = [e[1] for e in ends if e is not None and e[1] != "COMPLETED"]
        if s.error == "timeout" or s.t_done is None:
            fixed["late_or_missed_by_sse"] += 1
        s.error = f"operation {bad[0]}" if bad else (None if s.error == "timeout" else s.error)
        s.t_done = t_done
    return fixed


async def _drive(p: Params, procs: Procs, state: Path, api_port: int, nats_port: int,
                 user_names: list[str]) -> dict[str, Any]:
    http = Http("127.0.0.1", api_port, p.http_conns)
    t_setup = time.perf_counter()
    health = await _wait_health(http, procs, 60)
    nats_url = health.get("nats") or f"nats://127.0.0.1:{nats_port}"
    with contextlib.suppress(OSError, ValueError):
        procs.nats_pid = int((state / "nats" / "nats-server.pid").read_text().strip())
    files = start_agents(procs, p, nats_url)
    register_s = await _wait_nodes(http, procs, files, p.nodes, 300)
    t_users = time.perf_counter()
    if p.users_via == "api":
        await _create_users(http, user_names, 4)
    users_s = time.perf_counter() - t_users
    assert procs.orchestrator is not None
    pids = {"orchestrator": procs.orchestrator.pid, "bench": os.getpid()}
    if procs.nats_pid:
        pids["nats_server"] = procs.nats_pid
    for k, a in enumerate(procs.agents):
        pids[f"agents{k}"] = a.pid
    meter = Meter(pids)
    sampler = asyncio.create_task(meter.sample())
    watch = OpWatch(http)
    follower = asyncio.create_task(watch.follow("127.0.0.1", api_port))
    poller = asyncio.create_task(watch.poll())
    await asyncio.wait_for(watch.connected.wait(), 10)
    users = Users(user_names, _cpes(p.nodes), random.Random(p.seed))
    if p.warm:
        users.at.update(_homes(p, user_names))
    load = Load(p, http, watch, users)
    load.plan_logins()
    setup_s = time.perf_counter() - t_setup
    try:
        # The orchestrator's own background (telemetry of every node, reconciliation) with
        # no user events, to tell the cost of the events from it.
        await asyncio.sleep(p.idle_window)  # settle: first reports of every node recorded
        meter.mark("idle")
        await asyncio.sleep(p.idle_window)
        meter.mark("start")
        if not p.warm:
            await load.phase("login", count=len(user_names), duration=None)
        await load.settle(p.op_timeout + 5)
        meter.mark("logged_in")
        await load.phase("roam", count=None, duration=p.duration)
        meter.mark("roam_sent")
        await load.settle(p.op_timeout + 5)
        meter.mark("end")
    finally:
        for t in list(load.tasks):
            t.cancel()
        follower.cancel()
        poller.cancel()
        sampler.cancel()
    from_records = await _settle_from_records(http, load.samples)
    rss = {k: meter.rss_max.get(k) for k in pids}
    http.close()
    login = [s for s in load.samples if s.phase == "login"]
    roam = [s for s in load.samples if s.phase == "roam"]
    overall = summarise(load.samples, p.rate)
    roam_fig = summarise(roam, p.rate)
    p99 = overall["placement_ms"].get("p99")
    return {
        "setup": {"seconds": round(setup_s, 1), "register_nodes_s": round(register_s, 1),
                  "create_users_s": round(users_s, 1), "users_via": p.users_via},
        "latency_observed_via": "from when the associate request was due (open loop) to "
                                "the instantiate/migrate operation's COMPLETED: its "
                                "state_entered_time as the orchestrator recorded it (read back "
                                "from GET /vnf_lcm_op_occs at the end); completion is followed "
                                "live on the SSE stream GET /events (op events) and, for "
                                "operations it has not reported within 3 s (the hub drops "
                                "events for a slow reader), by listing the PROCESSING ones "
                                "once a second",
        "overall": overall,
        "phases": {"login": summarise(login, p.rate), "roam": roam_fig},
        "completions": {"seen_on_sse": watch.by_sse, "found_by_listing": watch.by_poll,
                        "polls": watch.polls, **from_records},
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "generator_lag_ms": percentiles([x * 1000 for x in load.lag]) if load.lag else {"n": 0},
        "sse_op_events": watch.events,
        "cpu_percent": {"login": meter.window("start", "logged_in"),
                        "roam": meter.window("logged_in", "roam_sent"),
                        "all": meter.window("start", "end")},
        "rss_max_mb": rss,
        # Robust to a busy machine (it is shared): the orchestrator's CPU time over the phase
        # (its telemetry handling included) per event handled. 1000 / this is the rate one
        # free core could sustain.
        "background_cpu_percent": meter.window("idle", "start"),
        "orchestrator_cpu_ms_per_event": {
            "login": _per_event(meter.cpu_seconds("start", "logged_in", "orchestrator"),
                                summarise(login, p.rate)["events_handled"]),
            "roam": _per_event(meter.cpu_seconds("logged_in", "end", "orchestrator"),
                               roam_fig["events_handled"]),
        },
        "target_met": {
            "p99": p99 is not None and p99 <= TARGETS["p99_ms"] and overall["errors"] == 0,
            "events_per_s": roam_fig["handled_events_per_s"] >= 0.95 * TARGETS["events_per_s"],
            "size": p.nodes >= TARGETS["nodes"] and p.users >= TARGETS["users"],
        },
    }


def _cpes(nodes: int) -> list[str]:
    return [n for n, role in node_names(nodes) if role == "cpe"]


def _homes(p: Params, users: list[str]) -> dict[str, str]:
    cpes = _cpes(p.nodes)
    return {u: cpes[hash_name(u) % len(cpes)] for u in users}


def _per_event(cpu_s: float | None, events: int) -> float | None:
    return round(1000 * cpu_s / events, 2) if cpu_s is not None and events else None


def run(p: Params) -> dict[str, Any]:
    if p.nodes < 2 or p.users < 1 or p.rate <= 0 or p.duration < 0:
        raise BenchError("need --nodes >= 2, --users >= 1, --rate > 0, --duration >= 0")
    if p.users_via not in ("api", "db"):
        raise BenchError("--users-via is api or db")
    if p.warm and p.users_via != "db":
        raise BenchError("--warm needs --users-via db")
    tmp = Path(tempfile.mkdtemp(prefix="fate-"))
    procs = Procs(tmp, stop_signal=signal.SIGINT if p.profile else signal.SIGTERM)
    state = tmp / "state"
    api_port, nats_port = free_port(), free_port()
    user_names = [f"u{i}" for i in range(p.users)]
    result: dict[str, Any] = {}
    t0 = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            if p.users_via == "db":
                seed_users_in_db(state, user_names, _homes(p, user_names) if p.warm else None)
            start_orchestrator(procs, state, api_port, nats_port, p.profile)
            result = asyncio.run(_drive(p, procs, state, api_port, nats_port, user_names))
            agent_stats = []
            procs.stop_agents()
            for k in range(len(procs.agents)):
                with contextlib.suppress(OSError, ValueError):
                    agent_stats.append(json.loads((tmp / f"agents{k}.json").read_text()))
            result["agents"] = agent_stats
    finally:
        pids = procs.pids()
        procs.stop_all()
        left = procs.leftovers()
        keep_log = _tail(tmp / "orchestrator.log", 4000) if not result else None
        shutil.rmtree(tmp, ignore_errors=True)
        if keep_log:
            sys.stderr.write(f"orchestrator log (tail):\n{keep_log}\n")
    roles = [r for _, r in node_names(p.nodes)]
    return {
        "benchmark": "control-plane",
        "params": {**asdict(p), "node_roles": {r: roles.count(r) for r in ("cpe", "pe", "dc")},
                   "cpus": os.cpu_count()},
        **result,
        "targets": TARGETS,
        "peers": PEERS,
        "processes": {**pids, "left_running": left, "tmp_dir": str(tmp),
                      "tmp_dir_removed": not tmp.exists()},
        "wall_s": round(time.perf_counter() - t0, 1),
    }
