"""Who owns an NF instance: a user, or the operator.

The papers' NFs belong to users (NetFATE Table II: an instance of one owner). The Glasgow
paper's troubleshooting use case (section V.B) adds NFs the *operator* deploys for a while
(probes at the user's CPE, the PE and the DC) that are nobody's service: they must not count
among a user's NFs, be released by a user's repair, or be re-placed by a policy.

An operator-owned instance has the reserved owner name ``operator`` (so its instance id is
``<node>-operator-<nf>``, naming.nf_instance_id). No user may take that name: `check_user_name`
refuses it, and the engine's snapshot (engine/model.py) keeps operator-owned instances out of
every user's view. Pure; no I/O.
"""

from __future__ import annotations

from typing import Literal

OwnerKind = Literal["user", "operator"]
OPERATOR = "operator"


def owner_kind(owner: str) -> OwnerKind:
    """"operator" for the reserved operator owner, "user" for any other owner name."""
    return "operator" if owner == OPERATOR else "user"


def is_operator_owned(owner: str) -> bool:
    return owner_kind(owner) == "operator"


def check_user_name(name: str) -> str:
    """`name` if a user may have it. ValueError for the operator's reserved owner name."""
    if is_operator_owned(name):
        raise ValueError(f"user name {name!r} is reserved for operator-owned NFs")
    return name
