"""Desired versus actual NFs on a node: the actions that converge them. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from netfate.bus.messages import InstanceSpec
from netfate.interfaces import NFInfo, NFState


@dataclass
class Actions:
    create: list[InstanceSpec] = field(default_factory=list)
    recreate: list[InstanceSpec] = field(default_factory=list)  # bundle or flavour changed
    update: list[InstanceSpec] = field(default_factory=list)    # config changed
    start: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.create or self.recreate or self.update or self.start or self.delete)


class NFErrors(dict[str, str]):
    """The errors met converging, by NF instance id, with the HTTP status describing each
    (``statuses``, errors.http_status): a Reply's ``errors`` and ``statuses``."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: dict[str, int] = {}


def diff(desired: list[InstanceSpec], actual: list[NFInfo]) -> Actions:
    want = {d.instance_id: d for d in desired}
    have = {a.instance_id: a for a in actual}
    acts = Actions()
    for iid, spec in want.items():
        cur = have.get(iid)
        if cur is None:
            acts.create.append(spec)
        elif cur.bundle_sha256 != spec.bundle_sha256 or cur.flavour != spec.flavour:
            acts.recreate.append(spec)
        else:
            if _config_differs(cur.config, spec.config):
                acts.update.append(spec)
            if cur.state != NFState.RUNNING:
                acts.start.append(iid)
    acts.delete = sorted(set(have) - set(want))
    return acts


def _config_differs(current: dict[str, object], wanted: dict[str, object]) -> bool:
    # The driver stores config with schema defaults filled in; compare only what is asked for.
    return any(current.get(k) != v for k, v in wanted.items())
