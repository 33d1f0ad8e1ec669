"""What every compute driver checks before it creates an NF (Table II's createNF): the node
is its own, the owner and NF name are tokens, the bundle offers the driver's flavour, the
node has what that flavour needs of it (netfate.resolver.needed_on_host), and the config is
valid. Nothing is created before these pass."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from netfate import naming
from netfate.bundle import Bundle, BundleStore
from netfate.descriptor import Descriptor
from netfate.drivers.node_files import check_owned
from netfate.errors import Conflict, InvalidInput, MissingCapability, NotFound
from netfate.interfaces import NFInfo
from netfate.resolver import needed_on_host


def check_create(own_node: str, flavour: str, capabilities: Collection[str],
                 store: BundleStore, node: str, owner: str, name: str, bundle_sha256: str,
                 config: dict[str, Any]) -> tuple[Bundle, dict[str, Any], str]:
    """(bundle, validated config with defaults, instance id). NotFound for another node or
    an unknown bundle, InvalidInput for a bad name, a flavour the bundle lacks or a bad
    config, MissingCapability naming what the node lacks."""
    if node != own_node:
        raise NotFound(f"this driver runs node {own_node!r}, not {node!r}")
    try:
        naming.check_token("owner", owner)
        naming.check_token("NF name", name)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    bundle = store.get(bundle_sha256)
    desc = bundle.descriptor
    if flavour not in desc.flavours:
        raise InvalidInput(f"{desc.name} has no {flavour} flavour ({desc.flavours})")
    # Only what this flavour needs from the node itself: a container brings its packages,
    # a VM its kernel too.
    lacking = sorted(c for c in set(desc.capabilities) - set(capabilities)
                     if needed_on_host(c, flavour))
    if lacking:
        raise MissingCapability(
            f"node {own_node} lacks capabilities {lacking} that {desc.name} depends on")
    return bundle, owners_config(desc, owner, config), naming.nf_instance_id(node, owner, name)


def owners_config(desc: Descriptor, owner: str, config: dict[str, Any]) -> dict[str, Any]:
    """The config with its defaults, for an NF of `owner` (create, update, a state import):
    InvalidInput if the schema refuses it or it names a node file outside the owner's own
    (node_files.check_owned)."""
    cfg = desc.validate_config(config)
    check_owned(desc.node_files, owner, cfg)
    return cfg


def taken(existing: NFInfo, owner: str, name: str) -> Conflict:
    """Why an NF cannot be created where `existing` is (same instance id, other package or
    config): the owner's own NF, or another owner's whose names join to the same id (owner
    'u' with NF 'x-fw' and owner 'u-x' with NF 'fw' are both `<node>-u-x-fw`)."""
    where = f"on {existing.node}"
    if (existing.owner, existing.name) == (owner, name):
        return Conflict(f"NF name {name!r} of {owner} is already in use {where} with another "
                        "package or config: update or delete it first")
    return Conflict(f"NF instance id {existing.instance_id!r} is already {existing.owner}'s NF "
                    f"{existing.name!r} {where} (owner and NF names are joined with '-'): "
                    f"give {owner}'s NF another name than {name!r}")
