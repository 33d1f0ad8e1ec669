"""A live orchestrator for API tests (uvicorn in a thread, SQLite in a tmp dir, its embedded
nats-server on a free loopback port) and fake agents: real NATS clients that register a node
and answer commands as an agent would, without root, namespaces or OVS.

A fake agent can be told to stop answering (an agent that hangs), to disconnect (kill -9),
to fail its applies, and to come back and register again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import nats
import uvicorn
from nats.aio.msg import Msg

from netfate.bus import subjects
from netfate.bus.messages import (
    Command,
    DesiredState,
    InstanceSpec,
    NFActual,
    Notification,
    Register,
    Reply,
    Resources,
    ServicesPort,
    SwitchPorts,
    SwitchSynced,
    Telemetry,
)
from netfate.controller.model import SwitchState
from netfate.http_protocol import HeadTimeoutProtocol
from netfate.orchestrator.app import create_app
from netfate.orchestrator.settings import Settings
from netfate.ports import free_port

T = TypeVar("T")

# What a CPE with the native flavour advertises: every shipped NF can run on it.
ALL_CAPABILITIES = ["bridge", "conntrack", "iproute2", "nftables", "python3", "tc", "tcpdump"]
# The operator token every test orchestrator runs with (netfate.api_auth), and its header.
TOKEN = "test-operator-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FINAL_STATES = {"COMPLETED", "FAILED", "ROLLED_BACK"}
LISTS = ("nodes", "users", "vnf_instances", "vnf_lcm_op_occs", "notifications",
         "subscriptions", "vnf_packages", "steering_rules")


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID runs (a zombie does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return False


# -- the orchestrator ----------------------------------------------------------------------

class LiveOrchestrator:
    """create_app under uvicorn in a background thread, on a free loopback port."""

    def __init__(self, state_dir: Path, **overrides: Any) -> None:
        self.port = free_port()
        settings = Settings(
            state_dir=state_dir, db_url=None, nats_url=None, host="127.0.0.1", port=self.port,
            command_timeout=2.0, reconcile_interval=0.5, node_timeout=60.0, policy="netfate",
            api_token=TOKEN,
        )
        for k, v in overrides.items():
            if not hasattr(settings, k):
                raise TypeError(f"Settings has no field {k!r}")
            setattr(settings, k, v)
        self.settings = settings
        self.app = create_app(settings)
        self.orch = self.app.state.orchestrator
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", timeout_graceful_shutdown=5,
                                http=HeadTimeoutProtocol)  # as `netfate services` serves it
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="orchestrator",
                                       daemon=True)
        self.nats_pid: int | None = None
        self.nats_url = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the orchestrator did not start (see its log above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the orchestrator did not start in {timeout}s")
            time.sleep(0.02)
        nats_server = self.orch.nats
        assert nats_server is not None and nats_server.proc is not None
        self.nats_pid = nats_server.proc.pid
        self.nats_url = nats_server.url

    def stop(self) -> None:
        """Shut down (lifespan stops NATS); fail if the nats-server outlived it."""
        self.server.should_exit = True
        self.thread.join(timeout=30)
        pid = self.nats_pid
        leftover = pid is not None and pid_alive(pid)
        if leftover:
            assert pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.thread.is_alive():
            raise AssertionError("the orchestrator thread did not stop in 30s")
        if leftover:
            raise AssertionError(f"nats-server (pid {pid}) outlived the orchestrator")


@contextlib.contextmanager
def running(state_dir: Path, **overrides: Any) -> Iterator[LiveOrchestrator]:
    """A started orchestrator, stopped (and checked for a leftover nats-server) after."""
    live = LiveOrchestrator(state_dir, **overrides)
    try:
        live.start()
        yield live
    finally:
        live.stop()


# -- an asyncio loop in a thread, for the fake agents ----------------------------------------

class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-agents",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_all(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


Mode = Literal["ok", "silent", "fail", "garbage"]


class FakeAgent:
    """A node's agent on the bus: registers, converges to what it is told (in memory), answers
    commands. `mode` = "ok" answers like an agent whose NFs all come up; "silent" carries
    commands out but never answers (a hung agent, or one killed before it could reply: the
    worst case, the node has what the orchestrator never heard of); "fail" refuses to start
    new NFs and answers ok=False with `fail_error`; "garbage" carries them out and answers
    with something that is not a Reply (a buggy or mismatched agent)."""

    def __init__(self, loop: LoopThread, nats_url: str, name: str, *, role: str = "cpe",
                 capabilities: list[str] | None = None, mem_total_mb: int = 2048,
                 mem_free_mb: int = 1800, cpu_util: float = 0.1,
                 services: ServicesPort | None = None) -> None:
        self.loop = loop
        self.url = nats_url
        self.name = name
        self.role = role
        self.capabilities = list(ALL_CAPABILITIES if capabilities is None else capabilities)
        self.mem_total_mb = mem_total_mb
        self.mem_free_mb = mem_free_mb
        self.cpu_util = cpu_util
        self.services = services  # a CPE's access services port (DHCP, DNS, portal)
        self.mode: Mode = "ok"
        self.fail_error = f"create failed on {name}: nft: syntax error (fake agent)"
        self.fail_status: int | None = None  # the HTTP status its failing replies give
        self.running: dict[str, InstanceSpec] = {}
        # It is also its switch's controller: the desired states it was sent, confirmed.
        self.switch_states: list[SwitchState] = []
        self.stations: dict[str, str] = {"02:00:00:00:00:01": "lan1",
                                         "02:00:00:00:00:02": "lan2"}
        self.commands: list[Command] = []
        self.registrations: list[Command] = []
        self.imported: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._nc: Any = None

    # -- sync API for tests ----------------------------------------------------------------
    def start(self) -> Command:
        """Connect, subscribe to this node's commands, register; the registration reply."""
        return self.loop.run(self._start())

    def register(self) -> Command:
        return self.loop.run(self._register())

    def kill(self) -> None:
        """Gone from the bus at once, like kill -9: no responders for its commands."""
        self.loop.run(self._close())

    def restart(self) -> Command:
        """Back after a crash: its NFs kept running; connect and register again."""
        self.kill()
        self.mode = "ok"
        return self.start()

    def notify(self, type: str, nf_id: str | None, **detail: Any) -> None:
        n = Notification(node=self.name, nf_id=nf_id, type=type, severity="warning",
                         source="fake-agent", detail=detail, ts=time.time())
        self.loop.run(self._publish(subjects.notify(self.name), n.model_dump_json()))

    def telemetry(self) -> None:
        t = Telemetry(node=self.name, ts=time.time(), resources=self._resources(),
                      nfs=self.actual())
        self.loop.run(self._publish(subjects.telemetry(self.name), t.model_dump_json()))

    def running_ids(self) -> set[str]:
        with self._lock:
            return set(self.running)

    def ops(self) -> list[str]:
        with self._lock:
            return [c.op for c in self.commands]

    def actual(self) -> list[NFActual]:
        with self._lock:
            specs = list(self.running.values())
        return [NFActual(instance_id=i.instance_id, nf_name=i.nf_name, owner=i.owner,
                         state="running", bundle_sha256=i.bundle_sha256) for i in specs]

    # -- on the loop -----------------------------------------------------------------------
    def _resources(self) -> Resources:
        return Resources(mem_total_mb=self.mem_total_mb, mem_free_mb=self.mem_free_mb,
                         cpu_util=self.cpu_util, nf_count=len(self.running))

    async def _start(self) -> Command:
        self._nc = await nats.connect(self.url, name=f"fake-agent-{self.name}",
                                      allow_reconnect=False, connect_timeout=5)
        await self._nc.subscribe(subjects.command(self.name), cb=self._on_command)
        await self._nc.subscribe(subjects.controller_desired(self.name), cb=self._on_desired)
        await self._nc.flush()
        return await self._register()

    async def _register(self) -> Command:
        reg = Register(node=self.name, role=self.role,  # type: ignore[arg-type]
                       capabilities=self.capabilities,
                       infrastructure={"flavours": ["native"], "arch": "x86_64",
                                       "switch_ports": self._ports().model_dump()},
                       resources=self._resources(), agent_version="fake")
        msg = await self._nc.request(subjects.REGISTER, reg.model_dump_json().encode(),
                                     timeout=10)
        cmd = Command.model_validate_json(msg.data)
        with self._lock:
            self.registrations.append(cmd)
            if cmd.desired is not None:
                self._converge(cmd.desired, start_new=True)
        return cmd

    async def _close(self) -> None:
        if self._nc is not None:
            nc, self._nc = self._nc, None
            with contextlib.suppress(Exception):
                await nc.close()

    async def _publish(self, subject: str, data: str) -> None:
        assert self._nc is not None, f"fake agent {self.name} is not connected"
        await self._nc.publish(subject, data.encode())
        await self._nc.flush()

    def _converge(self, desired: DesiredState, start_new: bool) -> None:
        want = {i.instance_id: i for i in desired.instances}
        if start_new:
            self.running = want
        else:  # removals and updates only
            self.running = {k: want[k] for k in self.running if k in want}

    def _ports(self) -> SwitchPorts:
        if self.role != "cpe":
            return SwitchPorts(infra=["down1"])
        return SwitchPorts(uplink="up", access=["lan1", "lan2"], stations=self.stations,
                           services=self.services)

    @property
    def steering(self) -> list[tuple[str, str, list[str]]]:
        """The authenticated users of its switch's latest desired state: (user, MAC, the
        chain's NF ports, LAN and WAN side of each hop)."""
        with self._lock:
            st = self.switch_states[-1] if self.switch_states else None
        if st is None:
            return []
        return [(u.name, u.mac, [p for h in u.chain for p in (h.lan, h.wan)])
                for u in st.users if u.authenticated]

    async def _on_desired(self, msg: Msg) -> None:
        st = SwitchState.model_validate_json(msg.data)
        with self._lock:
            self.switch_states.append(st)
        rep = SwitchSynced(node=self.name, generation=st.generation, added=0, deleted=0,
                           unchanged=0, ts=time.time())
        if self._nc is not None:
            await self._nc.publish(subjects.controller_synced(self.name),
                                   rep.model_dump_json().encode())

    async def _on_command(self, msg: Msg) -> None:
        cmd = Command.model_validate_json(msg.data)
        with self._lock:
            self.commands.append(cmd)
            mode = self.mode
            reply = self._handle(cmd, mode)
        if mode == "silent":
            return  # it did the work, but the answer never comes
        if mode == "garbage" and msg.reply:
            await msg.respond(b'{"ok": "perhaps", "nfs": 7}')
            return
        if msg.reply:
            await msg.respond(reply.model_dump_json().encode())

    def _handle(self, cmd: Command, mode: Mode) -> Reply:
        nfs = lambda: [  # noqa: E731
            NFActual(instance_id=i.instance_id, nf_name=i.nf_name, owner=i.owner,
                     state="running", bundle_sha256=i.bundle_sha256)
            for i in self.running.values()]
        if cmd.op == "apply" and cmd.desired is not None:
            if mode == "fail":
                self._converge(cmd.desired, start_new=False)
                return Reply(ok=False, error=self.fail_error, status=self.fail_status,
                             nfs=nfs())
            self._converge(cmd.desired, start_new=True)
            return Reply(ok=True, nfs=nfs())
        if cmd.op == "export_state" and cmd.instance_id:
            if cmd.instance_id not in self.running:
                return Reply(ok=False, error=f"no NF {cmd.instance_id} on {self.name}")
            return Reply(ok=True, data={"from": self.name, "instance_id": cmd.instance_id,
                                        "conntrack": ["tcp 10.0.0.2:40000 -> 1.1.1.1:443"]})
        if cmd.op == "export_states":
            return Reply(ok=True, data={
                "states": {i: {"from": self.name, "instance_id": i} for i in cmd.instance_ids
                           if i in self.running},
                "errors": {i: f"NotFound: no NF {i}" for i in cmd.instance_ids
                           if i not in self.running},
                "left": []})
        if cmd.op == "import_state" and cmd.instance_id and cmd.state is not None:
            if cmd.instance_id not in self.running:
                return Reply(ok=False, error=f"no NF {cmd.instance_id} on {self.name}")
            self.imported[cmd.instance_id] = cmd.state
            return Reply(ok=True)
        if cmd.op == "nf_status" and cmd.instance_id:
            if cmd.instance_id not in self.running:
                return Reply(ok=False, error=f"NotFound: no NF {cmd.instance_id}")
            return Reply(ok=True, data={"state": "running", "detail": {"drops": 7}})
        if cmd.op == "mirror" and cmd.instance_id and cmd.mirror is not None:
            if cmd.instance_id not in self.running:
                return Reply(ok=False, error=f"NotFound: no NF {cmd.instance_id}")
            port = (f"port-of-{cmd.mirror.station_mac}" if cmd.mirror.station_mac
                    else f"link-to-{cmd.mirror.peer_node}")
            return Reply(ok=True, data={"mirror": f"netfate-ts-{cmd.instance_id}",
                                        "ports": [port], "output": "probe-lan"})
        if cmd.op in ("status", "ping"):
            return Reply(ok=True, nfs=nfs())
        return Reply(ok=False, error=f"bad command {cmd.op!r}: missing fields")


