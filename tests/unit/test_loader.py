"""Loading policy and calendar files: defaults, and every load error naming FILE:LINE (DESIGN §5, §6)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gatekeeper.configuration.loader import ConfigurationError, LoadError, lint, load_configuration
from gatekeeper.domain.durations import Duration
from gatekeeper.domain.policy import (
    BusinessDaysEntry,
    CronEntry,
    DriftMode,
    HolidaysEntry,
    IcsEntry,
    Mode,
    SignerIdentity,
)

ConfigDirs = Callable[..., tuple[Path, Path]]
NOW = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)

HEADER = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-production}
spec:
  targets: ["argocd:odoo-prod"]
"""  # lines 1-5; what follows starts at line 6

GOOD_ICS = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//t//EN
BEGIN:VEVENT
UID:close@t
DTSTART;VALUE=DATE:20260630
DTEND;VALUE=DATE:20260701
END:VEVENT
END:VCALENDAR
"""


def errors_of(config_dirs: ConfigDirs, policies: dict[str, str], calendars: dict[str, str] | None = None) -> tuple[Path, Path, list[LoadError]]:
    policy_dir, calendar_dir = config_dirs(policies, calendars)
    with pytest.raises(ConfigurationError) as raised:
        load_configuration(policy_dir, calendar_dir, now=NOW)
    return policy_dir, calendar_dir, list(raised.value.errors)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param(HEADER + "  mode: [enforce\n", 7, "YAML syntax", id="yaml-syntax-error"),
        pytest.param(HEADER + "  timezone: Europe/Berlin\n  colour: blue\n", 7, "spec.colour: unknown field", id="unknown-field"),
        pytest.param(HEADER + "  drift: {mode: block, extra: 1}\n", 6, "spec.drift.extra: unknown field", id="unknown-nested-field"),
        pytest.param(HEADER + "  approvals:\n    required: many\n", 7, "spec.approvals.required", id="wrong-type"),
        pytest.param(HEADER + "  mode: enforcing\n", 6, "spec.mode", id="bad-mode"),
        pytest.param(HEADER + "  timezone: Europe/Hamburg\n", 6, "unknown time zone 'Europe/Hamburg'", id="bad-timezone"),
        pytest.param(
            HEADER + "  calendar:\n    deny:\n      - {cron: '0 25 * * *', duration: 2h}\n", 8,
            "spec.calendar.deny[0].cron: cron '0 25 * * *' is not a valid cron expression", id="bad-cron",
        ),
        pytest.param(
            HEADER + "  calendar:\n    deny:\n      - {cron: '0 14 * *', duration: 2h}\n", 8, "has 4 fields, expected 5",
            id="cron-with-four-fields",
        ),
        pytest.param(
            HEADER + "  calendar:\n    allow:\n      - cron: '0 6 * * 1-5'\n        duration: 10 hours\n", 9,
            "spec.calendar.allow[0].duration: duration '10 hours' is not of the form", id="bad-duration",
        ),
        pytest.param(
            HEADER + "  calendar:\n    deny:\n      - {cron: '0 6 * * 1-5'}\n", 8, "needs a duration", id="cron-without-duration",
        ),
        pytest.param(
            HEADER + "  calendar:\n    deny:\n      - {cron: '0 6 * * *', duration: 1h, timeZone: Mars/Base}\n", 8,
            "unknown time zone 'Mars/Base'", id="bad-cron-timezone",
        ),
        pytest.param(
            HEADER + "  calendar:\n    deny:\n      - {ics: a.ics, cron: '0 6 * * *', duration: 1h}\n", 8,
            "exactly one of ics, holidays, businessDays or cron", id="two-kinds-in-one-entry",
        ),
        pytest.param(
            HEADER + "  calendar:\n    deny:\n      - {businessDays: {first: 1, last: 2}}\n", 8, "exactly one of first or last",
            id="business-days-first-and-last",
        ),
        pytest.param(
            HEADER + "  calendar:\n    deny:\n      - {cron: '0 6 * * *', duration: 1h, code: Month-End}\n", 8, "snake_case",
            id="code-not-snake-case",
        ),
        pytest.param(
            HEADER + "  calendar:\n    deny:\n      - {ics: missing.ics}\n", 8,
            "spec.calendar.deny[0].ics: calendar file", id="missing-ics-file",
        ),
        pytest.param(
            HEADER + "  calendar:\n    deny:\n      - {holidays: {country: XY}}\n", 8, "unknown country code 'XY'",
            id="unknown-holiday-country",
        ),
        pytest.param(
            HEADER + "  calendar:\n    deny:\n      - {holidays: {country: DE, subdivision: XX}}\n", 8,
            "country DE has no subdivision 'XX'", id="unknown-holiday-subdivision",
        ),
        pytest.param(
            HEADER + "  calendar:\n    deny:\n      - {businessDays: {last: 2, holidays: {country: QQ}}}\n", 8,
            "unknown country code 'QQ'", id="unknown-business-day-holidays",
        ),
        pytest.param(
            HEADER + "  provenance:\n    signatures: {}\n", 7,
            "spec.provenance.signatures: signatures needs keys (PEM files) or identities", id="signatures-without-trust",
        ),
        pytest.param(
            HEADER + "  provenance:\n    signatures:\n      identities: [{subject: 'https://github.com/acme/*'}]\n", 8,
            "spec.provenance.signatures.identities[0].issuer: required field is missing", id="identity-without-issuer",
        ),
        pytest.param(HEADER.replace("gatekeeper/v1", "gatekeeper/v2"), 1, "apiVersion", id="wrong-api-version"),
        pytest.param(HEADER.replace('  targets: ["argocd:odoo-prod"]\n', "  mode: enforce\n"), 4, "spec.targets: required field is missing",
                     id="missing-targets"),
        pytest.param(HEADER.replace("odoo-production", "Odoo Production"), 3, "metadata.name", id="bad-policy-name"),
        pytest.param(HEADER + "---\n" + HEADER.replace("odoo-production", "second") + "  colour: red\n", 12,
                     "spec.colour: unknown field", id="second-document-of-a-file"),
    ],
)
def test_every_policy_load_error_names_file_and_line(config_dirs: ConfigDirs, text: str, line: int, message: str) -> None:
    policy_dir, _, errors = errors_of(config_dirs, {"bad.yaml": text})
    assert len(errors) == 1, errors
    (error,) = errors
    assert (error.file, error.line) == (f"{policy_dir}/bad.yaml", line)
    assert message in error.message
    assert str(error).startswith(f"{policy_dir}/bad.yaml:{line}: ")


def test_a_broken_ics_file_is_reported_with_its_own_file_and_line(config_dirs: ConfigDirs) -> None:
    broken = GOOD_ICS.replace("END:VEVENT\n", "")
    _, calendar_dir, errors = errors_of(
        config_dirs, {"prod.yaml": HEADER + "  calendar:\n    deny:\n      - {ics: close.ics}\n"}, {"close.ics": broken}
    )
    assert [str(error) for error in errors] == [f"{calendar_dir}/close.ics:8: END:VCALENDAR does not close BEGIN:VEVENT"]


def test_an_ics_entry_naming_a_file_that_is_not_a_calendar_is_an_error_not_a_crash(config_dirs: ConfigDirs) -> None:
    policy_dir, _, errors = errors_of(
        config_dirs, {"prod.yaml": HEADER + "  calendar:\n    deny:\n      - {ics: notes.txt}\n"}, {"notes.txt": "hello\n"}
    )
    assert [(e.file, e.line) for e in errors] == [(f"{policy_dir}/prod.yaml", 8)]
    assert "is not an .ics file under the calendars directory" in errors[0].message


def test_a_duplicate_policy_name_points_at_both_definitions(config_dirs: ConfigDirs) -> None:
    policy_dir, _, errors = errors_of(config_dirs, {"a.yaml": HEADER, "b.yaml": "# the same name again\n" + HEADER})
    assert [str(e) for e in errors] == [
        f"{policy_dir}/b.yaml:4: metadata.name: policy 'odoo-production' is already defined at {policy_dir}/a.yaml:3"
    ]


def test_a_policy_file_that_is_not_utf8_is_an_error_with_its_line(config_dirs: ConfigDirs) -> None:
    policy_dir, calendar_dir = config_dirs({})
    (policy_dir / "latin1.yaml").write_bytes(HEADER.encode() + b"  # caf\xe9\n")
    with pytest.raises(ConfigurationError) as raised:
        load_configuration(policy_dir, calendar_dir)
    assert [str(e) for e in raised.value.errors] == [f"{policy_dir}/latin1.yaml:6: not UTF-8 text"]


def test_every_problem_in_every_file_is_collected_sorted_and_nothing_loads(config_dirs: ConfigDirs) -> None:
    policy_dir, calendar_dir, errors = errors_of(
        config_dirs,
        {"b.yaml": HEADER.replace("odoo-production", "b") + "  timezone: Nowhere/Town\n", "a.yaml": HEADER + "  mode: [\n"},
        {"x.ics": "not a calendar\n"},
    )
    assert [(e.file, e.line) for e in errors] == [
        (f"{calendar_dir}/x.ics", 1),
        (f"{policy_dir}/a.yaml", 7),
        (f"{policy_dir}/b.yaml", 6),
    ]
    assert lint(policy_dir, calendar_dir, now=NOW) == errors


def test_a_missing_policies_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="policies directory does not exist"):
        load_configuration(tmp_path / "nope", tmp_path / "calendars")


def test_defaults_of_a_minimal_policy(config_dirs: ConfigDirs) -> None:
    configuration = load_configuration(*config_dirs({"min.yaml": HEADER}), now=NOW)
    (policy,) = configuration.policies
    assert (policy.mode, policy.timezone, policy.drift, policy.calendar.deny, policy.calendar.allow) == (
        Mode.ENFORCE, "UTC", DriftMode.OFF, (), ()
    )
    assert (policy.approvals.required, policy.verification.period, policy.provenance.require_digest) == (0, None, False)
    assert (policy.file, policy.line) == (f"{config_dirs({})[0]}/min.yaml", 1)


def test_entries_get_default_codes_and_cron_takes_the_policy_timezone(config_dirs: ConfigDirs) -> None:
    text = HEADER + (
        "  timezone: Europe/Berlin\n"
        "  calendar:\n"
        "    deny:\n"
        "      - {ics: ./finance/month-end-close.ics}\n"
        "      - {holidays: {country: DE, subdivision: HH}}\n"
        "      - {businessDays: {last: 2}}\n"
        "      - {cron: '0 14 * * 1-5', duration: 1d2h}\n"
        "      - {cron: '0 14 * * 1-5', duration: PT2H, timeZone: America/New_York, code: us_cutoff}\n"
    )
    policy_dir, calendar_dir = config_dirs({"p.yaml": text})
    (calendar_dir / "finance").mkdir()
    (calendar_dir / "finance" / "month-end-close.ics").write_text(GOOD_ICS)
    configuration = load_configuration(policy_dir, calendar_dir, now=NOW)
    ics, holidays, business, cron, us = configuration.policies[0].calendar.deny
    assert ics == IcsEntry("finance/month-end-close.ics", "month-end-close")  # the stem, as DESIGN §3 says
    assert isinstance(holidays, HolidaysEntry) and holidays.code == "public_holiday"
    assert isinstance(business, BusinessDaysEntry) and business.code == "business_days"
    assert cron == CronEntry("0 14 * * 1-5", Duration(1, 7200), "Europe/Berlin", "cron_window")
    assert us == CronEntry("0 14 * * 1-5", Duration(0, 7200), "America/New_York", "us_cutoff")


def test_the_policy_hash_covers_every_file_and_changes_with_any(config_dirs: ConfigDirs) -> None:
    policy_dir, calendar_dir = config_dirs({"p.yaml": HEADER}, {"close.ics": GOOD_ICS})
    first = load_configuration(policy_dir, calendar_dir).policy_hash
    assert load_configuration(policy_dir, calendar_dir).policy_hash == first
    (calendar_dir / "close.ics").write_text(GOOD_ICS.replace("20260630", "20260629"))
    assert load_configuration(policy_dir, calendar_dir).policy_hash != first
    assert len(first) == 64


def test_keyless_identities_load_alongside_or_instead_of_keys(config_dirs: ConfigDirs) -> None:
    text = HEADER + (
        "  provenance:\n"
        "    signatures:\n"
        "      identities:\n"
        "        - {issuer: 'https://token.actions.githubusercontent.com', subject: 'https://github.com/acme/*'}\n"
        "        - {issuer: 'https://token.actions.githubusercontent.com', subject: 'https://github.com/acme/*',\n"
        "           repository: 'https://github.com/acme/*'}\n"
    )
    (policy,) = load_configuration(*config_dirs({"keyless.yaml": text}), now=NOW).policies
    assert policy.provenance.signature_keys == ()
    assert policy.provenance.signature_identities == (
        SignerIdentity("https://token.actions.githubusercontent.com", "https://github.com/acme/*"),
        SignerIdentity("https://token.actions.githubusercontent.com", "https://github.com/acme/*", "https://github.com/acme/*"),
    )
