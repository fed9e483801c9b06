"""A small HTTP/1.1 load generator on raw asyncio streams, loopback only.

httpx's AsyncClient collapses under many concurrent requests on this 2-core machine (measured:
547 req/s with 8 clients, 186 with 32, against a bare FastAPI route that a raw client drives at
2,700 req/s), which would measure the client instead of the server. Requests here are plain
bytes built before the clock starts; responses are parsed by status line and Content-Length.
Every loop is bounded in time.

Two ways to drive a server:
- ``run_schedule`` (open loop): every request has an intended send time, fixed in advance; it is
  sent then whatever the earlier ones are doing, on a connection of its own (a hook Job polling
  every 15 s, or GitHub delivering a webhook, opens a new connection each time: uvicorn closes an
  idle keep-alive connection after 5 s). Its latency runs from the *intended* send time to the end
  of the response, so a client or server that falls behind shows in the figures instead of hiding
  in a late send (no coordinated omission).
- ``closed_loop``: N keep-alive clients, each sending its next request when the previous one has
  answered: the maximum rate, for reference.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

Request = tuple[str, str, dict[str, str], bytes]  # method, path, headers, body

T = TypeVar("T")
try:  # the event loop uvicorn itself uses, when installed: less of the client's own CPU
    import uvloop

    LOOP = "uvloop"
except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
    uvloop = None  # type: ignore[assignment]
    LOOP = "asyncio"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return uvloop.run(coroutine) if uvloop is not None else asyncio.run(coroutine)


def encode(request: Request, *, close: bool = False) -> bytes:
    method, path, headers, body = request
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    if close:
        lines.append("Connection: close")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> tuple[int, bytes]:
    writer.write(payload)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


def cpu_self() -> float:
    """CPU seconds (user + system) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of ``values``; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-share * len(ordered) // 1))))  # ceil, at least 1
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Shot:
    """One request of an open-loop schedule: sent ``at`` seconds after the start."""

    at: float
    kind: str  # what the figures are grouped by: "gate", "webhook", ...
    payload: bytes  # the whole HTTP request, from ``encode(..., close=True)``


@dataclass(slots=True)
class Outcome:
    shot: Shot
    latency_ms: float  # from the intended send time to the end of the response (or the failure)
    lag_ms: float  # how late the client started to send it (its own delay, part of latency_ms)
    status: int  # 0: no HTTP answer
    error: str  # "" for a 200; else "HTTP 503", "timeout", "ConnectionResetError", ...
    body: bytes = b""


@dataclass
class ScheduleResult:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0  # from the start to the last answer
    client_cpu: float = 0.0  # CPU seconds of this process over the run

    def of(self, kind: str, start: float = float("-inf"), end: float = float("inf")) -> list[Outcome]:
        """The outcomes whose kind starts with ``kind``, intended in [start, end)."""
        return [o for o in self.outcomes if o.shot.kind.startswith(kind) and start <= o.shot.at < end]


def summary(outcomes: Sequence[Outcome]) -> dict[str, float]:
    latencies = [o.latency_ms for o in outcomes]
    return {
        "count": len(outcomes),
        "p50": percentile(latencies, 0.50),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies, default=0.0),
        "errors": sum(1 for o in outcomes if o.error),
    }


def errors_by_reason(outcomes: Sequence[Outcome]) -> Counter[str]:
    return Counter(o.error for o in outcomes if o.error)


async def _run_schedule(
    port: int, shots: Sequence[Shot], timeout: float, grace: float, limits: Mapping[str, int]
) -> ScheduleResult:
    result = ScheduleResult()
    gates = {kind: asyncio.Semaphore(limit) for kind, limit in limits.items() if limit > 0}
    ordered = sorted(shots, key=lambda shot: shot.at)
    clock = time.perf_counter  # not loop.time(): uvloop's is cached and in whole milliseconds

    async def one(shot: Shot, intended: float) -> None:
        started = clock()
        status, body, error = 0, b"", ""
        writer: asyncio.StreamWriter | None = None
        limit = gates.get(shot.kind)
        try:
            async with asyncio.timeout(timeout):
                if limit is not None:  # at most N of this kind in flight; the wait counts in latency
                    await limit.acquire()
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    status, body = await _exchange(reader, writer, shot.payload)
                finally:
                    if limit is not None:
                        limit.release()
            error = "" if status == 200 else f"HTTP {status}"
        except TimeoutError:
            error = "timeout"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            error = type(exc).__name__
        finally:
            if writer is not None:
                writer.close()
        done = clock()
        result.outcomes.append(
            Outcome(shot, (done - intended) * 1000, (started - intended) * 1000, status, error, body)
        )

    tasks: set[asyncio.Task[None]] = set()
    cpu_before = cpu_self()
    began = clock()
    for shot in ordered:
        intended = began + shot.at
        delay = intended - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(shot, intended))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    last = ordered[-1].at if ordered else 0.0
    if tasks:  # each request ends by its own timeout; the grace is a backstop
        await asyncio.wait(set(tasks), timeout=max(0.0, began + last + timeout + grace - clock()))
    for task in tasks:
        task.cancel()
    result.seconds = clock() - began
    result.client_cpu = cpu_self() - cpu_before
    return result


def run_schedule(
    port: int,
    shots: Sequence[Shot],
    *,
    timeout: float = 10.0,
    grace: float = 5.0,
    limits: Mapping[str, int] | None = None,
) -> ScheduleResult:
    """Send every shot at its intended time on a new connection; wait for each at most ``timeout``.
    ``limits``: at most N requests of a kind in flight at once (the rest wait, and the wait counts)."""
    return run(_run_schedule(port, shots, timeout, grace, limits or {}))


@dataclass
class Result:
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0


async def _closed_loop(port: int, make: Callable[[], Request], seconds: float, concurrency: int) -> Result:
    result = Result()
    stop = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop:
                payload = encode(make())
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(max(1.0, stop - started + 10)):
                        status, _ = await _exchange(reader, writer, payload)
                except (TimeoutError, OSError, asyncio.IncompleteReadError):
                    result.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                result.errors += status != 200
        finally:
            writer.close()

    cpu_before = cpu_self()
    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - began
    result.client_cpu = cpu_self() - cpu_before
    return result


def closed_loop(port: int, make: Callable[[], Request], seconds: float, concurrency: int) -> Result:
    """``concurrency`` keep-alive clients, each sending its next request when the previous one answered."""
    return run(_closed_loop(port, make, seconds, concurrency))
