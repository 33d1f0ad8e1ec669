"""RADIUS accounting of every login (RFC 2866), and the Access-Accept's Session-Timeout.

The orchestrator is the NAS that accounts: it alone sees every login (the portal's associate),
roam (fast re-authentication), idle report, logout, Disconnect-Request and session end, and
it gets every user's counters from the SDN controller (`UserCounters`, read from the users'
own flows on each switch, see controller/counters.py). NAS-Identifier is the node the user
is at; Acct-Session-Id is the login's, kept across roams (orchestrator/sessions.py).

Level-triggered, like the rest of the orchestrator: every TICK seconds `tick` reads the
active logins from the database and compares them with the ones it has open:

- a login it has not seen: Accounting-Start (retried on the next tick until answered);
- an open login no longer active: Stop, with the Acct-Terminate-Cause its session row
  ended with, and the usage counted so far;
- an open login whose Interim-Update is due (``acct_interim_interval``): Interim-Update;
- an active login past its Session-Timeout (RFC 2865 5.27, from its login): its session is
  ended (the NFs released, the device captive again), cause Session-Timeout; the Stop
  follows on the next tick.

So a Stop is never lost to a missed event; logins already active when the orchestrator starts
are adopted without a second Start. Usage counted before a restart is not kept (the switch's
counters of the current flows are, since they are cumulative).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from netfate.counters import LoopFailures
from netfate.db.models import SessionState, UserSession
from netfate.orchestrator.sessions import SESSION_TIMEOUT
from netfate.radius.accounting import AcctRecord, Status, Usage, UsageMeter, send
from netfate.radius.client import RadiusClient, RadiusError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from netfate.db.session import Database

log = logging.getLogger("netfate.orchestrator.accounting")

TICK = 1.0            # seconds between looks at the logins
MAX_STOP_TRIES = 30   # a Stop the server never answers is given up after this many ticks

EndSession = Callable[[str, str, str], Awaitable[object]]  # (user, cause, acct session id)


@dataclass(frozen=True)
class LoginRow:
    """An active login as the database has it (its newest session row)."""

    acct_id: str
    user: str
    node: str
    mac: str | None
    ip: str | None
    login_at: float
    session_timeout: int | None = None


@dataclass
class OpenLogin:
    row: LoginRow
    started: bool = False
    last_interim: float = 0.0
    meter: UsageMeter = field(default_factory=UsageMeter)
    stop_tries: int = 0


def _row(r: UserSession) -> LoginRow:
    return LoginRow(acct_id=r.acct_session_id or "", user=r.user_name, node=r.node_name,
                    mac=r.mac, ip=r.ip,
                    login_at=r.login_at if r.login_at is not None else r.started_at,
                    session_timeout=r.session_timeout)


def read_logins(s: Session, gone: list[str], since: float | None = None
                ) -> tuple[list[LoginRow], dict[str, str | None], list[tuple[LoginRow, str]]]:
    """(the active logins; for each of ``gone``, the Acct-Terminate-Cause its last session
    row ended with, None if it has none or no row is left; the logins that ended at or after
    ``since``, with their causes: a login shorter than a tick is accounted all the same)."""
    rows = s.execute(
        sa.select(UserSession).where(UserSession.state == SessionState.ACTIVE,
                                     UserSession.acct_session_id.is_not(None))
        .order_by(UserSession.started_at)).scalars()
    active = {r.acct_session_id: _row(r) for r in rows}
    causes: dict[str, str | None] = {}
    if gone:
        q = (sa.select(UserSession.acct_session_id, UserSession.terminate_cause)
             .where(UserSession.acct_session_id.in_(gone))
             .order_by(UserSession.started_at))
        for acct_id, cause in s.execute(q):
            if acct_id is not None:
                causes[acct_id] = cause
    ended: list[tuple[LoginRow, str]] = []
    if since is not None:
        q2 = sa.select(UserSession).where(
            UserSession.state == SessionState.ENDED, UserSession.ended_at >= since,
            UserSession.terminate_cause.is_not(None), UserSession.acct_session_id.is_not(None))
        ended = [(_row(r), r.terminate_cause or "") for r in s.scalars(q2)
                 if r.acct_session_id not in active]
    return list(active.values()), causes, ended


def expired(rows: list[LoginRow], now: float) -> list[LoginRow]:
    """The logins past their Session-Timeout at ``now`` (pure)."""
    return [r for r in rows
            if r.session_timeout is not None and now >= r.login_at + r.session_timeout]


class Accounting:
    """``client`` None: nothing is sent (Session-Timeout is still enforced)."""

    def __init__(self, db: Database, client: RadiusClient | None, interim: float,
                 end_session: EndSession, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.client = client
        self.interim = interim
        self.end_session = end_session
        self.clock = clock
        self.open: dict[str, OpenLogin] = {}
        self.sent: list[AcctRecord] = []    # the last records the server answered (tests, UI)
        self._latest: dict[tuple[str, str], Usage] = {}  # (node, user) -> last reading
        self._expiring: set[str] = set()
        self._first = True
        self._since: float | None = None
        self._stopped: dict[str, None] = {}  # the last logins stopped, oldest first
        self._failures = LoopFailures("accounting", log)

    # -- inputs -------------------------------------------------------------------------------
    def counters(self, node: str, users: Mapping[str, Usage]) -> None:
        """A switch's reading of its users' counters (cumulative, per user)."""
        by_user = {o.row.user: o for o in self.open.values()}
        for user, usage in users.items():
            self._latest[(node, user)] = usage
            o = by_user.get(user)
            if o is not None:
                o.meter.update(node, usage)
        if len(self._latest) > 100_000:  # bounded: keep what belongs to open logins
            self._latest = {k: v for k, v in self._latest.items() if k[1] in by_user}

    def usage(self, acct_id: str) -> Usage | None:
        o = self.open.get(acct_id)
        return o.meter.total() if o is not None else None

    # -- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            try:
                await self.tick()
                self._failures.ok()
            except Exception as exc:
                self._failures.failed("RADIUS accounting", exc)
            await asyncio.sleep(TICK)

    async def tick(self) -> None:
        now = self.clock()
        active, causes, ended = await self.db.run(read_logins, list(self.open), self._since)
        self._since = now - TICK  # overlapping: a row's ended_at and our clock may differ
        for row, cause in ended:  # began and ended between two ticks: Start, then Stop
            if row.acct_id in self.open or row.acct_id in self._stopped:
                continue
            short = OpenLogin(row, last_interim=now)
            if await self._send("Start", short, now) and \
                    await self._send("Stop", short, now, cause):
                self._done(row.acct_id)
        seen = {r.acct_id for r in active}
        for row in active:
            o = self.open.get(row.acct_id)
            if o is None:
                o = self.open[row.acct_id] = OpenLogin(row, started=self._first,
                                                       last_interim=now)
                for (node, user), reading in self._latest.items():
                    if user == row.user:  # counted before this login: not its usage
                        o.meter.start_from(node, reading)
            o.row = row  # the node, MAC and IP it is at now
            if not o.started:
                o.started = await self._send("Start", o, now)
                o.last_interim = now
            elif self.interim and now - o.last_interim >= self.interim:
                await self._send("Interim-Update", o, now)
                o.last_interim = now  # a missed interim is not repeated: the next one comes
        self._first = False
        for acct_id in [i for i in self.open if i not in seen]:
            o = self.open[acct_id]
            cause = causes.get(acct_id) or "NAS-Request"
            if not o.started or await self._send("Stop", o, now, cause):
                del self.open[acct_id]
                self._expiring.discard(acct_id)
                self._done(acct_id)
                continue
            o.stop_tries += 1
            if o.stop_tries >= MAX_STOP_TRIES:
                log.error("giving up the Stop of %s (%s): the RADIUS server does not answer",
                          acct_id, o.row.user)
                del self.open[acct_id]
        for row in expired(active, now):
            if row.acct_id in self._expiring:
                continue
            self._expiring.add(row.acct_id)
            log.info("%s: Session-Timeout of %d s reached", row.user, row.session_timeout or 0)
            try:
                await self.end_session(row.user, SESSION_TIMEOUT, row.acct_id)
            except Exception as exc:  # tried again on the next tick
                self._expiring.discard(row.acct_id)
                log.warning("ending the session of %s at its timeout failed: %s", row.user,
                            exc)

    def _done(self, acct_id: str) -> None:
        self._stopped[acct_id] = None
        while len(self._stopped) > 10_000:
            del self._stopped[next(iter(self._stopped))]

    async def _send(self, status: Status, o: OpenLogin, now: float,
                    cause: str | None = None) -> bool:
        r = o.row
        rec = AcctRecord(status=status, session_id=r.acct_id, user=r.user, nas_id=r.node,
                         mac=r.mac, ip=r.ip, session_time=int(now - r.login_at),
                         usage=o.meter.total(), cause=cause,
                         interim_interval=int(self.interim) if self.interim else None)
        if self.client is None:
            return True
        try:
            await asyncio.to_thread(send, self.client, rec)
        except RadiusError as exc:
            log.warning("RADIUS accounting %s of %s (%s) not recorded: %s", status, r.acct_id,
                        r.user, exc)
            return False
        self.sent.append(rec)
        del self.sent[:-200]
        return True
