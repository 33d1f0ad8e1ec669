"""The native driver's fast path against the script contract: the catalogue firewall's
actions done in-process (drivers/nf_inproc.py) leave the same namespace behind as its
scripts, step by step; a pooled namespace is as good as a fresh one. No testbed needed."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netfate import catalogue
from netfate.bundle import BundleStore
from netfate.drivers import cgroups, native, netns
from netfate.proc import run

CFG: dict[str, Any] = {"default_in": "deny", "rules": [
    {"action": "deny", "direction": "out", "proto": "tcp", "dport": 23},
    {"action": "allow", "direction": "in", "proto": "udp", "dport": 53, "src": "10.0.0.0/8"},
]}
CFG2: dict[str, Any] = {"default_out": "deny", "allow_dhcp": False, "rules": [
    {"action": "allow", "direction": "out", "proto": "icmp"},
]}


def observed(ns: str, nf_dir: Path) -> dict[str, Any]:
    """What an NF's actions leave behind: rules (without counters), links, files."""
    rules = run(["nft", "-s", "list", "ruleset"], netns=ns).stdout.decode()
    links = json.loads(run(["ip", "-j", "-d", "link", "show"], netns=ns).stdout)
    seen = {}
    for ln in links:
        info = ln.get("linkinfo", {})
        data = info.get("info_data", {})
        seen[ln["ifname"]] = {
            "kind": info.get("info_kind"), "master": ln.get("master"),
            "up": "UP" in ln.get("flags", []), "mtu": ln.get("mtu"),
            "stp": data.get("stp_state"), "fwd_delay": data.get("forward_delay"),
        }
    v6 = run(["sysctl", "-n", "net.ipv6.conf.br0.disable_ipv6"], netns=ns,
             check=False).stdout.decode().strip()
    files = {f: (nf_dir / "state" / f).read_bytes()
             for f in ("config.json", "ruleset.nft") if (nf_dir / "state" / f).exists()}
    return {"rules": rules, "links": seen, "br0_ipv6_off": v6, "files": files,
            "paused": (nf_dir / "run" / "paused").exists()}


@pytest.fixture
def drivers(tmp_path: Path) -> Iterator[tuple[native.NativeCompute, native.NativeCompute]]:
    store = BundleStore(tmp_path / "bundles")
    catalogue.install(store, "firewall")
    fast = native.NativeCompute("fpfast", tmp_path / "a", store, mtu=1400)
    slow = native.NativeCompute("fpslow", tmp_path / "b", store, mtu=1400, fast_path=False)
    try:
        yield fast, slow
    finally:
        for d in (fast, slow):
            d.close()
            for nf in d.list_nfs():
                with contextlib.suppress(Exception):
                    d.delete_nf(nf.instance_id)


