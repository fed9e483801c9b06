"""Group commit (gatekeeper.store.batching): batches form only under concurrency, errors and
cancellations reach exactly the callers they concern."""

from __future__ import annotations

import asyncio

import pytest

from gatekeeper.store import StoreError
from gatekeeper.store.batching import Batcher


class Doubler:
    """A batch statement stand-in that takes a round trip's time and records each batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def run(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await asyncio.sleep(0.01)
        if any(item < 0 for item in items):
            raise ValueError("negative")
        return [item * 2 for item in items]


async def as_store_error(exc: Exception) -> Exception:
    return StoreError(f"database error: {exc}")


def test_a_lone_call_goes_at_once_in_a_batch_of_its_own() -> None:
    doubler = Doubler()
    batcher = Batcher(doubler.run, as_store_error, flights=2, limit=64)
    assert asyncio.run(batcher(21)) == 42
    assert doubler.batches == [[21]]


def test_concurrent_calls_share_batches_and_each_gets_its_own_result() -> None:
    doubler = Doubler()
    batcher = Batcher(doubler.run, as_store_error, flights=2, limit=16)

    async def burst() -> list[int]:
        return await asyncio.gather(*(batcher(n) for n in range(50)))

    assert asyncio.run(burst()) == [n * 2 for n in range(50)]
    assert sorted(item for batch in doubler.batches for item in batch) == list(range(50))
    assert len(doubler.batches) < 10  # two first calls alone, then batches of up to 16
    assert max(len(batch) for batch in doubler.batches) == 16


def test_a_failed_batch_raises_a_store_error_in_each_of_its_callers_only() -> None:
    doubler = Doubler()
    batcher = Batcher(doubler.run, as_store_error, flights=1, limit=64)

    async def burst() -> list[int | BaseException]:
        first = asyncio.ensure_future(batcher(1))  # in flight alone
        await asyncio.sleep(0)
        rest = [batcher(n) for n in (2, -3, 4)]  # queue behind it: one batch, which fails
        return await asyncio.gather(first, *rest, return_exceptions=True)

    first, *rest = asyncio.run(burst())
    assert first == 2
    assert all(isinstance(error, StoreError) and "negative" in str(error) for error in rest)
    assert len({id(error) for error in rest}) == 3  # an instance each, not one shared
    assert batcher.queue == [] and batcher.flying == 0


def test_a_cancelled_caller_does_not_cancel_the_batch_the_others_wait_for() -> None:
    doubler = Doubler()
    batcher = Batcher(doubler.run, as_store_error, flights=1, limit=64)

    async def burst() -> list[int]:
        calls = [asyncio.ensure_future(batcher(n)) for n in range(5)]
        await asyncio.sleep(0.001)
        calls[2].cancel()
        with pytest.raises(asyncio.CancelledError):
            await calls[2]
        return [await call for n, call in enumerate(calls) if n != 2]

    assert asyncio.run(burst()) == [0, 2, 6, 8]


def test_a_call_made_as_the_last_flight_lands_still_goes() -> None:
    """A flight that finds the queue empty ends; a call made in the same event loop step, after
    the flight's task has ended but before its done callbacks have run, must still start a
    flight rather than wait for one that has ended (it waited for ever: a gate call timed out
    in CI)."""

    async def at_once(items: list[int]) -> list[int]:  # no await: a flight runs in one step
        return [item * 2 for item in items]

    batcher = Batcher(at_once, as_store_error, flights=1, limit=64)

    async def late_call() -> int:
        first = asyncio.ensure_future(batcher(1))
        for _ in range(10):  # step until the flight has ended, its done callbacks still queued
            await asyncio.sleep(0)
            if batcher.tasks and all(task.done() for task in batcher.tasks):
                break
        assert batcher.tasks and all(task.done() for task in batcher.tasks)
        async with asyncio.timeout(1):
            second = await batcher(2)  # in this very step
        return await first + second

    assert asyncio.run(late_call()) == 6


def test_callers_get_an_error_even_when_translating_the_error_fails() -> None:
    async def broken(items: list[int]) -> list[int]:
        raise ValueError("statement failed")

    async def failing_lookup(exc: Exception) -> Exception:
        raise OSError("pool check failed")

    batcher = Batcher(broken, failing_lookup, flights=1, limit=64)

    async def call() -> None:
        async with asyncio.timeout(1):
            await batcher(1)

    with pytest.raises(OSError, match="pool check failed"):
        asyncio.run(call())
    assert batcher.flying == 0


def test_a_flight_cancelled_while_translating_an_error_leaves_no_caller_waiting() -> None:
    """After a lost connection the error's translation awaits the pool's check; a shutdown that
    cancels the flight right then must not leave the batch's callers waiting for ever."""

    async def broken(items: list[int]) -> list[int]:
        raise ValueError("connection lost")

    async def slow_lookup(exc: Exception) -> Exception:
        await asyncio.sleep(10)
        return exc

    batcher = Batcher(broken, slow_lookup, flights=1, limit=64)

    async def cancelled_mid_translation() -> None:
        call = asyncio.ensure_future(batcher(1))
        await asyncio.sleep(0.01)  # the flight now waits in slow_lookup
        for task in batcher.tasks:
            task.cancel()
        with pytest.raises(asyncio.CancelledError):  # not TimeoutError: the call is told at once
            async with asyncio.timeout(1):
                await call

    asyncio.run(cancelled_mid_translation())
    assert batcher.flying == 0


def test_a_flight_cancelled_before_its_first_step_does_not_block_the_batcher() -> None:
    doubler = Doubler()
    batcher = Batcher(doubler.run, as_store_error, flights=1, limit=64)

    async def cancelled_at_once() -> int:
        call = asyncio.ensure_future(batcher(1))
        await asyncio.sleep(0)  # the call queued and created its flight, which has not run yet
        for task in batcher.tasks:
            task.cancel()
        with pytest.raises(asyncio.CancelledError):  # not TimeoutError: the call is told at once
            async with asyncio.timeout(1):
                await call
        async with asyncio.timeout(1):
            return await batcher(2)  # a new flight goes: the cancelled one is counted off

    assert asyncio.run(cancelled_at_once()) == 4
    assert batcher.flying == 0
    assert doubler.batches == [[2]]


def test_queued_calls_cancelled_with_their_flight_are_never_run() -> None:
    """Calls queued behind a cancelled flight are told they were cancelled: no later flight may
    then store them (a release or a decision its caller believes was not made)."""
    doubler = Doubler()
    batcher = Batcher(doubler.run, as_store_error, flights=1, limit=1)

    async def shutdown_then_more() -> int:
        calls = [asyncio.ensure_future(batcher(n)) for n in range(3)]
        await asyncio.sleep(0.001)  # [0] in flight, [1] and [2] queued
        for task in batcher.tasks:
            task.cancel()
        for call in calls:
            with pytest.raises(asyncio.CancelledError):
                async with asyncio.timeout(1):
                    await call
        async with asyncio.timeout(1):
            return await batcher(99)

    assert asyncio.run(shutdown_then_more()) == 198
    assert doubler.batches == [[0], [99]]
