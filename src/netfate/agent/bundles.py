"""The NF bundles a node needs, fetched from the orchestrator when they are not on it yet."""

from __future__ import annotations

import contextlib

import httpx

from netfate.bundle import MAX_BUNDLE_BYTES, BundleStore
from netfate.errors import InvalidInput, NotFound

FETCH_TIMEOUT_S = 30.0


def ensure_bundle(store: BundleStore, node: str, sha: str, fetch: dict[str, str]) -> None:
    """Make bundle `sha` present in `store`: kept if there, else fetched from `fetch[sha]`
    (the URL the orchestrator gave) and verified by its sha256. Raises NotFound when it is
    not there and has no URL or the fetch fails; the store's errors for a digest mismatch."""
    with contextlib.suppress(NotFound):
        store.get(sha)
        return
    url = fetch.get(sha)
    if url is None:
        raise NotFound(f"bundle {sha[:12]} is not on node {node} and no URL was given")
    data = bytearray()
    with httpx.stream("GET", url, timeout=FETCH_TIMEOUT_S) as r:
        if r.status_code != 200:
            raise NotFound(f"bundle {sha[:12]}: fetching {url} gave HTTP {r.status_code}")
        for chunk in r.iter_bytes():
            data += chunk
            if len(data) > MAX_BUNDLE_BYTES:  # never hold more than a bundle can be
                raise InvalidInput(f"bundle {sha[:12]}: {url} sends over {MAX_BUNDLE_BYTES} "
                                   "bytes")
    store.add(bytes(data), expected_sha256=sha)
