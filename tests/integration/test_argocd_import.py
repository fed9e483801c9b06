"""``gatekeeper import argocd`` end to end: an AppProject with allow and deny windows in two time
zones becomes policies that pass ``policy lint``, and ``windows`` on them follows Argo CD's
documented semantics for a week around each DST change (issue 18, second acceptance item).

Argo CD's rules: an application that no window selects may sync; if an allow window selects it,
one must be active; an active deny wins; selectors are OR-ed unless ``andOperator``. The expected
windows below are derived by hand, instant by instant, in gatekeeper's reading of local times
(RFC 5545 starts, durations as elapsed time): where Argo CD reads them differently (it takes the
zone's offset at the moment it evaluates) the comments say what Argo CD would do.

The import runs as a real process (once for the module); lint and windows run through typer's
CliRunner on the file it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gatekeeper.cli import app

GATEKEEPER = str(Path(sys.executable).with_name("gatekeeper"))

# Written for this test from Argo CD's documented AppProject format (spec.syncWindows).
# 2027-03-28 (Sunday): Europe/Berlin springs 02:00 CET -> 03:00 CEST (01:00Z).
# 2027-03-14 (Sunday): America/New_York springs 02:00 EST -> 03:00 EDT (07:00Z).
PROJECT = """\
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: logistics
  namespace: argocd
