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
    assert batcher.queue == [] and not batcher.flying


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
