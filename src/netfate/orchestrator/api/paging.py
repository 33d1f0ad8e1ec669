"""Pages of the lists that grow with time (LCM operation occurrences, notifications), as
ETSI GS NFV-SOL 013 §5.4.2.3 pages them: at most PAGE_SIZE rows in a response, and a `Link`
header with rel="next" whose URL carries `nextpage_opaque_marker` when there are more.
Before, one GET returned every occurrence ever recorded: after a day at hundreds of events a
second that is millions of rows in one response, built in the orchestrator's memory.

The marker is the last row's sort key (e.g. its start time and id), as JSON in base64url:
keyset paging, so a page is an index range whatever the offset, and rows added meanwhile do
not shift the pages. Clients follow the links (`netfate.api_pages`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query, Request, Response

from netfate.errors import InvalidInput
from netfate.strict_json import unpaired_text

PAGE_SIZE = 1000  # rows in one response; SOL 013 leaves it to the server
MAX_ID = 2**31 - 1  # INTEGER ids are 32-bit on PostgreSQL
T = TypeVar("T")

Marker = Annotated[str | None, Query(
    alias="nextpage_opaque_marker", max_length=256, pattern=r"^[A-Za-z0-9_-]+={0,2}$",
    description="Where the next page starts: as the previous page's Link rel=\"next\" "
                "gave it (ETSI GS NFV-SOL 013 §5.4.2.3)")]


def encode(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode(marker: str | None, types: tuple[type, ...]) -> tuple[Any, ...] | None:
    """The sort key a marker carries (None: the first page); InvalidInput if it is not one
    of this list's markers (values of `types`, in order; an int is taken for a float)."""
    if marker is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(marker.encode()))
    except (binascii.Error, ValueError):
        key = None
    if not isinstance(key, list) or len(key) != len(types) or not all(
            _fits(v, t) for v, t in zip(key, types, strict=True)):
        raise InvalidInput("nextpage_opaque_marker: not a marker of this list (take it from "
                           "the Link header of the page before)")
    return tuple(float(v) if t is float else v for v, t in zip(key, types, strict=True))


def _fits(v: Any, t: type) -> bool:
    """A value the database compares without error: a finite float (an int taken), an int
    within the 32-bit ids of PostgreSQL's INTEGER, a string."""
    if isinstance(v, bool):
        return False
    if t is float:
        return isinstance(v, int | float) and math.isfinite(v)
    if t is int:
        return isinstance(v, int) and 0 <= v <= MAX_ID
    # A string the database takes: no NUL (PostgreSQL's text refuses it), no lone
    # surrogate (not encodable: a 500, probe of 2026-12-06).
    return isinstance(v, t) and (not isinstance(v, str) or (
        "\x00" not in v and unpaired_text(v) is None))


def page(request: Request, response: Response, rows: list[T],
         key: Callable[[T], Sequence[Any]]) -> list[T]:
    """`rows` (fetched with a limit of PAGE_SIZE + 1) cut to PAGE_SIZE, with the Link header
    to the next page when there was one more."""
    if len(rows) <= PAGE_SIZE:
        return rows
    rows = rows[:PAGE_SIZE]
    nxt = request.url.include_query_params(nextpage_opaque_marker=encode(key(rows[-1])))
    # A relative reference (RFC 8288 §3.1): the Host header the request came with is not
    # echoed (it was, in the Link of every list: probe of 2026-12-06).
    response.headers["Link"] = f'<{nxt.path}?{nxt.query}>; rel="next"'
    return rows
