"""The load of issue 12 against real `gatekeeper serve` processes.

Run from the repository root:  .venv/bin/python bench/gate.py [--backends postgresql,sqlite]
                               [--duration 40] [--rate R] [--burst N] [--burst-seconds S]
                               [--burst-concurrency N] [--closed-seconds 8] [--scheduler]
                               [--webhook-concurrency N]

For each backend, `gatekeeper serve` runs as a subprocess (GATEKEEPER_WORKERS, a fresh
PostgreSQL schema at 127.0.0.1:5432/test or a temp SQLite file, a temp tokens file, and a policy
of the bench's own that keeps every bench target deferred all the time: a deny cron window of two
days from each midnight UTC). The load generator (bench/loadgen.py, raw asyncio streams on uvloop,
in this process) then drives it:

1. Open loop (the targets). Hook Jobs of Argo CD PreSync hooks waiting through a freeze, each with
   its own target and revision, poll `POST /v1/gate` every 15 s from a random phase, each poll on a
   new connection: R calls/s sustained for --duration seconds (PostgreSQL: 1,500 Jobs, 100/s,
   2 workers; SQLite: 750 Jobs, 50/s, 1 worker). A Job's first call creates its release; later
   calls decide it again. Halfway through, a burst of signed GitHub push webhooks
   (`POST /webhooks/github`, X-Hub-Signature-256, distinct X-GitHub-Delivery ids, one new commit
   on each of N repositories; PostgreSQL 300, SQLite none by default: one
   process drains them one at a time, see docs/benchmarks.md), all due at the same instant, so sent as
   fast as the load generator can. Every latency runs from the request's intended send time (no
   coordinated omission); any answer but 200, a failed connection or a timeout (10 s) is an error.
   Targets: PostgreSQL p99 < 50 ms and no error; SQLite p99 < 50 ms.
2. Closed loop (reference, no target): 32 keep-alive clients on `/v1/gate` for --closed-seconds,
   then the same on the one-INSERT route of bench/gate_app.py (its own uvicorn app, outside the
   gatekeeper package, same worker count, same database), printed side by side.
3. --scheduler (PostgreSQL): 500 due `commit_status` actions (the outbox, enqueued through the
   store's own port) drained by 2 `gatekeeper serve` replicas of 1 worker each, then by 1 replica
   for a baseline, each on a fresh schema, against a fake GitHub on 127.0.0.1 (bench/fake_github.py)
   that counts the posts per commit: the time from the commit of the actions until all are done,
   the actions each replica finished (`claimed_by`), and the repeats (posts - 500).

--webhook-concurrency N passes GATEKEEPER_WEBHOOK_CONCURRENCY=N to every server started.

Also printed: the CPU of the server processes, of PostgreSQL (every backend on this machine, so
other users' load too) and of the load generator itself over the open loop, and what the server
logged at WARNING or above.
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
import random
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from sqlalchemy import Engine, create_engine, inspect, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.fake_github import FakeGitHub
from bench.gate_app import bench_rows
from bench.loadgen import (
    LOOP,
    Outcome,
    Shot,
    closed_loop,
    encode,
    errors_by_reason,
    percentile,
    run_schedule,
    summary,
)
from gatekeeper.domain.records import NewAction
from gatekeeper.store.sql import SqlReleaseStore

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TOKEN = "bench-hook-token"
SECRET = "bench-github-secret"
AUDIT_KEY = "bench-audit-key-" + "0" * 32
POLL_INTERVAL = 15.0  # `gatekeeper gate --interval`'s default: how often a deferred hook Job asks again
TIMEOUT = 10.0  # a request not answered within this is an error (the hook's own timeout is 10 s)
TARGET_P99_MS = 50.0
POLICY = """\
# bench/gate.py: every bench target is deferred all the time (a deny window of two days from each
# midnight UTC covers any instant), so hook Jobs keep polling, as through a freeze.
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: bench-freeze}
spec:
  mode: enforce
  targets: ["argocd:bench-*", "git:acme/bench-*@main"]
  timezone: UTC
  calendar:
    deny:
      - {cron: "0 0 * * *", duration: 2d, code: bench_freeze}
