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
        # Flights in the air, counted by the flights themselves: a flight that finds the queue
        # empty lands in the same step. A task's done callbacks run a step later, so counting
        # tasks would let a call made in between wait for a flight that has already landed.
        self.flying = 0
        self.tasks: set[asyncio.Task[None]] = set()  # the flights' tasks, kept from the collector
        self.sizes: deque[int] = deque(maxlen=10_000)  # the latest batches' sizes, for tests and the bench

    async def __call__(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.queue.append((item, future))
        if self.flying < self.flights:
            # A task of its own: a caller that is cancelled (its client went away) does not
            # cancel the statement the other callers wait for.
            self.flying += 1
            flight = _Flight()
            task = asyncio.create_task(self._fly(flight))
            self.tasks.add(task)
            task.add_done_callback(lambda done: self._landed(done, flight))
        return await future

    async def _fly(self, flight: _Flight) -> None:
        flight.started = True
        try:
            while self.queue:
                batch, self.queue = self.queue[: self.limit], self.queue[self.limit :]
                self.sizes.append(len(batch))
                await self._settle(batch)
        except BaseException:  # cancelled (shutdown): nobody waits for ever
            if self.flying == 1:  # no other flight takes what is queued
                self._cancel_queued()
            raise
        finally:
            self.flying -= 1  # in the step that found the queue empty

    def _landed(self, task: asyncio.Task[None], flight: _Flight) -> None:
        self.tasks.discard(task)
        if not flight.started:  # cancelled before its first step: its body never counted it off
            self.flying -= 1
            if self.flying == 0:
                self._cancel_queued()

    def _cancel_queued(self) -> None:
        """Cancel the queued calls and drop them: no later flight runs a call that was cancelled."""
        queued, self.queue = self.queue, []
        for _, future in queued:
            future.cancel()

    async def _settle(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        """Runs one batch and hands each caller its result or an error of its own."""
        try:
            try:
                results = await self.run([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"a batch of {len(batch)} calls returned {len(results)} results")
            except Exception as exc:  # handed to every caller, which raises it
                try:
                    error = await self.error_of(exc)
                except Exception as failure:  # e.g. the pool's check after a lost connection failed
                    error = failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(_copy(error))
                return
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # a cancelled caller's future is done already
                    future.set_result(result)
        finally:  # cancelled anywhere above (in run or in error_of): nobody waits for ever
            for _, future in batch:
                if not future.done():
                    future.cancel()


class _Flight:
    """Whether a flight's task got to run at all (one cancelled before its first step did not)."""

    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started = False


def _copy(error: Exception) -> Exception:
    """An instance of ``error`` for one caller (its traceback grows in that caller only)."""
    try:
        return type(error)(*error.args)
    except Exception:  # an exception type whose constructor takes other arguments
        return RuntimeError(str(error))
