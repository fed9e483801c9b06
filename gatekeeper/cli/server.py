"""Commands that run or talk to the server: ``serve``, ``db upgrade`` and ``gate``."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import httpx
import typer

from gatekeeper import logs
from gatekeeper.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_CLOSED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_STOPPED,
    EXIT_UNREACHABLE,
    app,
    fail,
    print_json,
    settings_or_exit,
    with_local,
    zone_or_exit,
)
from gatekeeper.domain.durations import Duration, InvalidDurationError
from gatekeeper.settings import Settings
from gatekeeper.store import StoreError

db_app = typer.Typer(no_args_is_help=True, help="Database.")
app.add_typer(db_app, name="db")

TokenFileOpt = Annotated[
    Path | None, typer.Option("--token-file", help="File holding the API token (default: $GATEKEEPER_TOKEN).")
]
RETRYABLE = {502, 503, 504}


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (default: GATEKEEPER_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: GATEKEEPER_PORT).")] = None,
) -> None:
    """Run the HTTP service (refuses an unmigrated database unless GATEKEEPER_AUTO_MIGRATE)."""
    import uvicorn

    from gatekeeper.api.app import create_app
    from gatekeeper.readers.calendar_feeds import CredentialsError

    settings = settings_or_exit()
    logs.configure(settings.LOG_FORMAT)
    if settings.WORKERS > 1 and settings.DATABASE_URL.startswith("sqlite"):
        fail("gatekeeper: GATEKEEPER_WORKERS > 1 needs PostgreSQL (SQLite serves one process)")
    try:
        application = create_app(settings)  # also checks the database before any worker starts
    except (StoreError, CredentialsError) as exc:
        fail(f"gatekeeper: {exc}")
    listen_host, listen_port = host or settings.HOST, port or settings.PORT
    url = f"http://{listen_host}:{listen_port}"
    typer.echo(f"gatekeeper listening on {url} (API docs: {url}/docs)", err=True)
    hint = "dev-hook-token (dev/tokens.yaml)" if _dev_tokens(settings) else "a token with the hook role"
    typer.echo(
        f"try, with TOKEN set to {hint}:\n"
        f"  curl -s -X POST {url}/v1/gate -H \"Authorization: Bearer $TOKEN\" "
        "-H 'Content-Type: application/json' "
        '-d \'{"target": "argocd:odoo-prod", "revision": "abc123", "trigger": "presync"}\'',
        err=True,
    )
    if settings.WORKERS > 1:
        uvicorn.run(
            "gatekeeper.api.app:app_from_environment",
            factory=True,
            workers=settings.WORKERS,
            host=listen_host,
            port=listen_port,
            log_config=None,
            access_log=True,
        )
        return
    uvicorn.run(application, host=listen_host, port=listen_port, log_config=None, access_log=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database (GATEKEEPER_DATABASE_URL) to the newest schema."""
    from gatekeeper.store.sql import SqlReleaseStore

    settings = settings_or_exit()
    store = SqlReleaseStore.from_url(settings.DATABASE_URL)
    try:
        before, head = store.schema_revisions()
        store.upgrade()
        store.check_migrated()
    except StoreError as exc:
        fail(f"gatekeeper: {exc}")
    finally:
        store.engine.dispose()
    if before == head:
        typer.echo(f"database was at the newest schema already ({head})")
    else:
        typer.echo(f"database migrated from {before or 'an empty database'} to {head}")


DEV_TOKENS = Path("dev/tokens.yaml")  # what `make run` serves with, from the repository root


def _dev_tokens(settings: Settings) -> bool:
    """Whether the service runs on the development token file that ``make run`` uses."""
    return settings.TOKENS_FILE is not None and settings.TOKENS_FILE.resolve() == DEV_TOKENS.resolve()


def read_token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            fail(f"--token-file: cannot read {token_file}: {exc.strerror}")
    else:
        token = os.environ.get("GATEKEEPER_TOKEN", "").strip()
    if not token:
        fail("no API token: set GATEKEEPER_TOKEN or pass --token-file", EXIT_REFUSED)
    return token


def _seconds(text: str, option: str, also: str = "") -> float:
    try:
        duration = Duration.parse(text)
    except InvalidDurationError as exc:
        fail(f"{option}: {exc}{also}")
    return float(duration.days * 86_400 + duration.seconds)


FINAL = ("rejected", "superseded", "rolled_back")  # states the gate client stops on (exit 3)
HANDOFF = "handoff"  # --wait handoff: a deferred release is synced by gatekeeper, not by this hook


def _handed_off(data: dict[str, Any], zone: ZoneInfo) -> str:
    """What a hook that gives up at once says: when gatekeeper will start the sync itself."""
    subject = f"{data['target']}@{str(data['revision'])[:12]}"
    if data.get("not_before"):
        when = f"when the gate opens at {_when(data['not_before'], zone)}"
    else:
        when = "as soon as it is approved"
    if data.get("goes_out_by_itself") is False:  # no Argo CD API (or FLUX_GATE) on the server
        return (f"deferred: this sync fails now, and gatekeeper does not sync {subject} itself (the server has "
                f"no Argo CD API configured: ARGOCD_SERVER, ARGOCD_API_TOKEN); sync it again {when}")  # fmt: skip
    verb = "resume" if str(data["target"]).startswith("flux:") else "sync"
    return f"deferred: this sync fails now; gatekeeper will {verb} {subject} itself {when}"