"""


@dataclass(frozen=True)
class Backend:
    name: str
    url: str
    workers: int
    rate: float  # gate calls per second in the open loop
    burst: int  # webhooks in the burst


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server subprocess on 127.0.0.1, its output in a log file; ``stop`` ends it (and its workers)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path, ready: str) -> None:
        self.port = free_port()
        self.log = log
        self.name = name
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                cwd=ROOT,
                env={**os.environ, **env, "GATEKEEPER_PORT": str(self.port)},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{ready}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{name} did not start; its log:\n{log.read_text(errors='replace')[-3000:]}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def gatekeeper_env(database_url: str, workdir: Path, workers: int) -> dict[str, str]:
    return {
        "GATEKEEPER_DATABASE_URL": database_url,
        "GATEKEEPER_AUTO_MIGRATE": "true",
        "GATEKEEPER_WORKERS": str(workers),
        "GATEKEEPER_HOST": "127.0.0.1",
        "GATEKEEPER_POLICIES_DIR": str(workdir / "policies"),
        "GATEKEEPER_CALENDARS_DIR": str(workdir / "calendars"),
        "GATEKEEPER_TOKENS_FILE": str(workdir / "tokens.yaml"),
        "GATEKEEPER_GITHUB_SECRET": SECRET,
        "GATEKEEPER_AUDIT_KEY": AUDIT_KEY,  # as in production (unset, every process warns at start-up)
        "GATEKEEPER_LOG_FORMAT": "json",
    }


def server_env(args: argparse.Namespace) -> dict[str, str]:
    """Settings the bench's flags pass to every `gatekeeper serve` it starts."""
    return {"GATEKEEPER_WEBHOOK_CONCURRENCY": str(args.webhook_concurrency)} if args.webhook_concurrency else {}


def start_gatekeeper(
    database_url: str, workdir: Path, workers: int, log: Path, extra: dict[str, str] | None = None
) -> Server:
    command = [str(Path(sys.executable).with_name("gatekeeper")), "serve", "--host", "127.0.0.1"]
    env = {**gatekeeper_env(database_url, workdir, workers), **(extra or {})}
    return Server("gatekeeper serve", command, env, log, "/readyz")


def start_reference(database_url: str, workers: int, log: Path) -> Server:
    """bench/gate_app.py's one-INSERT app under uvicorn, as many workers as the gatekeeper compared."""
    command = [sys.executable, "-m", "uvicorn", "--factory", "bench.gate_app:app", "--host", "127.0.0.1"]
    command += ["--workers", str(workers), "--log-level", "info"]
    env = {"GATEKEEPER_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    return Server("bench/gate_app.py", command, env, log, "/healthz")


def prepare(workdir: Path) -> None:
    (workdir / "policies").mkdir()
    (workdir / "calendars").mkdir()
    (workdir / "policies" / "bench.yaml").write_text(POLICY)
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    (workdir / "tokens.yaml").write_text(f"- name: bench\n  roles: [hook]\n  token_sha256: {digest}\n")


GATE_HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def gate_body(job: int, run: str) -> bytes:
    revision = hashlib.sha1(f"{run}-{job}".encode()).hexdigest()  # noqa: S324 - a fake commit SHA
    return json.dumps({"target": f"argocd:bench-{run}-{job}", "revision": revision, "trigger": "presync"}).encode()


def push_request(repository: str, sha: str) -> bytes:
    payload = {
        "ref": "refs/heads/main",
        "after": sha,
        "deleted": False,
        "pusher": {"name": "dora"},
        "repository": {"full_name": repository},
        "commits": [
            {
                "id": sha,
                "author": {"username": "erik", "name": "Erik"},
                "added": [],
                "removed": [],
                "modified": ["clusters/prod/odoo/deployment.yaml"],
                "message": "bump",
            }
        ],
        "head_commit": {"id": sha, "author": {"username": "erik"}},
    }
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }
    return encode(("POST", "/webhooks/github", headers, body), close=True)


