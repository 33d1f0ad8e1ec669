"""Users (the paper's Table I): credentials, their chain of NFs, and where they attach."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate import credentials, validators
from netfate.db.models import Node, User, VnfInstance
from netfate.db.passwords import DUMMY_HASH, hash_password, needs_rehash, verify_password
from netfate.db.repo import check
from netfate.db.repo._common import get_or_404, guard, set_given, stamp, where_given
from netfate.errors import Conflict, InvalidInput, NotFound
from netfate.owners import OPERATOR


def _check_password(password: str) -> str:
    why = credentials.password_problem(password)
    if why:
        raise InvalidInput(why)
    return password


def _check_chain(required_nfs: Sequence[str]) -> list[str]:
    chain = check.str_list("required_nfs", required_nfs, unique=True)
    for nf in chain:
        check.name("NF name", nf)
    return chain


def _check_nf_config(nf_config: dict[str, Any]) -> dict[str, Any]:
    cfg = check.mapping("nf_config", nf_config)
    for nf, value in cfg.items():
        check.name("NF name in nf_config", nf)
        check.mapping(f"nf_config[{nf!r}]", value)
    return cfg


_CLASS_KEYS = {"name", "priority", "ip_proto", "remote_port", "remote", "nfs"}


def _check_classifiers(classifiers: Sequence[dict[str, Any]], chain: Sequence[str]
                       ) -> list[dict[str, Any]]:
    """Each class: a unique name and priority (1-799), what it matches (an IP protocol or a
    remote network; a remote port needs TCP or UDP), and NFs from the user's chain."""
    out: list[dict[str, Any]] = []
    seen_names: set[str] = set()
    seen_prios: set[int] = set()
    if not isinstance(classifiers, (list, tuple)) or len(classifiers) > 32:
        raise InvalidInput("classifiers must be a list of at most 32 classes")
    for i, c in enumerate(classifiers):
        where = f"classifiers[{i}]"
        if not isinstance(c, dict) or set(c) - _CLASS_KEYS:
            raise InvalidInput(f"{where}: an object with keys {sorted(_CLASS_KEYS)}")
        nfs = c.get("nfs") or []
        if not isinstance(nfs, list) or not nfs or any(nf not in chain for nf in nfs):
            raise InvalidInput(f"{where}: 'nfs' must name NFs of required_nfs {list(chain)}")
        prio, proto, port = c.get("priority"), c.get("ip_proto"), c.get("remote_port")
        check.name(f"{where}.name", str(c.get("name") or ""))
        if not isinstance(prio, int) or not 1 <= prio <= 799:
            raise InvalidInput(f"{where}: priority must be an integer from 1 to 799")
        if proto is None and c.get("remote") is None:
            raise InvalidInput(f"{where} matches nothing: give ip_proto or remote")
        if port is not None and proto not in (6, 17):
            raise InvalidInput(f"{where}: a remote_port needs ip_proto 6 (TCP) or 17 (UDP)")
        if c.get("remote") is not None:
            try:
                validators.ipv4_prefix(str(c["remote"]))  # host bits set: refused
            except ValueError as exc:
                raise InvalidInput(f"{where}: remote: {exc}") from exc
        if c["name"] in seen_names or c["priority"] in seen_prios:
            raise InvalidInput(f"{where}: name and priority must be unique")
        seen_names.add(c["name"])
        seen_prios.add(c["priority"])
        out.append(dict(c))
    return out


def create_user(
    session: Session,
    name: str,
    password: str,
    *,
    required_nfs: Sequence[str] = (),
    nf_config: dict[str, Any] | None = None,
    framed_ip: str | None = None,
    now: float | None = None,
    classifiers: Sequence[dict[str, Any]] = (),
) -> User:
    """A new user. The password is stored only as a salted scrypt hash."""
    check.name("user name", name)
    chain = _check_chain(required_nfs)
    user = User(
        name=name,
        password_hash=hash_password(_check_password(password)),
        required_nfs=chain,
        classifiers=_check_classifiers(classifiers, chain),
        nf_config=_check_nf_config(nf_config or {}),
        framed_ip=check.text("framed_ip", framed_ip, optional=True),
        created_at=stamp(now),
    )
    if session.get(User, name) is not None:
        raise Conflict(f"user {name!r} already exists")
    with guard(session, f"user {name!r}", unique=Conflict(f"user {name!r} already exists")):
        session.add(user)
    return user


def get_user(session: Session, name: str) -> User:
    if name == OPERATOR:  # the owner row of operator-owned NFs is no user (netfate.owners)
        raise NotFound(f"user {name!r} does not exist")
    return get_or_404(session, User, name, "user")


