"""The agent's bundle fetch: verified by sha256, and never holding more than a bundle can be."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from netfate.agent import bundles
from netfate.bundle import BundleStore, sha256_of
from netfate.errors import InvalidInput
from tests.local_http import serving
from tests.unit.hostile_docs import DESC, bundle

BODIES: dict[str, bytes] = {}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = BODIES[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    with serving(_Handler) as url:
        yield url


def test_fetch_verifies_and_bounds(server: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    good = bundle(DESC)
    BODIES["/good"] = good
    store = BundleStore(tmp_path)
    bundles.ensure_bundle(store, "cpe1", sha256_of(good), {sha256_of(good): f"{server}/good"})
    assert store.get(sha256_of(good)).descriptor.name == "probe"
    monkeypatch.setattr(bundles, "MAX_BUNDLE_BYTES", 1000)
    BODIES["/big"] = b"x" * 5000
    with pytest.raises(InvalidInput, match="over 1000 bytes"):
        bundles.ensure_bundle(store, "cpe1", "a" * 64, {"a" * 64: f"{server}/big"})
