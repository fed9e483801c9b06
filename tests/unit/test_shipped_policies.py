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
    # Every rule the shipped policies set is acted on (verification too): no warning is said.
    assert result.stdout.splitlines()[:-1] == []


def test_a_reason_names_only_the_month_end_entries_that_are_active() -> None:
    """The production policy closes for the month end twice over (the .ics file and the last two
    business days). On Friday 2026-11-27 only the business-days rule applies, on Monday the 30th
    both: the reason says which, so a release manager knows what a break-glass would override."""
    from gatekeeper.calendar import status

    configuration = load_configuration(REPO / "policies", REPO / "calendars")
    policies = configuration.governing("argocd:odoo-prod")

    def month_end(at: datetime) -> str:
        found = status(configuration.calendars, policies, "argocd:odoo-prod", at)
        return next(reason.message for reason in found.reasons if reason.code == "month_end_close")

    assert "(last 2 business days of the month)" in month_end(datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
    both = "(calendar month-end-close.ics, last 2 business days of the month)"
    assert both in month_end(datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
