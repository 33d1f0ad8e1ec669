"""The firewall's in-process fast path (drivers/nf_inproc.py), without root: which bundles it
serves, and that its ruleset compilation matches the bundle's own (same text, same cache
file under the same key as fwlib.sh's compile_ruleset)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netfate import catalogue
from netfate.drivers import nf_pool
from netfate.drivers.nf_inproc import Call, FirewallRunner

from .catalogue_nf import load

CFG = {"default_out": "allow", "rules": [
    {"action": "deny", "direction": "out", "proto": "tcp", "dport": 23}]}


def test_it_serves_only_the_catalogue_firewall_and_its_scripted_actions() -> None:
    r = FirewallRunner()
    sha = hashlib.sha256(catalogue.bundle_bytes("firewall")).hexdigest()
    assert r.handles(sha, "start", ("lan", "wan"))
    assert not r.handles(sha, "status", ("lan", "wan"))  # still its script
    assert r.handles(sha, "export-state", ("lan", "wan"))
    assert not r.handles(sha, "start", ("lan",))
    other = hashlib.sha256(catalogue.bundle_bytes("rate-limiter")).hexdigest()
    assert not r.handles(other, "start", ("lan", "wan"))
    assert not r.handles("0" * 64, "create", ("lan", "wan"))  # a modified bundle: scripts


def test_compile_matches_the_bundle_and_its_cache_key(tmp_path: Path) -> None:
    nf_dir = tmp_path / "nf"
    (nf_dir / "state").mkdir(parents=True)
    (nf_dir / "run").mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    (nf_dir / "config.json").write_text(json.dumps(CFG))
    before = list(sys.path)
    r = FirewallRunner()
    call = Call("create", "unused", ("lan", "wan"), nf_dir, cache)
    r._config_take(call)
    r._compile(call)
    assert sys.path == before  # loading fw.py left this process's path alone
    text = (nf_dir / "state" / "ruleset.nft").read_text()
    assert text == load("firewall", "fw").build_ruleset(CFG, ("lan", "wan"))
    # fwlib.sh: key=$(printf '%s\n' "$NF_PORTS" | cat - "$ACTIVE_CONFIG" | sha256sum)
    key = subprocess.run(
        ["bash", "-c", 'printf "%s\\n" "$1" | cat - "$2" | sha256sum', "_", "lan wan",
         str(nf_dir / "state" / "config.json")],
        capture_output=True, text=True, check=True).stdout.split()[0]
    assert (cache / f"ruleset-{key}.nft").read_text() == text


def test_pool_leftovers_are_only_those_of_ended_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = [f"fate-pool-n1-{os.getpid()}-1", f"fate-pool-n1-{os.getpid()}-2",
             "fate-pool-n1-999999999-1", "fate-pool-n2-999999999-1", "fate-n1-u-fw"]
    monkeypatch.setattr(nf_pool.netns, "list_names", lambda: names)
    got = nf_pool.leftovers("n1", keep={names[0]})
    assert got == [names[1], "fate-pool-n1-999999999-1"]