spec:
  description: Odoo and the warehouse systems
  sourceRepos: ["https://git.acme.io/*"]
  destinations:
    - {namespace: "*", server: https://kubernetes.default.svc}
  syncWindows:
    # 0: the ERP may sync only in its nightly maintenance window, 01:00-05:00 Berlin
    - kind: allow
      schedule: "0 1 * * *"
      duration: 4h
      timeZone: Europe/Berlin
      applications: ["odoo-*"]
      manualSync: true
    # 1: never during the nightly backup, 02:30 Berlin for 30 minutes
    - kind: deny
      schedule: "30 2 * * *"
      duration: 30m
      timeZone: Europe/Berlin
      applications: ["odoo-*", "wms-eu"]
      namespaces: ["erp"]
      description: Nightly backup
    # 2: the American warehouses sync between midnight and 06:00 New York time
    - kind: allow
      schedule: "0 0 * * *"
      duration: 6h
      timeZone: America/New_York
      applications: ["wms-{us,ca}"]
    # 3: but not during the Sunday stock count, 01:00 New York for 2 hours
    - kind: deny
      schedule: "0 1 * * SUN"
      duration: 2h
      timeZone: America/New_York
      applications: ["wms-*"]
      manualSync: true
    # 4: payments by namespace only: gatekeeper cannot select by namespace
    - kind: deny
      schedule: "0 12 * * *"
      duration: 1h
      namespaces: ["payments"]
    # 5: the European warehouse on the prod-eu cluster, Friday evenings
    - kind: deny
      schedule: "0 18 * * 5"
      duration: 4h
      timeZone: Europe/Berlin
      applications: ["wms-eu"]
      clusters: ["prod-eu"]
      andOperator: true
"""

EUROPE_WEEK = ("2027-03-25T00:00:00Z", "2027-04-01T00:00:00Z")  # Thursday to Thursday around 03-28
US_WEEK = ("2027-03-11T00:00:00Z", "2027-03-18T00:00:00Z")  # Thursday to Thursday around 03-14

OUT = "outside_allow_window"
BACKUP = "nightly_backup"  # window 1's code, from its description
STOCK_COUNT = "deny_window_3"
FRIDAY = "deny_window_5"


def w(start: str, end: str, *codes: str) -> dict[str, object]:
    return {"start": start, "end": end, "codes": sorted(codes)}


# argocd:odoo-prod: allow 0 and deny 1. Before the change 01:00 CET is 00:00Z, so the allow window
# is 00:00Z-04:00Z and the backup 02:30 CET = 01:30Z-02:00Z. On 03-28 01:00 CET still exists
# (00:00Z) and the window lasts 4 elapsed hours, to 04:00Z (06:00 CEST); Argo CD, reading the wall
# clock, closes it at 05:00 CEST = 03:00Z. The backup's 02:30 falls in the gap: RFC 5545 reads it
# with the offset before the gap, 02:30 CET = 01:30Z (03:30 CEST), to 02:00Z; in Argo CD the wall
# clock never shows 02:30-03:00 that night, so that backup window never opens. From 03-29, CEST:
# allow 23:00Z (previous day) to 03:00Z, backup 00:30Z-01:00Z.
ODOO_EUROPE = [
    w("2027-03-25T01:30:00Z", "2027-03-25T02:00:00Z", BACKUP),
    w("2027-03-25T04:00:00Z", "2027-03-26T00:00:00Z", OUT),
    w("2027-03-26T01:30:00Z", "2027-03-26T02:00:00Z", BACKUP),
    w("2027-03-26T04:00:00Z", "2027-03-27T00:00:00Z", OUT),
    w("2027-03-27T01:30:00Z", "2027-03-27T02:00:00Z", BACKUP),
    w("2027-03-27T04:00:00Z", "2027-03-28T00:00:00Z", OUT),
    w("2027-03-28T01:30:00Z", "2027-03-28T02:00:00Z", BACKUP),  # the gap night
    w("2027-03-28T04:00:00Z", "2027-03-28T23:00:00Z", OUT),  # 4h elapsed from 00:00Z
    w("2027-03-29T00:30:00Z", "2027-03-29T01:00:00Z", BACKUP),
    w("2027-03-29T03:00:00Z", "2027-03-29T23:00:00Z", OUT),
    w("2027-03-30T00:30:00Z", "2027-03-30T01:00:00Z", BACKUP),
    w("2027-03-30T03:00:00Z", "2027-03-30T23:00:00Z", OUT),
    w("2027-03-31T00:30:00Z", "2027-03-31T01:00:00Z", BACKUP),
    w("2027-03-31T03:00:00Z", "2027-03-31T23:00:00Z", OUT),
    # 2027-03-31T23:00Z the allow window opens again and runs past the end of the range
]

# argocd:wms-us: allow 2 (wms-{us,ca}) and deny 3 (wms-*). EST: 00:00 New York is 05:00Z, the
# window 05:00Z-11:00Z (also on 03-10, so the range starts closed until 05:00Z). On 03-14 midnight
# is still EST (05:00Z) and the window lasts 6 elapsed hours, to 11:00Z (07:00 EDT); Argo CD closes
# it at 06:00 EDT = 10:00Z. The stock count starts 01:00 EST = 06:00Z and lasts 2 hours, to 08:00Z
# (04:00 EDT); Argo CD ends it at 03:00 EDT = 07:00Z. From 03-15, EDT: 04:00Z-10:00Z.
WMS_US = [
    w("2027-03-11T00:00:00Z", "2027-03-11T05:00:00Z", OUT),
    w("2027-03-11T11:00:00Z", "2027-03-12T05:00:00Z", OUT),
    w("2027-03-12T11:00:00Z", "2027-03-13T05:00:00Z", OUT),
    w("2027-03-13T11:00:00Z", "2027-03-14T05:00:00Z", OUT),
    w("2027-03-14T06:00:00Z", "2027-03-14T08:00:00Z", STOCK_COUNT),  # deny wins inside the allow window
    w("2027-03-14T11:00:00Z", "2027-03-15T04:00:00Z", OUT),
    w("2027-03-15T10:00:00Z", "2027-03-16T04:00:00Z", OUT),
    w("2027-03-16T10:00:00Z", "2027-03-17T04:00:00Z", OUT),
    w("2027-03-17T10:00:00Z", "2027-03-18T00:00:00Z", OUT),
]

# argocd:wms-eu: deny windows only (1, 3 and 5, in two zones), so open between them. Berlin is
# CET all week: the backup 01:30Z-02:00Z daily, Friday 03-12 18:00 CET = 17:00Z for 4h.
WMS_EU_US_WEEK = [
    w("2027-03-11T01:30:00Z", "2027-03-11T02:00:00Z", BACKUP),
    w("2027-03-12T01:30:00Z", "2027-03-12T02:00:00Z", BACKUP),
    w("2027-03-12T17:00:00Z", "2027-03-12T21:00:00Z", FRIDAY),
    w("2027-03-13T01:30:00Z", "2027-03-13T02:00:00Z", BACKUP),
    w("2027-03-14T01:30:00Z", "2027-03-14T02:00:00Z", BACKUP),
    w("2027-03-14T06:00:00Z", "2027-03-14T08:00:00Z", STOCK_COUNT),
    w("2027-03-15T01:30:00Z", "2027-03-15T02:00:00Z", BACKUP),
    w("2027-03-16T01:30:00Z", "2027-03-16T02:00:00Z", BACKUP),
    w("2027-03-17T01:30:00Z", "2027-03-17T02:00:00Z", BACKUP),
]

# The same target around the European change: the stock count is EDT now (01:00 EDT = 05:00Z on
# 03-28), the Friday window 18:00 CET = 17:00Z on 03-26.
WMS_EU_EUROPE_WEEK = [
    w("2027-03-25T01:30:00Z", "2027-03-25T02:00:00Z", BACKUP),
    w("2027-03-26T01:30:00Z", "2027-03-26T02:00:00Z", BACKUP),
    w("2027-03-26T17:00:00Z", "2027-03-26T21:00:00Z", FRIDAY),
    w("2027-03-27T01:30:00Z", "2027-03-27T02:00:00Z", BACKUP),
    w("2027-03-28T01:30:00Z", "2027-03-28T02:00:00Z", BACKUP),
    w("2027-03-28T05:00:00Z", "2027-03-28T07:00:00Z", STOCK_COUNT),
    w("2027-03-29T00:30:00Z", "2027-03-29T01:00:00Z", BACKUP),
    w("2027-03-30T00:30:00Z", "2027-03-30T01:00:00Z", BACKUP),
    w("2027-03-31T00:30:00Z", "2027-03-31T01:00:00Z", BACKUP),
]


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """The real command, once: (policies dir, calendars dir, the finished process)."""
    folder = tmp_path_factory.mktemp("argocd")
    (folder / "project.yaml").write_text(PROJECT)
    (folder / "policies").mkdir()
    (folder / "calendars").mkdir()
    clean = {key: value for key, value in os.environ.items() if not key.startswith("GATEKEEPER_")}
    done = subprocess.run(
        [GATEKEEPER, "import", "argocd", "project.yaml", "--out", "policies/logistics.yaml"],
        cwd=folder, env=clean, capture_output=True, text=True, timeout=60, check=False,
    )
    return folder / "policies", folder / "calendars", done


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [key for key in os.environ if key.startswith("GATEKEEPER_")]:
        monkeypatch.delenv(key)


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_the_import_writes_policies_and_names_what_it_could_not_carry_over(imported: tuple[Path, Path, subprocess.CompletedProcess[str]]) -> None:
    policies, _, done = imported
    assert done.returncode == 0, done.stderr
    assert "wrote 5 policies" in done.stdout
    notes = done.stderr.splitlines()
    # one line per item, FILE:LINE: window N field: message
    assert all(line.startswith("project.yaml:") for line in notes), notes
    assert any(": window 4 namespaces: window skipped" in line for line in notes)
    assert any(": window 1 namespaces: [erp]" in line for line in notes)
    assert any(": window 5 clusters: [prod-eu] with andOperator" in line and "broader" in line for line in notes)
    assert any(": window 0 timeZone: Europe/Berlin changes its UTC offset: Argo CD" in line for line in notes)
    assert any(": window 2 timeZone: America/New_York changes its UTC offset" in line for line in notes)
    assert any(": window 2 manualSync: false" in line for line in notes)
    assert not any(": window 0 manualSync" in line for line in notes)  # true: break-glass, as always
    assert any("spec.syncWindows: Argo CD lets an application that no window selects" in line for line in notes)
    text = (policies / "logistics.yaml").read_text()
    assert "manualSync: true -> a break-glass approval" in text  # the output says it too
    assert 'cron: "0 1 * * SUN"' in text


def test_the_imported_policies_pass_policy_lint(imported: tuple[Path, Path, subprocess.CompletedProcess[str]]) -> None:
    policies, calendars, _ = imported
    code, out, err = cli("policy", "lint", "--policies", str(policies), "--calendars", str(calendars))
    assert (code, out.strip()) == (0, "ok"), err


@pytest.mark.parametrize(
    ("target", "span", "expected"),
    [
        pytest.param("argocd:odoo-prod", EUROPE_WEEK, ODOO_EUROPE, id="allow-and-deny-around-the-european-change"),
        pytest.param("argocd:wms-us", US_WEEK, WMS_US, id="allow-and-deny-around-the-american-change"),
        pytest.param("argocd:wms-eu", US_WEEK, WMS_EU_US_WEEK, id="denies-only-in-two-zones-american-week"),
        pytest.param("argocd:wms-eu", EUROPE_WEEK, WMS_EU_EUROPE_WEEK, id="denies-only-in-two-zones-european-week"),
    ],
)
def test_windows_on_the_import_follow_argo_cd_semantics_around_dst(
    imported: tuple[Path, Path, subprocess.CompletedProcess[str]],
    target: str,
    span: tuple[str, str],
    expected: list[dict[str, object]],
) -> None:
    policies, calendars, _ = imported
    code, out, err = cli("windows", "--target", target, "--from", span[0], "--to", span[1],
                         "--policies", str(policies), "--calendars", str(calendars), "--json")
    assert code == 0, err
    assert json.loads(out)["closed"] == expected


def test_wms_ca_shares_the_american_allow_window_expanded_from_a_brace_glob(imported: tuple[Path, Path, subprocess.CompletedProcess[str]]) -> None:
    policies, calendars, _ = imported
    files = ("--policies", str(policies), "--calendars", str(calendars), "--json")
    us = cli("windows", "--target", "argocd:wms-us", "--from", US_WEEK[0], "--to", US_WEEK[1], *files)
    ca = cli("windows", "--target", "argocd:wms-ca", "--from", US_WEEK[0], "--to", US_WEEK[1], *files)
    assert json.loads(ca[1])["closed"] == json.loads(us[1])["closed"] == WMS_US


def test_an_application_no_window_selects_is_open_only_with_ungoverned_approve(imported: tuple[Path, Path, subprocess.CompletedProcess[str]]) -> None:
    """Argo CD: no matching window allows. gatekeeper: no policy defers, unless UNGOVERNED=approve
    (the import says so on stderr)."""
    policies, calendars, _ = imported
    args = ("windows", "--target", "argocd:billing", "--from", US_WEEK[0], "--to", US_WEEK[1],
            "--policies", str(policies), "--calendars", str(calendars), "--json")
    assert json.loads(cli(*args)[1])["closed"] == [w(*US_WEEK, "no_policy")]
    assert json.loads(cli(*args, env={"GATEKEEPER_UNGOVERNED": "approve"})[1])["closed"] == []


def test_status_at_the_gap_night_reads_the_backup_as_rfc_5545_does(imported: tuple[Path, Path, subprocess.CompletedProcess[str]]) -> None:
    """01:45Z on 2027-03-28 is 03:45 CEST: inside the backup window that RFC 5545 starts at 03:30
    CEST; Argo CD would let it sync (its wall clock never reads 02:30-03:00 that night)."""
    policies, calendars, _ = imported
    code, out, _ = cli("status", "--target", "argocd:odoo-prod", "--at", "2027-03-28T01:45:00Z",
                       "--policies", str(policies), "--calendars", str(calendars), "--json")
    body = json.loads(out)
    assert (code, body["closed"], [r["code"] for r in body["reasons"]]) == (1, True, [BACKUP])
    assert body["next_open"] == "2027-03-28T02:00:00Z"
