"""netns_release: a released namespace's outer ends are watched until the kernel removes
them, deleted when nothing removes them, waited for by a new NF that takes their names, and
releases are throttled so the kernel's cleanup batches stay small. The kernel is a set of
link names here; tests/integration/test_native_driver.py does it with real namespaces."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator

import pytest

from netfate.drivers import netns, netns_release


class Kernel:
    def __init__(self) -> None:
        self.links: set[str] = set()
        self.deleted: list[str] = []
        self.namespaces: set[str] = set()
        self.lock = threading.Lock()

    def indexes(self, name: str | None, ifnames: Iterable[str]) -> dict[str, int]:
        assert name is None
        with self.lock:
            return {n: i for i, n in enumerate(ifnames) if n in self.links}

    def delete_link(self, ifname: str, ipr: object = None) -> bool:
        with self.lock:
            self.deleted.append(ifname)
            if ifname in self.links:
                self.links.discard(ifname)
                return True
            return False

    def delete(self, name: str) -> bool:
        self.namespaces.discard(name)
        return True

    def remove(self, *names: str) -> None:  # the kernel's cleanup
        with self.lock:
            self.links.difference_update(names)


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Kernel]:
    k = Kernel()
    monkeypatch.setattr(netns, "indexes", k.indexes)
    monkeypatch.setattr(netns, "delete_link", k.delete_link)
    monkeypatch.setattr(netns, "delete", k.delete)
    watch = netns_release.Watch(linger=0.3, poll=0.01, max_pending=4)
    monkeypatch.setattr(netns_release, "_watch", watch)
    yield k
    watch.wait(2)


def test_release_deletes_the_namespace_and_watches_its_ends_until_the_kernel_removes_them(
        kernel: Kernel) -> None:
    kernel.namespaces.add("fate-x")
    kernel.links |= {"fate-pa", "fate-pb"}
    netns_release.release("fate-x", ["fate-pa", "fate-pb"])
    assert kernel.namespaces == set()
    assert netns_release._watch.pending() == ["fate-pa", "fate-pb"]
    kernel.remove("fate-pa", "fate-pb")
    assert netns_release.wait_released(2) == []
    assert kernel.deleted == []  # the kernel did it; nothing was deleted by hand


def test_ends_the_kernel_never_removes_are_deleted_once_it_makes_no_progress(
        kernel: Kernel) -> None:
    kernel.links |= {"fate-held"}
    t0 = time.monotonic()
    netns_release.release("fate-x", ["fate-held"])
    assert netns_release.wait_released(3) == []
    assert kernel.deleted == ["fate-held"] and "fate-held" not in kernel.links
    assert time.monotonic() - t0 >= 0.3  # not before the linger


def test_while_the_kernel_removes_others_a_slow_end_is_not_deleted(kernel: Kernel) -> None:
    """The kernel's cleanup of many NFs runs in batches for seconds; progress means wait."""
    names = [f"fate-p{i}" for i in range(8)]
    kernel.links |= {*names, "fate-slow"}
    for n in names:
        netns_release._watch.add([n])
    netns_release._watch.add(["fate-slow"])
    for n in names:  # one removed every 0.1 s: 0.8 s in all, past the 0.3 s linger
        time.sleep(0.1)
        kernel.remove(n)
    time.sleep(0.1)
    kernel.remove("fate-slow")
    assert netns_release.wait_released(2) == []
    assert kernel.deleted == []


def test_clear_waits_for_a_released_end_then_deletes_a_leftover(kernel: Kernel) -> None:
    netns_release.clear(["fate-none"])
    assert kernel.deleted == []
    kernel.links |= {"fate-going"}
    netns_release.release("fate-x", ["fate-going"])
    threading.Timer(0.05, kernel.remove, args=("fate-going",)).start()
    netns_release.clear(["fate-going"], timeout=2)
    assert kernel.deleted == [] and "fate-going" not in kernel.links
    assert netns_release._watch.pending() == []  # clear took it over
    kernel.links |= {"fate-stuck"}
    netns_release.clear(["fate-stuck"], timeout=0.05)
    assert kernel.deleted == ["fate-stuck"] and not kernel.links


def test_releases_wait_while_many_ends_await_the_kernel(kernel: Kernel) -> None:
    ends = [f"fate-q{i}" for i in range(6)]
    kernel.links |= set(ends)
    netns_release._watch.add(ends)  # 6 > max_pending 4
    threading.Timer(0.2, kernel.remove, args=tuple(ends)).start()
    t0 = time.monotonic()
    netns_release.release("fate-y", [])
    waited = time.monotonic() - t0
    assert 0.15 <= waited < 1.5
    netns_release._watch.throttle(timeout=0.05)  # nothing pending: returns at once
