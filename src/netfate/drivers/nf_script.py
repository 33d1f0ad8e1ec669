"""Running one lifecycle script of a native NF: inside its namespace, in its cgroups, with its
inputs in the environment and files only (the NNF paper, section IV)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from netfate.bundle import Bundle
from netfate.drivers import cgroups, nf_files
from netfate.errors import ConfigRefused, DriverError
from netfate.interfaces import NFInfo
from netfate.proc import netns_argv

SCRIPT_TIMEOUT = 30.0  # s: the compute.script_timeout setting's default (NETFATE_SCRIPT_TIMEOUT)
NF_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
# Joins the NF's cgroups, then becomes the lifecycle script ($0). A fixed program: the
# cgroup files come through the environment. (A Python preexec_fn would do the same but
# forces fork() of this whole process: ~20 ms a script instead of ~2.)
_JOIN_CGROUPS = 'for f in $NF_CGROUP_PROCS; do echo $$ > "$f"; done; exec /bin/bash "$0"'
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EX_CONFIG = 78  # sysexits.h: "configuration error"; the NF refused its config (ConfigRefused)


def script_failed(instance_id: str, action: str, code: int, stderr: str) -> DriverError:
    """The error for an NF's ``action`` script that exited ``code`` (non-zero) with
    ``stderr`` (its tail is kept): ConfigRefused for EX_CONFIG (the configuration is at
    fault: 422, not retried as is), else DriverError (a failure of the node: 500). The same
    for every flavour: native, container (runc) and VM (guest agent)."""
    msg = stderr.strip()[-2000:]
    if code == EX_CONFIG:
        return ConfigRefused(f"{instance_id}: {action}: the NF refused its configuration: "
                             f"{msg}")
    return DriverError(f"{instance_id}: {action} failed (exit {code}): {msg}")


def script_env(info: NFInfo, bundle: Bundle, action: str, nf_dir: Path, notify_dir: Path,
               cache_dir: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment of an `action` script: ``nf_dir`` is the instance's directory,
    ``notify_dir`` the node's notification queue, ``cache_dir`` the bundle's shared cache;
    ``extra_env`` adds or overrides variables (NF_RESUME, NF_EXPORT_FILE, ...)."""
    env = {
        "PATH": _PATH,
        "LANG": "C.UTF-8",
        "NF_ACTION": action,
        "NF_ID": info.instance_id,
        "NF_NAME": info.name,
        "NF_OWNER": info.owner,
        "NF_NODE": info.node,
        "NF_DIR": str(nf_dir),
        "NF_BUNDLE_DIR": str(bundle.root),
        "NF_PORTS": " ".join(p.name for p in info.ports),
        "NF_CONFIG": str(nf_dir / "config.json"),
        "NF_STATE_DIR": str(nf_dir / "state"),
        "NF_RUN_DIR": str(nf_dir / "run"),
        "NF_NOTIFY_DIR": str(notify_dir),
        "NF_PYTHON": NF_PYTHON,
        "NF_CACHE_DIR": str(cache_dir),
        **(extra_env or {}),
    }
    env["NF_CGROUP_PROCS"] = " ".join(cgroups.procs_files(info.instance_id))
    return env


def run_script(info: NFInfo, bundle: Bundle, action: str, env: dict[str, str], nf_dir: Path,
               timeout: float) -> str:
    """Run the bundle's `action` script (if it has one) with ``env`` (see `script_env`) in
    ``nf_dir``, and return its standard output ("" when the bundle has no such script).

    Raises ConfigRefused when the script exits EX_CONFIG (78), DriverError when it exits
    otherwise non-zero (both with the tail of its stderr) or runs longer than ``timeout``
    seconds (it is then killed).
    """
    script = bundle.script(action)
    if script is None:
        return ""
    # Output goes to files, not pipes: a daemon the script leaves running inherits them,
    # and waiting for a pipe's EOF would then wait for the daemon. run/ is the NF's to write:
    # the files are made and read without following links, bounded (drivers/nf_files.py).
    out_rel, err_rel = f"run/.{action}.out", f"run/.{action}.err"
    try:
        out_fd = nf_files.create(nf_dir, out_rel)
        try:
            err_fd = nf_files.create(nf_dir, err_rel)
        except OSError:
            os.close(out_fd)
            raise
        with os.fdopen(out_fd, "wb") as out, os.fdopen(err_fd, "wb") as err:
            cp = subprocess.run(  # noqa: S603 - fixed argv, data goes through env and files
                [*netns_argv(info.netns, ["/bin/bash", "-c", _JOIN_CGROUPS]), str(script)],
                env=env,
                cwd=nf_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=timeout,
                check=False,
            )
        stderr = nf_files.read(nf_dir, err_rel, limit=nf_files.MAX_STDERR, tail=True) or b""
        stdout = nf_files.read(nf_dir, out_rel, limit=nf_files.MAX_OUTPUT) or b""
    except subprocess.TimeoutExpired:
        raise DriverError(
            f"{info.instance_id}: {action} script timed out after {timeout}s"
        ) from None
    except OSError as exc:  # UnsafeFile: the NF put a link or a FIFO in the file's place
        raise DriverError(f"{info.instance_id}: {action}'s output: {exc}") from None
    finally:
        nf_files.unlink(nf_dir, out_rel)
        nf_files.unlink(nf_dir, err_rel)
    if cp.returncode != 0:
        raise script_failed(info.instance_id, action, cp.returncode,
                            stderr.decode(errors="replace"))
    return stdout.decode(errors="replace")
