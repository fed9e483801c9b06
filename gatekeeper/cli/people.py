"""Commands for release managers against a server: ``releases ...``, ``actions list`` and ``audit ...``.

Token from ``GATEKEEPER_TOKEN`` or ``--token-file``; ``--json`` prints the API's shapes, a table
otherwise. Exit codes: 0 ok, 1 audit chain broken, 2 bad input, 4 refused, 5 unreachable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import httpx
import typer

from gatekeeper import audit as audit_chain
from gatekeeper.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_CLOSED,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    app,
    fail,
    print_json,
    settings_or_exit,
    with_local,
    zone_or_exit,
)
from gatekeeper.cli.server import TokenFileOpt, read_token

releases_app = typer.Typer(no_args_is_help=True, help="Releases on a server: list, show, approve, reject, rollback.")
actions_app = typer.Typer(no_args_is_help=True, help="The outbox on a server: what decisions caused and how it went.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log: export and verify.")
app.add_typer(releases_app, name="releases")
app.add_typer(audit_app, name="audit")
app.add_typer(actions_app, name="actions")

ServerOpt = Annotated[str, typer.Option("--server", envvar="GATEKEEPER_SERVER", help="gatekeeper URL.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why (required for break-glass).")]
RejectReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why (required).")]
RollbackReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why (recorded with the rollback decision).")]


def call(server: str, token_file: Path | None, method: str, path: str, **kwargs: Any) -> Any:
    """One API call; exits 4 on 401/403, 5 when unreachable, 2 on other errors."""
    token = read_token(token_file)
    try:
        with httpx.Client(base_url=server.rstrip("/"), timeout=15, headers={"Authorization": f"Bearer {token}"}) as c:
            response = c.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        fail(f"gatekeeper unreachable at {server}: {type(exc).__name__}", EXIT_UNREACHABLE)
    try:
        body = response.json()
    except json.JSONDecodeError:
        body = {"message": response.text[:200]}
    if response.status_code in (401, 403):
        fail(f"refused ({response.status_code} {body.get('error', '')}): {body.get('message', '')}", EXIT_REFUSED)
    if response.status_code >= 400:
        fail(f"error ({response.status_code} {body.get('error', '')}): {body.get('message', '')}", EXIT_BAD_INPUT)
    return body


SHOWN_DECISIONS = 3  # a hook polling for hours decides many times; the table shows the latest
RELEASE_HEADER = (
    f"{'ID':>6}  {'STATUS':<11} {'TARGET':<34} {'REVISION':<12} {'NOT BEFORE':<42} {'REASONS':<28} APPROVALS"
)


def _people_zone() -> ZoneInfo:
    """The zone the people read times in (UI_TIMEZONE, as the page): the API does not say a
    release's policy zone."""
    return zone_or_exit(settings_or_exit().UI_TIMEZONE)


def _row(release: dict[str, Any], zone: ZoneInfo) -> str:
    latest = release["decisions"][-1] if release["decisions"] else {}
    codes = ",".join(reason["code"] for reason in latest.get("reasons", [])) or "-"
    approvals = ",".join(a["approver"] + ("!" if a["break_glass"] else "") for a in release["approvals"]) or "-"
    waiting = release["status"] in ("pending", "deferred")  # only a waiting release has a not-before
    not_before = with_local(latest.get("not_before") if waiting else None, zone)
    return (
        f"{release['id']:>6}  {release['status']:<11} {release['target']:<34} {release['revision'][:12]:<12} "
        f"{not_before:<42} {codes:<28} {approvals}"
    )


