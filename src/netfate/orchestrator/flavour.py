"""Which flavour an NF instance runs in: the NF's descriptor and the node's capability report,
read from the NFVI database, decided by the pure netfate.flavours.pick (the engine decides the
same way when it places: engine.model.CatalogueEntry.flavour_on)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from netfate.db.models import Node, VnfPackage
from netfate.errors import MissingCapability, NotFound
from netfate.flavours import DEFAULT_FLAVOUR, advertised, pick

_Q_FLAVOURS = sa.select(VnfPackage.name, VnfPackage.descriptor).where(
    VnfPackage.sha256 == sa.bindparam("sha"))
_Q_INFRA = sa.select(Node.infrastructure).where(Node.name == sa.bindparam("node"))


def flavour_for(session: Session, node: str, bundle_sha256: str) -> str:
    """The first of the bundle's flavours that `node` advertises. NotFound if the bundle is
    unknown; MissingCapability, naming both sides, if the node hosts none of them."""
    conn = session.connection()
    row = conn.execute(_Q_FLAVOURS, {"sha": bundle_sha256}).first()
    if row is None:
        raise NotFound(f"bundle {bundle_sha256[:12]} is not in the catalogue")
    nf_flavours = tuple((row.descriptor or {}).get("flavours") or (DEFAULT_FLAVOUR,))
    hosted = advertised(conn.execute(_Q_INFRA, {"node": node}).scalar())
    flavour = pick(nf_flavours, hosted)
    if flavour is None:
        raise MissingCapability(
            f"node {node} runs none of {row.name}'s flavours {', '.join(nf_flavours)} "
            f"(it hosts {', '.join(sorted(hosted))})")
    return flavour
