"""Every shipped policy, calendar, webhook manifest and deploy manifest loads, so examples never rot."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from gatekeeper import calendar
from gatekeeper.configuration.loader import lint, load_configuration

REPO = Path(__file__).resolve().parents[2]
AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_the_shipped_policies_and_calendars_load_and_lint_clean() -> None:
    configuration = load_configuration(REPO / "policies", REPO / "calendars", now=AT)
    names = {policy.name for policy in configuration.policies}
    assert {"odoo-production", "odoo-staging"} <= names
    assert lint(REPO / "policies", REPO / "calendars", now=AT) == []
    assert len(list((REPO / "calendars").glob("*.ics"))) >= 4


@pytest.mark.parametrize(
    ("at", "closed", "codes"),
    [
        pytest.param("2027-02-10T10:00:00+01:00", False, set(), id="ordinary-wednesday-morning"),
        pytest.param("2027-02-10T14:30:00+01:00", True, {"dispatch_cutoff"}, id="dispatch-cutoff"),
        pytest.param("2026-11-24T10:00:00+01:00", True, {"peak_season"}, id="peak-season"),
        pytest.param("2027-02-26T10:00:00+01:00", True, {"month_end_close"}, id="last-business-day"),
        pytest.param("2027-03-01T10:00:00+01:00", True, {"month_end_close"}, id="month-end-close-ics"),
        pytest.param("2027-03-29T10:00:00+02:00", True, {"public_holiday"}, id="easter-monday-after-dst-start"),
        pytest.param(
            "2027-02-13T11:30:00+01:00", True, {"dispatch_cutoff", "outside_allow_window"}, id="saturday-cutoff"
        ),
    ],
)
def test_the_production_calendar_reads_as_a_release_manager_expects(at: str, closed: bool, codes: set[str]) -> None:
    configuration = load_configuration(REPO / "policies", REPO / "calendars")
    moment = datetime.fromisoformat(at)
    state = calendar.status(configuration.calendars, configuration.policies, "argocd:odoo-prod", moment)
    assert state.closed is closed
    assert {reason.code for reason in state.reasons} >= codes


def test_the_christmas_eve_override_moves_the_cutoff_to_the_morning() -> None:
    configuration = load_configuration(REPO / "policies", REPO / "calendars")
    result = calendar.windows(
        configuration.calendars,
        configuration.policies,
        "argocd:odoo-staging",
        datetime(2026, 12, 24, 0, 0, tzinfo=UTC),
        datetime(2026, 12, 25, 0, 0, tzinfo=UTC),
    )
    assert result.closed  # staging has its own cron cut-off; the ics override is production's
    production = load_configuration(REPO / "policies", REPO / "calendars")
    ics = production.calendars
    index = ics.index([p for p in production.policies if p.name == "odoo-production"], 1_798_000_000, 1_798_100_000)
    spans = index.code_spans["dispatch_cutoff"]
    christmas_eve = [
        (s, e)
        for s, e in spans
        if datetime(2026, 12, 24, tzinfo=UTC).timestamp() <= s < datetime(2026, 12, 25, tzinfo=UTC).timestamp()
    ]
    assert christmas_eve == [
        (
            int(datetime(2026, 12, 24, 10, 0, tzinfo=UTC).timestamp()),
            int(datetime(2026, 12, 24, 11, 0, tzinfo=UTC).timestamp()),
        )
    ]


@pytest.mark.parametrize(
    "path",
    sorted(str(p.relative_to(REPO)) for p in [*REPO.glob("webhooks/**/*.yaml"), *REPO.glob("deploy/**/*.yaml")]),
)
def test_shipped_manifests_are_valid_kubernetes_yaml(path: str) -> None:
    documents = [doc for doc in yaml.safe_load_all((REPO / path).read_text()) if doc is not None]
    assert documents
    for document in documents:
        assert {"apiVersion", "kind", "metadata"} <= set(document), f"{path}: not a Kubernetes object"
