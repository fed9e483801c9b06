"""A small HTTP/1.1 keep-alive load generator on raw asyncio streams, loopback only.

httpx's AsyncClient collapses under many concurrent requests on this 2-core machine (measured:
547 req/s with 8 clients, 186 with 32, against a bare FastAPI route that a raw client drives at
2,700 req/s), which would measure the client instead of the server. Requests here are plain
bytes, responses are parsed by status line and Content-Length; every loop is bounded in time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Request = tuple[str, str, dict[str, str], bytes]  # method, path, headers, body


def encode(request: Request) -> bytes:
    method, path, headers, body = request
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> int:
    writer.write(payload)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


@dataclass
class Result:
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0


async def closed_loop(port: int, make: Callable[[], Request], seconds: float, concurrency: int) -> Result:
    """``concurrency`` clients, each sending its next request when the previous one answered."""
    result = Result()
    stop = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop:
                payload = encode(make())
                started = time.perf_counter()
                status = await _exchange(reader, writer, payload)
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                result.errors += status >= 400
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - began
    return result


async def open_loop(port: int, make: Callable[[], Request], rate: float, seconds: float) -> Result:
    """Send at a fixed rate whatever the responses do (idle connections are reused, new ones opened)."""
    result = Result()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened: list[asyncio.StreamWriter] = []

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        opened.append(writer)
        return reader, writer

    async def one(payload: bytes) -> None:
        reused = bool(idle)
        reader, writer = idle.pop() if idle else await connect()
        started = time.perf_counter()
        try:
            status = await _exchange(reader, writer, payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            if not reused:
                raise
            # The server closed an idle keep-alive connection: what a real client does is reconnect.
            reader, writer = await connect()
            status = await _exchange(reader, writer, payload)
        result.latencies_ms.append((time.perf_counter() - started) * 1000)
        result.errors += status >= 400
        idle.append((reader, writer))

    tasks = []
    began = time.perf_counter()
    total = int(rate * seconds)
    for sent in range(total):
        delay = began + sent / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(encode(make()))))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 60)
    result.seconds = time.perf_counter() - began
    for writer in opened:
        writer.close()
    return result
