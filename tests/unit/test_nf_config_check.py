"""An NF's own check-config, run by the orchestrator before it takes a config: what it
refuses is refused with its reason, and the script runs confined (nobody, no network,
bounded time and output) in a directory that is gone afterwards."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from netfate import catalogue
from netfate.bundle import build_bundle, inspect_bundle, sha256_of
from netfate.errors import Conflict, InvalidInput
from netfate.orchestrator import nf_config_check
from netfate.orchestrator.nf_config_check import check_config

DESC = {"name": "probe", "version": "1", "ports": [{"name": "lan"}, {"name": "wan"}]}
ROOT = os.geteuid() == 0


def package_with_check(tmp_path: Path, check: str | None) -> bytes:
    src = tmp_path / f"src-{uuid.uuid4().hex[:8]}"
    (src / "scripts").mkdir(parents=True)
    (src / "descriptor.yaml").write_text(yaml.safe_dump(DESC))
    for s in ("start", "stop"):
        (src / "scripts" / s).write_text("#!/bin/bash\n")
    if check is not None:
        (src / "scripts" / "check-config").write_text("#!/bin/bash\n" + check)
    return build_bundle(src)


def _check(data: bytes, config: dict[str, Any] | None = None) -> None:
    desc, _ = inspect_bundle(data)
    check_config(sha256_of(data), data, desc, config or {})


def _leftover_dirs() -> set[str]:
    return {p.name for p in Path("/tmp").glob("fate-nfcheck-*")}


def test_a_refused_config_is_refused_with_the_nfs_reason(tmp_path: Path) -> None:
    data = package_with_check(tmp_path, 'grep -q \'"port": 9\' "$NF_CONFIG" || exit 0\n'
                              'echo "error: [probe/check-config] port 9 is reserved" >&2\n'
                              "exit 3\n")
    before = _leftover_dirs()
    _check(data, {"port": 8})
    with pytest.raises(InvalidInput, match=r"^probe: the NF refuses this config: port 9 is "
                                           r"reserved$"):
        _check(data, {"port": 9})
    assert _leftover_dirs() <= before  # its directory went with it


def test_a_package_without_the_script_is_taken_on_its_schema(tmp_path: Path) -> None:
    data = package_with_check(tmp_path, None)
    _check(data)
    assert sha256_of(data) in nf_config_check._WITHOUT  # not unpacked again to find out
    _check(data)


def test_a_silent_refusal_says_how_the_script_ended(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="exited 7"):
        _check(package_with_check(tmp_path, "exit 7\n"))


@pytest.mark.skipif(not ROOT, reason="confinement needs root to drop to nobody")
def test_the_script_runs_as_nobody_without_network_or_a_writable_directory(
        tmp_path: Path) -> None:
    data = package_with_check(tmp_path, 'w() { touch "$1" 2>/dev/null && echo yes || echo no; }\n'
                              'echo "uid=$(id -u) links=$(ip -o link | wc -l) '
                              'caps=$(grep CapEff /proc/self/status | cut -f2) '
                              'procs=$(ls -d /proc/[0-9]* | wc -l) '
                              'write=$(w "$NF_BUNDLE_DIR/x")$(w /tmp/x)$(w /dev/shm/x)'
                              '$(w /var/tmp/x) '
                              'state=$(ls -A /run | wc -l)$(ls -A /var/lib | wc -l) '
                              'cfg=$(cat "$NF_CONFIG")'
                              '" >&2\nexit 1\n')
    with pytest.raises(InvalidInput) as exc:
        _check(data, {"k": 1})
    msg = str(exc.value)
    assert "uid=0 " not in msg and "uid=" in msg, msg
    assert "links=1 " in msg, msg  # lo only: a network namespace of its own
    assert "caps=0000000000000000" in msg, msg
    assert "write=nononono " in msg, msg  # nowhere: its package, /tmp, /dev/shm, /var/tmp
    assert "state=00 " in msg, msg  # /run and /var/lib (the NFVI database) hidden
    assert int(msg.split("procs=")[1].split()[0]) <= 6, msg  # a PID namespace of its own
    assert 'cfg={"k": 1}' in msg, msg


@pytest.mark.skipif(not ROOT, reason="a PID namespace needs root")
def test_what_the_script_leaves_running_ends_with_it(tmp_path: Path) -> None:
    marker = f"fate-check-marker-{uuid.uuid4().hex}"
    data = package_with_check(tmp_path, f"setsid bash -c 'exec -a {marker} sleep 60' &\nexit 0\n")
    _check(data)  # accepted: the check ended at once
    time.sleep(0.3)
    assert not _running(marker), "a child in a session of its own outlived the check"


def test_a_check_that_hangs_is_ended_with_its_children(tmp_path: Path) -> None:
    marker = f"fate-check-marker-{uuid.uuid4().hex}"
    data = package_with_check(tmp_path, f"(exec -a {marker} sleep 60) &\nsleep 60\n")
    t0 = time.monotonic()
    with pytest.raises(Conflict, match="did not finish"):
        _check(data)
    assert time.monotonic() - t0 < nf_config_check.CHECK_TIMEOUT_S + 3
    time.sleep(0.2)
    assert not _running(marker), "the check's child outlived it"


def _running(marker: str) -> list[str]:
    """PIDs whose command line holds `marker` (looked at, never signalled)."""
    left = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if marker.encode() in (p / "cmdline").read_bytes():
                    left.append(p.name)
            except OSError:
                continue
    return left


def test_a_flood_on_stderr_is_cut_short(tmp_path: Path) -> None:
    data = package_with_check(tmp_path, "head -c 50000000 /dev/zero | tr '\\0' x >&2\n"
                              "echo 'error: [probe/check-config] too much' >&2\nexit 1\n")
    with pytest.raises(InvalidInput) as exc:
        _check(data)
    assert len(str(exc.value)) < 700


@pytest.mark.parametrize(("nf", "config", "words"), [
    ("nat", {"address": "10.90.254.1/16", "port_min": 3000, "port_max": 2000},
     ("port_min (3000) is above port_max (2000)",)),
    ("load-balancer", {"address": "10.90.253.1/16", "services": [
        {"name": "w", "vip": "10.90.253.10", "port": 80, "proto": "tcp",
         "backends": [{"address": "10.91.0.5", "port": 80}]}]}, ("outside 10.90.0.0/16",)),
    ("load-balancer", {"address": "10.90.253.1/16", "services": [
        {"name": "w", "vip": "10.90.253.10", "port": 80, "proto": "tcp",
         "backends": [{"address": "10.90.0.5", "port": 80},
                      {"address": "10.90.0.5", "port": 80}]}]}, ("same address and port",)),
])
def test_the_catalogues_checks_refuse_what_their_schemas_let_through(
        nf: str, config: dict[str, Any], words: tuple[str, ...]) -> None:
    data = catalogue.bundle_bytes(nf)
    desc, _ = inspect_bundle(data)
    filled = desc.validate_config(config)  # the schema takes it
    with pytest.raises(InvalidInput) as exc:
        check_config(sha256_of(data), data, desc, filled)
    for w in words:
        assert w in str(exc.value), exc.value


GOOD: dict[str, dict[str, Any]] = {
    "firewall": {"rules": [{"action": "deny", "proto": "tcp", "dport": 23}]},
    "rate-limiter": {},
    "packet-inspector": {},
    "troubleshooter": {},
    "content-filter": {},
    "nat": {"address": "10.90.254.1/16"},
    "load-balancer": {"address": "10.90.253.1/16", "services": [
        {"name": "w", "vip": "10.90.253.10", "port": 80, "proto": "tcp",
         "backends": [{"address": "10.90.0.5", "port": 80}]}]},
    # the key file is on the node, not where the orchestrator checks
    "vpn": {"address": "10.90.1.254/16", "gateway": "10.90.0.1", "peer": "172.30.0.2",
            "local_ts": ["10.90.1.0/24"], "psk_file": "/run/netfate/no-such-dir/psk"},
}


@pytest.mark.parametrize("nf", catalogue.NAMES)
def test_every_catalogue_nf_has_a_check_that_takes_a_good_config(nf: str) -> None:
    data = catalogue.bundle_bytes(nf)
    desc, members = inspect_bundle(data)
    assert "scripts/check-config" in {m.name for m in members}
    check_config(sha256_of(data), data, desc, desc.validate_config(GOOD[nf]))


def test_a_config_error_is_short_whatever_the_value() -> None:
    """A 10,001-domain block list answered a 129 KB error repeating the list."""
    desc, _ = inspect_bundle(catalogue.bundle_bytes("content-filter"))
    with pytest.raises(InvalidInput) as exc:
        desc.validate_config({"block": [f"a{i}.example" for i in range(10_001)]})
    assert len(str(exc.value)) < 600 and str(exc.value).endswith("is too long"), exc.value


@pytest.mark.skipif(not ROOT, reason="the box is built only as root")
def test_a_box_that_cannot_be_built_is_not_the_callers_fault(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mount the machine refuses (e.g. in a restricted container) is a 409 naming it,
    never a 422 blaming the config."""
    monkeypatch.setattr(nf_config_check, "_SETUP", nf_config_check._SETUP.replace(
        'mount --make-rprivate / || fail "mount --make-rprivate /"',
        'fail "mount --make-rprivate /"'))
    with pytest.raises(Conflict, match="could not be confined: mount --make-rprivate"):
        _check(package_with_check(tmp_path, "exit 0\n"))
