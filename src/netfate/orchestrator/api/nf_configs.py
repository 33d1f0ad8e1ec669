"""An NF's config as the API receives it, checked against the config-schema of the NF's
package, then by the NF's own check-config (orchestrator/nf_config_check.py), before
anything is stored: for an instance (POST /vnf_instances, PATCH) and for a user's per-NF
config (POST /users, PATCH /users/{name}), which the orchestrator hands the user's NFs when
it places them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from netfate.db import repo
from netfate.db.models import VnfPackage
from netfate.descriptor import Descriptor
from netfate.drivers.create_checks import owners_config
from netfate.errors import Conflict, InvalidInput
from netfate.orchestrator.nf_config_check import check_config, may_check


def newest_package(s: Any, nf: str) -> VnfPackage:
    """NF `nf`'s newest package (repo.rank: its highest version); InvalidInput naming the
    catalogue's NFs if there is none."""
    bundles = repo.list_bundles(s, name=nf)
    if not bundles:
        known = sorted({b.name for b in repo.list_bundles(s)})
        raise InvalidInput(f"unknown NF {nf!r}; the catalogue has {known}")
    return max(bundles, key=lambda b: repo.rank(b.version, b.uploaded_at, b.sha256))


@dataclass(frozen=True)
class NfCheck:
    """An NF's own check of a config still to run (`run_checks`), after the transaction
    that found the package: the check takes up to seconds, and must hold no database lock
    meanwhile (a slow one held SQLite's write lock and ended other writers with a 500)."""
    where: str  # what an error is prefixed with ("nf_config.<nf>: "), or ""
    sha256: str
    package: bytes
    desc: Descriptor
    config: dict[str, Any]


def validate_config(package: VnfPackage, config: dict[str, Any], owner: str,
                    where: str = "") -> NfCheck | None:
    """A caller's config of `owner`'s NF of `package`, checked by its schema (InvalidInput
    if wrong, if it names a node file outside the owner's own (node_files.check_owned), or
    if it sets a key the platform sets: `Descriptor.platform_keys`, e.g. a shared
    firewall's `tenants`, which follow its tenants' own configs; Conflict (409) if the
    stored package itself is not usable, e.g. stored before its config-schema was checked
    whole at upload). Returns the NF's own check, for `run_checks` once the transaction
    has ended (None for a package known to have none: its bytes are not read)."""
    from netfate.descriptor import parse_descriptor

    descriptor = package.descriptor
    try:
        desc = parse_descriptor(descriptor, "stored descriptor")
    except InvalidInput as exc:
        raise Conflict(f"NF {descriptor.get('name')!r}: its package cannot be used ({exc}); "
                       "upload a fixed package") from None
    try:
        if isinstance(config, dict) and (
                taken := [k for k in desc.platform_keys() if k in config]):
            raise InvalidInput(f"{desc.name}: config key {taken[0]!r} is set by the platform "
                               "(readOnly in the NF's config-schema), not by callers")
        filled = owners_config(desc, owner, config)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}{exc}") from None
    if not may_check(package.sha256):
        return None
    return NfCheck(where, package.sha256, package.data, desc, filled)


def run_checks(checks: Iterable[NfCheck | None]) -> None:
    """Each NF's own check-config (orchestrator/nf_config_check.py), outside any database
    transaction: InvalidInput with the NF's reason when one refuses its config, Conflict
    when one cannot run or does not finish."""
    for c in checks:
        if c is None:
            continue
        try:
            check_config(c.sha256, c.package, c.desc, c.config)
        except InvalidInput as exc:
            raise InvalidInput(f"{c.where}{exc}") from None


def check_user_nf_config(s: Any, user: str, nf_config: dict[str, dict[str, Any]] | None
                         ) -> list[NfCheck | None]:
    """Each NF a user's nf_config names exists, and its config passes that NF's schema;
    the NFs' own checks to run (`run_checks`). InvalidInput naming the NF (before, a
    firewall rule with dport 0 was stored and failed only on the node at the user's login;
    new-user probe, 2026-12-03)."""
    out = []
    for nf, config in sorted((nf_config or {}).items()):
        try:
            package = newest_package(s, nf)
        except InvalidInput as exc:
            raise InvalidInput(f"nf_config.{nf}: {exc}") from None
        out.append(validate_config(package, config, user, f"nf_config.{nf}: "))
    return out


def check_required_configs(s: Any, user: str, required_nfs: Iterable[str] | None,
                           nf_config: dict[str, dict[str, Any]] | None) -> None:
    """Each NF a user requires must take the config the user's NFs will be given when they
    are placed (their `nf_config` entry, or none): InvalidInput naming the NF and what its
    schema asks for. Before, a firewall user whose chain gained the VPN (its `address`
    required) was re-planned at once, the placement failed, and they lost their
    connectivity, repaired again every 15 s without end (third probe of 2026-12-06)."""
    for nf in dict.fromkeys(required_nfs or ()):
        config = (nf_config or {}).get(nf)
        if config is not None:
            continue  # checked whole, with the NF's own check, as nf_config
        try:
            validate_config(newest_package(s, nf), {}, user)
        except InvalidInput as exc:
            raise InvalidInput(f"required_nfs: {nf} needs a config the user does not have "
                               f"({exc}); give it in nf_config.{nf}") from None
