"""The offline CLI as a real process: policy lint, status, windows and check (DESIGN §5 exit codes)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

GATEKEEPER = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "gatekeeper")

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
      - {holidays: {country: DE, subdivision: HH}}
"""
BROKEN = POLICY.replace("duration: 2h", "duration: two hours")  # line 9


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("GATEKEEPER_")}
    return subprocess.run(
        [GATEKEEPER, *args], cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def dirs(config_dirs: Callable[..., tuple[Path, Path]]) -> tuple[Path, Path]:
    return config_dirs({"production.yaml": POLICY})


def offline(dirs: tuple[Path, Path]) -> list[str]:
    return ["--policies", str(dirs[0]), "--calendars", str(dirs[1])]


def test_policy_lint_on_a_broken_file_prints_file_line_message_and_exits_2(config_dirs: Callable[..., tuple[Path, Path]], tmp_path: Path) -> None:
    config_dirs({"bad.yaml": BROKEN})
    # FILE is the path as found under the directory given (here relative to the working directory).
    result = run("policy", "lint", "--policies", "policies", "--calendars", "calendars", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        "policies/bad.yaml:9: spec.calendar.deny[0].duration: duration 'two hours' is not of the form 2h, 90m, 1h30m, "
        "1d or ISO 8601 (PT2H, P1D)"
    ]


def test_policy_lint_json_lists_file_line_message(config_dirs: Callable[..., tuple[Path, Path]], tmp_path: Path) -> None:
    policies, calendars = config_dirs({"bad.yaml": BROKEN, "good.yaml": POLICY.replace("odoo-production", "other")})
    (calendars / "broken.ics").write_text("BEGIN:VCALENDAR\nVERSION:2.0\n")
    result = run("policy", "lint", "--json", "--policies", str(policies), "--calendars", str(calendars), cwd=tmp_path)
    assert result.returncode == 2
    body = json.loads(result.stdout)
    assert [(item["file"], item["line"]) for item in body] == [(f"{calendars}/broken.ics", 1), (f"{policies}/bad.yaml", 9)]
    assert all(set(item) == {"file", "line", "message"} for item in body)


def test_policy_lint_on_clean_files_exits_0(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    result = run("policy", "lint", "--json", *offline(dirs), cwd=tmp_path)
    assert (result.returncode, json.loads(result.stdout)) == (0, [])


@pytest.mark.parametrize(
    ("at", "code", "closed", "next_open", "next_close"),
    [
        # Wednesday 3 June 2026, CEST: the cut-off is 12:00-14:00Z.
        pytest.param("2026-06-03T10:00:00+02:00", 0, False, "2026-06-03T08:00:00Z", "2026-06-03T12:00:00Z", id="open-exits-0"),
        pytest.param("2026-06-03T14:30:00+02:00", 1, True, "2026-06-03T14:00:00Z", "2026-06-03T12:30:00Z", id="closed-exits-1"),
    ],
)
def test_status_exits_0_open_and_1_closed_with_the_status_shape(
    dirs: tuple[Path, Path], tmp_path: Path, at: str, code: int, closed: bool, next_open: str, next_close: str
) -> None:
    result = run("status", "--target", "argocd:odoo-prod", "--at", at, "--json", *offline(dirs), cwd=tmp_path)
    assert result.returncode == code, result.stderr
    body = json.loads(result.stdout)
    assert set(body) == {"target", "at", "closed", "reasons", "next_open", "next_close", "next_close_reason"}
    assert (body["closed"], body["next_open"], body["next_close"], body["next_close_reason"]) == (
        closed, next_open, next_close, "dispatch_cutoff"
    )


def test_status_of_an_ungoverned_target_is_closed_unless_ungoverned_approve(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    args = ("status", "--target", "argocd:wms", "--at", "2026-06-03T10:00:00Z", "--json", *offline(dirs))
    closed = run(*args, cwd=tmp_path)
    assert (closed.returncode, [r["code"] for r in json.loads(closed.stdout)["reasons"]]) == (1, ["no_policy"])
    opened = run(*args, cwd=tmp_path, env={"GATEKEEPER_UNGOVERNED": "approve"})
    assert (opened.returncode, json.loads(opened.stdout)["closed"]) == (0, False)


def test_windows_json_lists_the_clipped_closed_windows_and_exits_0(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    result = run(
        "windows", "--target", "argocd:odoo-prod", "--from", "2026-06-03T13:00:00Z", "--to", "2026-06-04T00:00:00Z",
        "--json", *offline(dirs), cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "target": "argocd:odoo-prod",
        "from": "2026-06-03T13:00:00Z",
        "to": "2026-06-04T00:00:00Z",
        "closed": [{"start": "2026-06-03T13:00:00Z", "end": "2026-06-03T14:00:00Z", "codes": ["dispatch_cutoff"]}],
    }


@pytest.mark.parametrize(
    ("body", "at", "code", "stderr"),
    [
        pytest.param('{"target": "argocd:odoo-prod", "revision": "abc123"}', "2026-06-03T10:00:00Z", 0, "", id="approve-exits-0"),
        pytest.param('{"target": "argocd:odoo-prod", "revision": "abc123"}', "2026-06-03T12:30:00Z", 1, "", id="defer-exits-1"),
        pytest.param('{"target": "argocd:odoo-prod", ', "2026-06-03T10:00:00Z", 2, "malformed JSON", id="malformed-json"),
        pytest.param('{"target": "argocd:odoo-prod"}', "2026-06-03T10:00:00Z", 2, "revision", id="missing-field-named"),
        pytest.param('{"target": 7, "revision": "abc"}', "2026-06-03T10:00:00Z", 2, "target", id="wrong-type-named"),
        pytest.param('{"target": "argocd:odoo-prod", "revision": "abc123"}', "2026-06-03T10:00:00", 2, "no UTC offset",
                     id="instant-without-offset"),
    ],
)
def test_check_exits_by_verdict_and_2_on_bad_input(
    dirs: tuple[Path, Path], tmp_path: Path, body: str, at: str, code: int, stderr: str
) -> None:
    request = tmp_path / "request.json"
    request.write_text(body)
    result = run("check", str(request), "--at", at, "--json", *offline(dirs), cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert stderr in result.stderr
    if code < 2:
        decision = json.loads(result.stdout)
        assert decision["verdict"] == ("approve" if code == 0 else "defer")
        assert decision["not_before"] == (None if code == 0 else "2026-06-03T14:00:00Z")


def test_status_text_shows_the_policys_local_time_beside_utc(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    result = run("status", "--target", "argocd:odoo-prod", "--at", "2026-06-03T12:30:00Z", *offline(dirs), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "argocd:odoo-prod is closed at 2026-06-03T12:30:00Z (14:30 Europe/Berlin)"  # CEST: +2
    assert "next open:  2026-06-03T14:00:00Z (16:00 Europe/Berlin)" in lines


def test_windows_text_shows_local_times_and_the_local_date_when_it_is_another_day(
    dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    result = run(
        "windows", "--target", "argocd:odoo-prod", "--from", "2026-11-24T13:00:00Z", "--to", "2026-11-24T23:30:00Z",
        *offline(dirs), cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "argocd:odoo-prod: 1 closed window(s) in "
        "[2026-11-24T13:00:00Z (14:00 Europe/Berlin), 2026-11-24T23:30:00Z (2026-11-25 00:30 Europe/Berlin))",
        "  2026-11-24T13:00:00Z (14:00 Europe/Berlin)  2026-11-24T15:00:00Z (16:00 Europe/Berlin)  dispatch_cutoff",
    ]


def test_an_ungoverned_target_reads_in_ui_timezone(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    args = ("status", "--target", "argocd:wms", "--at", "2026-06-03T10:00:00Z", *offline(dirs))
    assert "at 2026-06-03T10:00:00Z (06:00 America/New_York)" in run(
        *args, cwd=tmp_path, env={"GATEKEEPER_UI_TIMEZONE": "America/New_York"}
    ).stdout
    assert "at 2026-06-03T10:00:00Z\n" in run(*args, cwd=tmp_path, env={"GATEKEEPER_UI_TIMEZONE": "UTC"}).stdout
