"""Deleting an NF's namespace without waiting for the kernel, and making sure its ports go.

An NF's ports are veth pairs: one end inside its namespace, the outer end on the host (and
the LSI). Deleting them with a netlink request waits for the kernel to unregister them:
27-49 ms per NF here (2026-12-05, 200 namespaces with two veth pairs each; a delete by
interface group, one RCU grace period per request), the largest part of an NF's delete.
Releasing the namespace instead (unmounting its file, what `ip netns del` does) returns
in microseconds; the kernel then destroys the namespace's devices, and with each veth its
outer end, in its cleanup work, which takes every namespace released meanwhile as one
batch: 0.4 ms per NF for the same 200. What stays is the kernel's own work: a firewall's
Linux bridge costs an rcu_barrier (br_multicast_dev_del, ~17 ms here) under the RTNL lock,
one after another, so releases are throttled to keep each batch small (MAX_PENDING).

So the outer ends outlive `release` by some milliseconds. Two things follow, both here:
- a new NF whose ports take the same names (the same instance made again) waits for them
  to go, and deletes them if they do not (`clear`);
- a namespace kept alive by something still inside it (a process no stop ended, a socket)
  would keep its veths too: the outer ends still there `LINGER_S` after the release, with
  no progress of the kernel's cleanup meanwhile, are deleted by a background thread (which
  deletes the inner ends with them; `Watch`).

`wait_released` tells when everything released by this process is gone (the density
benchmark counts that time in its deletes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from netfate.drivers import netns

log = logging.getLogger(__name__)
LINGER_S = 10.0  # s an outer end may outlive its release, and the kernel's last progress
POLL_S = 0.01  # s between the watcher's looks
# Outer ends awaiting the kernel past which a release waits (up to BACKPRESSURE_S): the
# kernel cleans up every namespace released meanwhile in one batch under the RTNL lock, and a
# firewall's bridge costs an rcu_barrier there (~17 ms here, br_multicast_dev_del), so a
# thousand released at once would hold every netlink request on the host for ~17 s. Smaller
# batches cost more per NF (their own grace periods): 27 / 23 / 20 ms per firewall with 16 /
# 64 / unbounded here (2026-12-05, 200 each); 32 (16 NFs) holds the lock up to ~0.3 s.
MAX_PENDING = 32
BACKPRESSURE_S = 2.0
CAP_S = 60.0  # s after its release an outer end is deleted, whatever the kernel is doing
CLEAR_POLL_S = 0.002  # s between looks while a new NF waits for its names


class Watch:
    """Outer ends of released namespaces, each known by name and interface index, until the
    kernel has removed them (the name gone, or taken by another link). Those still there
    once `linger` s have passed since they were released and since the kernel last removed
    any watched end (its cleanup of a thousand NFs runs for tens of seconds, in batches), or
    `cap` s after their release whatever else happens, are deleted by their index (never a
    newer link of the same name), and logged: something held their namespace."""

    def __init__(self, linger: float = LINGER_S, poll: float = POLL_S,
                 max_pending: int = MAX_PENDING, cap: float = CAP_S) -> None:
        self.linger = linger
        self.poll = poll
        self.max_pending = max_pending
        self.cap = cap
        self._ends: dict[str, tuple[float, int]] = {}  # name -> (release time, ifindex)
        self._progress = 0.0  # monotonic time the kernel last removed a watched end
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, ends: dict[str, int]) -> None:
        """Watch these outer ends (name -> interface index)."""
        if not ends:
            return
        with self._cv:
            now = time.monotonic()
            for n, i in ends.items():
                self._ends[n] = (now, i)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="netns-release",
                                                daemon=True)
                self._thread.start()

    def throttle(self, timeout: float = BACKPRESSURE_S) -> None:
        """Wait (up to `timeout` s) until no more than max_pending outer ends released in
        the last `linger` s await the kernel, so that its next cleanup batch stays small
        (see MAX_PENDING); ends held longer (a stuck namespace) do not count."""
        end = time.monotonic() + timeout
        with self._cv:
            while time.monotonic() < end:
                young = time.monotonic() - self.linger
                if sum(1 for t, _ in self._ends.values() if t >= young) <= self.max_pending:
                    return
                self._cv.wait(min(self.poll, max(0.0, end - time.monotonic())))

    def pending(self) -> list[str]:
        with self._cv:
            return sorted(self._ends)

    def forget(self, links: Iterable[str]) -> None:
        with self._cv:
            for n in links:
                self._ends.pop(n, None)
            self._cv.notify_all()

    def wait(self, timeout: float) -> list[str]:
        """Block until every watched outer end is gone or `timeout` s have passed; the
        names still there (an empty list: all gone)."""
        end = time.monotonic() + timeout
        with self._cv:
            while self._ends and time.monotonic() < end:
                self._cv.wait(min(self.poll, max(0.0, end - time.monotonic())))
            return sorted(self._ends)

    def _run(self) -> None:
        while True:
            with self._cv:
                if not self._ends:
                    self._thread = None
                    return
                names = list(self._ends)
            try:
                present = netns.indexes(None, names)
            except OSError as exc:  # no socket now: look again later
                log.warning("cannot look at released NF ports: %s", exc)
                time.sleep(max(self.poll, 0.1))
                continue
            now = time.monotonic()
            overdue: list[tuple[str, int, float]] = []
            with self._cv:
                for n in names:
                    got = self._ends.get(n)
                    if got is None:  # taken over by clear() meanwhile
                        continue
                    since, index = got
                    if present.get(n) != index:  # removed (its name free, or reused)
                        del self._ends[n]
                        self._progress = now
                for n in names:
                    got = self._ends.get(n)
                    if got is None:
                        continue
                    since, index = got
                    if (now - max(since, self._progress) > self.linger
                            or now - since > self.cap):
                        overdue.append((n, index, now - since))
                self._cv.notify_all()
            for n, index, age in overdue:
                log.warning("%s is still there %.1f s after its NF's namespace was released, "
                            "and the kernel removed nothing meanwhile (something keeps the "
                            "namespace alive); deleting it", n, age)
                try:
                    netns.delete_index(index)
                except Exception as exc:  # logged; testbed down removes it
                    log.warning("cannot delete %s: %s", n, exc)
                with self._cv:  # still pending until deleted: wait() returns after this
                    if self._ends.get(n, (0.0, -1))[1] == index:
                        del self._ends[n]
                    self._cv.notify_all()
            time.sleep(self.poll)


_watch = Watch()


def release(ns: str, outer_ends: Iterable[str]) -> None:
    """Delete namespace `ns` without waiting for the kernel: its devices, and the veths'
    `outer_ends` on the host with them, go in the kernel's cleanup of the namespace (see the
    module docstring); those still there after LINGER_S are deleted here."""
    _watch.throttle()
    ends = netns.indexes(None, list(outer_ends))  # known by index: a name may be reused
    netns.delete(ns)
    _watch.add(ends)


def clear(links: Iterable[str], timeout: float = 2.0) -> list[str]:
    """Make sure no veth has any of the names `links` before a new NF takes them: wait up
    to `timeout` s for those of a released namespace to go, then delete the veths left (a
    leftover of an NF made with the same instance id). Microseconds when none exists.
    Returns the names held by links of another kind (a VM NF's tap): left untouched, for
    the caller to refuse or reuse."""
    names = list(links)
    left = netns.indexes(None, names)
    if not left:
        return []
    kinds = netns.link_kinds(list(left))
    other = sorted(n for n in left if kinds.get(n) != "veth")
    veths = {n: i for n, i in left.items() if n not in other}
    end = time.monotonic() + timeout
    while veths and time.monotonic() < end:
        time.sleep(CLEAR_POLL_S)
        now = netns.indexes(None, list(veths))
        veths = {n: i for n, i in veths.items() if now.get(n) == i}
    for i in veths.values():
        netns.delete_index(i)
    _watch.forget(n for n in names if n not in other)
    return other


def wait_released(timeout: float = 30.0) -> list[str]:
    """Wait until every outer end this process released is gone (or `timeout` s); the
    names still there."""
    return _watch.wait(timeout)
