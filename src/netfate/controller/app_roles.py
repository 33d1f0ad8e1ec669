"""The controller app's part in OpenFlow roles (controller/roles.py), mixed into
ControllerApp: with a controller id set, it announces itself on the bus, sends each
connected switch a role request (MASTER for the switches rendezvous hashing gives it, SLAVE
for the others) and syncs only the switches it masters. A switch it newly masters is synced
by a diff against its desired state: flows that are already right are not touched.

Without a controller id (the default, one controller) no role request is sent and every
switch is this controller's (OpenFlow's EQUAL role)."""

from __future__ import annotations

import logging
import time
from typing import Any

from os_ken.controller import event, ofp_event
from os_ken.controller.handler import MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from netfate.bus import subjects
from netfate.bus.messages import ControllerAlive
from netfate.controller.roles import (
    DEAD_AFTER_S,
    HEARTBEAT_S,
    REASSERT_S,
    Generations,
    Membership,
    master_for,
)

log = logging.getLogger("netfate.controller.roles")

ROLE_NAMES = {ofp.OFPCR_ROLE_MASTER: "master", ofp.OFPCR_ROLE_SLAVE: "slave",
              ofp.OFPCR_ROLE_EQUAL: "equal", ofp.OFPCR_ROLE_NOCHANGE: "nochange"}


class EventRoles(event.EventBase):  # type: ignore[misc]
    """Time to check every switch's role against the membership (the app's thread)."""


class RolesMixin:
    """Needs from the app: ``switches`` (dpid -> _Switch with ``dp``), ``nodes``,
    ``_request_sync(sw)``, ``_publish``, ``send_event``, ``name``, ``threads``."""

    controller_id: str | None = None  # set by run_controller; None: the only controller

    switches: dict[int, Any]
    nodes: dict[int, str]
    threads: list[Any]
    name: str

    def _roles_init(self) -> None:
        self.membership = Membership(self.controller_id or "")
        self.generations = Generations()
        self.roles: dict[int, int] = {}  # dpid -> the role last asked of the switch
        self.role_changes = 0
        # Until it has heard its peers (DEAD_AFTER_S), a controller masters nothing: a
        # MASTER claim made before would demote the switch's rightful master unseen.
        self.roles_since = time.monotonic()
        self.reasserted_at = time.monotonic()

    # -- who masters what -------------------------------------------------------------------
    def is_master(self, dpid: int) -> bool:
        """Whether this controller programs switch ``dpid`` (always, with one controller)."""
        if self.controller_id is None:
            return True
        if time.monotonic() - self.roles_since < DEAD_AFTER_S:
            return False
        return master_for(dpid, self.membership.members()) == self.controller_id

    def on_alive(self, msg: ControllerAlive) -> None:
        """A peer's heartbeat, from the bus thread."""
        if msg.controller != self.controller_id:
            self.membership.beat(msg.controller)

    def _role_clock(self) -> None:
        # Own thread: announce, then let the app's thread re-check the roles.
        while True:
            self._publish(subjects.CONTROLLER_ALIVE,  # type: ignore[attr-defined]
                          ControllerAlive(controller=self.controller_id or "",
                                          ts=time.time()))
            self.send_event(self.name, EventRoles())  # type: ignore[attr-defined]
            hub.sleep(HEARTBEAT_S)

    def _start_roles(self) -> None:
        if self.controller_id is not None:
            self.threads.append(hub.spawn(self._role_clock))

    # -- on the app's thread ----------------------------------------------------------------
    @staticmethod
    def _role_for(master: bool) -> int:
        return int(ofp.OFPCR_ROLE_MASTER if master else ofp.OFPCR_ROLE_SLAVE)

    def assert_role(self, sw: Any) -> bool:
        """Ask ``sw`` for the role this controller should have; True if it is (now) master.
        Returns at once with one controller (nothing asked)."""
        if self.controller_id is None:
            return True
        dpid = sw.dp.id
        master = self.is_master(dpid)
        want = self._role_for(master)
        if self.roles.get(dpid) != want:
            req = parser.OFPRoleRequest(sw.dp, want, self.generations.next())
            sw.dp.send_msg(req)
            became_master = want == ofp.OFPCR_ROLE_MASTER and dpid in self.roles
            if became_master or want != ofp.OFPCR_ROLE_MASTER:
                sw.view.drop()  # another master may write it meanwhile: read it again
            self.roles[dpid] = want
            self.role_changes += 1
            log.info("switch %016x (node %s): %s", dpid, self.nodes.get(dpid, "?"),
                     ROLE_NAMES[want])
            if became_master:
                # Taken over from a master that died: converge by diff (nothing that is
                # already right is touched).
                self._request_sync(sw)  # type: ignore[attr-defined]
        return master

    @set_ev_cls(EventRoles)  # type: ignore[untyped-decorator]
    def _handle_roles(self, ev: EventRoles) -> None:
        if time.monotonic() - self.reasserted_at >= REASSERT_S:
            # OpenFlow 1.3 does not tell a master it was demoted (OFPT_ROLE_STATUS is 1.4):
            # claim the shard again now and then, so a demotion by another controller's
            # mistaken claim does not last.
            self.reasserted_at = time.monotonic()
            for dpid, role in list(self.roles.items()):
                if role == ofp.OFPCR_ROLE_MASTER:
                    del self.roles[dpid]
        for sw in list(self.switches.values()):
            self.assert_role(sw)

    @set_ev_cls(ofp_event.EventOFPRoleReply, MAIN_DISPATCHER)  # type: ignore[untyped-decorator]
    def _role_reply(self, ev: Any) -> None:
        msg = ev.msg
        log.debug("switch %016x: role %s, generation %d", msg.datapath.id,
                  ROLE_NAMES.get(msg.role, msg.role), msg.generation_id)

    def role_refused(self, dpid: int, code: int) -> None:
        """The switch refused a role request (stale generation, ...): ask again next tick."""
        self.roles.pop(dpid, None)
        log.warning("switch %016x refused a role request (code %d)", dpid, code)

