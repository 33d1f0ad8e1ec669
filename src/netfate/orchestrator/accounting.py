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

So a Stop is never lost to a missed event. What accounting needs survives a restart, even a
kill -9 (orchestrator/acct_store.py, table acct_open): each open login's meter (per switch, the
last reading and the baseline), whether its Start was answered, its last Interim-Update and the
totals already reported. So after a restart the next Interim-Update or Stop of the same
Acct-Session-Id carries the totals since its Start (RFC 2866 5.3, 5.5), never less than what
was reported; a login that ended while the orchestrator was down gets its Stop; a login whose
Start was not answered (or not recorded) before the restart gets its Start (at least once).
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
from netfate.orchestrator import acct_store
from netfate.orchestrator.sessions import SESSION_TIMEOUT
from netfate.radius.accounting import AcctRecord, Status, Usage, UsageMeter, send
from netfate.radius.client import RadiusClient, RadiusError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from netfate.db.session import Database

log = logging.getLogger("netfate.orchestrator.accounting")

TICK = 1.0            # seconds between looks at the logins
MAX_STOP_TRIES = 30   # a Stop the server never answers is given up after this many ticks
_U64 = 1 << 64        # OpenFlow's counters are 64-bit unsigned
SAVE_EVERY = 5.0      # seconds: a login's new counter readings are written at most this often

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
    """``reported``: the totals last sent (the next record never carries less); ``dirty``:
    changed since last written to the database, at ``saved_at``."""

    row: LoginRow
    started: bool = False
    last_interim: float = 0.0
    meter: UsageMeter = field(default_factory=UsageMeter)
    stop_tries: int = 0
    reported: Usage = field(default_factory=Usage)
    dirty: bool = True
    saved_at: float = 0.0

    def usage(self) -> Usage:
        return self.meter.total().most(self.reported)

    def saved(self) -> acct_store.Saved:
        r = self.row
        return acct_store.Saved(r.acct_id, r.user, r.node, r.mac, r.ip, r.login_at,
                                self.started, self.last_interim, self.meter, self.reported)

    @classmethod
    def restored(cls, k: acct_store.Saved) -> OpenLogin:
        row = LoginRow(acct_id=k.acct_id, user=k.user, node=k.nas_id, mac=k.mac, ip=k.ip,
                       login_at=k.login_at)
        return cls(row, started=k.started, last_interim=k.last_interim, meter=k.meter,
                   reported=k.reported, dirty=False)


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
            if not all(0 <= c < _U64 for c in usage.as_list()):
                continue  # not an OpenFlow counter (64-bit, unsigned): never a total's part
            self._latest[(node, user)] = usage
            o = by_user.get(user)
            if o is not None:
                o.meter.update(node, usage)
                o.dirty = True
        if len(self._latest) > 100_000:  # bounded: keep what belongs to open logins
            self._latest = {k: v for k, v in self._latest.items() if k[1] in by_user}

    def usage(self, acct_id: str) -> Usage | None:
        o = self.open.get(acct_id)
        return o.usage() if o is not None else None

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
        if self._first:  # what was open before a restart: go on with it
            for k in await self.db.run(acct_store.load):
                self.open.setdefault(k.acct_id, OpenLogin.restored(k))
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
        new = []
        for row in active:
            o = self.open.get(row.acct_id)
            if o is None:
                o = self.open[row.acct_id] = OpenLogin(row, last_interim=now)
                for (node, user), reading in self._latest.items():
                    if user == row.user:  # counted before this login: not its usage
                        o.meter.start_from(node, reading)
                new.append(o)
            if o.row != row:  # the node, MAC and IP it is at now
                o.row, o.dirty, o.saved_at = row, True, 0.0
        if new:  # kept before the Start goes: a restart then knows the baseline
            await self.db.run(acct_store.save, [o.saved() for o in new])
            for o in new:
                o.dirty, o.saved_at = False, now
        for row in active:
            o = self.open[row.acct_id]
            if not o.started:
                o.started = await self._send("Start", o, now)
                o.last_interim = now
                o.dirty, o.saved_at = True, 0.0
            elif self.interim and now - o.last_interim >= self.interim:
                await self._send("Interim-Update", o, now)
                o.last_interim = now  # a missed interim is not repeated: the next one comes
                o.dirty, o.saved_at = True, 0.0  # written now: what was reported
        self._first = False
        stopped = []
        for acct_id in [i for i in self.open if i not in seen]:
            o = self.open[acct_id]
            cause = causes.get(acct_id) or "NAS-Request"
            if not o.started or await self._send("Stop", o, now, cause):
                del self.open[acct_id]
                self._expiring.discard(acct_id)
                self._done(acct_id)
                stopped.append(acct_id)
                continue
            o.stop_tries += 1
            if o.stop_tries >= MAX_STOP_TRIES:
                log.error("giving up the Stop of %s (%s): the RADIUS server does not answer",
                          acct_id, o.row.user)
                del self.open[acct_id]
                stopped.append(acct_id)
        await self._save(now, stopped)
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

    async def _save(self, now: float, stopped: list[str]) -> None:
        """Write the open logins that changed (a login's counter readings alone at most every
        SAVE_EVERY seconds) and forget the stopped ones, in one transaction."""
        due = [o for o in self.open.values()
               if o.dirty and (o.saved_at == 0.0 or now - o.saved_at >= SAVE_EVERY)]
        if not due and not stopped:
            return

        def write(s: Session) -> None:
            acct_store.save(s, [o.saved() for o in due])
            acct_store.forget(s, stopped)

        await self.db.run(write)
        for o in due:
            o.dirty, o.saved_at = False, now

    def _done(self, acct_id: str) -> None:
        self._stopped[acct_id] = None
        while len(self._stopped) > 10_000:
            del self._stopped[next(iter(self._stopped))]

    async def _send(self, status: Status, o: OpenLogin, now: float,
                    cause: str | None = None) -> bool:
        r = o.row
        rec = AcctRecord(status=status, session_id=r.acct_id, user=r.user, nas_id=r.node,
                         mac=r.mac, ip=r.ip, session_time=int(now - r.login_at),
                         usage=o.usage(), cause=cause,
                         interim_interval=int(self.interim) if self.interim else None)
        if self.client is None:
            return True
        try:
            await asyncio.to_thread(send, self.client, rec)
        except RadiusError as exc:
            log.warning("RADIUS accounting %s of %s (%s) not recorded: %s", status, r.acct_id,
                        r.user, exc)
            return False
        o.reported = rec.usage
        self.sent.append(rec)
        del self.sent[:-200]
        return True
