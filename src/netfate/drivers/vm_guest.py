"""Running a VM NF's lifecycle scripts inside its guest, through qemu-guest-agent: the bundle
and the config are copied in (/nf/bundle, /nf/inst/config.json), with the node files the
config names (netfate.drivers.node_files: at their own path, mode 0400), and each script gets
the native flavour's environment (NF_*) with guest paths (netfate.drivers.nf_script is the
native counterpart). Each function closes the agent connection it is given."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

from netfate.bundle import Bundle
from netfate.drivers import nf_state
from netfate.drivers.nf_script import script_failed
from netfate.drivers.node_files import read as read_node_files
from netfate.drivers.vm_qmp import GuestAgent
from netfate.errors import DriverError
from netfate.interfaces import NFInfo

G_ROOT = "/nf"
G_BUNDLE = f"{G_ROOT}/bundle"
G_DIR = f"{G_ROOT}/inst"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Node files: each is written to a staging name, then made 0400 and moved to its path (the
# paths are arguments, never pasted into the program); on a failure the staged ones go.
_STAGE = f"{G_ROOT}/.node-file"
_PLACE = ('umask 077; i=0; for p; do mkdir -p "${p%/*}" && chmod 0400 "$0.$i" && '
          'mv -f "$0.$i" "$p" || exit 1; i=$((i+1)); done')
_UNSTAGE = 'rm -f "$0".*'
# Output to files, not to the agent's pipes: a daemon the script leaves running inherits
# them, and the agent would report the script only once the daemon exits.
_WRAP = ('o="$NF_RUN_DIR/.$NF_ACTION.out"; e="$NF_RUN_DIR/.$NF_ACTION.err"; cd "$NF_DIR" && '
         '/bin/bash "$0" >"$o" 2>"$e" </dev/null; rc=$?; cat "$o"; cat "$e" >&2; '
         'rm -f "$o" "$e"; exit $rc')


def env(info: NFInfo, action: str, extra: dict[str, str] | None) -> dict[str, str]:
    """The script's whole environment: nf_script.script_env's variables, guest paths."""
    return {"PATH": PATH, "LANG": "C.UTF-8", "NF_ACTION": action,
            "NF_ID": info.instance_id, "NF_NAME": info.name, "NF_OWNER": info.owner,
            "NF_NODE": info.node, "NF_DIR": G_DIR, "NF_BUNDLE_DIR": G_BUNDLE,
            "NF_PORTS": " ".join(p.name for p in info.ports),
            "NF_CONFIG": f"{G_DIR}/config.json", "NF_STATE_DIR": f"{G_DIR}/state",
            "NF_RUN_DIR": f"{G_DIR}/run", "NF_NOTIFY_DIR": f"{G_ROOT}/notify",
            "NF_PYTHON": "/usr/bin/python3", "NF_CACHE_DIR": f"{G_ROOT}/cache",
            "NF_CGROUP_PROCS": "", **(extra or {})}


def run_script(ga: GuestAgent, info: NFInfo, bundle: Bundle, action: str,
               extra: dict[str, str] | None, timeout: float) -> str:
    """Run the bundle's ``action`` script in the guest; its stdout ("" if the bundle has
    none). DriverError if it exits non-zero (with its stderr's tail) or times out."""
    try:
        if bundle.script(action) is None:
            return ""
        rc, out, err = ga.run(["/bin/bash", "-c", _WRAP, f"{G_BUNDLE}/scripts/{action}"],
                              env(info, action, extra), timeout)
    finally:
        ga.close()
    if rc != 0:
        raise script_failed(info.instance_id, action, rc, err)
    return out


def own_macs(ga: GuestAgent, skip: set[str], timeout: float = 20.0) -> list[str]:
    """MACs of the guest's interfaces other than lo and ``skip`` (the NF's ports): its own
    bridge, say, which an L3 bump (NAT, load balancer) answers ARP with, so the switch must
    deliver frames to it (netns.own_macs for a native NF). Closes ``ga``."""
    try:
        rc, out, err = ga.run(["/usr/sbin/ip", "-j", "link", "show"], {"PATH": PATH}, timeout)
    finally:
        ga.close()
    if rc != 0:
        raise DriverError(f"ip link show in the guest failed (exit {rc}): {err.strip()[-500:]}")
    try:
        links = json.loads(out)
    except ValueError:
        raise DriverError(f"ip -j link show in the guest printed no JSON: {out[:200]!r}") from None
    macs = {str(link.get("address")) for link in links if isinstance(link, dict)
            and link.get("ifname") not in ("lo", *skip) and link.get("address")
            and link.get("address") != "00:00:00:00:00:00"}
    return sorted(macs)


def _put_node_files(ga: GuestAgent, files: dict[str, bytes]) -> None:
    """Copy ``files`` (guest path -> contents: node_files.read) into the guest, each at its
    path, mode 0400 (read-only by convention: the guest's processes all run as root).
    DriverError if that fails, with what was staged removed. Leaves ``ga`` open."""
    if not files:
        return
    try:
        for i, data in enumerate(files.values()):
            ga.write_file(f"{_STAGE}.{i}", data)
        rc, _, err = ga.run(["/bin/sh", "-c", _PLACE, _STAGE, *files], {"PATH": PATH}, 30)
        if rc != 0:
            raise DriverError(f"copying the node files {sorted(files)} into the guest "
                              f"failed: {err.strip()[-500:]}")
    except BaseException:
        with contextlib.suppress(Exception):
            ga.run(["/bin/sh", "-c", _UNSTAGE, _STAGE], {"PATH": PATH}, 10)
        raise


def provision(ga: GuestAgent, info: NFInfo, bundle: Bundle, cache: Path | None = None,
              node_files: dict[str, bytes] | None = None) -> None:
    """Copy the bundle (as one tar) and the config into a freshly booted guest, and the
    node's cache for the bundle (``cache``: artefacts the NF derived from its inputs, e.g.
    compiled rulesets, shared with the native flavour): a guest starts Python less often.
    ``node_files``: the node files the config names (node_files.read), at their paths."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(bundle.root), arcname="bundle")
        if cache is not None and cache.is_dir():
            for f in sorted(cache.iterdir()):
                if f.is_file() and not f.is_symlink() and f.stat().st_size < 1 << 20:
                    tar.add(str(f), arcname=f"cache/{f.name}")
    try:
        ga.write_file(f"{G_ROOT}/bundle.tar", buf.getvalue())
        ga.write_file(f"{G_ROOT}/config.json", json.dumps(info.config).encode())
        rc, _, err = ga.run(["/bin/sh", "-c",
                             f"mkdir -p {G_DIR}/state {G_DIR}/run {G_ROOT}/cache "
                             f"{G_ROOT}/notify && tar -xf {G_ROOT}/bundle.tar -C {G_ROOT} && "
                             f"mv {G_ROOT}/config.json {G_DIR}/config.json"], {"PATH": PATH}, 30)
        if rc != 0:
            raise DriverError(f"{info.instance_id}: provisioning the guest failed: {err}")
        _put_node_files(ga, node_files or {})
    finally:
        ga.close()


def pull_cache(ga: GuestAgent, cache: Path) -> None:
    """Copy what the guest added to its cache back to the node's (best effort)."""
    try:
        rc, out, _ = ga.run(["/bin/sh", "-c", f"cd {G_ROOT}/cache && for f in *; do "
                             '[ -f "$f" ] && printf "%s\\0" "$f" && base64 "$f" && '
                             'printf "\\0"; done'], {"PATH": PATH}, 30)
    finally:
        ga.close()
    if rc != 0:
        return
    parts = out.split("\0")
    cache.mkdir(parents=True, exist_ok=True)
    for name, data in zip(parts[0::2], parts[1::2], strict=False):
        dest = cache / Path(name).name
        if name and not dest.exists():
            tmp = dest.with_name(f".{dest.name}.tmp")
            tmp.write_bytes(base64.b64decode(data))
            tmp.replace(dest)


def push_config(ga: GuestAgent, info: NFInfo,
                node_files: dict[str, bytes] | None = None) -> None:
    """Write the record's config where the scripts read it (NF_CONFIG), and the node files it
    names (node_files.read) at their paths: they may differ from the last config's."""
    try:
        _put_node_files(ga, node_files or {})
        ga.write_file(f"{G_DIR}/config.json", json.dumps(info.config).encode())
    finally:
        ga.close()


def state_runner(agent: Callable[[], GuestAgent], info: NFInfo, bundle: Bundle,
                 timeout: float) -> nf_state.RunScript:
    """nf_state's script runner for a guest: the host files it names (NF_IMPORT_FILE,
    NF_EXPORT_FILE) are copied in before, and out after, the script runs."""

    def run(action: str, extra: dict[str, str]) -> str:
        genv = dict(extra)
        if "NF_IMPORT_FILE" in extra:  # import_state may have changed the config
            push_config(agent(), info, read_node_files(bundle, info.config))
            ga = agent()
            try:
                ga.write_file(f"{G_DIR}/run/import.json",
                              Path(extra["NF_IMPORT_FILE"]).read_bytes())
            finally:
                ga.close()
            genv["NF_IMPORT_FILE"] = f"{G_DIR}/run/import.json"
        if "NF_EXPORT_FILE" in extra:
            genv["NF_EXPORT_FILE"] = f"{G_DIR}/run/export.json"
        out = run_script(agent(), info, bundle, action, genv, timeout)
        if "NF_EXPORT_FILE" in extra:
            ga = agent()
            try:
                Path(extra["NF_EXPORT_FILE"]).write_bytes(ga.read_file(genv["NF_EXPORT_FILE"]))
            finally:
                ga.close()
        return out

    return run
