"""Offline commands: ``status``, ``windows``, ``check`` and ``policy lint``, read from files.

They answer from the policy and calendar files alone (no server, no database), with exactly the
JSON shapes of the HTTP API under ``--json``. Published calendars (``ics: https://...``) are read
from the copies the server keeps in ``CALENDAR_CACHE_DIR``; only ``policy lint --fetch`` fetches.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError

from gatekeeper import calendar
from gatekeeper.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_CLOSED,
    EXIT_OK,
    VERDICT_EXIT,
    app,
    fail,
    policy_app,
    print_json,
    settings_or_exit,
    with_local,
    zone_or_exit,
)
from gatekeeper.configuration.loader import (
    Configuration,
    ConfigurationError,
    LoadError,
    load_configuration,
)
from gatekeeper.domain.decision import DecideOptions, Facts, decide
from gatekeeper.domain.policy import FeedEntry
from gatekeeper.domain.types import InvalidTargetError, Verdict, parse_target
from gatekeeper.feeds import FeedBook, FeedError, load_credentials
from gatekeeper.readers.calendar_feeds import CredentialsError, HttpxFeedReader
from gatekeeper.schemas import GateRequest, decision_json, parse_instant, status_json, windows_json
from gatekeeper.settings import Settings

PoliciesOpt = Annotated[
    Path | None, typer.Option("--policies", help="Policies directory (default: GATEKEEPER_POLICIES_DIR).")
]
CalendarsOpt = Annotated[
    Path | None, typer.Option("--calendars", help="Calendars directory (default: GATEKEEPER_CALENDARS_DIR).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the HTTP API's JSON shape.")]
TargetOpt = Annotated[str, typer.Option("--target", help="Target key, e.g. argocd:odoo-prod.")]


def cached_feeds(settings: Settings) -> FeedBook:
    """The published calendars' copies the server keeps (read only; nothing is fetched)."""
    book = FeedBook(lambda: datetime.now(UTC), cache_dir=settings.CALENDAR_CACHE_DIR)
    book.load_cache()
    return book


def _configuration_and_feeds(
    policies: Path | None, calendars: Path | None, now: datetime
) -> tuple[Configuration, Settings, FeedBook]:
    settings = settings_or_exit()
    feeds = cached_feeds(settings)
    try:  # compiled around ``now`` so an entry that cannot expand is a FILE:LINE error, not a traceback
        configuration = load_configuration(
            policies or settings.POLICIES_DIR, calendars or settings.CALENDARS_DIR, now=now, feeds=feeds.calendars()
        )
    except ConfigurationError as exc:
        fail("\n".join(str(error) for error in exc.errors))
    return configuration, settings, feeds


def _stale(feeds: FeedBook, configuration: Configuration, target: str, now: datetime) -> calendar.Staleness | None:
    """The cached published calendars of ``target``'s policies past their maxAge at ``now``:
    closed from then on, as the server's ``status`` and ``windows`` say."""
    reasons = feeds.stale_of(configuration.governing(target), now)
    return calendar.Staleness(now, reasons) if reasons else None


def _zone_of(configuration: Configuration, target: str, settings: Settings) -> ZoneInfo:
    """The zone people read ``target``'s times in: its policy's (the first governing one), else
    UI_TIMEZONE."""
    governing = configuration.governing(target)
    if governing:
        return zone_or_exit(governing[0].timezone, f"{governing[0].file}: spec.timezone")
    return zone_or_exit(settings.UI_TIMEZONE)


def _instant(text: str | None, option: str) -> datetime:
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        return parse_instant(text)
    except ValueError as exc:
        fail(f"{option}: {exc}")


def _target(text: str) -> str:
    try:
        return parse_target(text)
    except InvalidTargetError as exc:
        fail(f"--target: {exc}")