def schedule(
    backend: Backend, duration: float, burst_at: float, burst_seconds: float, run: str, seed: int
) -> tuple[list[Shot], int]:
    """Every request of the open loop, built before the clock starts: the hook Jobs' polls, the burst."""
    rng = random.Random(seed)
    jobs = round(backend.rate * POLL_INTERVAL)
    shots: list[Shot] = []
    for job in range(jobs):
        payload = encode(("POST", "/v1/gate", GATE_HEADERS, gate_body(job, run)), close=True)
        at, first = rng.uniform(0, POLL_INTERVAL), True
        while at < duration:
            shots.append(Shot(at, "gate-first" if first else "gate-poll", payload))
            at, first = at + POLL_INTERVAL, False
    for index in range(backend.burst):
        sha = hashlib.sha1(f"{run}-push-{index}".encode()).hexdigest()  # noqa: S324
        at = burst_at + burst_seconds * index / backend.burst
        shots.append(Shot(at, "webhook", push_request(f"acme/bench-{run}-{index}", sha)))
    return shots, jobs


def cpu_seconds(server: int) -> dict[str, float]:
    """CPU seconds used so far (user + system, from /proc) by the server's processes (the process
    and its children), by PostgreSQL (every backend on this machine) and by this process."""
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


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat (all cores)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle, iowait, steal = fields[3], fields[4], fields[7] if len(fields) > 7 else 0
    busy = sum(fields[:8]) - idle - iowait - steal  # guest time is already in user
    return busy / tick, steal / tick


def log_findings(log: Path) -> tuple[Counter[str], list[str]]:
    """What the server logged at WARNING or above (JSON lines; any other line, e.g. a traceback, too)."""
    levels: Counter[str] = Counter()
    samples: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
            level, message = str(entry.get("level", "")).lower(), str(entry.get("message", ""))
        except (json.JSONDecodeError, AttributeError):
            level, message = "unstructured", line
        if level in ("info", "debug") or (level == "unstructured" and not message.strip()):
            continue
        if level == "unstructured" and message.startswith(("gatekeeper listening", "try, with", "  curl")):
            continue
        levels[level] += 1
        if len(samples) < 5 and message[:120] not in (s[:120] for s in samples):
            samples.append(message[:300])
    return levels, samples


HEAD = f"{'backend':<11} {'requests':<34} {'count':>6} {'/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>6}"


def row(backend: str, label: str, outcomes: list[Outcome], seconds: float | None = None) -> dict[str, float]:
    figures = summary(outcomes)
    rate = f"{figures['count'] / seconds:7.1f}" if seconds else f"{'':>7}"
    print(
        f"{backend:<11} {label:<34} {figures['count']:6.0f} {rate} {figures['p50']:8.1f} {figures['p95']:8.1f} "
        f"{figures['p99']:8.1f} {figures['max']:8.1f} {figures['errors']:6.0f}"
    )
    return figures


