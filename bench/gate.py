"""`POST /v1/gate` over real HTTP against two baselines of the same app and server.

Run from the repository root:  .venv/bin/python bench/gate.py [--seconds 6] [--concurrency 32]

For SQLite and for PostgreSQL (127.0.0.1:5432, database test, a fresh schema), the server runs as
its own uvicorn process (one worker) with the shipped policies; the load generator (asyncio +
httpx, another process) drives, closed-loop with N concurrent clients:
  /bench/empty   a route that does nothing;
  /bench/insert  a route that does one INSERT and COMMIT on the same database, the way the gate
                 reaches it (PostgreSQL: awaited on the app's async pool; SQLite: SQLAlchemy in the
                 thread pool); on PostgreSQL also /bench/insert-threaded, SQLAlchemy in the thread
                 pool, the path the gate took before it went async (for reference);
  /v1/gate       the real gate: 50 Argo CD targets, rolling revisions, so calls both re-decide open
                 releases and create new ones that supersede (each stores a decision and an audit record);
in --rounds interleaved rounds (the ratio is the median of the rounds' ratios); then an open-loop phase sends /v1/gate at a steady 200 requests/s and reports p50/p99, and the CPU each call cost the server, PostgreSQL and the load generator.
Targets: gate throughput >= 0.5x the one-INSERT route on PostgreSQL; p99 < 25 ms at 200 req/s.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

# bench/calendar.py is named like the standard library's `calendar`: keep bench/ off the import path.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.gate_app import bench_rows
from bench.loadgen import Request, closed_loop, open_loop
from gatekeeper.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TOKEN = "bench-hook-token"
THREADS = Settings.model_fields["THREADS"].default


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(database_url: str, workdir: Path, workers: int = 1) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "GATEKEEPER_DATABASE_URL": database_url,
        "GATEKEEPER_AUTO_MIGRATE": "true",
        "GATEKEEPER_POLICIES_DIR": str(workdir / "policies"),
        "GATEKEEPER_CALENDARS_DIR": str(workdir / "calendars"),
        "GATEKEEPER_TOKENS_FILE": str(workdir / "tokens.yaml"),
        "PYTHONPATH": str(ROOT),
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "bench.gate_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--timeout-keep-alive",
        "30",
        "--workers",
        str(workers),
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


class GateBodies:
    """50 targets with rolling revisions: most calls re-decide, every fifth creates a release."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.count = 0

    def next(self) -> bytes:
        self.count += 1
        target = self.rng.randrange(50)
        return json.dumps(
            {
                "target": f"argocd:odoo-prod-{target}",
                "revision": f"rev-{self.count // 250}-{target}",
                "trigger": "presync",
            }
        ).encode()

    def request(self, path: str) -> Callable[[], Request]:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        return lambda: ("POST", path, headers, self.next())


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def cpu_seconds(server: int) -> dict[str, float]:
    """CPU seconds used so far (user + system, from /proc) by the server's processes, by PostgreSQL's
    (every backend on this machine) and by this load generator: where a steady run's CPU goes."""
    tick = os.sysconf("SC_CLK_TCK")
    groups: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        command, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        pid, parent = int(entry.name), int(fields[1])
        if pid == server or parent == server:
            group = "server"
        elif command.startswith("postgres"):
            group = "postgresql"
        elif pid == os.getpid():
            group = "load generator"
        else:
            continue
        groups[group] = groups.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return groups


