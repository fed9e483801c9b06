"""What every command shares: the Typer app, exit codes and output helpers (DESIGN §5)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from pydantic import ValidationError

from gatekeeper.domain.types import Verdict, with_local_time
from gatekeeper.settings import Settings

# Exit codes of DESIGN §5.
EXIT_OK = 0  # approve, open or ok
EXIT_CLOSED = 1  # deferred, closed, --wait ran out, audit chain broken
EXIT_BAD_INPUT = 2  # bad input or lint errors
EXIT_STOPPED = 3  # rejected, rollback or superseded
EXIT_REFUSED = 4  # authentication or role refused
EXIT_UNREACHABLE = 5  # server unreachable after retries
VERDICT_EXIT = {Verdict.APPROVE: EXIT_OK, Verdict.DEFER: EXIT_CLOSED, Verdict.ROLLBACK: EXIT_STOPPED}

app = typer.Typer(no_args_is_help=True, add_completion=False, help="gatekeeper: may this release go out now?")
policy_app = typer.Typer(no_args_is_help=True, help="Policy files.")
app.add_typer(policy_app, name="policy")


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        fail(f"invalid settings: {exc}")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def zone_or_exit(name: str, option: str = "GATEKEEPER_UI_TIMEZONE") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"{option}: unknown time zone {name!r} (expected an IANA name such as Europe/Berlin)")


def with_local(text: str | None, zone: ZoneInfo, missing: str = "-") -> str:
    """An instant of the API (UTC, ``...Z``) with the local time people read beside it:
    ``2026-11-24T15:00:00Z (16:00 Europe/Berlin)``; the local date too when it is another day.
    ``--json`` output never goes through here: it stays UTC."""
    if not text:
        return missing
    return with_local_time(datetime.fromisoformat(text.replace("Z", "+00:00")), zone.key)
