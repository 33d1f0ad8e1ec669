"""Where the project keeps its runtime state. One root, so `testbed down` can remove it.

The root is the ``paths.run_dir`` setting (NETFATE_RUN_DIR): each entry point calls
`configure` once with it after building the settings; until then it is /run/netfate. This
module reads no environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from netfate.errors import Conflict, InvalidInput

DEFAULT_RUN_DIR = Path("/run/netfate")
# In a run dir NetFATE made or took empty: `testbed down` removes only such a run dir, since
# NETFATE_RUN_DIR may name any directory (a probe's /tmp/x lost its files). Its first word
# says which: MADE (removed whole) or ADOPTED (it existed, empty: only NetFATE's entries go).
MARKER = ".netfate-run-dir"
MADE, ADOPTED = "made", "adopted"
# What NetFATE's commands write at the top of a run dir. A run dir holding only these and no
# marker was written by a command before any `up` (e.g. `images import`), or by a version
# before the marker: it is NetFATE's, and `down` removes these and leaves the directory.
KNOWN_ENTRIES = frozenset({
    "access", "bench", "bench-floor", "bundles", "images", "node-files", "nodes",
    "orchestrator", "ovs", "pids", "runc", "testbed.json", "tls", "ts-rules", "vpnb-cpe",
    "vpnb-gw", "vpngw"})
_run_dir = DEFAULT_RUN_DIR


def configure(run_dir: Path) -> None:
    """Set the root for this process (entry points only, once, from the settings)."""
    global _run_dir
    _run_dir = Path(run_dir)


def run_dir() -> Path:
    return _run_dir


def ovs_dir() -> Path:
    return run_dir() / "ovs"


def bundles_dir() -> Path:
    return run_dir() / "bundles"


def node_dir(node: str) -> Path:
    return run_dir() / "nodes" / node


def claim() -> Path:
    """Make the run dir, or take an empty one or one only NetFATE wrote in (KNOWN_ENTRIES),
    and mark it NetFATE's (MARKER, a regular file created anew, never through a link); the
    run dir. InvalidInput, changing nothing, if it is a symbolic link, not a directory, or
    holds anything else and no marker (someone else's directory, or a marker that is a link
    to a file root would then overwrite)."""
    d = run_dir()
    try:
        st = _lstat(d)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a directory"
            raise InvalidInput(f"run dir {d} (NETFATE_RUN_DIR) is {what}: give a directory "
                               "path NetFATE may make or own")
        if st is None:
            d.mkdir(parents=True)
            kind = MADE
        elif marker_kind(d) is not None:
            return d
        else:  # (a marker being written, left by a crash, is NetFATE's too)
            entries = {e for e in os.listdir(d) if not e.startswith(f"{MARKER}.")}
            if MARKER in entries:
                raise InvalidInput(f"run dir {d} (NETFATE_RUN_DIR): its {MARKER} is "
                                   f"{_untrusted(d / MARKER)}, not a marker NetFATE wrote; "
                                   "give a new or empty directory")
            if entries and not entries <= KNOWN_ENTRIES:
                odd = ", ".join(sorted(entries - KNOWN_ENTRIES)[:3])
                raise InvalidInput(
                    f"run dir {d} (NETFATE_RUN_DIR) holds {odd} and no NetFATE marker "
                    f"({MARKER}, a regular file): it is not one NetFATE made, and `netfate "
                    "testbed down` removes its run dir; give a new or empty directory")
            # Kept by `down` unless it is NetFATE's by its name: empty, it is someone's;
            # holding only NetFATE's entries, it may have been empty before a command wrote.
            kind = MADE if entries and d == DEFAULT_RUN_DIR else ADOPTED
        # Written whole under another name, then linked into place (never over a file that
        # is there): a crash leaves no empty or half marker.
        tmp = d / f"{MARKER}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{kind}: NetFATE's run dir (`netfate testbed down` removes "
                         f"{'it' if kind == MADE else 'what NetFATE put in it'})\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, d / MARKER)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    except OSError as exc:
        raise InvalidInput(f"run dir {d} (NETFATE_RUN_DIR): {exc.strerror or exc}") from None
    return d


def _untrusted(marker: Path) -> str:
    """What a marker NetFATE does not trust is, for the error."""
    st = _lstat(marker)
    if st is None:
        return "gone"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_nlink != 1:
        return f"a file with {st.st_nlink} links"
    return f"a file that does not start with '{MADE}:' or '{ADOPTED}:'"


def _lstat(p: Path) -> os.stat_result | None:
    try:
        return os.lstat(p)
    except FileNotFoundError:
        return None


def is_real_dir(d: Path) -> bool:
    """Whether `d` is a directory itself (not a symbolic link to one)."""
    st = _lstat(d)
    return st is not None and stat.S_ISDIR(st.st_mode)


def marker_kind(d: Path) -> str | None:
    """MADE or ADOPTED if `d` (a directory itself) holds a marker that is a regular file
    with one link (not a symbolic or hard link to another file); None otherwise."""
    if not is_real_dir(d):
        return None
    st = _lstat(d / MARKER)
    if st is None or not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        return None
    try:
        fd = os.open(d / MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        head = fh.read(64)
    # Exactly one of the two words NetFATE writes: anything else (empty, garbage, another
    # spelling) is no marker, and the directory is left alone (re-probe of 2026-12-06: an
    # empty marker counted as MADE, and `down` removed the directory with its files).
    word = head.split(b":", 1)[0] if b":" in head else b""
    return {MADE.encode(): MADE, ADOPTED.encode(): ADOPTED}.get(word)


def removable(d: Path) -> str | None:
    """How `testbed down` may remove run dir `d`: MADE (whole), ADOPTED (NetFATE's entries
    and the marker, the directory kept), or None (not NetFATE's: left as it is). A directory
    of KNOWN_ENTRIES only and no marker counts as ADOPTED (MADE if it is /run/netfate)."""
    kind = marker_kind(d)
    if kind is not None:
        return kind
    if not is_real_dir(d):
        return None
    entries = set(os.listdir(d))
    if not entries or not entries <= KNOWN_ENTRIES:
        return None
    return MADE if d == DEFAULT_RUN_DIR else ADOPTED


def remove(d: Path) -> str | None:
    """Remove run dir `d` as `removable` says; what was done (its kind), None if nothing."""
    kind = removable(d)
    mounts = mount_points()
    d = Path(os.path.realpath(d))  # as the mount table names paths (its parents resolved)
    if kind == MADE:
        _remove_tree(d, os.lstat(d).st_dev, mounts)
    elif kind == ADOPTED:
        dev = os.lstat(d).st_dev
        half = {e for e in os.listdir(d) if e.startswith(f"{MARKER}.")}
        for name in sorted(KNOWN_ENTRIES | {MARKER} | half):
            _remove_tree(d / name, dev, mounts)
    return kind


def mount_points() -> frozenset[str]:
    """Every mount point this process sees (/proc/self/mountinfo): a bind mount of a
    directory of the same file system has the same st_dev, so only the table knows it."""
    out = set()
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", "rb") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 4:  # the 5th: the mount point, with \040-style escapes
                out.add(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]),
                               fields[4]).decode("utf-8", "surrogateescape"))
    return frozenset(out)


def _remove_tree(p: Path, dev: int, mounts: frozenset[str]) -> None:
    """Remove `p` and what is under it, on file system `dev` only: a mount point under it
    (a bind mount of someone's directory at `images`, say) is left with what it holds,
    where shutil.rmtree emptied the mount's source (third probe of 2026-12-06). Links are
    removed, never followed. Best effort: what cannot go stays."""
    st = _lstat(p)
    if st is None:
        return
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(OSError):
            p.unlink()
        return
    if st.st_dev != dev or str(p) in mounts:
        return  # a mount point: not ours to empty
    todo, dirs = [str(p)], []  # iterative: a tree of any depth
    while todo:
        d = todo.pop()
        dirs.append(d)
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                est = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(est.st_mode):
                if est.st_dev == dev and e.path not in mounts:  # (a mount stays, and so
                    todo.append(e.path)  # does its parent)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(e.path)
    for d in reversed(dirs):
        with contextlib.suppress(OSError):
            os.rmdir(d)


@contextlib.contextmanager
def locked(d: Path, doing: str = "testbed up") -> Iterator[None]:
    """Hold an exclusive lock on run dir `d` (flock on the directory itself) for the block,
    `doing` it: Conflict at once if another process holds it (two `testbed up` at once tore
    down each other's OVS; a `down` killed an `up`'s services as they started: probes of
    2026-12-06)."""
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(f"`netfate {doing}`: a `netfate testbed up` is running on run dir "
                           f"{d}; wait for it (Ctrl-C undoes a fresh one)") from None
        yield
    finally:
        os.close(fd)
