"""The shipped policies and calendars load, compile and lint clean through the real CLI."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gatekeeper.calendar_sources.ics import IcsCalendar
from gatekeeper.configuration.loader import load_configuration

REPO = Path(__file__).resolve().parents[2]
GATEKEEPER = str(REPO / ".venv" / "bin" / "gatekeeper")
AT = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)


def test_every_shipped_policy_loads_and_compiles() -> None:
    configuration = load_configuration(REPO / "policies", REPO / "calendars", now=AT)
    assert configuration.policies, "no policy is shipped in policies/"
    shipped = sorted(p for p in (REPO / "policies").rglob("*") if p.suffix in (".yaml", ".yml"))
    assert {policy.file for policy in configuration.policies} == {str(path) for path in shipped}


@pytest.mark.parametrize("path", sorted((REPO / "calendars").rglob("*.ics")), ids=lambda p: p.name)
def test_every_shipped_calendar_parses_and_expands(path: Path) -> None:
    calendar = IcsCalendar.parse(path.read_bytes(), str(path))
    start = int(AT.timestamp())
    assert isinstance(calendar.spans(ZoneInfo("Europe/Berlin"), start, start + 400 * 86_400), list)


def test_policy_lint_exits_0_on_the_shipped_files() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATEKEEPER_")}
    result = subprocess.run(
        [GATEKEEPER, "policy", "lint", "--policies", "policies", "--calendars", "calendars"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert (result.returncode, result.stdout.splitlines()[-1]) == (0, "ok"), result.stdout + result.stderr
    # The rules the shipped production policy sets that this version does not enforce are said,
    # with file and line, so that nobody takes the file's word for a check that does not run.
    assert result.stdout.splitlines()[:-1] == [
        "policies/production.yaml:40: warning: spec.drift.mode block: drift is not checked by this version",
        "policies/production.yaml:42: warning: spec.provenance: image provenance is not checked by this version",
        "policies/production.yaml:50: warning: spec.verification: releases are not verified or rolled back by this version",
        "policies/staging.yaml:29: warning: spec.drift.mode warn: drift is not checked by this version",
    ]
