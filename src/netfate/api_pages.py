"""Every page of a paged API list (ETSI GS NFV-SOL 013 §5.4.2.3: the orchestrator's
/vnf_lcm_op_occs and /notifications answer at most a page, with a Link header rel="next"
to the rest; orchestrator/api/paging.py), for the project's own clients."""

from __future__ import annotations

from typing import Any

import httpx

MAX_PAGES = 10_000  # a server that links pages in a loop ends here, not never


def get_all(client: httpx.Client, path: str, params: dict[str, Any] | None = None
            ) -> list[Any]:
    """GET `path` and every page its Link headers lead to, their rows in order. Raises
    httpx.HTTPStatusError for an error answer, ValueError if the pages never end."""
    r = client.get(path, params=params)
    r.raise_for_status()
    rows: list[Any] = r.json()
    for _ in range(MAX_PAGES):
        nxt = r.links.get("next", {}).get("url")
        if not nxt:
            return rows
        r = client.get(nxt)
        r.raise_for_status()
        rows += r.json()
    raise ValueError(f"{path}: over {MAX_PAGES} pages")
