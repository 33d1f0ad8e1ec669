"""An NF's own check of a config, before the orchestrator takes it: the package's optional
`check-config` script (catalogue README, "Script contract"), for what a JSON Schema cannot
say: a NAT's port_min above its port_max, a load balancer's backend outside its network, two
tenants of one shared firewall on one VLAN. The config-schema is checked first
(`api.nf_configs.validate_config`); before this, such a config was stored and failed only on
the node, at the user's login (probe of 2026-12-03).

The script is the package's code, so it runs confined: as `nobody`, with no capabilities and
no_new_privs (setpriv), in a network namespace of its own with nothing in it (unshare), with
limits on CPU time, memory, file size and open files (prlimit), its process group killed
after CHECK_TIMEOUT_S, in a fresh directory holding the extracted package and the config,
removed afterwards. A package without the script is taken on its schema alone.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netfate.bundle import BundleStore
from netfate.descriptor import Descriptor
from netfate.drivers.nf_script import NF_PYTHON
from netfate.errors import Conflict, InvalidInput

SCRIPT = "check-config"
CHECK_TIMEOUT_S = 5.0  # wall clock; CPU time is limited to the same by prlimit
MAX_STDERR = 64 * 1024  # bytes the script may write (RLIMIT_FSIZE): its reason, not a flood
LIMITS = ("--as=536870912", "--cpu=5", f"--fsize={MAX_STDERR}", "--nofile=64", "--core=0")
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Packages known to have no check-config script (by sha256: a package never changes), so a
# user's edit does not unpack them again to find out.
_WITHOUT: set[str] = set()


def check_config(sha256: str, package: Callable[[], bytes], desc: Descriptor,
                 config: dict[str, Any]) -> None:
    """Run package `sha256`'s check-config script (`package()` gives its bytes) on `config`
    (schema-valid, defaults filled, as the NF gets it). Raises InvalidInput with the NF's
    reason (the last line of its stderr) when the script refuses it (non-zero exit), and
    Conflict when the script cannot run or does not finish in CHECK_TIMEOUT_S (the package's
    fault, not the caller's). Returns when it accepts it or the package has no such script."""
    if sha256 in _WITHOUT:
        return
    with tempfile.TemporaryDirectory(prefix="fate-nfcheck-") as tmp:
        bundle = BundleStore(Path(tmp) / "b").add(package(), expected_sha256=sha256)
        script = bundle.script(SCRIPT)
        if script is None:
            _WITHOUT.add(sha256)
            return
        _readable(Path(tmp))
        cfg_file = Path(tmp) / "config.json"
        cfg_file.write_text(json.dumps(config))
        cfg_file.chmod(0o644)
        env = {"PATH": _PATH, "LANG": "C.UTF-8", "NF_ACTION": SCRIPT, "NF_NAME": desc.name,
               "NF_BUNDLE_DIR": str(bundle.root), "NF_CONFIG": str(cfg_file),
               "NF_PORTS": " ".join(p.name for p in desc.ports), "NF_PYTHON": NF_PYTHON}
        err_path = Path(tmp) / "stderr"
        with open(err_path, "wb") as err:
            rc = _run(_confined(["/bin/bash", str(script)]), env, tmp, err, desc.name)
        reason = _last_line(err_path.read_bytes()[-MAX_STDERR:])
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


def _confined(argv: list[str]) -> list[str]:
    """`argv` as nobody in an empty network namespace, within LIMITS (as root); within
    LIMITS only when the orchestrator is not root (it is then unprivileged itself)."""
    limited = ["prlimit", *LIMITS, "--", *argv]
    if os.geteuid() != 0:
        return limited
    try:
        pw = pwd.getpwnam("nobody")
        uid, gid = pw.pw_uid, pw.pw_gid
    except KeyError:
        uid = gid = 65534
    return ["unshare", "--net", "--", "setpriv", f"--reuid={uid}", f"--regid={gid}",
            "--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all",
            "--", *limited]


def _readable(root: Path) -> None:
    """Directories under `root` traversable by the confined script (the package's extraction
    makes them 0700); its files are 0644, scripts 0755. Nothing there is writable by it."""
    root.chmod(0o755)
    for d, dirs, _files in os.walk(root):
        for sub in dirs:
            (Path(d) / sub).chmod(0o755)


def _last_line(stderr: bytes) -> str:
    """The reason: stderr's last line, less the "error: [<nf>/<action>] " the catalogue's
    helpers put first (the message names the NF already)."""
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    if not lines:
        return ""
    last = lines[-1]
    if last.startswith("error: [") and "] " in last:
        last = last.split("] ", 1)[1]
    return last[:500]