def open_loop_phase(backend: Backend, server: Server, args: argparse.Namespace, run: str) -> bool:
    burst_at = args.duration / 2
    shots, jobs = schedule(backend, args.duration, burst_at, args.burst_seconds, run, seed=20261204)
    warm = [
        Shot(i / 50, "warm", encode(("POST", "/v1/gate", GATE_HEADERS, gate_body(i, f"{run}w")), close=True))
        for i in range(50)
    ]
    run_schedule(server.port, warm, timeout=TIMEOUT)  # first connections, caches; not counted
    print(
        f"{backend.name}: gatekeeper serve, {backend.workers} worker(s), WEBHOOK_CONCURRENCY "
        f"{args.webhook_concurrency or 'default'}; {jobs} hook Jobs polling every "
        f"{POLL_INTERVAL:.0f} s = {backend.rate:g} gate calls/s for {args.duration:g} s, a new connection each; "
        + (
            f"burst of {backend.burst} signed GitHub pushes at t={burst_at:g} s"
            + (f" spread over {args.burst_seconds:g} s" if args.burst_seconds else " (all due at once)")
            + (f", at most {args.burst_concurrency} in flight" if args.burst_concurrency else "")
            if backend.burst
            else "no webhook burst"
        )
    )
    before, machine_before = cpu_seconds(server.pid), machine_cpu()
    result = run_schedule(server.port, shots, timeout=TIMEOUT, limits={"webhook": args.burst_concurrency})
    spent = {group: seconds - before.get(group, 0.0) for group, seconds in cpu_seconds(server.pid).items()}
    machine_after = machine_cpu()
    busy, steal = (after - earlier for after, earlier in zip(machine_after, machine_before, strict=True))
    print(HEAD)
    gate = result.of("gate")
    span = args.duration
    whole = row(backend.name, "gate, all (open loop)", gate, span)
    row(backend.name, "gate, a Job's first call (creates)", result.of("gate-first"))
    row(backend.name, "gate, later polls (re-decide)", result.of("gate-poll"))
    if backend.burst:
        window = args.burst_seconds + 5
        during = [o for o in gate if burst_at <= o.shot.at < burst_at + window]
        row(backend.name, f"gate, sent within {window:g} s of the burst", during)
        outside = [o for o in gate if not burst_at <= o.shot.at < burst_at + window]
        row(backend.name, "gate, the rest of the run", outside)
        hooks = result.of("webhook")
        row(backend.name, f"webhooks, burst of {backend.burst}", hooks)
        last = max((o.shot.at + o.latency_ms / 1000 - burst_at for o in hooks), default=0.0)
        print(
            f"{backend.name:<11} the last webhook was answered {last:.2f} s after the burst began "
            f"({backend.burst / max(last, 1e-9):.0f} webhooks/s)"
        )
    answered = sum(1 for o in gate if not o.error)
    lags = [o.lag_ms for o in gate]
    print(
        f"{backend.name:<11} achieved: {answered} gate calls answered 200 in {span:g} s = {answered / span:.1f}/s "
        f"(intended {backend.rate:g}/s); the client began gate calls late by p99 "
        f"{percentile(lags, 0.99):.1f} ms, max {max(lags, default=0.0):.1f} ms (counted in their latency)"
    )
    verdicts = Counter(json.loads(o.body).get("verdict") for o in gate if o.status == 200 and o.body)
    if set(verdicts) - {"defer"}:
        print(f"{backend.name:<11} NOTE: verdicts other than defer: {dict(verdicts)}")
    for outcome_kind in ("gate", "webhook"):
        reasons = errors_by_reason(result.of(outcome_kind))
        if reasons:
            sample = next(o for o in result.of(outcome_kind) if o.error)
            print(
                f"{backend.name:<11} {outcome_kind} errors: {dict(reasons)}; e.g. at t={sample.shot.at:.2f} s: "
                f"{sample.body[:200].decode(errors='replace')!r}"
            )
    calls = max(len(result.outcomes), 1)
    shown = ["server", "load generator"] + (["postgresql"] if backend.name == "postgresql" else [])
    cores = os.cpu_count() or 1
    print(
        f"{backend.name:<11} CPU over the open loop, per request (gate calls and webhooks): "
        + ", ".join(f"{group} {1e6 * spent.get(group, 0.0) / calls:,.0f} µs" for group in shown)
        + f"; load generator {100 * result.client_cpu / result.seconds:.1f}% of one core ({LOOP}); all of these "
        f"{100 * sum(spent.get(group, 0.0) for group in shown) / result.seconds / cores:.0f}% of {cores} cores"
    )
    others = busy - sum(spent.get(group, 0.0) for group in shown)
    print(
        f"{backend.name:<11} the whole machine meanwhile: {100 * busy / result.seconds / cores:.0f}% of {cores} cores busy, "
        f"{100 * max(others, 0.0) / result.seconds / cores:.0f}% by other processes (other users), "
        f"{100 * steal / result.seconds / cores:.0f}% stolen by the hypervisor"
    )
    errors = int(whole["errors"]) + sum(1 for o in result.of("webhook") if o.error)
    need_no_error = backend.name == "postgresql"
    passed = whole["p99"] < TARGET_P99_MS and (errors == 0 or not need_no_error)
    print(
        f"{backend.name:<11} target: gate p99 < {TARGET_P99_MS:.0f} ms{', no error' if need_no_error else ''} at "
        f"{backend.rate:g}/s with {backend.workers} worker(s): p99 {whole['p99']:.1f} ms, {errors} error(s): "
        f"{'PASS' if passed else 'FAIL'}"
    )
    return passed