def _print_release(release: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(release)
        return
    zone = _people_zone()
    typer.echo(RELEASE_HEADER)
    typer.echo(_row(release, zone))
    if release["approvals"]:
        typer.echo("  approvals:")
    for given in release["approvals"]:
        kind = "break-glass" if given["break_glass"] else "approval"
        why = f": {given['reason']}" if given["reason"] else ""
        typer.echo(f"    {with_local(given['created_at'], zone)} {given['approver']} ({kind}){why}")
    _print_shipping(release.get("shipping"), release["target"], zone)
    decisions = release["decisions"]
    shown = decisions[-SHOWN_DECISIONS:]
    if len(shown) < len(decisions):
        typer.echo(f"  decisions (the last {len(shown)} of {len(decisions)}; --json shows all):")
    elif decisions:
        typer.echo("  decisions:")
    for decision in shown:
        typer.echo(f"    {with_local(decision['decided_at'], zone)} {decision['verdict']} ({decision['trigger']})")
        for reason in decision["reasons"]:
            typer.echo(f"      - {reason['code']}: {reason['message']}")
            for line in reason.get("diff") or []:  # drift: JSON path, desired (Git) and live
                where = f" {line['path']}" if line["path"] else ""
                typer.echo(f"          {line['object']}{where}: git {line['desired']}, live {line['live']}")


def _print_shipping(shipping: dict[str, Any] | None, target: str, zone: ZoneInfo) -> None:
    """When a waiting release can go (calendar and freezes), what else holds it, and the queue."""
    if not shipping:
        return
    at = shipping["at"]
    when = "now" if at == shipping["as_of"] else with_local(at, zone) if at else "no instant within 366 days"
    typer.echo(f"  calendar lets it go: {when}")
    if shipping.get("goes_out_by_itself") is not None:
        verb = "resumes" if target.startswith("flux:") else "syncs"
        by = f"gatekeeper {verb} it itself" if shipping["goes_out_by_itself"] else "nothing starts it: sync it again"
        typer.echo(f"  then: {by}")
    for reason in shipping["closed_by"]:
        typer.echo(f"    closed by {reason['code']}: {reason['message']}")
    for count in shipping["approvals"]:
        who = f" ({', '.join(count['approvers'])})" if count["approvers"] else ""
        typer.echo(
            f"  approvals: {count['given']} of {count['required']} by {count['role']} ({count['policy']}){who}"
        )
    for reason in shipping["blocked_by"]:
        typer.echo(f"  still blocked by {reason['code']}: {reason['message']}")
    queue = ", ".join(f"{q['id']} {q['status']}" for q in shipping["queue"])
    typer.echo(f"  queue of {target}: {shipping['position']} of {len(shipping['queue'])} ({queue})")


@releases_app.command("list")
def releases_list(
    server: ServerOpt,
    status: Annotated[str | None, typer.Option("--status", help="pending, deferred, approved, ...")] = None,
    target: Annotated[str | None, typer.Option("--target")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    token_file: TokenFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Releases, newest first."""
    params = {k: v for k, v in {"status": status, "target": target, "limit": limit}.items() if v is not None}
    body = call(server, token_file, "GET", "/v1/releases", params=params)
    if as_json:
        print_json(body)
        return
    zone = _people_zone()
    typer.echo(RELEASE_HEADER)
    for release in body["items"]:
        typer.echo(_row(release, zone))


@actions_app.command("list")
def actions_list(
    server: ServerOpt,
    status: Annotated[str | None, typer.Option("--status", help="pending, running, done or failed")] = None,
    release: Annotated[int | None, typer.Option("--release", help="Only this release's actions.")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    token_file: TokenFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Actions (commit statuses, deployment reviews, ...), newest first, with their attempts."""
    wanted = {"status": status, "release": release, "limit": limit}
    body = call(server, token_file, "GET", "/v1/actions", params={k: v for k, v in wanted.items() if v is not None})
    if as_json:
        print_json(body)
        return
    zone = _people_zone()
    header = f"{'ID':>6}  {'KIND':<18} {'RELEASE':>7}  {'STATUS':<8} {'TRIES':>5}  {'NEXT TRY':<42}"
    typer.echo(header + " LAST ERROR / RESULT")
    for action in body["items"]:
        next_try = with_local(action["next_attempt_at"] if action["status"] == "pending" else None, zone)
        detail = action["last_error"] or action["result"] or "-"
        typer.echo(
            f"{action['id']:>6}  {action['kind']:<18} {action['release_id'] or '-':>7}  {action['status']:<8} "
            f"{action['attempts']:>5}  {next_try:<42} {detail[:240]}"
        )


@releases_app.command("show")
def releases_show(
    release_id: int, server: ServerOpt, token_file: TokenFileOpt = None, as_json: JsonOpt = False
) -> None:
    """One release with its decisions and approvals, and (as text) the actions they caused."""
    release = call(server, token_file, "GET", f"/v1/releases/{release_id}")
    _print_release(release, as_json)
    if not as_json:
        actions = call(server, token_file, "GET", "/v1/actions", params={"release": release_id, "limit": 20})
        _print_actions(actions["items"])


def _print_actions(items: list[dict[str, Any]]) -> None:
    """What the release's decisions caused (a sync, a rollback, a commit status) and how it went."""
    if items:
        typer.echo("  actions:")
    for action in reversed(items):  # oldest first, like the decisions
        detail = action["last_error"] or action["result"] or "-"
        typer.echo(f"    {action['kind']} {action['status']} (tries {action['attempts']}): {detail[:200]}")


@releases_app.command("approve")
def releases_approve(
    release_id: int,
    server: ServerOpt,
    reason: ReasonOpt = None,
    break_glass: Annotated[
        bool, typer.Option("--break-glass", help="Override calendar, freezes, drift, approvals.")
    ] = False,
    token_file: TokenFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a waiting release (four eyes applies; --break-glass needs the break-glass role and a reason)."""
    body = {"reason": reason, "break_glass": break_glass}
    _print_release(call(server, token_file, "POST", f"/v1/releases/{release_id}/approve", json=body), as_json)


@releases_app.command("reject")
def releases_reject(
    release_id: int,
    server: ServerOpt,
    reason: RejectReasonOpt = None,
    token_file: TokenFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a release that has not gone out: pending, deferred or approved (its hook stops with exit 3)."""
    body = {"reason": reason}
    _print_release(call(server, token_file, "POST", f"/v1/releases/{release_id}/reject", json=body), as_json)


@releases_app.command("rollback")
def releases_rollback(
    release_id: int,
    server: ServerOpt,
    reason: RollbackReasonOpt = None,
    token_file: TokenFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask for a rollback of an approved or applied release."""
    body = {"reason": reason}
    _print_release(call(server, token_file, "POST", f"/v1/releases/{release_id}/rollback", json=body), as_json)


@audit_app.command("export")
def audit_export(
    server: Annotated[
        str | None, typer.Option("--server", envvar="GATEKEEPER_SERVER", help="Read from a server.")
    ] = None,
    token_file: TokenFileOpt = None,
) -> None:
    """Every audit record as JSON lines (from --server, else straight from GATEKEEPER_DATABASE_URL)."""
    for record in _records(server, token_file):
        typer.echo(json.dumps(record, sort_keys=True))


@audit_app.command("verify")
def audit_verify(
    file: Annotated[Path | None, typer.Argument(help="A JSON-lines export (default: the database).")] = None,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            metavar="SEQ:HASH",
            help="A head seen earlier (GET /v1/audit/head, the log, /metrics): fail if the chain is shorter "
            "or differs there.",
        ),
    ] = None,
    server: Annotated[str | None, typer.Option("--server", help="Verify what a server serves.")] = None,
    token_file: TokenFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the hash chain (HMAC under GATEKEEPER_AUDIT_KEY when set); exit 1 naming what is wrong.

    On success prints the head (SEQ:HASH): keep it outside the database and pass it back with
    --expect-head next time to catch a chain cut or rewritten since (docs/audit.md)."""
    head_seen = _head_option(expect_head)
    key = settings_or_exit().audit_key
    decisions: list[int] = []
    records = _read_lines(file) if file is not None else list(_records(server, token_file, decisions))
    from_database = file is None and server is None  # only there is every decision known
    problems = audit_chain.verify(
        records, key=key, expect_head=head_seen, decision_ids=decisions if from_database else None
    )
    head = audit_chain.head_of(records)
    if as_json:
        print_json(
            {
                "ok": not problems,
                "records": len(records),
                "keyed": key is not None,
                "head": None if head is None else {"seq": head.seq, "hash": head.hash},
                "problems": [{"code": p.code, "seq": p.seq, "message": p.message} for p in problems],
            }
        )
    elif not problems:
        keyed = "HMAC-SHA256 under AUDIT_KEY" if key is not None else "plain SHA-256, no AUDIT_KEY"
        typer.echo(f"audit chain intact: {len(records)} records ({keyed}), head {head or 'none'}")
    else:
        for problem in problems[:_SHOWN]:
            typer.echo(f"audit chain broken: {problem}", err=True)
        if len(problems) > _SHOWN:
            typer.echo(f"audit chain broken: ... and {len(problems) - _SHOWN} more problems", err=True)
    raise typer.Exit(EXIT_CLOSED if problems else 0)


# How many problems a broken chain prints (all of them with --json).
_SHOWN = 20


def _head_option(text: str | None) -> tuple[int, str] | None:
    if text is None:
        return None
    try:
        head = audit_chain.Head.parse(text)
    except ValueError as exc:
        fail(f"--expect-head: {exc}")
    return head.seq, head.hash


def _records(
    server: str | None, token_file: Path | None, decisions: list[int] | None = None
) -> list[dict[str, Any]]:
    """The chain from ``server`` or the database (then also every decision's id into ``decisions``)."""
    if server is not None:
        records: list[dict[str, Any]] = []
        after = 0
        while True:
            page = call(server, token_file, "GET", "/v1/audit", params={"after": after, "limit": 1000})
            records.extend(page["items"])
            if page["next"] is None:
                return records
            after = int(page["next"])
    from gatekeeper.store import StoreError
    from gatekeeper.store.sql import SqlReleaseStore, missing_sqlite_file

    url = settings_or_exit().DATABASE_URL
    missing = missing_sqlite_file(url)
    if missing is not None:
        where = "run this where the service keeps it, or set GATEKEEPER_DATABASE_URL"
        fail(f"gatekeeper: no database at {missing}: {where}")
    # The same key as the service: records still pending are chained here, and must hash alike.
    store = SqlReleaseStore.from_url(url, audit_key=settings_or_exit().audit_key)
    try:
        store.check_migrated()
        records = store.audit_records(after=0, limit=None)
        if decisions is not None:
            decisions.extend(store.decision_ids())
        return records
    except StoreError as exc:
        fail(f"gatekeeper: {exc}")
    finally:
        store.close()


def _read_lines(path: Path) -> list[dict[str, Any]]:
    source = sys.stdin if str(path) == "-" else None
    try:
        lines = source.read().splitlines() if source else path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        fail(f"{path}: {exc.strerror}")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            fail(f"{path}:{number}: malformed JSON: {exc.msg}")
    return records
