"""Signed GitHub push webhooks per second versus an empty route of the same app and server.

Run from the repository root:  .venv/bin/python bench/webhooks.py [--seconds 6] [--concurrency 32]

The server runs as its own process (uvicorn, one worker) so the load generator (bench/loadgen.py,
raw asyncio streams: httpx's client is slower than the server) does not share its GIL. Each push is a new delivery id and a new commit SHA on git:acme/odoo-config@main, so every
request verifies an HMAC, dedupes, decides, supersedes the previous release and stores all of it.
Both routes get the same body. Measured on SQLite and on PostgreSQL (127.0.0.1:5432, db test).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/calendar.py is named like the standard library's `calendar`: keep bench/ off the import path.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.gate_app import bench_rows
from bench.loadgen import Request, closed_loop

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-config}
spec:
  targets: ["git:acme/odoo-config@main"]
  paths: ["clusters/prod/*"]
  timezone: Europe/Berlin
  calendar:
    deny:
      - {cron: "0 14 * * 1-5", duration: 2h, code: dispatch_cutoff}
      - {holidays: {country: DE, subdivision: HH}, code: public_holiday}
"""


def push_body(sha: str) -> bytes:
    commit = {
        "id": sha,
        "author": {"username": "erik", "name": "Erik"},
        "added": [],
        "removed": [],
        "modified": ["clusters/prod/odoo/deployment.yaml"],
        "message": "bump",
    }
    payload = {
        "ref": "refs/heads/main",
        "after": sha,
        "deleted": False,
        "pusher": {"name": "dora"},
        "repository": {"full_name": "acme/odoo-config"},
        "commits": [commit],
        "head_commit": {"id": sha, "author": {"username": "erik"}},
    }
    return json.dumps(payload).encode()


def headers_for(body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(database_url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "GATEKEEPER_DATABASE_URL": database_url,
        "GATEKEEPER_AUTO_MIGRATE": "true",
        "GATEKEEPER_POLICIES_DIR": str(workdir / "policies"),
        "GATEKEEPER_CALENDARS_DIR": str(workdir / "calendars"),
        "GATEKEEPER_GITHUB_SECRET": SECRET,
        "PYTHONPATH": str(ROOT),
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "bench.webhooks_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--timeout-keep-alive",
        "30",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def push_request(path: str) -> Callable[[], Request]:
    """A new delivery of a push of a new commit SHA, signed, for every call."""

    def make() -> Request:
        body = push_body(hashlib.sha1(uuid.uuid4().bytes).hexdigest())  # noqa: S324 - a fake commit SHA
        return ("POST", path, headers_for(body), body)

    return make


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


def run_backend(
    name: str, database_url: str, workdir: Path, seconds: float, concurrency: int
) -> dict[str, tuple[float, float, float, int]]:
    engine = create_engine(database_url)
    bench_rows.metadata.create_all(engine)
    engine.dispose()
    process, url = start_server(database_url, workdir)
    port = int(url.rsplit(":", 1)[1])
    results: dict[str, tuple[float, float, float, int]] = {}
    try:
        closed_loop(port, push_request("/webhooks/github"), 1.0, concurrency)  # warm-up
        for route in ("/bench/empty", "/bench/insert", "/webhooks/github"):
            result = closed_loop(port, push_request(route), seconds, concurrency)
            latencies = result.latencies_ms
            results[route] = (result.rate, statistics.median(latencies), p99(latencies), result.errors)
    finally:
        process.terminate()
        process.wait(timeout=10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "policies").mkdir()
        (workdir / "calendars").mkdir()
        (workdir / "policies" / "odoo.yaml").write_text(POLICY)
        schema = f"gk_bench_{uuid.uuid4().hex[:8]}"
        engine = create_engine(PG)
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        backends = {
            "sqlite": f"sqlite:///{workdir / 'bench.db'}",
            "postgresql": f"{PG}?options=-csearch_path%3D{schema}",
        }
        print(
            f"bench/webhooks.py: {args.concurrency} concurrent clients, {args.seconds:.0f} s per route, "
            f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
        )
        print(f"{'backend':<11} {'route':<17} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        try:
            for name, url in backends.items():
                results = run_backend(name, url, workdir, args.seconds, args.concurrency)
                for route, (rate, p50, tail, errors) in results.items():
                    print(f"{name:<11} {route:<17} {rate:8.0f} {p50:8.1f} {tail:8.1f} {errors:7d}")
                ratio = results["/webhooks/github"][0] / results["/bench/empty"][0]
                # (no target: issue 12 withdrew the ratio and budgets webhooks as a burst in bench/gate.py)
                print(f"{name:<11} webhook/empty ratio {ratio:.2f}")
                versus_insert = results["/webhooks/github"][0] / results["/bench/insert"][0]
                print(f"{name:<11} webhook/one-INSERT ratio {versus_insert:.2f} (for comparison with bench/gate.py)")
                ceiling = results["/bench/insert"][0] / results["/bench/empty"][0]
                print(f"{name:<11} one-INSERT/empty ratio {ceiling:.2f} (what one durable write per request leaves)")
        finally:
            with engine.begin() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            engine.dispose()


if __name__ == "__main__":
    main()