def test_in_process_actions_leave_what_the_scripts_leave(
    drivers: tuple[native.NativeCompute, native.NativeCompute], monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast, slow = drivers
    sha = catalogue.install(fast.store, "firewall").sha256
    scripts: list[str] = []
    real = native.run_script
    monkeypatch.setattr(native, "run_script",
                        lambda info, b, action, *a: scripts.append(f"{info.node}:{action}")
                        or real(info, b, action, *a))
    a = fast.create_nf("fpfast", "alice", "firewall", sha, CFG)
    b = slow.create_nf("fpslow", "alice", "firewall", sha, CFG)

    def same(step: str) -> None:
        oa = observed(a.netns or "", fast._idir(a.instance_id))
        ob = observed(b.netns or "", slow._idir(b.instance_id))
        assert oa == ob, step

    same("create")
    assert observed(a.netns or "", fast._idir(a.instance_id))["links"]["br0"]["up"] is False
    for step, call in (
        ("start", lambda d, i: d.start_nf(i)),
        ("pause", lambda d, i: d.pause_nf(i)),
        ("resume", lambda d, i: d.start_nf(i)),
        ("update", lambda d, i: d.update_nf(i, CFG2)),
        ("stop", lambda d, i: d.stop_nf(i)),
        ("start again", lambda d, i: d.start_nf(i)),
    ):
        call(fast, a.instance_id)
        call(slow, b.instance_id)
        same(step)
    # state moves the same way: each exports, then imports the other's document
    da = fast.export_state(a.instance_id)
    db = slow.export_state(b.instance_id)
    assert da["config"] == db["config"] and da.keys() == db.keys()
    assert isinstance(da["conntrack"], list)
    fast.import_state(a.instance_id, db)
    slow.import_state(b.instance_id, da)
    same("import-state")
    running = observed(a.netns or "", fast._idir(a.instance_id))
    assert running["links"]["br0"]["up"] and "policy accept" in running["rules"]
    assert running["links"]["lan"]["master"] == "br0"
    # the fast driver ran no lifecycle script of these actions; the slow one ran them all
    assert not [s for s in scripts if s.startswith("fpfast:")]
    assert {"fpslow:create", "fpslow:start", "fpslow:update", "fpslow:export-state",
            "fpslow:import-state"} <= set(scripts)
    # status (a script on both paths) agrees too
    sa = fast.status(a.instance_id).detail
    sb = slow.status(b.instance_id).detail
    def shape(rules: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(r["index"], r["action"], r["direction"]) for r in rules]

    assert sa["running"] and sb["running"] and shape(sa["rules"]) == shape(sb["rules"])
    for d, i in ((fast, a), (slow, b)):
        d.delete_nf(i.instance_id)
        assert not netns.exists(i.netns or "")
        assert i.instance_id not in cgroups.list_ours()


def test_a_config_the_fast_path_refuses_falls_back_to_the_script(
    drivers: tuple[native.NativeCompute, native.NativeCompute], monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast, _ = drivers
    sha = catalogue.install(fast.store, "firewall").sha256
    info = fast.create_nf("fpfast", "bob", "firewall", sha, CFG)
    fast.start_nf(info.instance_id)
    # a broken libnftables call: the script path (nft -f) still starts the NF
    monkeypatch.setattr("netfate.drivers.nf_inproc.nft_load",
                        lambda ns, text: (_ for _ in ()).throw(RuntimeError("boom")))
    fast.stop_nf(info.instance_id)
    fast.start_nf(info.instance_id)
    o = observed(info.netns or "", fast._idir(info.instance_id))
    assert o["links"]["br0"]["up"] and "fate_fw" in o["rules"]


def test_an_nf_born_into_the_pool_is_a_fresh_one_and_never_inherits(
    drivers: tuple[native.NativeCompute, native.NativeCompute],
) -> None:
    fast, slow = drivers
    sha = catalogue.install(fast.store, "firewall").sha256
    fast.set_pool_size(2)
    pool = fast.pool(("lan", "wan"))
    assert pool is not None and len(pool) == 2
    pooled = set(pool.names())
    seen: set[int] = set()
    for owner in ("carol", "dave", "erin"):
        info = fast.create_nf("fpfast", owner, "firewall", sha, CFG)
        fast.start_nf(info.instance_id)
        ino = Path(netns.NETNS_DIR, info.netns or "").stat().st_ino
        assert ino not in seen  # never a namespace another NF had
        seen.add(ino)
        ref = slow.create_nf("fpslow", owner, "firewall", sha, CFG)
        slow.start_nf(ref.instance_id)
        got = observed(info.netns or "", fast._idir(info.instance_id))
        want = observed(ref.netns or "", slow._idir(ref.instance_id))
        assert got == want
        host = json.loads(run(["ip", "-j", "link", "show", info.ports[0].host_if]).stdout)
        assert host[0]["mtu"] == 1400 and "UP" in host[0]["flags"]
        fast.delete_nf(info.instance_id)
        slow.delete_nf(ref.instance_id)
    assert not pooled & set(netns.list_names()) - pool.names()  # handed out, then gone
    fast.close()
    assert not [n for n in netns.list_names() if n.startswith("fate-pool-fpfast-")]
    assert not fast.collect_garbage()
