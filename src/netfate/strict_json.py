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


def unpaired_text(doc: Any) -> str | None:
    """Where the parsed JSON document `doc` holds a string (a member name or a value) with
    a lone surrogate (an escape such as "\\ud800" without its pair) or a noncharacter
    (U+FDD0-U+FDEF, U+xFFFE, U+xFFFF): a short description of the first, None if none
    does. I-JSON (RFC 7493 §2.1) forbids both; a lone surrogate cannot be encoded as
    UTF-8, so it failed deep inside (a database driver, a regular expression engine) as
    a 500. Iterative: a document as deep as the parser took is walked without recursion."""
    stack: list[Any] = [doc]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            bad = _bad_code_point(x)
            if bad is not None:
                return bad
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return None


def _bad_code_point(s: str) -> str | None:
    if s.isascii():
        return None
    for c in s:
        o = ord(c)
        if 0xD800 <= o <= 0xDFFF:
            return f"a lone surrogate (U+{o:04X})"
        if 0xFDD0 <= o <= 0xFDEF or (o & 0xFFFE) == 0xFFFE:
            return f"a noncharacter (U+{o:04X})"
    return None
