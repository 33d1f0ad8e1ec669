"""The orchestrator's AAA duties beyond the login itself: RADIUS accounting of every login
(orchestrator/accounting.py), Session-Timeout, and the Dynamic Authorization server
(RFC 5176, radius/dae.py) that lets the RADIUS side disconnect a user or change their NFs
for the current login (a session override: the user's stored NFs apply again at its end).

Why the orchestrator hosts the DAE server and not the FreeRADIUS process: a Disconnect or
CoA acts on sessions, NFs and steering, which the orchestrator owns; FreeRADIUS is the AAA
server, and RFC 5176's server is the NAS's side. It listens on loopback (``dae_host``,
``dae_port``), signs with the RADIUS shared secret, and serves only ``dae_clients``.

    aaa = await start(orch, radius_settings)   # with the orchestrator (--radius)
    ...
    await aaa.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from nats.aio.msg import Msg

from netfate.bus import subjects
from netfate.bus.messages import UserCounters
from netfate.db import repo
from netfate.db.models import SessionState, UserSession
from netfate.errors import NetfateError
from netfate.orchestrator import sessions
from netfate.orchestrator.accounting import Accounting
from netfate.radius import dae
from netfate.radius.accounting import Usage
from netfate.radius.client import RadiusClient
from netfate.radius.settings import RadiusSettings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from netfate.orchestrator.service import Orchestrator

log = logging.getLogger("netfate.orchestrator.aaa")

MULTIPLE_SESSIONS = 508  # Error-Cause: Multiple Session Selection Unsupported
MAX_NFS = 16  # as many as a user's required_nfs may name (api/schemas.py)
_HEX = re.compile(r"[^0-9a-f]")


def _mac(text: str | None) -> str:
    """A MAC in any of its spellings (RFC 3580's AA-BB-..., aa:bb:..., aabb.ccdd...)."""
    return _HEX.sub("", (text or "").lower())


def find_sessions(s: Session, ids: dict[str, str]) -> list[tuple[str, str, str, str | None,
                                                                 str | None]]:
    """The active sessions every given identifier matches: (user, node, acct session id,
    MAC, IP)."""
    rows = s.scalars(sa_active()).all()
    out = []
    for r in rows:
        if "User-Name" in ids and ids["User-Name"] != r.user_name:
            continue
        if "Acct-Session-Id" in ids and ids["Acct-Session-Id"] != r.acct_session_id:
            continue
        if "Calling-Station-Id" in ids and (r.mac is None or len(_mac(r.mac)) != 12 or
                                            _mac(ids["Calling-Station-Id"]) != _mac(r.mac)):
            continue  # not a MAC ("zz" is none) matches no session, one without a MAC too
        if "Framed-IP-Address" in ids and ids["Framed-IP-Address"] != r.ip:
            continue
        out.append((r.user_name, r.node_name, r.acct_session_id or "", r.mac, r.ip))
    return out


def sa_active() -> sa.Select[UserSession]:
    return sa.select(UserSession).where(UserSession.state == SessionState.ACTIVE)


def _set_limits(s: Session, acct_id: str, session_timeout: int | None,
                idle_timeout: int | None) -> None:
    for r in s.scalars(sa_active().where(UserSession.acct_session_id == acct_id)):
        if session_timeout is not None:
            r.session_timeout = session_timeout
        if idle_timeout is not None:
            r.idle_timeout = idle_timeout


def _set_nfs(s: Session, acct_id: str, nfs: tuple[str, ...]) -> list[str]:
    """Set the NFs of the login ``acct_id`` (its session's override: the user's stored
    required_nfs are left as they are, and apply again when the login ends, RFC 5176 3.1: a
    CoA changes the session's authorization); the names the catalogue does not know, or the
    reason the list is refused (then nothing changes)."""
    known = {b.name for b in repo.list_bundles(s)}
    unknown = [n for n in nfs if n not in known]
    if len(set(nfs)) != len(nfs):
        return [f"{n} (twice)" for n in sorted({n for n in nfs if nfs.count(n) > 1})]
    if len(nfs) > MAX_NFS:
        return [f"more than {MAX_NFS} NFs"]
    if not unknown:
        for r in s.scalars(sa_active().where(UserSession.acct_session_id == acct_id)):
            r.nfs_override = list(nfs)
    return unknown


class Aaa:
    def __init__(self, orch: Orchestrator, settings: RadiusSettings) -> None:
        assert orch.db is not None
        self.orch = orch
        self.settings = settings
        client = RadiusClient(settings.host, settings.acct_port, settings.secret, timeout=1.0,
                              retries=1)
        self.accounting = Accounting(orch.db, client, settings.acct_interim_interval,
                                     self.end_session)
        self.dae: dae.DaeServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None

    async def start(self) -> None:
        s = self.settings
        self._task = asyncio.create_task(self.accounting.run())
        if self.orch.nc is not None:
            self._sub = await self.orch.nc.subscribe(subjects.ALL_CONTROLLER_COUNTERS,
                                                     cb=self.on_counters)
        if s.dae_port:
            try:
                self.dae = await dae.DaeServer.listen(s.dae_host, s.dae_port, s.secret,
                                                      s.dae_clients, self.handle)
            except OSError as exc:  # the rest of the orchestrator serves on without it
                log.error("no RFC 5176 DAE server: cannot listen on %s:%d: %s", s.dae_host,
                          s.dae_port, exc)
                return
            log.info("RFC 5176 DAE server on %s:%d (clients %s)", s.dae_host, self.dae.port,
                     ", ".join(s.dae_clients))

    async def stop(self) -> None:
        if self.dae is not None:
            self.dae.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    # -- inputs -------------------------------------------------------------------------------
    async def on_counters(self, msg: Msg) -> None:
        with contextlib.suppress(ValueError):
            c = UserCounters.model_validate_json(msg.data)
            self.accounting.counters(c.node, {u: Usage(*v) for u, v in c.users.items()})

    async def end_session(self, user: str, cause: str, acct_id: str) -> None:
        orch = self.orch
        assert orch.coordinator is not None and orch.db is not None
        await sessions.end(orch.coordinator, orch.db, user, cause, acct_id)

    # -- RFC 5176 -----------------------------------------------------------------------------
    async def handle(self, req: dae.DaeRequest) -> dae.DaeResult:
        orch = self.orch
        assert orch.db is not None and orch.coordinator is not None
        found = await orch.db.run(find_sessions, req.ids)
        if not found:
            return dae.DaeResult(False, dae.SESSION_CONTEXT_NOT_FOUND, "no such session")
        if len({f[2] for f in found}) > 1:
            return dae.DaeResult(False, MULTIPLE_SESSIONS, "the identifiers match several "
                                 "sessions")
        user, node, acct_id, mac, ip = found[0]
        if req.nas_id is not None and req.nas_id != node:
            return dae.DaeResult(False, dae.NAS_IDENTIFICATION_MISMATCH,
                                 f"{user} is not at {req.nas_id}")
        if req.disconnect:
            try:
                await sessions.end(orch.coordinator, orch.db, user, sessions.ADMIN_RESET,
                                   acct_id)
            except NetfateError as exc:
                return dae.DaeResult(False, dae.SESSION_CONTEXT_NOT_REMOVABLE, str(exc))
            return dae.DaeResult(True)
        if req.nfs is not None:
            unknown = await orch.db.run(_set_nfs, acct_id, req.nfs)
            if unknown:
                return dae.DaeResult(False, dae.INVALID_ATTRIBUTE_VALUE,
                                     f"unknown NFs {unknown}")
        if req.session_timeout is not None or req.idle_timeout is not None:
            await orch.db.run(_set_limits, acct_id, req.session_timeout, req.idle_timeout)
        # Plan again at the node they are at: the engine places and releases NFs to match,
        # and the switches take the new idle timeout (the login goes on: same session).
        try:
            await sessions.associate(orch.coordinator, orch.db, user, node, mac, ip)
        except NetfateError as exc:
            return dae.DaeResult(False, dae.RESOURCES_UNAVAILABLE, str(exc))
        if orch.switches is not None:
            with contextlib.suppress(Exception):
                await orch.switches.publish(node)
        return dae.DaeResult(True)


async def start(orch: Orchestrator, settings: RadiusSettings) -> Aaa:
    aaa = Aaa(orch, settings)
    await aaa.start()
    return aaa