def prepare(workdir: Path) -> None:
    shutil.copytree(ROOT / "policies", workdir / "policies")
    shutil.copytree(ROOT / "calendars", workdir / "calendars")
    # The bench targets argocd:odoo-prod-N are governed by the shipped production policy's glob.
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    (workdir / "tokens.yaml").write_text(f"- name: bench\n  roles: [hook]\n  token_sha256: {digest}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description="gate API benchmark")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved closed-loop rounds (median ratio)")
    parser.add_argument("--steady-seconds", type=float, default=10.0)
    parser.add_argument(
        "--pg-workers", type=int, default=2, help="server processes on PostgreSQL (GATEKEEPER_WORKERS); SQLite runs one"
    )
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        prepare(workdir)
        schema = f"gk_bench_{uuid.uuid4().hex[:8]}"
        engine = create_engine(PG)
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        backends = {
            "sqlite": f"sqlite:///{workdir / 'bench.db'}",
            "postgresql": f"{PG}?options=-csearch_path%3D{schema}",
        }
        print(
            f"bench/gate.py: {args.concurrency} concurrent clients, {args.seconds:.0f} s per route; steady "
            f"{args.rate:.0f} req/s for {args.steady_seconds:.0f} s; {os.cpu_count()} cores, Python {sys.version.split()[0]}"
        )
        print(f"{'backend':<11} {'route':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        try:
            for name, url in backends.items():
                if name in args.backends.split(","):
                    run_backend(name, url, workdir, args)
        finally:
            with engine.begin() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            engine.dispose()


def run_backend(name: str, database_url: str, workdir: Path, args: argparse.Namespace) -> None:
    workers = args.pg_workers if name == "postgresql" else 1
    engine = create_engine(database_url)
    bench_rows.metadata.create_all(engine)  # before the workers start, so they do not race to create it
    engine.dispose()
    print(f"{name}: {workers} server process(es), {THREADS} threads each (GATEKEEPER_THREADS default)")
    process, port = start_server(database_url, workdir, workers)
    bodies = GateBodies(20261124)
    try:
        asyncio.run(closed_loop(port, bodies.request("/v1/gate"), 1.0, args.concurrency))  # warm-up
        routes = ["/bench/empty", "/bench/insert", "/v1/gate"]
        if name == "postgresql":  # for reference: the INSERT alone (autocommit), and the pre-async path
            routes[2:2] = ["/bench/insert-autocommit", "/bench/insert-threaded"]
        ratios: list[float] = []
        for _ in range(args.rounds):  # interleaved rounds: the ratio of each round, then their median
            rates: dict[str, float] = {}
            for route in routes:
                result = asyncio.run(closed_loop(port, bodies.request(route), args.seconds, args.concurrency))
                rates[route] = result.rate
                print(
                    f"{name:<11} {route:<14} {result.rate:8.0f} {statistics.median(result.latencies_ms):8.1f} "
                    f"{p99(result.latencies_ms):8.1f} {result.errors:7d}"
                )
            ratios.append(rates["/v1/gate"] / rates["/bench/insert"])
            if "/bench/insert-threaded" in rates:
                print(
                    f"{name:<11} (gate / autocommit one-INSERT: {rates['/v1/gate'] / rates['/bench/insert-autocommit']:.2f};"
                    f" gate / threaded one-INSERT: {rates['/v1/gate'] / rates['/bench/insert-threaded']:.2f})"
                )
        ratio = statistics.median(ratios)
        before = cpu_seconds(process.pid)
        steady = asyncio.run(open_loop(port, bodies.request("/v1/gate"), args.rate, args.steady_seconds))
        spent = {group: seconds - before.get(group, 0.0) for group, seconds in cpu_seconds(process.pid).items()}
        tail = p99(steady.latencies_ms)
        print(
            f"{name:<11} {'steady gate':<14} {steady.rate:8.0f} {statistics.median(steady.latencies_ms):8.1f} "
            f"{tail:8.1f} {steady.errors:7d}"
        )
        calls = len(steady.latencies_ms)
        print(
            f"{name:<11} (steady CPU per call: "
            + ", ".join(f"{group} {1e6 * seconds / calls:,.0f} µs" for group, seconds in sorted(spent.items()))
            + f"; {sum(spent.values()) / steady.seconds / (os.cpu_count() or 1):.0%} of all cores)"
        )
        target = " (target >= 0.5)" if name == "postgresql" else ""
        print(
            f"{name:<11} gate/insert ratio {ratio:.2f} (median of {', '.join(f'{r:.2f}' for r in ratios)})"
            f"{target}: {'PASS' if ratio >= 0.5 else 'FAIL'}; "
            f"steady {args.rate:.0f} req/s p99 {tail:.1f} ms (target < 25 ms): {'PASS' if tail < 25 else 'FAIL'}"
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
