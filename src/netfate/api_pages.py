"""Every page of a paged API list (ETSI GS NFV-SOL 013 §5.4.2.3: the orchestrator's
/vnf_lcm_op_occs and /notifications answer at most a page, with a Link header rel="next"
to the rest; orchestrator/api/paging.py), for the project's own clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

MAX_PAGES = 10_000  # a server that links pages in a loop ends here, not never


def get_all(client: httpx.Client, path: str, params: dict[str, Any] | None = None
            ) -> list[Any]:
    """GET `path` and every page its Link headers lead to, their rows in order. Raises
    httpx.HTTPStatusError for an error answer, ValueError if the pages never end."""
    def get(url: str, p: dict[str, Any] | None = None) -> httpx.Response:
        r = client.get(url, params=p)
        r.raise_for_status()
        return r

    return follow(get(path, params), get)


def follow(first: httpx.Response, get: Callable[[str], httpx.Response]) -> list[Any]:
    """The rows of `first` and of every page after it, each fetched with `get` (which
    raises what its caller wants for an error answer) from the Link rel="next" of the page
    before. ValueError if the pages never end."""
    r, rows = first, list(first.json())
    for _ in range(MAX_PAGES):
        nxt = r.links.get("next", {}).get("url")
        if not nxt:
            return rows
        # Only its path and query, on the server asked: a Link naming another host (a
        # proxy's Host header reflected, say) never gets the caller's token.
        r = get(str(r.request.url.copy_with(raw_path=httpx.URL(nxt).raw_path)))
        rows += r.json()
    raise ValueError(f"{first.url.path}: over {MAX_PAGES} pages")
