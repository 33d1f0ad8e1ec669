"""An NF's own check of a config, before the orchestrator takes it: the package's optional
`check-config` script (catalogue README, "Script contract"), for what a JSON Schema cannot
say: a NAT's port_min above its port_max, a load balancer's backend outside its network, two
tenants of one shared firewall on one VLAN. The config-schema is checked first
(`api.nf_configs.validate_config`); before this, such a config was stored and failed only on
the node, at the user's login (probe of 2026-12-03). The API runs it outside any database
transaction (`api.nf_configs.run_checks`).

The script is the package's code, so it runs confined (util-linux's unshare, setpriv and
prlimit, as root sets it up):
- namespaces of its own: network (nothing in it), PID (it and all it starts die when it
  ends or is killed: a child it leaves behind, even in a session of its own, goes too;
  /proc shows only them), mount, IPC, UTS;
- a read-only view: /tmp is an empty read-only tmpfs holding only its package and the
  config (read-only), and /var/tmp, /dev/shm, /run, /var/lib, /var/cache, /home and /root
  are hidden behind empty read-only tmpfs (the NFVI database, tokens, other state);
- as `nobody`, no capabilities, no_new_privs; CPU 5 s, 512 MiB, 64 KiB per file written,
  64 open files, 64 processes of nobody's; killed after CHECK_TIMEOUT_S.
A package without the script is taken on its schema alone.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from netfate.bundle import BundleStore
from netfate.descriptor import Descriptor
from netfate.drivers.nf_script import NF_PYTHON
from netfate.errors import Conflict, InvalidInput

SCRIPT = "check-config"
CHECK_TIMEOUT_S = 5.0  # wall clock; CPU time is limited to the same by prlimit
MAX_STDERR = 64 * 1024  # bytes the script may write (RLIMIT_FSIZE): its reason, not a flood
LIMITS = ("--as=536870912", "--cpu=5", f"--fsize={MAX_STDERR}", "--nofile=64", "--nproc=64",
          "--core=0")
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Packages known to have no check-config script (by sha256: a package never changes), so a
# user's edit does not unpack them again to find out.
_WITHOUT: set[str] = set()


def may_check(sha256: str) -> bool:
    """Whether package `sha256` may have a check-config script (False once it is known to
    have none: its bytes need not even be read)."""
    return sha256 not in _WITHOUT


def check_config(sha256: str, package: bytes, desc: Descriptor,
                 config: dict[str, Any]) -> None:
    """Run package `sha256`'s check-config script (`package`: its bytes) on `config`
    (schema-valid, defaults filled, as the NF gets it). Raises InvalidInput with the NF's
    reason (the last line of its stderr) when the script refuses it (non-zero exit), and
    Conflict when the script cannot run or does not finish in CHECK_TIMEOUT_S (the package's
    fault, not the caller's). Returns when it accepts it or the package has no such script."""
    if not may_check(sha256):
        return
    with tempfile.TemporaryDirectory(prefix="fate-nfcheck-") as tmp:
        bundle = BundleStore(Path(tmp) / "b").add(package, expected_sha256=sha256)
        script = bundle.script(SCRIPT)
        if script is None:
            _WITHOUT.add(sha256)
            return
        _readable(Path(tmp))
        cfg_file = Path(tmp) / "config.json"
        cfg_file.write_text(json.dumps(config))
        cfg_file.chmod(0o644)
        argv, seen = _confined(Path(tmp), script)
        env = {"PATH": _PATH, "LANG": "C.UTF-8", "NF_ACTION": SCRIPT, "NF_NAME": desc.name,
               "NF_BUNDLE_DIR": str(seen / bundle.root.relative_to(tmp)),
               "NF_CONFIG": str(seen / "config.json"),
               "NF_PORTS": " ".join(p.name for p in desc.ports), "NF_PYTHON": NF_PYTHON}
        with tempfile.TemporaryFile(prefix="fate-nfcheck-") as err:  # unnamed: its own
            rc = _run(argv, env, "/", err, desc.name)
            err.seek(0)
            reason = _last_line(err.read(MAX_STDERR + 1)[-MAX_STDERR:])
    if rc == SETUP_FAILED and reason.startswith("the check could not be confined"):
        raise Conflict(f"{desc.name}: {reason}")  # this machine's fault, not the caller's
    if rc != 0:
        raise InvalidInput(f"{desc.name}: the NF refuses this config: "
                           f"{reason or f'its check-config exited {rc}'}")


def _run(argv: list[str], env: dict[str, str], cwd: str, err: Any, name: str) -> int:
    try:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,  # noqa: S603 - fixed argv; the config goes through a file
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    except OSError as exc:
        raise Conflict(f"{name}: its check-config could not run ({exc})") from None
    try:
        return proc.wait(timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script's children too (its own session)
        proc.wait()
        raise Conflict(f"{name}: its check-config did not finish in {CHECK_TIMEOUT_S:g} s; "
                       "the config is not taken (upload a fixed package)") from None


# Run by /bin/sh as root in the new namespaces: $1 the check's directory, $2 $3 uid and gid,
# $4 the script's path in the directory, then the limits. Fixed text; data comes as arguments.
# A step that fails exits SETUP_FAILED: the box could not be built (not the NF's verdict).
SETUP_FAILED = 125
_SETUP = r"""fail() { echo "the check could not be confined: $*" >&2; exit 125; }
mount --make-rprivate / || fail "mount --make-rprivate /"
cd "$1" || fail "cd"
mount -t tmpfs -o size=64k,mode=0755 fate-nfcheck /tmp || fail "tmpfs on /tmp"
mkdir /tmp/check || fail "mkdir"
# -c: "." is the directory cd named, not a path looked up again under the new /tmp
mount -c --bind . /tmp/check || fail "bind"
mount -c -o remount,bind,ro /tmp/check || fail "read-only bind"
for d in /var/tmp /dev/shm /run /var/lib /var/cache /home /root; do
    if [ -d "$d" ]; then
        mount -t tmpfs -o ro,size=4k,mode=0755 fate-nfcheck "$d" || fail "hiding $d"
    fi
done
mount -o remount,ro /tmp || fail "read-only /tmp"
cd /tmp/check || fail "cd"
uid=$2 gid=$3 script=$4
shift 4
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs \
    --inh-caps=-all --bounding-set=-all -- prlimit "$@" -- /bin/bash "/tmp/check/$script"
"""
SEEN_AS = "/tmp/check"  # the check's directory as the script sees it


def _confined(check_dir: Path, script: Path) -> tuple[list[str], Path]:
    """The argv that runs `script` (inside `check_dir`) confined, and the directory as the
    script sees it (as root: SEEN_AS; else `check_dir`, run under LIMITS alone, the
    orchestrator being unprivileged itself)."""
    rel = script.relative_to(check_dir)
    if os.geteuid() != 0:
        return ["prlimit", *LIMITS, "--", "/bin/bash", str(script)], check_dir
    try:
        pw = pwd.getpwnam("nobody")
        uid, gid = pw.pw_uid, pw.pw_gid
    except KeyError:
        uid = gid = 65534
    return (["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child",
             "--mount-proc", "--ipc", "--uts", "--", "/bin/sh", "-c", _SETUP, "fate-nfcheck",
             str(check_dir), str(uid), str(gid), str(rel), *LIMITS], Path(SEEN_AS))


def _readable(root: Path) -> None:
    """Directories under `root` traversable by the confined script (the package's extraction
    makes them 0700); its files are 0644, scripts 0755. Nothing there is writable by it."""
    root.chmod(0o755)
    for d, dirs, _files in os.walk(root):
        for sub in dirs:
            (Path(d) / sub).chmod(0o755)


# C0 and C1 controls but tab and newline (the lines are split on the latter), and DEL.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _last_line(stderr: bytes) -> str:
    """The reason: stderr's last line, less the "error: [<nf>/<action>] " the catalogue's
    helpers put first (the message names the NF already), and less control characters (a
    script's NULs and escapes reached the 422's detail: probe of 2026-12-05)."""
    text = _CONTROL.sub("", stderr.decode(errors="replace"))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    last = lines[-1]
    if last.startswith("error: [") and "] " in last:
        last = last.split("] ", 1)[1]
    return last[:500]
