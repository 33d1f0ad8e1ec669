"""The NF catalogue: bundles (.tgz) stored by their sha256."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import sqlalchemy as sa
from packaging.version import InvalidVersion, Version
from sqlalchemy.orm import Session, undefer

from netfate.db.models import VnfInstance, VnfPackage
from netfate.db.repo import check
from netfate.db.repo._common import get_or_404, guard, stamp, where_given
from netfate.errors import Conflict, InvalidInput, NotFound


def add_bundle(
    session: Session,
    data: bytes,
    *,
    name: str,
    version: str,
    descriptor: dict[str, Any],
    now: float | None = None,
) -> VnfPackage:
    """Store a bundle. Idempotent: the same bytes return the bundle already stored."""
    if not isinstance(data, bytes) or not data:
        raise InvalidInput("bundle data must be non-empty bytes")
    sha = hashlib.sha256(data).hexdigest()
    existing = session.get(VnfPackage, sha)
    if existing is not None:
        return existing
    bundle = VnfPackage(
        sha256=sha,
        name=check.text("bundle name", name),
        version=check.text("bundle version", version),
        descriptor=check.mapping("descriptor", descriptor),
        size=len(data),
        data=data,
        uploaded_at=stamp(now),
    )
    with guard(session, f"bundle {sha}"):
        session.add(bundle)
    return bundle


def version_key(version: str) -> tuple[Any, ...]:
    """A package version's place in order. A version PEP 440 can read (most can: "1.10",
    "2.0-beta", "v2", "1.0rc1") is ordered as PEP 440 says: 1.10 after 1.9, a pre-release
    before its release, 1.0 equal to 1.0.0, "v2" equal to "2". One it cannot read ranks
    below every such version, its runs of digits compared as numbers and the rest as text."""
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, tuple((0, int(p)) if p.isdigit() else (1, p)
                         for p in re.findall(r"\d+|\D+", version)))


def rank(version: str, uploaded_at: float, sha256: str) -> tuple[Any, ...]:
    """A package's place among its NF's: the highest version is the newest, the one new
    instances use (SOL005: a package is its vnfdId and version); of equal versions, the
    latest upload; then the sha256, so the order is total."""
    return (version_key(version), uploaded_at, sha256)


def highest_other(session: Session, name: str, sha256: str) -> VnfPackage | None:
    """The newest package of NF `name` (by `rank`), other than `sha256`'s."""
    others = [b for b in list_bundles(session, name=name) if b.sha256 != sha256]
    return max(others, key=lambda b: rank(b.version, b.uploaded_at, b.sha256), default=None)


def check_new_version(session: Session, name: str, version: str, sha256: str) -> None:
    """Conflict when another package of NF `name` has this version: the two would be one
    package (SOL005's vnfdId and version) with two contents, and which one new instances
    use would hang on upload order. The same bytes again are no change; another version,
    higher or lower, is a package of its own (the highest one is the NF's newest)."""
    if session.get(VnfPackage, sha256) is not None:
        return
    key = version_key(version)
    same = [b for b in list_bundles(session, name=name) if version_key(b.version) == key]
    if same:
        raise Conflict(f"package {name} {version} is in the catalogue already with other "
                       f"content (as version {same[0].version!r}, sha256 {same[0].sha256}); "
                       "give this one another version")


def get_bundle(session: Session, sha256: str) -> VnfPackage:
    """The bundle, its data loaded."""
    if not isinstance(sha256, str) or "\x00" in sha256:
        raise NotFound(f"bundle {sha256!r} does not exist")
    bundle = session.scalar(
        sa.select(VnfPackage).where(VnfPackage.sha256 == sha256).options(undefer(VnfPackage.data))
    )
    if bundle is None:
        raise NotFound(f"bundle {sha256!r} does not exist")
    return bundle


def list_bundles(session: Session, *, name: str | None = None) -> list[VnfPackage]:
    """Bundles, oldest first, without their data (use get_bundle for that)."""
    q = where_given(
        sa.select(VnfPackage).order_by(VnfPackage.name, VnfPackage.uploaded_at, VnfPackage.sha256),
        (VnfPackage.name, name),
    )
    return list(session.scalars(q))


def delete_bundle(session: Session, sha256: str) -> None:
    """Remove a bundle from the catalogue; refused while an NF instance uses it."""
    bundle = get_or_404(session, VnfPackage, sha256, "bundle")
    used = session.scalars(
        sa.select(VnfInstance.id).where(VnfInstance.bundle_sha256 == sha256).limit(3)
    ).all()
    if used:
        raise Conflict(f"bundle {sha256[:12]} is used by NF instance(s) {', '.join(used)}")
    with guard(session, f"bundle {sha256}", fk=Conflict(f"bundle {sha256[:12]} is in use")):
        session.delete(bundle)


_Q_OF_NF = (sa.select(VnfPackage.version, VnfPackage.uploaded_at, VnfPackage.sha256)
            .where(VnfPackage.name == sa.bindparam("nf")))


def latest_bundle_sha(session: Session, nf: str) -> str:
    """The sha256 of the NF's newest package (`rank`: its highest version), without loading
    descriptors or bytes. Raises NotFound when the catalogue has no bundle of that NF.
    One statement built once, run on the connection (every placement and migration asks:
    no ORM execution path)."""
    session.flush()  # (as an ORM read would: a bundle added in this session counts)
    rows = session.connection().execute(_Q_OF_NF, {"nf": nf}).all()
    if not rows:
        raise NotFound(f"no bundle for NF {nf!r} in the catalogue")
    return str(max(rows, key=lambda r: rank(r.version, r.uploaded_at, r.sha256)).sha256)


def bundle_descriptor(session: Session, sha256: str) -> dict[str, Any]:
    """A bundle's descriptor only (get_bundle would load its bytes too); {} if unknown."""
    d: dict[str, Any] | None = session.scalar(
        sa.select(VnfPackage.descriptor).where(VnfPackage.sha256 == sha256))
    return d or {}
