"""--users-via db: the simulated users written straight into a fresh database."""

from __future__ import annotations

import time
from pathlib import Path

from netfate.bench.control_plane.params import PASSWORD, mac_of
from netfate.bench.sim_agents import SIM_FLAVOURS
from netfate.flavours import DEFAULT_FLAVOUR
from netfate.resolver import Implementation, resolve


def seed_users_in_db(state: Path, users: list[str], warm_at: dict[str, str] | None,
                     db_url: str | None = None) -> None:
    """--users-via db: the users written straight into a fresh database (one scrypt hash for
    all), which skips the API's ~50 ms of scrypt per user. Same rows as POST /users.

    `warm_at` (user -> CPE): each user also starts logged in there, with their firewall placed
    and steered, as a login through the API would leave them; the nodes' agents get these
    instances in their registration's desired state."""
    import sqlalchemy as sa

    from netfate import catalogue
    from netfate.bundle import inspect_bundle
    from netfate.db import Database, models, repo, sqlite_url
    from netfate.db.passwords import hash_password

    db = Database.create(db_url or sqlite_url(state))
    try:
        h = hash_password(PASSWORD)
        now = time.time()
        with db.session() as s:
            if warm_at:  # the nodes first (users refer to them); their agents fill them in
                s.execute(sa.insert(models.Node), [
                    {"name": n, "role": "cpe", "online": False, "capabilities": [],
                     "infrastructure": {}, "resources": {}, "registered_at": now}
                    for n in sorted(set(warm_at.values()))])
            s.execute(sa.insert(models.User), [
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
            flavour = _sim_flavour(desc.implementation_list())
            s.execute(sa.insert(models.UserSession), [
                {"id": f"warm-{u}", "user_name": u, "node_name": n, "mac": mac_of(u),
                 "started_at": now, "state": models.SessionState.ACTIVE}
                for u, n in warm_at.items()])
            s.execute(sa.insert(models.VnfInstance), [
                {"id": f"{n}-{u}-firewall", "nf_name": "firewall", "bundle_sha256": sha,
                 "flavour": flavour,
                 "owner": u, "node_name": n,
                 "desired_state": models.Presence.PRESENT,
                 "actual_state": models.ActualState.PENDING,
                 "config": {}, "active_users": [], "created_at": now, "updated_at": now}
                for u, n in warm_at.items()])
            s.execute(sa.insert(models.SteeringRule), [
                {"user_name": u, "node_name": n, "mac": mac_of(u), "ip": None,
                 "chain": [f"{n}-{u}-firewall"], "desired": True, "installed": True,
                 "updated_at": now} for u, n in warm_at.items()])
    finally:
        db.dispose()


def _sim_flavour(impls: tuple[Implementation, ...]) -> str:
    """The flavour the resolver picks on a simulated CPE (it runs SIM_FLAVOURS; readings are
    not in yet, so nothing is held against it)."""
    from netfate.engine import NodeView

    node = NodeView(name="sim", role="cpe", flavours=frozenset(SIM_FLAVOURS), mem_total_mb=0,
                    mem_free_mb=0, cpu_util=0.0)
    return resolve(impls, (), node, fit=lambda impl: None).flavour or DEFAULT_FLAVOUR