def users_wanting(session: Session, nf: str) -> list[str]:
    """The users whose required NFs include `nf`, or who hold a config for it (nf_config:
    checked against its package's schema, so left pointing at nothing if the last package
    of `nf` went), by name."""
    rows = session.execute(sa.select(User.name, User.required_nfs, User.nf_config)
                           .order_by(User.name))
    return [name for name, nfs, config in rows
            if nf in (nfs or []) or (isinstance(config, dict) and nf in config)]


def list_users(session: Session, *, access_node: str | None = None) -> list[User]:
    # not the operator's owner row (netfate.owners): no user's
    q = where_given(sa.select(User).where(User.name != OPERATOR).order_by(User.name),
                    (User.access_node, access_node))
    return list(session.scalars(q))


def update_user(
    session: Session,
    name: str,
    *,
    password: str | None = None,
    required_nfs: Sequence[str] | None = None,
    nf_config: dict[str, Any] | None = None,
    framed_ip: str | None = None,
    classifiers: Sequence[dict[str, Any]] | None = None,
) -> User:
    """Change a user's password, chain, NF config, classifiers or framed IP. Omitted fields
    are kept."""
    user = get_user(session, name)
    new_hash = hash_password(_check_password(password)) if password is not None else None
    chain = _check_chain(required_nfs) if required_nfs is not None else None
    cfg = _check_nf_config(nf_config) if nf_config is not None else None
    classes = None
    if classifiers is not None or chain is not None:
        classes = _check_classifiers(
            classifiers if classifiers is not None else (user.classifiers or []),
            chain if chain is not None else user.required_nfs)
    ip = check.text("framed_ip", framed_ip, optional=True)
    with guard(session, f"user {name!r}"):
        set_given(user, password_hash=new_hash, required_nfs=chain, nf_config=cfg,
                  classifiers=classes, framed_ip=ip)
    return user


def update_user_seen(
    session: Session,
    name: str,
    *,
    now: float | None = None,
    access_node: str | None = None,
    mac: str | None = None,
    ip: str | None = None,
) -> User:
    """The user's last packet timestamp (Table I), and where and how they were seen if given.
    Omitted fields are kept; sessions (add_session/end_session) also set access_node."""
    user = get_user(session, name)
    if access_node is not None:
        get_or_404(session, Node, access_node, "node")
    seen_mac = check.text("mac", mac, optional=True)
    seen_ip = check.text("ip", ip, optional=True)
    with guard(session, f"user {name!r}"):
        user.last_seen = stamp(now)
        set_given(user, access_node=access_node, mac=seen_mac, ip=seen_ip)
    return user


def authenticate_user(session: Session, name: str, password: str, *, rehash: bool = True
                      ) -> User | None:
    """The user if ``password`` is theirs, else None. Takes as long for an unknown user.
    ``rehash``: store a hash with today's parameters if they were raised since (a write);
    False writes nothing, so a read-only transaction can check the password: the scrypt
    check takes ~50 ms, and under a write transaction it holds up every writer (SQLite's
    one write lock). The caller then calls `replace_password_hash` if `needs_rehash`."""
    user = (session.get(User, name) if isinstance(name, str) and "\x00" not in name
            and name != OPERATOR else None)
    if user is None:
        verify_password(password, DUMMY_HASH)
        return None
    if not verify_password(password, user.password_hash):
        return None
    if rehash and needs_rehash(user.password_hash):  # parameters were raised since
        with guard(session, f"user {name!r}"):
            user.password_hash = hash_password(password)
    return user


def replace_password_hash(session: Session, name: str, checked: str, new: str) -> bool:
    """Store `new` (a hash of the same password, made outside any transaction) if the user's
    stored hash is still `checked`, the one their password was checked against: a password
    changed meanwhile is never overwritten. Whether it was stored."""
    user = session.get(User, name)
    if user is None or user.password_hash != checked:
        return False
    with guard(session, f"user {name!r}"):
        user.password_hash = new
    return True


def delete_user(session: Session, name: str) -> None:
    """Forget a user. Refused while NF instances they own are recorded; their sessions and
    steering rules go with them."""
    user = get_user(session, name)
    n = session.scalar(
        sa.select(sa.func.count()).select_from(VnfInstance).where(VnfInstance.owner == name)
    )
    if n:
        raise Conflict(f"user {name!r} still owns {n} NF instance(s); delete them first")
    with guard(session, f"user {name!r}", fk=Conflict(f"user {name!r} is still referred to")):
        session.delete(user)
