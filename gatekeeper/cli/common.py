"""What every command shares: the Typer app, exit codes and output helpers (DESIGN §5)."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from pydantic import ValidationError

from gatekeeper.domain.types import Verdict
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
