"""An NF's config as the API receives it, checked against the config-schema of the NF's
package before anything is stored: for an instance (POST /vnf_instances, PATCH) and for a
user's per-NF config (POST /users, PATCH /users/{name}), which the orchestrator hands the
user's NFs when it places them."""

from __future__ import annotations

from typing import Any

from netfate.db import repo
from netfate.errors import Conflict, InvalidInput


def descriptor_of(s: Any, nf: str) -> dict[str, Any]:
    """The descriptor of NF `nf`'s newest package; InvalidInput naming the catalogue's NFs if
    there is none."""
    bundles = repo.list_bundles(s, name=nf)
    if not bundles:
        known = sorted({b.name for b in repo.list_bundles(s)})
        raise InvalidInput(f"unknown NF {nf!r}; the catalogue has {known}")
    d: dict[str, Any] = max(bundles, key=lambda b: b.uploaded_at).descriptor
    return d


def validate_config(descriptor: dict[str, Any], config: dict[str, Any]) -> None:
    """InvalidInput if `config` is wrong; Conflict (409) if the stored package itself is not
    usable (e.g. stored before its config-schema was checked whole at upload)."""
    from netfate.descriptor import parse_descriptor

    try:
        desc = parse_descriptor(descriptor, "stored descriptor")
    except InvalidInput as exc:
        raise Conflict(f"NF {descriptor.get('name')!r}: its package cannot be used ({exc}); "
                       "upload a fixed package") from None
    desc.validate_config(config)


def check_user_nf_config(s: Any, nf_config: dict[str, dict[str, Any]] | None) -> None:
    """Each NF a user's nf_config names exists, and its config passes that NF's schema.
    InvalidInput naming the NF (before, a firewall rule with dport 0 was stored and failed
    only on the node at the user's login; new-user probe, 2026-12-03)."""
    for nf, config in sorted((nf_config or {}).items()):
        try:
            validate_config(descriptor_of(s, nf), config)
        except InvalidInput as exc:
            raise InvalidInput(f"nf_config.{nf}: {exc}") from None