def _when(text: str | None, zone: ZoneInfo) -> str:
    return with_local(text, zone, "not within 366 days (needs a person)")


def _report(body: dict[str, Any], zone: ZoneInfo) -> None:
    typer.echo(
        f"{body['target']}@{body['revision']}: {body['verdict']} (release {body['release_id']}, {body.get('status')})"
    )
    for reason in body.get("reasons", []):
        typer.echo(f"  - {reason['code']}: {reason['message']}")
    for need in body.get("requires", []):
        typer.echo(f"  requires {need}")
    if body.get("status") in FINAL:  # nothing will let this revision go: it needs a new one
        typer.echo(f"  not before: never ({body['status']}: only a new revision can go)")
    elif body["verdict"] == "defer":
        typer.echo(f"  not before: {_when(body.get('not_before'), zone)}")


@app.command()
def gate(
    server: Annotated[str, typer.Option("--server", help="gatekeeper URL, e.g. http://gatekeeper:8080.")],
    target: Annotated[str, typer.Option("--target", help="Target key, e.g. argocd:odoo-prod.")],
    revision: Annotated[str, typer.Option("--revision", help="Revision (commit SHA) to release.")],
    wait: Annotated[
        str,
        typer.Option(
            "--wait",
            help="How long to wait for approval, e.g. 30m (0: ask once); 'handoff': ask once and, if deferred, "
            "fail at once saying when gatekeeper will sync the release itself (Argo CD, with ARGOCD_SERVER set).",
        ),
    ] = "0s",
    interval: Annotated[str, typer.Option("--interval", help="Time between polls while deferred.")] = "15s",
    trigger: Annotated[str, typer.Option("--trigger", help="What asks (presync, pipeline, ...).")] = "presync",
    token_file: TokenFileOpt = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="Zone for local times (default: GATEKEEPER_UI_TIMEZONE).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each decision as JSON.")] = False,
) -> None:
    """Ask the gate and wait: exit 0 approved, 1 deferred when the wait ends, 3 rejected/superseded/rollback,
    4 refused, 5 unreachable."""
    token = read_token(token_file)
    handoff = wait == HANDOFF
    budget = 0.0 if wait in ("0", "0s") or handoff else _seconds(wait, "--wait", also=f" or '{HANDOFF}'")
    pause = _seconds(interval, "--interval")
    zone = zone_or_exit(timezone, "--timezone") if timezone else zone_or_exit(settings_or_exit().UI_TIMEZONE)
    deadline = time.monotonic() + budget
    body = {"target": target, "revision": revision, "trigger": trigger}
    got_through, backoff = False, 1.0
    with httpx.Client(
        base_url=server.rstrip("/"), timeout=10.0, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        while True:
            answer = _ask(client, body)
            if answer is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 and (budget > 0 or backoff > 8):
                    code = EXIT_CLOSED if got_through else EXIT_UNREACHABLE
                    fail(f"gatekeeper unreachable at {server}" + (" (wait ran out)" if got_through else ""), code)
                time.sleep(min(backoff, max(remaining, 0.0)) if budget > 0 else backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            got_through, backoff = True, 1.0
            status_code, data = answer
            if status_code != 200:
                _refused(status_code, data)
            if as_json:
                print_json(data)
            else:
                _report(data, zone)
            outcome = _outcome(data)
            if outcome is not None:
                raise typer.Exit(outcome)
            if handoff:
                typer.echo(_handed_off(data, zone), err=True)
                raise typer.Exit(EXIT_CLOSED)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                typer.echo("wait ran out while deferred", err=True)
                raise typer.Exit(EXIT_CLOSED)
            time.sleep(min(pause, remaining, _until(data.get("not_before"), pause)))


def _ask(client: httpx.Client, body: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
    """One gate call: (status, JSON body), or None when it should be retried."""
    try:
        response = client.post("/v1/gate", json=body)
    except httpx.HTTPError as exc:
        typer.echo(f"gate call failed: {type(exc).__name__}: {str(exc)[:200]}", err=True)
        return None
    if response.status_code in RETRYABLE:
        typer.echo(f"gatekeeper answered {response.status_code}; retrying", err=True)
        return None
    try:
        data = response.json()
    except json.JSONDecodeError:
        data = {"error": "bad_response", "message": response.text[:200]}
    return response.status_code, data


def _refused(status_code: int, data: dict[str, Any]) -> None:
    message = f"gatekeeper refused ({status_code}): {data.get('message', data)}"
    fail(message, EXIT_REFUSED if status_code in (401, 403) else EXIT_BAD_INPUT)


def _outcome(data: dict[str, Any]) -> int | None:
    """The exit code when waiting is over, None while still deferred."""
    if data.get("status") in FINAL or data["verdict"] == "rollback":
        return EXIT_STOPPED
    if data["verdict"] == "approve":
        return EXIT_OK
    return None


def _until(not_before: str | None, default: float) -> float:
    if not not_before:
        return default
    instant = datetime.fromisoformat(not_before.replace("Z", "+00:00"))
    return max((instant - datetime.now(UTC)).total_seconds(), 1.0)