def closed_loop_phase(
    backend: Backend, database_url: str, server: Server, workdir: Path, args: argparse.Namespace, run: str
) -> None:
    bodies = [gate_body(job, run) for job in range(round(backend.rate * POLL_INTERVAL))]
    turn = iter(range(1 << 62))
    gate = closed_loop(
        server.port,
        lambda: ("POST", "/v1/gate", GATE_HEADERS, bodies[next(turn) % len(bodies)]),
        args.closed_seconds,
        args.concurrency,
    )
    server.stop()
    engine = create_engine(database_url)
    bench_rows.metadata.create_all(engine)
    engine.dispose()
    reference = start_reference(database_url, backend.workers, workdir / f"reference-{backend.name}.log")
    try:
        closed_loop(reference.port, lambda: ("POST", "/bench/insert", {}, b""), 1.0, args.concurrency)  # warm-up
        insert = closed_loop(
            reference.port, lambda: ("POST", "/bench/insert", {}, b""), args.closed_seconds, args.concurrency
        )
    finally:
        reference.stop()
    print(
        f"{backend.name:<11} closed loop, {args.concurrency} keep-alive clients, {args.closed_seconds:g} s each, "
        f"{backend.workers} worker(s), for reference (no target):"
    )
    for label, result in (("/v1/gate (gatekeeper serve)", gate), ("/bench/insert (bench/gate_app.py)", insert)):
        latencies = result.latencies_ms
        print(
            f"{backend.name:<11}   {label:<34} {result.rate:7.0f} calls/s  p50 {percentile(latencies, 0.5):6.1f} ms  "
            f"p99 {percentile(latencies, 0.99):6.1f} ms  errors {result.errors}  "
            f"load generator {100 * result.client_cpu / result.seconds:.0f}% of one core"
        )


SCHEDULER_ACTIONS = 500
SCHEDULER_DEADLINE = 120.0  # seconds for the replicas to finish every action


