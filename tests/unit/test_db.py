"""The NFVI database (netfate.db) against SQLite in tmp_path: migrations, every repository
function, password hashing and error mapping.

tests/integration/test_db_postgres.py runs the backend-neutral tests here against a real
PostgreSQL by overriding the ``db_url`` fixture.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.orm import Session

from netfate.db import Database, make_engine, migrate, repo, sqlite_url
from netfate.db.migrate import alembic_config, current_revision, downgrade, head_revision
from netfate.db.models import Base, Node, OpState, VnfInstance
from netfate.db.passwords import hash_password, needs_rehash, verify_password
from netfate.db.repo._common import guard
from netfate.errors import Conflict, InvalidInput, NotFound

BUNDLE = b"\x1f\x8b fake firewall bundle .tgz"
DESCRIPTOR = {"name": "firewall", "version": "1.0", "ports": [{"name": "lan"}, {"name": "wan"}]}
TABLES = {
    "nodes", "users", "sessions", "vnf_instances", "steering_rules", "bundles",
    "notifications", "notification_mutes", "vnf_lcm_op_occs", "subscriptions", "ts_rules",
    "acct_open", "troubleshoot_occs",
}


@pytest.fixture
def db_url(tmp_path) -> str:
    """An empty database (the PostgreSQL tests override this)."""
    return sqlite_url(tmp_path / "state")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    d = Database.create(db_url)
    try:
        yield d
    finally:
        d.dispose()


@pytest.fixture
def s(db: Database) -> Iterator[Session]:
    with db.session() as session:
        yield session


@pytest.fixture
def world(s: Session) -> str:
    """Nodes cpe1, cpe2, pe1; users user1 and user2; the firewall bundle. Returns its sha."""
    repo.upsert_node(s, "cpe1", role="cpe", capabilities=["nftables"], now=100.0)
    repo.upsert_node(s, "cpe2", role="cpe", capabilities=["nftables", "tc"], now=100.0)
    repo.upsert_node(s, "pe1", role="pe", online=False, now=100.0)
    repo.create_user(s, "user1", "pw-one", required_nfs=["firewall"])
    repo.create_user(s, "user2", "pw-two", required_nfs=["firewall", "packet-inspector"])
    return repo.add_bundle(
        s, BUNDLE, name="firewall", version="1.0", descriptor=DESCRIPTOR, now=100.0
    ).sha256


def _instance(s: Session, sha: str, node: str = "cpe1", owner: str = "user1", **kw):
    return repo.upsert_instance(
        s, node=node, owner=owner, nf_name="firewall", bundle_sha256=sha, flavour="native", **kw
    )


# --- migrations -------------------------------------------------------------------------------


def test_migrate_from_empty_to_head_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        migrate(db_url)
        assert current_revision(engine) == head_revision() == "0010"
        assert TABLES <= set(sa.inspect(engine).get_table_names())
        migrate(db_url)  # already at head: nothing to do
        downgrade(db_url, "base")
        assert not TABLES & set(sa.inspect(engine).get_table_names())
        migrate(engine)
        assert current_revision(engine) == "0010"
    finally:
        engine.dispose()


def test_models_and_migrations_agree(db: Database) -> None:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
    # The same check `alembic check` runs, through the packaged env.py.
    command.check(alembic_config(db.url))


def test_sqlite_state_dir_wal_and_foreign_keys(tmp_path) -> None:
    url = sqlite_url(tmp_path / "state")
    assert url == f"sqlite:///{tmp_path}/state/nfvi.db"
    with Database.create(url) as d, d.engine.connect() as c:
        assert (tmp_path / "state" / "nfvi.db").is_file()
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_bad_urls_are_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="not valid"):
        Database("not a url")
    with pytest.raises(InvalidInput, match="use sqlite"):
        Database("mysql://u@h/db")
    d = Database("postgresql://u:secret@127.0.0.1:1/x")  # no connection until used
    assert d.url.drivername == "postgresql+psycopg"
    assert "secret" not in repr(d)
    d.dispose()


def test_session_commits_or_rolls_back(db: Database) -> None:
    with db.session() as s:
        repo.upsert_node(s, "cpe1", role="cpe")
    with pytest.raises(RuntimeError), db.session() as s:
        repo.upsert_node(s, "cpe2", role="cpe")
        raise RuntimeError("boom")
    with db.session() as s:
        assert [n.name for n in repo.list_nodes(s)] == ["cpe1"]
    # Objects stay readable after their session closed.
    with db.session() as s:
        node = repo.get_node(s, "cpe1")
    assert node.role == "cpe"


# --- passwords --------------------------------------------------------------------------------


def test_password_hash_format_and_verification() -> None:
    h = hash_password("correct horse")
    scheme, n, r, p, salt, digest = h.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert salt and digest
    assert "correct horse" not in h
    assert verify_password("correct horse", h)
    assert not verify_password("correct horsE", h)
    assert not verify_password("", h)
    assert hash_password("correct horse") != h  # a random salt each time
    assert not needs_rehash(h)
    assert needs_rehash("scrypt$1024$8$1$AAAA$AAAA")
    for bad in ("", "plain", "scrypt$x$8$1$a$b", "bcrypt$16384$8$1$YQ==$YQ==",
                "scrypt$16384$8$1$!!$YQ==", "scrypt$16385$8$1$YQ==$YQ==",
                "scrypt$1099511627776$8$1$YQ==$YQ=="):
        assert not verify_password("correct horse", bad)
    with pytest.raises(InvalidInput, match="empty"):
        hash_password("")


def test_old_cost_parameters_still_verify_and_are_upgraded(s: Session, world: str) -> None:
    import base64
    import hashlib

    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"legacy", salt=salt, n=1024, r=8, p=1, dklen=32)
    old = f"scrypt$1024$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    repo.get_user(s, "user1").password_hash = old
    assert verify_password("legacy", old)
    assert repo.authenticate_user(s, "user1", "legacy", rehash=False) is not None
    assert repo.get_user(s, "user1").password_hash == old  # nothing written
    assert repo.authenticate_user(s, "user1", "legacy") is not None
    assert repo.get_user(s, "user1").password_hash.startswith("scrypt$16384$")


def test_a_new_hash_replaces_only_the_one_the_password_was_checked_against(
        s: Session, world: str) -> None:
    """RADIUS checks a password in a read-only transaction and stores a stronger hash in a
    short write afterwards: a password changed in between is never overwritten."""
    checked = repo.get_user(s, "user1").password_hash
    assert repo.replace_password_hash(s, "user1", checked, "scrypt$new") is True
    assert repo.get_user(s, "user1").password_hash == "scrypt$new"
    assert repo.replace_password_hash(s, "user1", checked, "scrypt$newer") is False
    assert repo.get_user(s, "user1").password_hash == "scrypt$new"
    assert repo.replace_password_hash(s, "ghost", checked, "scrypt$x") is False


# --- nodes ------------------------------------------------------------------------------------


def test_nodes(s: Session) -> None:
    n = repo.upsert_node(
        s, "cpe1", role="cpe", capabilities=["nftables"], infrastructure={"arch": "x86_64"},
        resources={"mem_total_mb": 512}, now=10.0,
    )
    assert (n.role, n.online, n.last_seen, n.registered_at) == ("cpe", True, 10.0, 10.0)
    n = repo.upsert_node(s, "cpe1", role="cpe", resources={"mem_free_mb": 100}, now=20.0)
    assert n.registered_at == 10.0 and n.last_seen == 20.0
    assert n.capabilities == ["nftables"] and n.infrastructure == {"arch": "x86_64"}
    assert n.resources == {"mem_free_mb": 100}
    repo.upsert_node(s, "pe1", role="pe", online=False, now=30.0)
    assert [x.name for x in repo.list_nodes(s)] == ["cpe1", "pe1"]
    assert [x.name for x in repo.list_nodes(s, role="pe")] == ["pe1"]
    assert [x.name for x in repo.list_nodes(s, online=True)] == ["cpe1"]
    n = repo.set_node_online(s, "cpe1", False, now=40.0)
    assert not n.online and n.last_seen == 20.0
    n = repo.set_node_online(s, "cpe1", True, now=50.0)
    assert n.online and n.last_seen == 50.0
    n = repo.update_node_resources(s, "cpe1", {"cpu_util": 0.5, "nf_count": 1}, now=60.0)
    assert n.resources["cpu_util"] == 0.5 and n.last_seen == 60.0
    assert repo.get_node(s, "pe1").role == "pe"
    with pytest.raises(NotFound, match="node 'nope'"):
        repo.get_node(s, "nope")
    with pytest.raises(NotFound, match="node"):
        repo.set_node_online(s, "nope", True)
    with pytest.raises(InvalidInput, match="role 'router'"):
        repo.upsert_node(s, "cpe9", role="router")
    with pytest.raises(InvalidInput, match="node name"):
        repo.upsert_node(s, "Bad Name", role="cpe")
    with pytest.raises(InvalidInput, match="capabilities"):
        repo.upsert_node(s, "cpe9", role="cpe", capabilities="nftables")  # type: ignore[arg-type]
    repo.delete_node(s, "pe1")
    with pytest.raises(NotFound):
        repo.get_node(s, "pe1")


def test_delete_node_refused_while_instances_remain(s: Session, world: str) -> None:
    _instance(s, world)
    with pytest.raises(Conflict, match=r"cpe1.*1 NF instance"):
        repo.delete_node(s, "cpe1")
    repo.update_user_seen(s, "user2", access_node="cpe2")
    repo.add_session(s, user="user2", node="cpe2")
    repo.delete_node(s, "cpe2")
    s.expire_all()
    assert repo.get_user(s, "user2").access_node is None  # ON DELETE SET NULL
    assert repo.list_sessions(s, user="user2") == []  # ON DELETE CASCADE


# --- users ------------------------------------------------------------------------------------


def test_users_and_authentication(s: Session, world: str) -> None:
    u = repo.get_user(s, "user1")
    assert u.required_nfs == ["firewall"] and u.nf_config == {} and u.access_node is None
    assert "pw-one" not in u.password_hash and u.password_hash.startswith("scrypt$")
    assert "password_hash" not in u.as_dict()
    with pytest.raises(Conflict, match="user 'user1' already exists"):
        repo.create_user(s, "user1", "x")
    assert [x.name for x in repo.list_users(s)] == ["user1", "user2"]
    assert repo.authenticate_user(s, "user1", "pw-one") is u
    assert repo.authenticate_user(s, "user1", "pw-two") is None
    assert repo.authenticate_user(s, "ghost", "pw-one") is None
    assert repo.authenticate_user(s, "user1", "") is None
    assert repo.authenticate_user(s, "nul\x00", "x") is None

    u = repo.update_user_seen(
        s, "user1", now=5.0, access_node="cpe1", mac="02:aa::1", ip="10.0.0.2"
    )
    assert (u.last_seen, u.access_node, u.mac, u.ip) == (5.0, "cpe1", "02:aa::1", "10.0.0.2")
    u = repo.update_user_seen(s, "user1", now=6.0)
    assert (u.last_seen, u.access_node) == (6.0, "cpe1")
    assert [x.name for x in repo.list_users(s, access_node="cpe1")] == ["user1"]
    with pytest.raises(NotFound, match="node 'cpe9'"):
        repo.update_user_seen(s, "user1", access_node="cpe9")
    with pytest.raises(NotFound, match="user 'ghost'"):
        repo.update_user_seen(s, "ghost")

    u = repo.update_user(
        s, "user1", password="new-pw", required_nfs=["firewall", "rate-limiter"],
        nf_config={"firewall": {"rules": [{"action": "drop", "dport": 23}]}}, framed_ip="10.9.0.1",
    )
    assert u.required_nfs == ["firewall", "rate-limiter"] and u.framed_ip == "10.9.0.1"
    assert u.nf_config["firewall"]["rules"][0]["dport"] == 23
    assert repo.authenticate_user(s, "user1", "new-pw") is u
    assert repo.authenticate_user(s, "user1", "pw-one") is None
    with pytest.raises(InvalidInput, match="twice"):
        repo.update_user(s, "user1", required_nfs=["firewall", "firewall"])
    with pytest.raises(InvalidInput, match="nf_config"):
        repo.update_user(s, "user1", nf_config={"firewall": ["not", "a", "dict"]})
    with pytest.raises(InvalidInput, match="user name"):
        repo.create_user(s, "../etc", "x")
    with pytest.raises(InvalidInput, match="empty"):
        repo.create_user(s, "user3", "")

    _instance(s, world, owner="user2")
    with pytest.raises(Conflict, match=r"user2.*owns 1 NF instance"):
        repo.delete_user(s, "user2")
    repo.delete_user(s, "user1")
    with pytest.raises(NotFound):
        repo.get_user(s, "user1")


# --- NF instances (Table II) ------------------------------------------------------------------


def test_instances(s: Session, world: str) -> None:
    i = _instance(s, world, config={"rules": []}, now=1.0)
    assert i.id == "cpe1-user1-firewall"
    assert (i.desired_state, i.actual_state, i.created_at, i.updated_at) == (
        "present", "pending", 1.0, 1.0,
    )
    i = repo.set_instance_actual_state(s, i.id, "running", now=2.0)
    assert i.actual_state == "running" and i.updated_at == 2.0
    i = _instance(s, world, now=3.0)  # an update keeps actual_state, config, created_at
    assert i.actual_state == "running" and i.config == {"rules": []} and i.created_at == 1.0
    i = repo.set_instance_active_users(s, i.id, ["user1"], now=4.0)
    assert i.active_users == ["user1"]
    _instance(s, world, owner="user2", instance_id="custom-id")
    _instance(s, world, node="cpe2")
    assert [x.id for x in repo.list_instances(s)] == [
        "cpe1-user1-firewall", "cpe2-user1-firewall", "custom-id",
    ]
    assert [x.id for x in repo.list_instances(s, node="cpe1")] == [
        "cpe1-user1-firewall", "custom-id",
    ]
    assert [x.id for x in repo.list_instances(s, owner="user1", node="cpe2")] == [
        "cpe2-user1-firewall"
    ]
    repo.set_instance_desired_state(s, "cpe1-user1-firewall", "absent")
    assert [x.id for x in repo.list_instances(s, desired_state="absent")] == [
        "cpe1-user1-firewall"
    ]
    repo.delete_instance(s, "cpe1-user1-firewall")
    with pytest.raises(NotFound, match="NF instance 'cpe1-user1-firewall'"):
        repo.get_instance(s, "cpe1-user1-firewall")
    with pytest.raises(NotFound, match="NF instance"):
        repo.delete_instance(s, "cpe1-user1-firewall")


def test_instance_errors_name_what_is_wrong(s: Session, world: str) -> None:
    with pytest.raises(NotFound, match="node 'cpe9'"):
        _instance(s, world, node="cpe9")
    with pytest.raises(NotFound, match="user 'ghost'"):
        _instance(s, world, owner="ghost")
    with pytest.raises(NotFound, match="bundle 'f00'"):
        _instance(s, "f00")
    _instance(s, world)
    with pytest.raises(InvalidInput, match="actual_state 'exploded'"):
        repo.set_instance_actual_state(s, "cpe1-user1-firewall", "exploded")
    with pytest.raises(InvalidInput, match="desired_state"):
        _instance(s, world, desired_state="maybe")
    # The same (node, owner, NF) under another id.
    with pytest.raises(Conflict, match="'user1' already has 'firewall' on 'cpe1'"):
        _instance(s, world, instance_id="fw-dup")
    # An id is never reused for another node, owner or NF.
    with pytest.raises(Conflict, match="cpe1-user1-firewall"):
        _instance(s, world, node="cpe2", instance_id="cpe1-user1-firewall")
    with pytest.raises(NotFound, match="NF instance"):
        repo.set_instance_actual_state(s, "nope", "running")


def test_constraint_violations_map_to_errors_and_session_survives(s: Session, world: str) -> None:
    """Past the repository's own checks (a race), the database's constraints still give
    Conflict / NotFound / InvalidInput, never a raw SQLAlchemy error."""
    with pytest.raises(Conflict, match="already exists"), guard(s, "node 'cpe1'"):
        s.add(Node(name="cpe1", role="cpe"))
    with pytest.raises(NotFound, match="does not exist"), guard(s, "NF instance 'x'"):
        s.add(VnfInstance(
            id="x", nf_name="firewall", bundle_sha256=world, flavour="native",
            owner="ghost", node_name="cpe1",
        ))
    with pytest.raises(Conflict), guard(s, "NF instance 'y'"):
        for iid in ("y1", "y2"):
            s.add(VnfInstance(
                id=iid, nf_name="firewall", bundle_sha256=world, flavour="native",
                owner="user1", node_name="cpe1",
            ))
    with pytest.raises(InvalidInput, match="constraint"), guard(s, "node 'cpe7'"):
        s.execute(sa.text("INSERT INTO nodes (name, role, online, capabilities, infrastructure,"
                          " resources, registered_at) VALUES ('cpe7', 'router', false, '[]',"
                          " '{}', '{}', 0)"))
    # The savepoints rolled back; the rest of the transaction is intact and usable.
    assert [n.name for n in repo.list_nodes(s)] == ["cpe1", "cpe2", "pe1"]
    assert repo.list_instances(s) == []
    _instance(s, world)


def test_nul_bytes_are_invalid_or_not_found(s: Session, world: str) -> None:
    with pytest.raises(NotFound):
        repo.get_node(s, "cpe\x00")
    with pytest.raises(NotFound):
        repo.get_bundle(s, "\x00")
    with pytest.raises(InvalidInput):
        repo.add_notification(s, type="t\x00", severity="info", source="agent")
    assert not repo.is_muted(s, "a\x00")


# --- steering rules (Table III) ---------------------------------------------------------------


def test_steering(s: Session, world: str) -> None:
    repo.update_user_seen(s, "user1", mac="02:aa:00:00:00:01", ip="10.0.0.2")
    r = repo.set_steering(s, user="user1", node="cpe1", chain=["cpe1-user1-firewall"], now=1.0)
    assert (r.mac, r.ip, r.desired, r.installed, r.updated_at) == (
        "02:aa:00:00:00:01", "10.0.0.2", True, False, 1.0,
    )
    r = repo.mark_steering_installed(s, user="user1", node="cpe1", installed=True, now=2.0)
    assert r is not None and r.installed
    # Re-applying the same rule changes nothing (it stays installed).
    r = repo.set_steering(s, user="user1", node="cpe1", chain=["cpe1-user1-firewall"], now=3.0)
    assert r.installed and r.updated_at == 2.0
    # A new chain needs installing again.
    r = repo.set_steering(s, user="user1", node="cpe1", chain=["a", "b"], now=4.0)
    assert r.chain == ["a", "b"] and not r.installed and r.updated_at == 4.0
    repo.mark_steering_installed(s, user="user1", node="cpe1", installed=True)
    repo.set_steering(s, user="user2", node="cpe1", chain=[], mac="02:aa:00:00:00:02")
    repo.set_steering(s, user="user1", node="cpe2", chain=["x"])
    assert [(r.user_name, r.node_name) for r in repo.list_steering(s)] == [
        ("user1", "cpe1"), ("user2", "cpe1"), ("user1", "cpe2"),
    ]
    assert [r.user_name for r in repo.list_steering(s, node="cpe1")] == ["user1", "user2"]
    assert [r.node_name for r in repo.list_steering(s, user="user1")] == ["cpe1", "cpe2"]
    with pytest.raises(Conflict):
        with guard(s, "steering"):  # (user, node) is unique in the database too
            s.execute(sa.text("UPDATE steering_rules SET node_name='cpe1' WHERE node_name='cpe2'"))

    # Clearing: the installed rule waits for the controller, the uninstalled one goes at once.
    assert repo.clear_steering(s, user="user1", now=5.0) == 2
    assert [(r.node_name, r.desired, r.installed) for r in repo.list_steering(s, user="user1")] == [
        ("cpe1", False, True)
    ]
    assert repo.list_steering(s, node="cpe1", desired=True)[0].user_name == "user2"
    assert repo.clear_steering(s, user="user1") == 0  # already being removed
    assert repo.mark_steering_installed(s, user="user1", node="cpe1", installed=False) is None
    assert repo.list_steering(s, user="user1") == []
    with pytest.raises(NotFound, match="no steering rule for 'user1' at 'cpe1'"):
        repo.mark_steering_installed(s, user="user1", node="cpe1", installed=True)
    with pytest.raises(NotFound, match="user 'ghost'"):
        repo.set_steering(s, user="ghost", node="cpe1", chain=[])
    with pytest.raises(NotFound, match="node 'cpe9'"):
        repo.set_steering(s, user="user1", node="cpe9", chain=[])
    with pytest.raises(InvalidInput, match="chain"):
        repo.set_steering(s, user="user1", node="cpe1", chain="firewall")


# --- the catalogue ----------------------------------------------------------------------------


def test_bundles(s: Session, world: str) -> None:
    b = repo.add_bundle(s, BUNDLE, name="other-name", version="9", descriptor={})
    assert b.sha256 == world and b.name == "firewall"  # idempotent: the stored one
    other = repo.add_bundle(s, b"v2 bytes", name="firewall", version="1.1", descriptor=DESCRIPTOR)
    assert other.size == len(b"v2 bytes")
    s.expunge_all()
    listed = repo.list_bundles(s, name="firewall")
    assert [x.version for x in listed] == ["1.0", "1.1"]
    assert "data" not in sa.inspect(listed[0]).dict  # blobs are not loaded for listings
    assert "data" not in listed[0].as_dict()
    got = repo.get_bundle(s, world)
    assert got.data == BUNDLE and got.descriptor == DESCRIPTOR
    assert repo.list_bundles(s, name="nothing") == []
    with pytest.raises(NotFound, match="bundle 'ab'"):
        repo.get_bundle(s, "ab")
    with pytest.raises(InvalidInput, match="non-empty bytes"):
        repo.add_bundle(s, b"", name="x", version="1", descriptor={})
    _instance(s, world)
    with pytest.raises(Conflict, match="cpe1-user1-firewall"):
        repo.delete_bundle(s, world)
    repo.delete_bundle(s, other.sha256)
    with pytest.raises(NotFound):
        repo.delete_bundle(s, other.sha256)


# --- notifications ----------------------------------------------------------------------------


def test_notifications_and_mutes(s: Session, world: str) -> None:
    inst = _instance(s, world)
    a = repo.add_notification(
        s, type="intrusion", severity="critical", source="firewall", nf_instance_id=inst.id,
        node="cpe1", owner="user1", detail={"src": "10.0.0.9"}, ts=10.0,
    )
    b = repo.add_notification(s, type="load", severity="warning", source="agent", node="cpe2",
                              ts=20.0)
    c = repo.add_notification(s, type="intrusion", severity="info", source="firewall",
                              nf_instance_id="pe1-user2-ids", ts=30.0)
    assert [n.id for n in repo.list_notifications(s)] == [c.id, b.id, a.id]
    assert [n.id for n in repo.list_notifications(s, type="intrusion")] == [c.id, a.id]
    assert [n.id for n in repo.list_notifications(s, node="cpe1")] == [a.id]
    assert [n.id for n in repo.list_notifications(s, owner="user1")] == [a.id]
    assert [n.id for n in repo.list_notifications(s, severity="warning")] == [b.id]
    assert [n.id for n in repo.list_notifications(s, since=20.0)] == [c.id, b.id]
    assert [n.id for n in repo.list_notifications(s, limit=1)] == [c.id]
    assert repo.ack_notification(s, a.id).acknowledged
    assert [n.id for n in repo.list_notifications(s, acknowledged=False)] == [c.id, b.id]
    assert [n.id for n in repo.list_notifications(s, acknowledged=True)] == [a.id]

    assert not repo.is_muted(s, inst.id)
    m = repo.mute(s, inst.id, now=50.0)
    assert repo.mute(s, inst.id, now=60.0).muted_at == m.muted_at == 50.0  # idempotent
    assert repo.is_muted(s, inst.id)
    assert [x.nf_instance_id for x in repo.list_mutes(s)] == [inst.id]
    # Muted: still stored, hidden on request. Notifications without an instance always show.
    repo.add_notification(s, type="intrusion", severity="critical", source="firewall",
                          nf_instance_id=inst.id, ts=40.0)
    assert len(repo.list_notifications(s, nf_instance_id=inst.id)) == 2
    assert [n.id for n in repo.list_notifications(s, include_muted=False)] == [c.id, b.id]
    assert repo.unmute(s, inst.id) is True
    assert repo.unmute(s, inst.id) is False
    assert len(repo.list_notifications(s, include_muted=False)) == 4

    # Notifications outlive their instance.
    repo.delete_instance(s, inst.id)
    assert len(repo.list_notifications(s, nf_instance_id=inst.id)) == 2
    repo.delete_notification(s, a.id)
    with pytest.raises(NotFound, match=f"notification {a.id}"):
        repo.ack_notification(s, a.id)
    with pytest.raises(NotFound):
        repo.delete_notification(s, a.id)
    with pytest.raises(InvalidInput, match="severity"):
        repo.add_notification(s, type="x", severity="", source="agent")
    assert json.dumps(b.as_dict())


# --- lifecycle operation occurrences (SOL003) -------------------------------------------------


def test_op_occ_state_transitions_with_timestamps(s: Session) -> None:
    op = repo.new_op_occ(s, "MIGRATE", "cpe2-user1-firewall", {"from": "cpe1"}, now=100.0)
    assert (op.operation, op.operation_state, op.start_time, op.state_entered_time) == (
        "MIGRATE", "PROCESSING", 100.0, 100.0,
    )
    assert op.error is None and op.is_cancel_pending is False and len(op.id) == 36
    problem = {"status": 500, "detail": "import-state failed on cpe2"}
    op = repo.set_op_state(s, op.id, "FAILED_TEMP", error=problem, now=101.0)
    assert (op.operation_state, op.state_entered_time, op.error) == ("FAILED_TEMP", 101.0, problem)
    op = repo.set_op_state(s, op.id, OpState.FAILED_TEMP, now=102.0)  # same state: no change
    assert op.state_entered_time == 101.0
    op = repo.set_op_state(s, op.id, "PROCESSING", now=103.0)  # retry clears the error
    assert (op.operation_state, op.state_entered_time, op.error) == ("PROCESSING", 103.0, None)
    assert repo.request_cancel(s, op.id).is_cancel_pending
    op = repo.set_op_state(s, op.id, "ROLLING_BACK", now=104.0)
    op = repo.set_op_state(s, op.id, "ROLLED_BACK", now=105.0)
    assert (op.state_entered_time, op.start_time, op.is_cancel_pending) == (105.0, 100.0, False)
    with pytest.raises(Conflict, match="ROLLED_BACK: cannot move to PROCESSING"):
        repo.set_op_state(s, op.id, "PROCESSING")
    with pytest.raises(Conflict, match="nothing to cancel"):
        repo.request_cancel(s, op.id)

    op2 = repo.new_op_occ(s, "INSTANTIATE", "cpe1-user2-firewall", now=200.0)
    with pytest.raises(Conflict, match="PROCESSING: cannot move to ROLLED_BACK"):
        repo.set_op_state(s, op2.id, "ROLLED_BACK")
    repo.set_op_state(s, op2.id, "COMPLETED", now=201.0)
    assert [o.id for o in repo.list_op_occs(s)] == [op.id, op2.id]
    assert [o.id for o in repo.list_op_occs(s, state="COMPLETED")] == [op2.id]
    assert [o.id for o in repo.list_op_occs(s, vnf_instance_id="cpe2-user1-firewall")] == [op.id]
    assert repo.get_op_occ(s, op2.id).state_entered_time == 201.0
    with pytest.raises(NotFound, match="operation occurrence 'nope'"):
        repo.get_op_occ(s, "nope")
    with pytest.raises(InvalidInput, match="operation 'SCALE'"):
        repo.new_op_occ(s, "SCALE", "x")
    with pytest.raises(InvalidInput, match="operation_state 'DONE'"):
        repo.set_op_state(s, op2.id, "DONE")
    assert json.dumps(repo.get_op_occ(s, op.id).as_dict())


def test_subscriptions(s: Session) -> None:
    sub = repo.add_subscription(s, "http://127.0.0.1:9000/cb", filter={"operationTypes": ["X"]})
    assert repo.get_subscription(s, sub.id).filter == {"operationTypes": ["X"]}
    assert [x.id for x in repo.list_subscriptions(s)] == [sub.id]
    with pytest.raises(InvalidInput, match="http"):
        repo.add_subscription(s, "file:///etc/passwd")
    repo.delete_subscription(s, sub.id)
    with pytest.raises(NotFound, match="subscription"):
        repo.get_subscription(s, sub.id)


# --- sessions and desired state ---------------------------------------------------------------


def test_sessions_follow_the_user(s: Session, world: str) -> None:
    assert repo.active_session(s, "user1") is None
    a = repo.add_session(s, user="user1", node="cpe1", mac="02:aa::1", ip="10.0.0.2", now=1.0)
    assert (a.state, a.started_at, a.ended_at) == ("active", 1.0, None)
    u = repo.get_user(s, "user1")
    assert (u.access_node, u.mac, u.ip, u.last_seen) == ("cpe1", "02:aa::1", "10.0.0.2", 1.0)
    assert repo.active_session(s, "user1") is a
    # The user moves: the new session ends the old one.
    b = repo.add_session(s, user="user1", node="cpe2", now=2.0)
    assert (a.state, a.ended_at) == ("ended", 2.0)
    assert repo.active_session(s, "user1") is b
    assert repo.get_user(s, "user1").access_node == "cpe2"
    assert [x.id for x in repo.list_sessions(s, user="user1")] == [a.id, b.id]
    assert [x.id for x in repo.list_sessions(s, active=True)] == [b.id]
    assert [x.id for x in repo.list_sessions(s, node="cpe1", active=False)] == [a.id]
    repo.end_session(s, b.id, now=3.0)
    assert repo.end_session(s, b.id, now=9.0).ended_at == 3.0  # idempotent
    assert repo.active_session(s, "user1") is None
    assert repo.get_user(s, "user1").access_node is None
    with pytest.raises(NotFound, match="node 'cpe9'"):
        repo.add_session(s, user="user1", node="cpe9")
    with pytest.raises(NotFound, match="session 'nope'"):
        repo.end_session(s, "nope")
    repo.delete_user(s, "user1")
    s.expire_all()
    assert repo.list_sessions(s, user="user1") == []  # ON DELETE CASCADE


def test_desired_state_for_node(s: Session, world: str) -> None:
    fw = _instance(s, world, config={"rules": [{"action": "drop", "dport": 23}]})
    _instance(s, world, owner="user2")
    _instance(s, world, node="cpe2")
    repo.set_instance_desired_state(s, "cpe1-user2-firewall", "absent")
    repo.set_instance_actual_state(s, fw.id, "running")
    repo.set_steering(s, user="user1", node="cpe1", chain=[fw.id], mac="m1", ip="10.0.0.2")
    repo.set_steering(s, user="user2", node="cpe1", chain=[], mac="m2")
    repo.set_steering(s, user="user1", node="cpe2", chain=["cpe2-user1-firewall"])
    repo.mark_steering_installed(s, user="user2", node="cpe1", installed=True)
    repo.clear_steering(s, user="user2", node="cpe1")  # installed: kept, not desired

    state = repo.desired_state_for_node(s, "cpe1")
    assert json.loads(json.dumps(state)) == state
    assert state["node"] == "cpe1"
    assert state["instances"] == [{
        "id": "cpe1-user1-firewall", "nf_name": "firewall", "owner": "user1",
        "bundle_sha256": world, "flavour": "native",
        "config": {"rules": [{"action": "drop", "dport": 23}]}, "active_users": [],
    }]
    assert state["steering"] == [
        {"user": "user1", "mac": "m1", "ip": "10.0.0.2", "chain": ["cpe1-user1-firewall"]}
    ]
    # The revision depends on the content only: actual state and timestamps do not change it.
    repo.set_instance_actual_state(s, fw.id, "stopped")
    assert repo.desired_state_for_node(s, "cpe1")["revision"] == state["revision"]
    repo.set_steering(s, user="user1", node="cpe1", chain=[])
    assert repo.desired_state_for_node(s, "cpe1")["revision"] != state["revision"]
    assert repo.desired_state_for_node(s, "pe1") == {
        "node": "pe1", "instances": [], "steering": [],
        "revision": repo.desired_state_for_node(s, "pe1")["revision"],
    }
    with pytest.raises(NotFound, match="node 'cpe9'"):
        repo.desired_state_for_node(s, "cpe9")


def test_switching_records_and_actual_states(s: Session, world: str) -> None:
    fw = _instance(s, world)
    gone = _instance(s, world, owner="user2")
    repo.set_instance_desired_state(s, gone.id, "absent")
    repo.set_steering(s, user="user1", node="cpe1", chain=[fw.id], mac="m1", ip="10.0.0.2",
                      now=200.0)
    repo.set_steering(s, user="user1", node="cpe2", chain=[], mac="m1", now=300.0)
    repo.set_steering(s, user="user2", node="cpe1", chain=[])  # no MAC: not switched
    repo.add_session(s, user="user1", node="cpe2", mac="m1")

    rec = repo.switching_records(s)
    assert rec.roles == {"cpe1": "cpe", "cpe2": "cpe", "pe1": "pe"}
    # newest first per user
    assert rec.rules == (repo.SteeredRule("user1", "cpe2", "m1", None, ()),
                         repo.SteeredRule("user1", "cpe1", "m1", "10.0.0.2", (fw.id,)))
    assert rec.sessions == {"user1": "cpe2"}
    assert set(rec.nfs) == {fw.id} and rec.nfs[fw.id].node == "cpe1"
    assert rec.nfs[fw.id].nf == "firewall"
    assert rec.classes == {"user1": ()}

    # cpe1 reports the firewall stopped and no longer runs user2's (absent) one
    assert repo.record_actual_states(s, {"cpe1": {fw.id: "stopped"}}) == {"cpe1"}
    s.expire_all()
    assert repo.get_instance(s, fw.id).actual_state.value == "stopped"
    assert [i.id for i in repo.list_instances(s)] == [fw.id]
    assert repo.record_actual_states(s, {"cpe1": {fw.id: "stopped"}}) == set()  # no change
    assert repo.nodes_needing_push(s) == {"cpe1"}
    assert repo.latest_bundle_sha(s, "firewall") == world
    with pytest.raises(NotFound):
        repo.latest_bundle_sha(s, "nope")
    assert repo.bundle_descriptor(s, world) == DESCRIPTOR
    assert repo.bundle_descriptor(s, "0" * 64) == {}
    assert [n for n, *_ in repo.node_liveness(s)] == ["cpe1", "cpe2", "pe1"]


def test_as_dict_is_json_able(s: Session, world: str) -> None:
    for row in (repo.get_node(s, "cpe1"), repo.get_user(s, "user1"), _instance(s, world)):
        d = row.as_dict()
        assert json.loads(json.dumps(d)) == d
    assert repo.get_node(s, "cpe1").as_dict()["role"] == "cpe"


# --- SQLite specifics -------------------------------------------------------------------------


def test_sqlite_concurrent_writers_queue_instead_of_failing(db: Database) -> None:
    """BEGIN IMMEDIATE: read-then-write transactions from threads wait for each other."""
    with db.session() as s:
        repo.upsert_node(s, "cpe1", role="cpe", resources={"n": 0})
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(20):
                with db.session() as s:
                    n = repo.get_node(s, "cpe1").resources["n"]
                    repo.update_node_resources(s, "cpe1", {"n": n + 1})
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.session() as s:
        assert repo.get_node(s, "cpe1").resources["n"] == 80


# --- TS rules (NNF paper, Table I) -----------------------------------------------------------
def test_ts_rules(s: Session, world: str) -> None:
    r1 = {"rule_id": "r1", "priority": 10, "match": {"in_port": "a", "ip_proto": 6,
                                                      "tp_dst": 80}, "output": ["b"]}
    [row] = repo.put_ts_rules(s, "cpe1", [r1], now=1.0)
    assert (row.rule_id, row.priority, row.output) == ("r1", 10, ["b"])
    assert row.match == {"in_port": "a", "ip_proto": 6, "tp_dst": 80}
    repo.put_ts_rules(s, "cpe1", [{**r1, "output": []}, {"rule_id": "r2"}], now=2.0)
    assert [(r.rule_id, r.output) for r in repo.list_ts_rules(s, "cpe1")] == [
        ("r1", []), ("r2", [])]
    assert [r.rule_id for r in repo.ts_rules_for(s, "cpe1")] == ["r1", "r2"]
    assert repo.list_ts_rules(s, "cpe2") == []
    assert repo.get_ts_rule(s, "cpe1", "r2").priority == 100
    with pytest.raises(NotFound, match="no TS rule 'r9'"):
        repo.get_ts_rule(s, "cpe1", "r9")
    with pytest.raises(NotFound, match="node 'cpe9'"):
        repo.put_ts_rules(s, "cpe9", [r1])
    with pytest.raises(InvalidInput, match="ip_proto"):
        repo.put_ts_rules(s, "cpe1", [{"rule_id": "r3", "match": {"tp_dst": 80}}])
    with pytest.raises(InvalidInput, match="twice"):
        repo.put_ts_rules(s, "cpe1", [r1, r1])
    with pytest.raises(InvalidInput, match="bogus"):
        repo.put_ts_rules(s, "cpe1", [{"rule_id": "r4", "bogus": 1}])
    assert repo.delete_ts_rules(s, "cpe1", ["r1", "nope"]) == 1
    assert [r.rule_id for r in repo.list_ts_rules(s)] == ["r2"]


def test_ts_rules_a_switch_could_not_hold_as_given(s: Session, world: str) -> None:
    """Probe of 2026-12-06: accepted, then one of them silently not what the switch did."""
    allow = {"rule_id": "d1", "priority": 200, "match": {"in_port": "lan1"}, "output": ["up"]}
    drop = {"rule_id": "d2", "priority": 200, "match": {"in_port": "lan1"}, "output": []}
    with pytest.raises(InvalidInput, match=r"'d1' and 'd2'.*same match"):
        repo.put_ts_rules(s, "cpe1", [allow, drop])
    repo.put_ts_rules(s, "cpe1", [allow])
    with pytest.raises(InvalidInput, match="'d1' and 'd2'"):  # against the one held
        repo.put_ts_rules(s, "cpe1", [drop])
    repo.put_ts_rules(s, "cpe1", [{**drop, "priority": 201}])  # another priority: fine
    repo.put_ts_rules(s, "cpe1", [{**allow, "output": []}])  # d1 replaced: its own match
    with pytest.raises(InvalidInput, match="more than once"):
        repo.put_ts_rules(s, "cpe1", [{**allow, "output": ["up", "up"]}])
    with pytest.raises(InvalidInput, match="host bits set"):
        repo.put_ts_rules(s, "cpe1", [{"rule_id": "n1", "match": {
            "eth_type": 2048, "ipv4_src": "10.0.0.1/8"}}])


def test_a_node_holds_a_bounded_number_of_ts_rules(s: Session, world: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from netfate.db.repo import ts_rules

    monkeypatch.setattr(ts_rules, "MAX_PER_NODE", 3)
    with pytest.raises(InvalidInput, match="at most 3"):
        repo.put_ts_rules(s, "cpe1", [{"rule_id": f"r{i}"} for i in range(4)])
    repo.put_ts_rules(s, "cpe1", [{"rule_id": f"r{i}"} for i in range(3)])
    repo.put_ts_rules(s, "cpe1", [{"rule_id": "r0", "priority": 7}])  # a replacement: fine
    with pytest.raises(Conflict, match="holds 3 TS rules and these add 1"):
        repo.put_ts_rules(s, "cpe1", [{"rule_id": "r0"}, {"rule_id": "r9"}])
    assert [(r.rule_id, r.priority) for r in repo.list_ts_rules(s, "cpe1")] == [
        ("r0", 7), ("r1", 100), ("r2", 100)]  # nothing written by the refused call
    repo.put_ts_rules(s, "cpe2", [{"rule_id": "r9"}])  # per node


def test_the_notifications_kept_are_bounded(s: Session, world: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """NFs raise notifications all day: every PRUNE_EVERY-th stored, only the newest
    KEEP_NOTIFICATIONS stay."""
    from netfate.bus.messages import Notification as Note
    from netfate.orchestrator import service_db

    monkeypatch.setattr(service_db, "KEEP_NOTIFICATIONS", 5)
    monkeypatch.setattr(service_db, "PRUNE_EVERY", 4)
    ids = [service_db.store_notification(s, Note(node="cpe1", type="t", ts=float(k)))
           for k in range(12)]
    left = sorted(n.id for n in repo.list_notifications(s))
    assert left[-1] == ids[-1] and len(left) <= 5 + 4 - 1, (ids, left)
    assert all(i > ids[-1] - 5 - 4 for i in left)
    assert repo.prune_notifications(s, ids[-1], 2) == len(left) - 2