# -- HTTP helpers ---------------------------------------------------------------------------

def wait_until(pred: Callable[[], T], timeout: float, what: str,
               interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_op(client: httpx.Client, op_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The operation occurrence once it is in a final state."""
    def final() -> dict[str, Any] | None:
        r = client.get(f"/api/v1/vnf_lcm_op_occs/{op_id}")
        r.raise_for_status()
        op: dict[str, Any] = r.json()
        return op if op["operation_state"] in FINAL_STATES else None

    return wait_until(final, timeout, f"operation {op_id} to end")


def world(client: httpx.Client) -> dict[str, Any]:
    """Every list endpoint's answer, less what agents refresh on their own (liveness)."""
    out: dict[str, Any] = {}
    for name in LISTS:
        r = client.get(f"/api/v1/{name}")
        assert r.status_code == 200, (name, r.status_code, r.text)
        out[name] = r.json()
    for n in out["nodes"]:
        n.pop("last_seen", None)
        n.pop("resources", None)
    return out


def assert_problem(r: httpx.Response, status: int | tuple[int, ...],
                   *words: str) -> dict[str, Any]:
    """An RFC 7807 problem body with this status, whose detail names every word given."""
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    for key in ("type", "title", "status", "detail"):
        assert key in body, (key, body)
    assert body["status"] == r.status_code, body
    assert isinstance(body["detail"], str) and body["detail"], body
    for w in words:
        assert w.lower() in body["detail"].lower(), (w, body["detail"])
    return body


@contextlib.contextmanager
def unchanged(client: httpx.Client) -> Iterator[None]:
    """Assert that the block changes nothing any list endpoint shows."""
    before = world(client)
    yield
    after = world(client)
    for name in LISTS:
        assert after[name] == before[name], f"{name} changed"


@contextlib.contextmanager
def one_node(state_dir: Path) -> Iterator[tuple[LiveOrchestrator, httpx.Client]]:
    """An orchestrator with node cpe1 (a fake agent) and user1 (password secret1), and an
    operator's client for it; all stopped after."""
    loop = LoopThread()
    agent: FakeAgent | None = None
    try:
        with running(state_dir) as live, \
                httpx.Client(base_url=live.url, timeout=15, headers=AUTH) as c:
            agent = FakeAgent(loop, live.nats_url, "cpe1")
            agent.start()
            r = c.post("/api/v1/users", json={"name": "user1", "password": "secret1"})
            assert r.status_code == 201, r.text
            yield live, c
    finally:
        if agent is not None:
            agent.kill()
        loop.close()
