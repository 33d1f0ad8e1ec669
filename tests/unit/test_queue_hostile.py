"""The node's notification queue is written by NFs: a hostile file in it is skipped and
removed, never followed, waited on, or left to stop every later notification."""

from __future__ import annotations

import os
from pathlib import Path

from netfate.queue import MAX_NOTE_BYTES, NotificationQueue


def test_hostile_files_are_skipped_removed_and_do_not_block_the_rest(tmp_path: Path) -> None:
    q = NotificationQueue(tmp_path / "q")
    new = q.ensure() / "new"
    (new / "0-deep.json").write_text("[" * 100_000 + "]" * 100_000)  # RecursionError
    (new / "1-huge.json").write_bytes(b'{"a": "' + b"x" * MAX_NOTE_BYTES + b'"}')
    os.mkfifo(new / "2-fifo.json")  # opening it plainly waits for a writer forever
    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "leak"}')
    (new / "3-link.json").symlink_to(secret)  # never followed
    (new / "4-dir.json").mkdir()
    q.post({"type": "flood", "owner": "u"})
    assert q.drain() == [{"type": "flood", "owner": "u"}]
    assert list(new.iterdir()) == []
    assert secret.exists()
    q.post({"type": "again"})
    assert q.drain() == [{"type": "again"}]


def test_new_replaced_by_a_symlink_to_a_host_directory_is_not_followed(
        tmp_path: Path) -> None:
    host = tmp_path / "host-state"
    host.mkdir()
    (host / "precious.json").write_text('{"type": "state"}')
    q = NotificationQueue(tmp_path / "q")
    q.ensure()
    os.rmdir(q.root / "new")
    (q.root / "new").symlink_to(host)  # what a container NF can do in its /nf/notify
    assert q.drain() == []
    assert (host / "precious.json").exists()
    assert not (q.root / "new").exists()
    q.post({"type": "flood"})  # the queue works again
    assert q.drain() == [{"type": "flood"}]
