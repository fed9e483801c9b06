"""``gatekeeper freeze start|list|lift``: stop the line on a server, see what is frozen, lift it.

Token from ``GATEKEEPER_TOKEN`` or ``--token-file`` (starting and lifting need release-manager).
Times are printed in UTC with the local time beside them (``UI_TIMEZONE``); ``--json`` prints the
API's shapes. Exit codes: 0 ok, 2 bad input, 4 refused, 5 unreachable.
"""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from gatekeeper.cli.common import app, fail, print_json, settings_or_exit, with_local, zone_or_exit
from gatekeeper.cli.people import JsonOpt, ServerOpt, call
from gatekeeper.cli.server import TokenFileOpt
from gatekeeper.schemas import parse_instant

freeze_app = typer.Typer(no_args_is_help=True, help="Ad-hoc freezes on a server: start, list, lift.")
app.add_typer(freeze_app, name="freeze")

HEADER = f"{'ID':>5}  {'STATE':<9} {'START':<42} {'END':<42} {'BY':<12} {'TARGETS':<34} REASON"


def _zone() -> ZoneInfo:
    return zone_or_exit(settings_or_exit().UI_TIMEZONE)


def _row(freeze: dict[str, Any], zone: ZoneInfo) -> str:
    end = freeze["lifted_at"] if freeze["state"] == "lifted" else freeze["end"]
    ending = with_local(end, zone, missing="until lifted")
    return (
        f"{freeze['id']:>5}  {freeze['state']:<9} {with_local(freeze['start'], zone):<42} {ending:<42} "
        f"{freeze['created_by']:<12} {','.join(freeze['targets']):<34} {freeze['reason']}"
    )


def _instant(text: str | None, option: str) -> str | None:
    if text is None:
        return None
    try:
        return parse_instant(text).isoformat()
    except ValueError as exc:
        fail(f"{option}: {exc}")


@freeze_app.command("start")
def freeze_start(
    server: ServerOpt,
    target: Annotated[list[str], typer.Option("--target", help="A target glob (repeat for several).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (required; shown in every answer it causes).")],
    start: Annotated[str | None, typer.Option("--start", help="RFC 3339 with an offset; default now.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="RFC 3339 with an offset; default until lifted.")] = None,
    lasting: Annotated[str | None, typer.Option("--for", help="A duration (2h, 90m) instead of --end.")] = None,
    token_file: TokenFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop the line: close the targets matching the globs, now or from --start, until lifted or --end."""
    if end is not None and lasting is not None:
        fail("--end and --for: give one of them")
    body = {
        "targets": target,
        "start": _instant(start, "--start"),
        "end": _instant(end, "--end"),
        "duration": lasting,  # counted by the server from the start (no client clock involved)
        "reason": reason,
    }
    freeze = call(server, token_file, "POST", "/v1/freezes", json=body)
    if as_json:
        print_json(freeze)
        return
    zone = _zone()
    until = f"to {with_local(freeze['end'], zone)}" if freeze["end"] else "until lifted"
    typer.echo(f"freeze {freeze['id']} {freeze['state']}: {', '.join(freeze['targets'])}")
    typer.echo(f"  from {with_local(freeze['start'], zone)} {until}")
    typer.echo(f"  reason: {freeze['reason']}")


@freeze_app.command("list")
def freeze_list(
    server: ServerOpt,
    include_all: Annotated[bool, typer.Option("--all", help="Also the freezes that ended or were lifted.")] = False,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    token_file: TokenFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Freezes in force (active or scheduled), newest first; --all for the history."""
    params: dict[str, Any] = {"limit": limit, **({"all": "true"} if include_all else {})}
    body = call(server, token_file, "GET", "/v1/freezes", params=params)
    if as_json:
        print_json(body)
        return
    if not body["items"]:
        typer.echo("no freeze in force" if not include_all else "no freeze")
        return
    zone = _zone()
    typer.echo(HEADER)
    for freeze in body["items"]:
        typer.echo(_row(freeze, zone))


@freeze_app.command("lift")
def freeze_lift(
    freeze_id: int,
    server: ServerOpt,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (required).")] = None,
    token_file: TokenFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Lift a freeze now (it stays in the history with who lifted it and why)."""
    freeze = call(server, token_file, "DELETE", f"/v1/freezes/{freeze_id}", json={"reason": reason})
    if as_json:
        print_json(freeze)
        return
    zone = _zone()
    typer.echo(f"freeze {freeze['id']} lifted at {with_local(freeze['lifted_at'], zone)} by {freeze['lifted_by']}")
    typer.echo(f"  reason: {freeze['lift_reason']}")
