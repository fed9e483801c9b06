"""Group commit: concurrent calls' statements of one kind, sent as one statement.

A call queues its parameters and waits. While fewer than ``flights`` batches are in flight, a
new flight takes everything queued and runs it as one statement; what queues meanwhile goes as
the next batch. There is no timer: a lone call goes at once, so without concurrency a call costs
what one statement costs, and under load N calls share one round trip (and one commit) instead
of paying N (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# What a batch costs when it fails: every waiting call gets an error of its own (not one
# instance raised in many tasks, whose tracebacks would pile up on it).
ErrorOf = Callable[[Exception], Awaitable[Exception]]


class Batcher(Generic[Item, Result]):
    """Runs ``run(items)``, which returns one result per item in order, for concurrent callers."""

    def __init__(
        self, run: Callable[[list[Item]], Awaitable[list[Result]]], error_of: ErrorOf, *, flights: int, limit: int
    ) -> None:
        self.run = run
        self.error_of = error_of
        self.flights = flights
        self.limit = limit
        self.queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self.flying: set[asyncio.Task[None]] = set()
        self.sizes: deque[int] = deque(maxlen=10_000)  # the latest batches' sizes, for tests and the bench

    async def __call__(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.queue.append((item, future))
        if len(self.flying) < self.flights:
            # A task of its own: a caller that is cancelled (its client went away) does not
            # cancel the statement the other callers wait for.
            task = asyncio.create_task(self._fly())
            self.flying.add(task)
            task.add_done_callback(self.flying.discard)
        return await future

    async def _fly(self) -> None:
        while self.queue:
            batch, self.queue = self.queue[: self.limit], self.queue[self.limit :]
            self.sizes.append(len(batch))
            try:
                results = await self.run([item for item, _ in batch])
            except Exception as exc:  # handed to every caller, which raises it
                error = await self.error_of(exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(type(error)(*error.args))
                continue
            except BaseException:  # cancelled (shutdown): nobody waits for ever
                for _, future in batch:
                    future.cancel()
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # a cancelled caller's future is done already
                    future.set_result(result)
