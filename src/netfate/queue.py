"""A node's local notification queue: NFs drop JSON files (maildir style: write in tmp/, rename
into new/), and the agent drains them to forward."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import time
import uuid
from pathlib import Path
from typing import Any

MAX_NOTE_BYTES = 64 * 1024  # one notification: a few hundred bytes in practice
NF_QUEUES = "nf"  # root/nf/<instance id>/: the queue of one confined (container) NF
MAX_NF_QUEUES = 4096


class NotificationQueue:
    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> Path:
        for sub in ("tmp", "new"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return self.root

    def post(self, note: dict[str, Any]) -> None:
        self.ensure()
        name = f"{time.time():.6f}-{uuid.uuid4().hex[:8]}.json"
        tmp = self.root / "tmp" / name
        tmp.write_text(json.dumps(note))
        os.rename(tmp, self.root / "new" / name)

    def for_nf(self, instance_id: str) -> NotificationQueue:
        """The queue of one NF alone (root/nf/<instance id>), made if missing: a container NF
        gets only this directory, so it can neither read another NF's notifications nor plant
        one in another's name (`drain` stamps each with the directory's NF id). ValueError for
        an id that is not one path component."""
        if not instance_id or instance_id in (".", "..") or "/" in instance_id \
                or "\x00" in instance_id:
            raise ValueError(f"NF id {instance_id[:80]!r} is not a directory name")
        q = NotificationQueue(self.root / NF_QUEUES / instance_id)
        q.ensure()
        return q

    def remove_nf(self, instance_id: str) -> None:
        """Forward what the NF's own queue still holds to this one, then remove it."""
        q = self.for_nf(instance_id)
        for note in q.drain():
            note["nf_id"] = instance_id
            self.post(note)
        shutil.rmtree(q.root, ignore_errors=True)

    def pending(self) -> list[Path]:
        try:
            return sorted((self.root / "new").glob("*.json"))
        except FileNotFoundError:
            return []

    def drain(self) -> list[dict[str, Any]]:
        """Every queued notification: this queue's (`drain_own`), then each NF's own queue's
        (`for_nf`), stamped with that NF's id, oldest first within each."""
        out = self.drain_own()
        try:
            subs = sorted(os.scandir(self.root / NF_QUEUES), key=lambda e: e.name)
        except OSError:
            return out
        for e in subs[:MAX_NF_QUEUES]:
            if not e.is_dir(follow_symlinks=False):  # only the agent writes root/nf itself
                continue
            for note in NotificationQueue(Path(e.path)).drain_own():
                note["nf_id"] = e.name
                out.append(note)
        return out

    def drain_own(self) -> list[dict[str, Any]]:
        """Read and remove every queued notification, oldest first; skip malformed files
        (not JSON, nested too deeply, over MAX_NOTE_BYTES, or not a regular file: an NF
        writes the directory, so a link, a fifo or a huge file must neither be followed,
        block the agent, nor stay to stop every later notification). Everything goes
        through one descriptor of new/ opened without following a link: a container NF can
        replace new/ by a symlink to a host directory, whose *.json the agent (root) would
        otherwise read and delete."""
        out: list[dict[str, Any]] = []
        new = self.root / "new"
        try:
            dfd = os.open(new, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return out
        except OSError:  # a symlink (or a file) in place of new/: drop it, start afresh
            with contextlib.suppress(OSError):
                new.unlink()
            return out
        try:
            for name in sorted(n for n in os.listdir(dfd) if n.endswith(".json")):
                try:
                    data = json.loads(_read_note(name, dfd))
                    if isinstance(data, dict):
                        out.append(data)
                except (OSError, ValueError, RecursionError):
                    pass
                finally:
                    _remove(name, dfd)
        finally:
            os.close(dfd)
        return out


def _remove(name: str, dfd: int) -> None:
    try:
        os.unlink(name, dir_fd=dfd)
    except IsADirectoryError:  # an NF made a directory called *.json
        with contextlib.suppress(OSError):
            os.rmdir(name, dir_fd=dfd)
    except OSError:
        pass


def _read_note(name: str, dfd: int) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_NOTE_BYTES:
            raise ValueError(f"{name}: not a regular file of at most {MAX_NOTE_BYTES} bytes")
        data = fh.read(MAX_NOTE_BYTES + 1)
    if len(data) > MAX_NOTE_BYTES:
        raise ValueError(f"{name}: over {MAX_NOTE_BYTES} bytes")
    return data
