"""netns_release: a released namespace's outer ends are watched until the kernel removes
them, deleted when nothing removes them, waited for by a new NF that takes their names, and
releases are throttled so the kernel's cleanup batches stay small. The kernel is a set of
link names here; tests/integration/test_native_driver.py does it with real namespaces."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator

import pytest

from netfate.drivers import netns, netns_release, nf_pool
from netfate.errors import Conflict


class Kernel:
    def __init__(self) -> None:
        self.links: dict[str, int] = {}  # name -> ifindex
        self.kinds: dict[str, str] = {}
        self.deleted: list[str] = []
        self.namespaces: set[str] = set()
        self.lock = threading.Lock()
        self.next = 100

    def make(self, *names: str, kind: str = "veth") -> None:
        with self.lock:
            for n in names:
                self.next += 1
                self.links[n] = self.next
                self.kinds[n] = kind

    def indexes(self, name: str | None, ifnames: Iterable[str]) -> dict[str, int]:
        assert name is None
        with self.lock:
            return {n: self.links[n] for n in ifnames if n in self.links}

    def link_kinds(self, names: Iterable[str]) -> dict[str, str]:
        with self.lock:
            return {n: self.kinds[n] for n in names if n in self.links}

    def delete_index(self, index: int) -> bool:
        with self.lock:
            for n, i in list(self.links.items()):
                if i == index:
                    del self.links[n]
                    self.deleted.append(n)
                    return True
            return False

    def delete(self, name: str) -> bool:
        self.namespaces.discard(name)
        return True

    def remove(self, *names: str) -> None:  # the kernel's cleanup
        with self.lock:
            for n in names:
                self.links.pop(n, None)


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Kernel]:
    k = Kernel()
    monkeypatch.setattr(netns, "indexes", k.indexes)
    monkeypatch.setattr(netns, "delete_index", k.delete_index)
    monkeypatch.setattr(netns, "link_kinds", k.link_kinds)
    monkeypatch.setattr(netns, "delete", k.delete)
    watch = netns_release.Watch(linger=0.3, poll=0.01, max_pending=4, cap=1.5)
    monkeypatch.setattr(netns_release, "_watch", watch)
    yield k
    watch.wait(2)


def test_release_deletes_the_namespace_and_watches_its_ends_until_the_kernel_removes_them(
        kernel: Kernel) -> None:
    kernel.namespaces.add("fate-x")
    kernel.make("fate-pa", "fate-pb")
    netns_release.release("fate-x", ["fate-pa", "fate-pb"])
    assert kernel.namespaces == set()
    assert netns_release._watch.pending() == ["fate-pa", "fate-pb"]
    kernel.remove("fate-pa", "fate-pb")
    assert netns_release.wait_released(2) == []
    assert kernel.deleted == []  # the kernel did it; nothing was deleted by hand


def test_ends_the_kernel_never_removes_are_deleted_once_it_makes_no_progress(
        kernel: Kernel) -> None:
    kernel.make("fate-held")
    t0 = time.monotonic()
    netns_release.release("fate-x", ["fate-held"])
    assert netns_release.wait_released(3) == []
    assert kernel.deleted == ["fate-held"] and "fate-held" not in kernel.links
    assert time.monotonic() - t0 >= 0.3  # not before the linger


def test_while_the_kernel_removes_others_a_slow_end_is_not_deleted(kernel: Kernel) -> None:
    """The kernel's cleanup of many NFs runs in batches for seconds; progress means wait."""
    names = [f"fate-p{i}" for i in range(8)]
    kernel.make(*names, "fate-slow")
    netns_release._watch.add(kernel.indexes(None, [*names, "fate-slow"]))
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
    kernel.make("fate-going")
    netns_release.release("fate-x", ["fate-going"])
    threading.Timer(0.05, kernel.remove, args=("fate-going",)).start()
    netns_release.clear(["fate-going"], timeout=2)
    assert kernel.deleted == [] and "fate-going" not in kernel.links
    assert netns_release._watch.pending() == []  # clear took it over
    kernel.make("fate-stuck")
    netns_release.clear(["fate-stuck"], timeout=0.05)
    assert kernel.deleted == ["fate-stuck"] and not kernel.links


def test_releases_wait_while_many_ends_await_the_kernel(kernel: Kernel) -> None:
    ends = [f"fate-q{i}" for i in range(6)]
    kernel.make(*ends)
    netns_release._watch.add(kernel.indexes(None, ends))  # 6 > max_pending 4
    threading.Timer(0.2, kernel.remove, args=tuple(ends)).start()
    t0 = time.monotonic()
    netns_release.release("fate-y", [])
    waited = time.monotonic() - t0
    assert 0.15 <= waited < 1.5
    netns_release._watch.throttle(timeout=0.05)  # nothing pending: returns at once


def test_a_name_taken_by_a_new_link_counts_as_gone_and_the_new_link_is_never_deleted(
        kernel: Kernel) -> None:
    """(review) A VM NF of the same id makes a tap under the old veth's name at once."""
    kernel.make("fate-pv")
    netns_release.release("fate-x", ["fate-pv"])
    kernel.remove("fate-pv")
    kernel.make("fate-pv", kind="tun")
    assert netns_release.wait_released(2) == []
    time.sleep(0.5)  # past the linger
    assert "fate-pv" in kernel.links and kernel.deleted == []


def test_clear_leaves_another_kind_of_link_alone_and_says_so(kernel: Kernel) -> None:
    kernel.make("fate-tap", kind="tun")
    assert netns_release.clear(["fate-tap", "fate-free"], timeout=0.05) == ["fate-tap"]
    assert "fate-tap" in kernel.links and kernel.deleted == []
    with pytest.raises(Conflict, match=r"fate-tap.*not a veth"):
        nf_pool._clear(["fate-tap"])


def test_a_held_end_is_deleted_at_the_cap_even_while_the_kernel_removes_others(
        kernel: Kernel) -> None:
    kernel.make("fate-held")
    netns_release.release("fate-x", ["fate-held"])
    stop = time.monotonic() + 4
    i = 0
    while "fate-held" in kernel.links and time.monotonic() < stop:
        i += 1  # steady churn: another NF released and removed every 0.1 s
        kernel.make(f"fate-c{i}")
        netns_release._watch.add(kernel.indexes(None, [f"fate-c{i}"]))
        time.sleep(0.1)
        kernel.remove(f"fate-c{i}")
    assert kernel.deleted == ["fate-held"]


def test_ends_held_past_the_linger_do_not_throttle_releases(kernel: Kernel) -> None:
    ends = [f"fate-old{i}" for i in range(6)]
    kernel.make(*ends)
    watch = netns_release._watch
    with watch._cv:  # released long ago (a stuck namespace), not yet deleted
        for n in ends:
            watch._ends[n] = (time.monotonic() - 5, kernel.links[n])
    t0 = time.monotonic()
    watch.throttle(timeout=1)
    assert time.monotonic() - t0 < 0.2
