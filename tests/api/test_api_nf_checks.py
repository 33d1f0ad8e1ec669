"""An NF's own check-config runs while the API holds no database lock: a package whose check
is slow delays only the request that needs it, never other writers (a check inside the
write transaction queued every writer behind it and ended one with a 500)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml

from netfate.bundle import build_bundle

API = "/api/v1"
GZ = {"Content-Type": "application/gzip"}


def _slow_package(tmp_path: Path) -> bytes:
    src = tmp_path / "slowcheck"
    (src / "scripts").mkdir(parents=True)
    (src / "descriptor.yaml").write_text(yaml.safe_dump(
        {"name": "slowcheck", "version": "1", "ports": [{"name": "lan"}, {"name": "wan"}]}))
    for s in ("start", "stop"):
        (src / "scripts" / s).write_text("#!/bin/bash\n")
    (src / "scripts" / "check-config").write_text("#!/bin/bash\nsleep 3\nexit 0\n")
    return build_bundle(src)


def test_a_slow_check_holds_up_no_other_writer(client: httpx.Client, tmp_path: Path) -> None:
    r = client.post(f"{API}/vnf_packages", content=_slow_package(tmp_path), headers=GZ)
    assert r.status_code == 201, r.text
    with ThreadPoolExecutor(4) as pool:
        slow = [pool.submit(client.post, f"{API}/users", json={
            "name": f"slow{k}", "password": "secret1", "nf_config": {"slowcheck": {}}})
            for k in range(2)]
        time.sleep(0.5)  # both checks under way
        t0 = time.monotonic()
        r = client.post(f"{API}/users", json={"name": "quick", "password": "secret1"})
        quick_s = time.monotonic() - t0
        assert r.status_code == 201, r.text
        assert [f.result().status_code for f in slow] == [201, 201]
    assert quick_s < 1.5, f"another writer waited {quick_s:.1f} s for the slow checks"