def scheduler_phase(admin: Engine, run: str, workdir: Path, args: argparse.Namespace) -> None:
    """The scheduler's figures: 500 due actions drained by 2 replicas, then by 1 (the baseline)."""
    print(
        f"scheduler: {SCHEDULER_ACTIONS} due commit_status actions on a fresh PostgreSQL schema, a fake GitHub on "
        f"127.0.0.1 counting the posts, `gatekeeper serve` replicas of 1 worker each (SCHEDULER_INTERVAL default)"
    )
    print(
        f"{'scheduler':<11} {'replicas':>8} {'drained s':>10} {'actions/s':>10} {'posts':>6} {'repeats':>8} "
        f"{'missing':>8} {'not done':>9}  posts per replica; CPU"
    )
    for replicas in (2, 1):
        schema = f"gk_bench_{run}_sched{replicas}"
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            run_scheduler(f"{PG}?options=-csearch_path%3D{schema}", workdir, replicas, args)
        finally:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def fake_sha(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()  # noqa: S324 - a fake commit SHA


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def run_scheduler(database_url: str, workdir: Path, replicas: int, args: argparse.Namespace) -> None:
    """``replicas`` gatekeeper serve processes drain SCHEDULER_ACTIONS due actions (issue 12, item 7).

    The schema is migrated with `gatekeeper db upgrade`; the replicas start on the empty outbox, and
    once every one answers /readyz the bench enqueues all the actions in one transaction through the
    store's own port (``tx.enqueue``), due at once. The clock runs from that commit until
    ``SELECT count(*) FROM actions WHERE status = 'done'`` reaches the count (every 50 ms). Seeding
    after start-up rather than before keeps the first replica up from draining the outbox alone
    while the second still starts; the replicas learn of the rows from their own scheduler pass
    (every SCHEDULER_INTERVAL), as a replica does of actions another one enqueued.
    """
    env = gatekeeper_env(database_url, workdir, 1)
    migrated = subprocess.run(
        [str(Path(sys.executable).with_name("gatekeeper")), "db", "upgrade"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if migrated.returncode != 0:
        print(f"scheduler: skipped: `gatekeeper db upgrade` failed: {migrated.stderr.strip()[-500:]}")
        return
    engine = create_engine(database_url)
    try:
        if not inspect(engine).has_table("actions"):
            print("scheduler: skipped: the migrated schema has no `actions` table")
            return
    finally:
        engine.dispose()
    with FakeGitHub() as github:
        extra = {
            **server_env(args),
            "GATEKEEPER_GITHUB_API_URL": github.url,
            "GATEKEEPER_GITHUB_API_TOKEN": "bench-github-api-token",
        }
        servers: list[Server] = []
        logs = [workdir / f"scheduler-{replicas}-{index}.log" for index in range(replicas)]
        try:
            for log in logs:
                servers.append(start_gatekeeper(database_url, workdir, 1, log, extra))
            shas = [fake_sha(f"sched-{replicas}-{index}") for index in range(SCHEDULER_ACTIONS)]
            store = SqlReleaseStore.from_url(database_url)
            probe = create_engine(database_url)
            try:
                cpu_before = [cpu_seconds(server.pid) for server in servers]
                machine_before = machine_cpu()
                with store.transaction() as tx:
                    now = datetime.now(UTC)
                    for sha in shas:
                        tx.enqueue(
                            NewAction(
                                kind="commit_status",
                                key=f"bench:commit_status:{sha}",
                                scope=f"github_status:acme/odoo-config@{sha}",
                                payload={
                                    "source": "github",
                                    "repo": "acme/odoo-config",
                                    "sha": sha,
                                    "verdict": "approve",
                                    "description": "gatekeeper: approved",
                                    "link": "http://127.0.0.1/x",
                                },
                                digest=hashlib.sha256(sha.encode()).hexdigest(),
                            ),
                            now,
                        )
                started = time.monotonic()  # the commit: every action is due from here
                done, first_post = 0, None
                while time.monotonic() - started < SCHEDULER_DEADLINE:
                    if first_post is None and github.total():
                        first_post = time.monotonic() - started
                    with probe.connect() as connection:
                        done = int(
                            connection.execute(text("SELECT count(*) FROM actions WHERE status = 'done'")).scalar_one()
                        )
                    if done >= SCHEDULER_ACTIONS:
                        break
                    time.sleep(0.05)
                elapsed = time.monotonic() - started
                cpu_after = [cpu_seconds(server.pid) for server in servers]
                spent = [
                    after.get("server", 0.0) - before.get("server", 0.0)
                    for after, before in zip(cpu_after, cpu_before, strict=True)
                ]
                # PostgreSQL and this process (the fake GitHub, the polling) are the same in every view.
                database = cpu_after[0].get("postgresql", 0.0) - cpu_before[0].get("postgresql", 0.0)
                bench = cpu_after[0].get("load generator", 0.0) - cpu_before[0].get("load generator", 0.0)
                busy = machine_cpu()[0] - machine_before[0]
                time.sleep(0.5)  # a post in flight as the last row turned done
                with probe.connect() as connection:
                    by_owner = connection.execute(
                        text(
                            "SELECT claimed_by, status, count(*), sum(attempts) FROM actions GROUP BY claimed_by, status"
                        )
                    ).all()
            finally:
                store.close()
                probe.dispose()
        finally:
            for server in servers:
                server.stop()
        posts = github.total()
        missing = sum(1 for sha in shas if github.posts[sha] == 0)
        twice = sum(1 for sha in shas if github.posts[sha] > 1)
        pids = {server.pid: index for index, server in enumerate(servers)}
        per_replica: Counter[str] = Counter()
        attempts = 0
        for owner, status, count, tries in by_owner:
            attempts += int(tries or 0)
            if status != "done":
                continue
            pid = int(str(owner).rsplit(":", 1)[-1]) if owner else -1
            index = pids.get(pid, pids.get(parent_of(pid) or -1))
            per_replica[f"replica {index + 1}" if index is not None else str(owner)] += int(count)
        cores = os.cpu_count() or 1
        shares = ", ".join(f"{name} {per_replica[name]}" for name in sorted(per_replica))
        # each replica's CPU over the actions it finished itself
        cpu = ", ".join(
            f"{1e3 * seconds / max(per_replica[f'replica {index + 1}'], 1):.1f} ms"
            for index, seconds in enumerate(spent)
        )
        others = busy - sum(spent) - database - bench
        print(
            f"{'scheduler':<11} {replicas:>8} {elapsed:10.2f} {done / elapsed:10.1f} {posts:6d} "
            f"{posts - SCHEDULER_ACTIONS:8d} {missing:8d} {SCHEDULER_ACTIONS - done:9d}  {shares}; "
            f"server CPU per action it finished {cpu}, PostgreSQL {1e3 * database / max(done, 1):.1f} ms, bench process "
            f"(fake GitHub) {1e3 * bench / max(done, 1):.1f} ms; the machine {100 * busy / elapsed / cores:.0f}% of "
            f"{cores} cores busy, {100 * max(others, 0.0) / elapsed / cores:.0f}% by other processes"
        )
        notes = []
        if first_post is not None:
            notes.append(f"first post {first_post:.2f} s after the commit")
        if twice:
            notes.append(f"{twice} SHA(s) posted more than once")
        if attempts != done:
            notes.append(f"attempts recorded {attempts} for {done} done")
        if github.other:
            notes.append(f"{github.other} request(s) to other paths")
        if done < SCHEDULER_ACTIONS:
            notes.append(f"DEADLINE: {SCHEDULER_ACTIONS - done} not done after {SCHEDULER_DEADLINE:.0f} s")
        for index, log in enumerate(logs):
            levels, samples = log_findings(log)
            if levels:
                notes.append(f"replica {index + 1} logged {dict(levels)}, e.g. {samples[0][:200]!r}")
        if notes:
            print(f"{'scheduler':<11} {replicas:>8}   " + "; ".join(notes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="postgresql,sqlite", help="comma-separated: postgresql, sqlite")
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of the open loop (default 40)")
    parser.add_argument(
        "--rate", type=float, default=None, help="gate calls/s in the open loop (default: PostgreSQL 100, SQLite 50)"
    )
    parser.add_argument(
        "--burst", type=int, default=None, help="webhooks in the burst (default: PostgreSQL 300, SQLite none)"
    )
    parser.add_argument(
        "--burst-seconds",
        type=float,
        default=0.0,
        help="spread the burst evenly over this many seconds (default 0: all due at once, sent as fast as possible)",
    )
    parser.add_argument(
        "--burst-concurrency",
        type=int,
        default=0,
        help="at most N webhooks in flight at once (default 0: no bound); a proxy for a bound in the server",
    )
    parser.add_argument("--closed-seconds", type=float, default=8.0, help="seconds of each closed-loop reference run")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop clients")
    parser.add_argument(
        "--scheduler", action="store_true", help="also: 500 due actions drained by 2 replicas, and by 1 (PostgreSQL)"
    )
    parser.add_argument(
        "--webhook-concurrency",
        type=int,
        default=0,
        help="GATEKEEPER_WEBHOOK_CONCURRENCY for every server started (default 0: the server's own default)",
    )
    args = parser.parse_args()
    names = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(names) - {"postgresql", "sqlite"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    print(
        f"bench/gate.py: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f}"
    )
    results: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        prepare(workdir)
        run = uuid.uuid4().hex[:6]
        for name in names:
            schema = None
            if name == "postgresql":
                schema = f"gk_bench_{run}"
                url = f"{PG}?options=-csearch_path%3D{schema}"
                backend = Backend(name, url, 2, args.rate or 100.0, 300 if args.burst is None else args.burst)
            else:
                url = f"sqlite:///{workdir / 'bench.db'}"
                backend = Backend(name, url, 1, args.rate or 50.0, 0 if args.burst is None else args.burst)
            admin = create_engine(PG)
            try:
                if schema:
                    with admin.begin() as connection:
                        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
                results[name] = run_backend(backend, workdir, args, run)
                if args.scheduler and name == "postgresql":
                    scheduler_phase(admin, run, workdir, args)
            finally:
                if schema:
                    with admin.begin() as connection:
                        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                admin.dispose()
        if args.scheduler and "postgresql" not in names:
            print("scheduler: skipped: it runs on PostgreSQL (2 replicas); add postgresql to --backends")
    print("summary: " + ", ".join(f"{name} {'PASS' if ok else 'FAIL'}" for name, ok in results.items()))


def run_backend(backend: Backend, workdir: Path, args: argparse.Namespace, run: str) -> bool:
    log = workdir / f"gatekeeper-{backend.name}.log"
    server = start_gatekeeper(backend.url, workdir, backend.workers, log, server_env(args))
    try:
        passed = open_loop_phase(backend, server, args, run)
        closed_loop_phase(backend, backend.url, server, workdir, args, run)
    finally:
        server.stop()
    levels, samples = log_findings(log)
    if levels:
        print(f"{backend.name:<11} the server logged: {dict(levels)}; e.g.:")
        for sample in samples:
            print(f"{backend.name:<11}   {sample}")
    else:
        print(f"{backend.name:<11} the server logged nothing at WARNING or above")
    return passed


if __name__ == "__main__":
    main()
