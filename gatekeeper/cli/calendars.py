"""``calendars list``: each calendar source the policies use (file or URL), read offline.

Files are read from the calendars directory; published calendars from the copies and fetch
outcomes the server keeps in ``CALENDAR_CACHE_DIR`` (the last fetch, age, events, state).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from gatekeeper.cli.common import app, fail, print_json, settings_or_exit
from gatekeeper.cli.offline import CalendarsOpt, JsonOpt, PoliciesOpt, cached_feeds
from gatekeeper.configuration.loader import Configuration, ConfigurationError, load_configuration
from gatekeeper.domain.policy import IcsEntry

calendars_app = typer.Typer(no_args_is_help=True, help="Calendar sources (files and published URLs).")
app.add_typer(calendars_app, name="calendars")

Full = Annotated[bool, typer.Option("--full-urls", help="Show whole URLs (they may carry a feed's secret).")]


@calendars_app.command("list")
def calendars_list(
    policies: PoliciesOpt = None, calendars: CalendarsOpt = None, as_json: JsonOpt = False, full_urls: Full = False
) -> None:
    """Each calendar source: kind, state, events, last fetch and age. Exit 0."""
    settings = settings_or_exit()
    now = datetime.now(UTC)
    feeds = cached_feeds(settings)
    try:
        configuration = load_configuration(
            policies or settings.POLICIES_DIR, calendars or settings.CALENDARS_DIR, feeds=feeds.calendars()
        )
    except ConfigurationError as exc:
        fail("\n".join(str(error) for error in exc.errors))
    rows = _files(configuration, Path(calendars or settings.CALENDARS_DIR)) + feeds.report(
        configuration.feeds, now, display=not full_urls
    )
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no calendar files or URLs in the policies")
    for row in rows:
        age = "-" if row["age_seconds"] is None else _age(row["age_seconds"])
        events = "-" if row["events"] is None else str(row["events"])
        line = f"{row['state']:<13} {row['kind']:<4} {events:>6} events  fetched {row['last_success'] or '-'} "
        typer.echo(f"{line}(age {age})  {row['code']}  {row['source']}")
        if row.get("last_error"):
            typer.echo(f"    last error: {row['last_error']}")


def _files(configuration: Configuration, root: Path) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    parsed = configuration.calendars.parsed
    for policy in configuration.policies:
        for entry in (*policy.calendar.deny, *policy.calendar.allow):
            if isinstance(entry, IcsEntry) and entry.path not in seen:
                calendar = parsed.get(entry.path)
                seen[entry.path] = {
                    "source": str(root / entry.path),
                    "kind": "file",
                    "state": "ok",
                    "last_success": None,
                    "last_attempt": None,
                    "age_seconds": None,
                    "max_age_seconds": None,
                    "events": calendar.event_count if calendar else None,
                    "last_error": None,
                    "last_error_at": None,
                    "code": entry.code,
                }
    return list(seen.values())


def _age(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
