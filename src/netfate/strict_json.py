"""JSON objects that name a member twice, refused wherever a user hands the project JSON.

RFC 8259 §4 leaves such objects' meaning to the reader ("names SHOULD be unique"); I-JSON
(RFC 7493 §2.3) forbids them. Python's reader keeps the last value, so what a user (or a
proxy, or an audit log reading the first) saw was not what was used.
"""

from __future__ import annotations

from typing import Any


class DuplicateKey(ValueError):
    """An object gives member `key` twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the member {key!r} is given twice in one object")
        self.key = key


def unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads' object_pairs_hook: the object, or DuplicateKey naming the repeated
    member."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise DuplicateKey(k)
        out[k] = v
    return out
