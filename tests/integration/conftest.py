"""Integration fixtures: real PostgreSQL (a schema per test run) and SQLite, real uvicorn on loopback.

The clock is the only test double: a ``MutableClock`` the tests move, so deferrals can open
without sleeping.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import create_engine, text

from gatekeeper.api.app import create_app
from gatekeeper.ports import FactReader
from gatekeeper.settings import Settings

PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

TOKENS = {
    "viewer": ("vera", ["viewer"]),
    "hook": ("argocd-hook", ["hook"]),
    "manager": ("alice", ["release-manager", "viewer"]),
    "narrow-hook": ("staging-hook", ["hook"]),
    "manager2": ("bob", ["release-manager"]),
    "author": ("erik", ["release-manager"]),
    "merger": ("frank", ["release-manager"]),
    "breakglass": ("carol", ["release-manager", "break-glass"]),
    "breakglass-only": ("dave", ["break-glass"]),
}

POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-production}
spec:
  targets: ["argocd:odoo-prod*"]
  timezone: Europe/Berlin
  calendar:
    deny:
      - {cron: "0 14 * * 1-5", duration: 2h, code: dispatch_cutoff}
      - {holidays: {country: DE, subdivision: HH}, code: public_holiday}
    allow:
      - {cron: "0 6 * * 1-5", duration: 12h, code: business_hours}
---
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-staging}
spec:
  mode: observe
  targets: ["argocd:odoo-staging*"]
  timezone: Europe/Berlin
  calendar:
    deny:
      - {cron: "0 14 * * 1-5", duration: 2h, code: dispatch_cutoff}
---
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-config}
spec:
  targets: ["git:acme/odoo-config@main", "flux:Kustomization/odoo-prod/*", "argocd:odoo-prod*"]
  paths: ["clusters/prod/*"]
  timezone: Europe/Berlin
  calendar:
    deny:
      - {cron: "0 14 * * 1-5", duration: 2h, code: dispatch_cutoff}
  verification: {period: 15m, rollbackOnUnhealthy: true}
---
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-finance}
spec:
  targets: ["argocd:odoo-finance"]
  timezone: Europe/Berlin
  calendar:
    deny:
      - {cron: "0 14 * * 1-5", duration: 2h, code: dispatch_cutoff}
  approvals: {required: 2, role: release-manager, fourEyes: true}
---
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-warehouse}
spec:
  targets: ["argocd:odoo-wms"]
  timezone: Europe/Berlin
  calendar:
    deny:
      - {cron: "0 14 * * 1-5", duration: 2h, code: dispatch_cutoff}
  approvals: {required: 1, role: release-manager}
"""


def token_of(role: str) -> str:
    return f"test-token-{role}"


@dataclass
class MutableClock:
    """The Clock port's test double: tests set and advance the instant."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 24, 9, 0, tzinfo=UTC))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> datetime:
        with self.lock:
            return self.now

    def set(self, instant: datetime) -> None:
        with self.lock:
            self.now = instant


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[Callable[[], str]]:
    """Makes a fresh PostgreSQL schema per call; all are dropped at the end of the run."""
    engine = create_engine(PG_BASE)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # PostgreSQL is required: fail loudly, never skip silently
        pytest.fail(f"PostgreSQL is not reachable at {PG_BASE}: {exc}")
    made: list[str] = []

    def make() -> str:
        schema = f"gk_{uuid.uuid4().hex[:12]}"
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        made.append(schema)
        return f"{PG_BASE}?options=-csearch_path%3D{schema}"

    yield make
    for schema in made:  # one transaction each: all at once runs out of max_locks_per_transaction
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, pg_schema_url: Callable[[], str]) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gatekeeper.db'}"
    return pg_schema_url()


def write_tokens(folder: Path) -> Path:
    """``folder/tokens.yaml`` with the tokens of TOKENS (``token_of(role)``)."""
    lines = []
    for role, (name, roles) in TOKENS.items():
        digest = hashlib.sha256(token_of(role).encode()).hexdigest()
        targets = '\n  targets: ["argocd:odoo-staging*"]' if role == "narrow-hook" else ""
        lines.append(f"- name: {name}\n  roles: [{', '.join(roles)}]\n  token_sha256: {digest}{targets}")
    path = folder / "tokens.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_config(folder: Path) -> tuple[Path, Path]:
    """``folder/policies`` (POLICY) and an empty ``folder/calendars``."""
    policies, calendars = folder / "policies", folder / "calendars"
    policies.mkdir()
    calendars.mkdir()
    (policies / "odoo.yaml").write_text(textwrap.dedent(POLICY))
    return policies, calendars


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    return write_tokens(tmp_path)


@pytest.fixture
def config_tree(tmp_path: Path) -> tuple[Path, Path]:
    return write_config(tmp_path)


@dataclass
class Server:
    url: str
    clock: MutableClock
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread
    app: FastAPI

    def client(self, role: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token_of(role)}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(settings: Settings, clock: MutableClock, readers: Sequence[FactReader] = ()) -> Server:
    app = create_app(settings, clock=clock, readers=readers)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return Server(f"http://127.0.0.1:{port}", clock, settings, server, thread, app)


def make_settings(database_url: str, policies: Path, calendars: Path, tokens: Path, **extra: object) -> Settings:
    return Settings(
        DATABASE_URL=database_url,
        AUTO_MIGRATE=True,
        POLICIES_DIR=policies,
        CALENDARS_DIR=calendars,
        TOKENS_FILE=tokens,
        RELOAD_INTERVAL=0.2,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def server(database_url: str, config_tree: tuple[Path, Path], tokens_file: Path) -> Iterator[Server]:
    clock = MutableClock()
    running = start_server(make_settings(database_url, *config_tree, tokens_file), clock)
    yield running
    running.stop()


def eventually(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Waits for a condition another thread or process brings about (a loaded CI machine is slow)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


GATEKEEPER = str(Path(sys.executable).with_name("gatekeeper"))


def serve_process(
    url: str, policies: Path, calendars: Path, tokens: Path, **extra: str
) -> tuple[str, subprocess.Popen[bytes]]:
    """A real `gatekeeper serve` process (a replica) on ``url``, once it answers /readyz; ``extra``
    are settings without their GATEKEEPER_ prefix."""
    port = free_port()
    env = {
        **os.environ,
        "GATEKEEPER_DATABASE_URL": url,
        "GATEKEEPER_POLICIES_DIR": str(policies),
        "GATEKEEPER_CALENDARS_DIR": str(calendars),
        "GATEKEEPER_TOKENS_FILE": str(tokens),
        "GATEKEEPER_PORT": str(port),
        **{f"GATEKEEPER_{key}": value for key, value in extra.items()},
    }
    process = subprocess.Popen([GATEKEEPER, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return base, process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("gatekeeper serve did not become ready")


def gate_calls(server: Server) -> int:
    """How many gate calls the server has answered (its /metrics): a poll that changed nothing
    stores no decision, so this is how a test sees a hook polling."""
    with server.client("viewer") as client:
        text = client.get("/metrics").text
    prefix = 'gatekeeper_http_request_duration_seconds_count{method="POST",route="/v1/gate"'
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines() if line.startswith(prefix))


def decisions_of(server: Server, target: str, revision: str) -> int:
    """How many decisions the release of ``target`` at ``revision`` has (0: no release yet)."""
    with server.client("viewer") as client:
        items = client.get("/v1/releases", params={"target": target}).json()["items"]
    return sum(len(item["decisions"]) for item in items if item["revision"] == revision)