@app.command()
def status(
    target: TargetOpt,
    at: Annotated[str | None, typer.Option("--at", help="RFC 3339 instant (default: now).")] = None,
    policies: PoliciesOpt = None,
    calendars: CalendarsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Is the gate of TARGET open at AT? Exit 0 open, 1 closed."""
    key, now = _target(target), _instant(None, "--at")
    moment = _instant(at, "--at") if at is not None else now
    configuration, settings, feeds = _configuration_and_feeds(policies, calendars, moment)
    result = calendar.status(
        configuration.calendars, configuration.policies, key, moment,
        ungoverned_open=settings.UNGOVERNED == "approve", stale=_stale(feeds, configuration, key, now),
    )
    body = status_json(result)
    if as_json:
        print_json(body)
    else:
        zone, never = _zone_of(configuration, key, settings), "not within 366 days"
        state = "closed" if result.closed else "open"
        typer.echo(f"{key} is {state} at {with_local(body['at'], zone)}")
        for reason in body["reasons"]:
            typer.echo(f"  - {reason['code']}: {reason['message']}")
        typer.echo(f"next open:  {with_local(body['next_open'], zone, never)}")
        close_reason = f" ({body['next_close_reason']})" if body["next_close_reason"] else ""
        typer.echo(f"next close: {with_local(body['next_close'], zone, never)}{close_reason}")
    raise typer.Exit(EXIT_CLOSED if result.closed else EXIT_OK)


@app.command()
def windows(
    target: TargetOpt,
    start: Annotated[str, typer.Option("--from", help="RFC 3339 instant, inclusive.")],
    end: Annotated[str, typer.Option("--to", help="RFC 3339 instant, exclusive.")],
    policies: PoliciesOpt = None,
    calendars: CalendarsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The closed windows of TARGET in [FROM, TO)."""
    key = _target(target)
    first, last = _instant(start, "--from"), _instant(end, "--to")
    if last < first:
        fail("--to: must not be before --from")
    configuration, settings, feeds = _configuration_and_feeds(policies, calendars, first)
    result = calendar.windows(
        configuration.calendars, configuration.policies, key, first, last,
        ungoverned_open=settings.UNGOVERNED == "approve",
        stale=_stale(feeds, configuration, key, _instant(None, "--to")),
    )
    body = windows_json(result)
    if as_json:
        print_json(body)
        return
    zone = _zone_of(configuration, key, settings)
    span = f"[{with_local(body['from'], zone)}, {with_local(body['to'], zone)})"
    typer.echo(f"{key}: {len(body['closed'])} closed window(s) in {span}")
    for window in body["closed"]:
        start, end = with_local(window["start"], zone), with_local(window["end"], zone)
        typer.echo(f"  {start}  {end}  {', '.join(window['codes'])}")


@app.command()
def check(
    request_file: Annotated[Path, typer.Argument(metavar="REQUEST.json", help="A /v1/gate body.")],
    at: Annotated[str | None, typer.Option("--at", help="RFC 3339 instant (default: now).")] = None,
    policies: PoliciesOpt = None,
    calendars: CalendarsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What-if: the decision for REQUEST.json at AT. Exit 0 approve, 1 defer, 3 rollback."""
    moment = _instant(at, "--at")
    request = _read_request(request_file)
    configuration, settings, feeds = _configuration_and_feeds(policies, calendars, moment)
    governing = configuration.governing(request.target)
    facts = Facts(
        policy_hash=configuration.policy_hash,
        calendars=configuration.calendars.facts_for(governing, moment),
        stale_calendars=feeds.stale_reasons(governing, moment),
    )
    options = DecideOptions(
        ungoverned=Verdict(settings.UNGOVERNED),
        retry_delay=timedelta(seconds=settings.retry_delay_seconds),
    )
    decision = decide(request, facts, governing, now=moment, options=options)
    body = decision_json(decision, release_id=None, target=request.target, revision=request.revision)
    if as_json:
        print_json(body)
    else:
        zone = _zone_of(configuration, request.target, settings)
        typer.echo(f"{request.target}@{request.revision}: {body['verdict']} at {with_local(body['decided_at'], zone)}")
        for reason in body["reasons"]:
            typer.echo(f"  - {reason['code']}: {reason['message']}")
        if body["not_before"]:
            typer.echo(f"not before: {with_local(body['not_before'], zone)}")
        for reason in body.get("would_defer", []):
            typer.echo(f"  (observe) would defer: {reason['code']}: {reason['message']}")
    raise typer.Exit(VERDICT_EXIT[decision.verdict])


def _read_request(path: Path) -> Any:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", 1)
        fail(f"{path}:{line}: malformed JSON: {getattr(exc, 'msg', exc)}")
    try:
        return GateRequest.model_validate(raw).to_domain()
    except ValidationError as exc:
        messages = [
            f"{path}:1: {'.'.join(str(step) for step in error['loc']) or 'body'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        ]
        fail("\n".join(messages))


@policy_app.command("lint")
def policy_lint(
    policies: PoliciesOpt = None,
    calendars: CalendarsOpt = None,
    as_json: JsonOpt = False,
    fetch: Annotated[
        bool, typer.Option("--fetch", help="Fetch each published calendar now (default: its cached copy).")
    ] = False,
) -> None:
    """Validate every policy and calendar file. Exit 0 clean, 2 with FILE:LINE: message lines.

    A published calendar is checked from its cached copy (CALENDAR_CACHE_DIR), or fetched and
    validated with --fetch (errors are URL:LINE: message)."""
    settings = settings_or_exit()
    now = datetime.now(UTC)
    policies_dir, calendars_dir = policies or settings.POLICIES_DIR, calendars or settings.CALENDARS_DIR
    errors, notices = _lint(policies_dir, calendars_dir, now, settings, fetch)
    if as_json:
        print_json([error.as_json() for error in errors])  # the errors only, as always
    else:
        for error in errors:
            typer.echo(str(error))
        for notice in notices:  # not errors: the files are valid, the exit code stays 0
            typer.echo(str(replace(notice, message=f"warning: {notice.message}")))
        if not errors:
            typer.echo("ok")
    raise typer.Exit(EXIT_BAD_INPUT if errors else EXIT_OK)


def _lint(
    policies: Path, calendars: Path, now: datetime, settings: Settings, fetch: bool
) -> tuple[list[LoadError], list[LoadError]]:
    """Load the files, then their feeds (fetched or cached), then compile all of it around now."""
    try:
        first = load_configuration(policies, calendars)
    except ConfigurationError as exc:
        return list(exc.errors), []
    copies, errors, notices = _feed_copies(first.feeds, now, settings, fetch)
    try:
        configuration = load_configuration(policies, calendars, now=now, feeds=copies)
    except ConfigurationError as exc:
        return errors + list(exc.errors), []
    return errors, notices + list(configuration.notices)


def _feed_copies(
    entries: tuple[FeedEntry, ...], now: datetime, settings: Settings, fetch: bool
) -> tuple[dict[str, Any], list[LoadError], list[LoadError]]:
    if not entries:
        return {}, [], []
    errors: list[LoadError] = []
    notices: list[LoadError] = []
    if not fetch:
        book = cached_feeds(settings)
        for entry in entries:
            state = book.state(entry.url)
            if state.last_success is None:
                notices.append(LoadError(entry.url, None, "no cached copy: the gate stays closed (calendar_stale) "
                                         "until the server fetches it (check it now with --fetch)"))
            elif state.is_stale(now, entry.max_age_seconds):
                notices.append(LoadError(entry.url, None, f"cached copy is older than maxAge {entry.max_age}"))
        return book.calendars(), errors, notices
    try:
        credentials = load_credentials(settings.CALENDAR_CREDENTIALS_FILE)
    except CredentialsError as exc:
        fail(str(exc))
    reader = HttpxFeedReader(
        timeout=settings.calendar_fetch_timeout_seconds,
        max_bytes=settings.CALENDAR_MAX_BYTES,
        retries=settings.CALENDAR_FETCH_RETRIES,
        max_redirects=settings.CALENDAR_MAX_REDIRECTS,
        credentials=credentials,
    )
    book = FeedBook(lambda: now, fetcher=reader)
    copies = {}
    try:
        for entry in entries:
            try:
                copies[entry.url] = book.check(entry.url)
            except FeedError as exc:
                errors.append(LoadError(exc.url, exc.line, exc.message))
    finally:
        reader.close()
    return copies, errors, notices
