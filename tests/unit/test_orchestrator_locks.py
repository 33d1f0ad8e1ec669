"""The coordinator's locks: a shared/exclusive gate and per-user locks."""

from __future__ import annotations

import asyncio

import pytest

from netfate.orchestrator.locks import Gate, KeyedLocks


def test_gate_shares_and_excludes_in_order() -> None:
    async def main() -> list[str]:
        gate = Gate()
        log: list[str] = []
        await gate.acquire(False)
        await gate.acquire(False)
        assert gate.shared == 2

        async def writer() -> None:
            await gate.acquire(True)
            log.append("writer")
            await asyncio.sleep(0)
            gate.release(True)

        async def late_reader() -> None:
            await gate.acquire(False)
            log.append("reader")
            gate.release(False)

        w = asyncio.create_task(writer())
        await asyncio.sleep(0)
        r = asyncio.create_task(late_reader())  # comes after the waiting writer: waits too
        await asyncio.sleep(0)
        assert log == []
        gate.release(False)
        gate.release(False)
        await asyncio.gather(w, r)
        assert not gate.exclusive and gate.shared == 0
        return log

    assert asyncio.run(main()) == ["writer", "reader"]


def test_gate_cancelled_waiter_does_not_block_others() -> None:
    async def main() -> None:
        gate = Gate()
        await gate.acquire(False)
        w = asyncio.create_task(gate.acquire(True))
        await asyncio.sleep(0)
        r = asyncio.create_task(gate.acquire(False))
        await asyncio.sleep(0)
        w.cancel()
        with pytest.raises(asyncio.CancelledError):
            await w
        await asyncio.wait_for(r, 1)
        assert gate.shared == 2
        gate.release(False)
        gate.release(False)
        with pytest.raises(RuntimeError):
            gate.release(False)

    asyncio.run(main())


def test_keyed_locks_serialise_one_key_only_and_forget_idle_keys() -> None:
    async def main() -> None:
        locks = KeyedLocks()
        order: list[str] = []

        async def job(key: str, tag: str, hold: float) -> None:
            await locks.acquire(key)
            try:
                order.append(f"{tag}+")
                await asyncio.sleep(hold)
                order.append(f"{tag}-")
            finally:
                locks.release(key)

        await asyncio.gather(job("u1", "a", 0.02), job("u1", "b", 0), job("u2", "c", 0))
        # b waits for a (same user); c (another user) runs meanwhile
        assert order.index("a-") < order.index("b+")
        assert order.index("c+") < order.index("a-")
        assert len(locks) == 0 and not locks.locked("u1")

    asyncio.run(main())
