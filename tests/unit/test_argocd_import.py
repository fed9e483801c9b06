"""``import argocd`` on bad and unusual input: FILE:LINE errors with exit 2, Go durations, Argo CD
globs, and the notes for what does not carry over."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gatekeeper.cli import app
from gatekeeper.configuration.argocd import ArgoImportError, import_project
from gatekeeper.configuration.argocd_syntax import app_globs, may_overlap, parse_go_duration

NOW = datetime(2027, 1, 10, tzinfo=UTC)

HEAD = """\
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: shop}
spec:
  syncWindows:
"""


def project(*windows: str) -> str:
    return HEAD + "".join(textwrap.indent(textwrap.dedent(window), "    ") for window in windows)


ALLOW = """\
- kind: allow
  schedule: "0 6 * * 1-5"
  duration: 12h
  timeZone: Europe/Berlin
  applications: [shop-*]
  manualSync: true
"""


def run(tmp_path: Path, text: str, *args: str) -> tuple[int, str, str]:
    (tmp_path / "project.yaml").write_text(text)
    result = CliRunner().invoke(app, ["import", "argocd", str(tmp_path / "project.yaml"), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: x}\n", 1,
                     "not an Argo CD AppProject", id="an-application"),
        pytest.param("kind: AppProject\nspec: {}\n", 1, "not an Argo CD AppProject", id="no-api-version"),
        pytest.param(HEAD + "    - kind: allow\n      schedule: [unclosed\n", 8, "YAML syntax", id="bad-yaml"),
        pytest.param(HEAD.replace("  syncWindows:\n", "  roles: []\n"), 4, "has no spec.syncWindows", id="no-windows"),
        pytest.param(project(ALLOW.replace('"0 6 * * 1-5"', '"0 25 * * *"')), 7, "cron '0 25 * * *'",
                     id="bad-cron"),
        pytest.param(project(ALLOW.replace('"0 6 * * 1-5"', '"@daily"')), 7, "expected 5", id="descriptor"),
        pytest.param(project(ALLOW.replace("12h", "1d")), 8, "not a Go duration", id="days-are-not-go"),
        pytest.param(project(ALLOW.replace("12h", "twelve hours")), 8, "not a Go duration", id="bad-duration"),
        pytest.param(project(ALLOW.replace("Europe/Berlin", "Mars/Olympus")), 9, "unknown time zone",
                     id="bad-zone"),
        pytest.param(project(ALLOW.replace("kind: allow", "kind: block")), 6, "expected allow or deny",
                     id="bad-kind"),
        pytest.param(project(ALLOW.replace("[shop-*]", "shop-*")), 10, "expected a list", id="applications-not-a-list"),
        pytest.param(project(ALLOW.replace("manualSync: true", "manualSync: yes please")), 11,
                     "expected true or false", id="manual-sync-not-a-bool"),
    ],
)
def test_bad_input_is_file_line_message_and_exit_2(tmp_path: Path, text: str, line: int, message: str) -> None:
    code, out, err = run(tmp_path, text)
    assert code == 2
    assert out == ""
    assert err.startswith(f"{tmp_path / 'project.yaml'}:{line}: "), err
    assert message in err


def test_a_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["import", "argocd", str(tmp_path / "nope.yaml")])
    assert (result.exit_code, result.stderr.strip()) == (2, f"{tmp_path / 'nope.yaml'}: no such file")


def test_the_yaml_goes_to_stdout_and_loads_as_one_policy(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, project(ALLOW))
    assert code == 0, err
    (document,) = yaml.safe_load_all(out)
    assert document == {
        "apiVersion": "gatekeeper/v1",
        "kind": "ReleasePolicy",
        "metadata": {"name": "shop"},
        "spec": {
            "targets": ["argocd:shop-*"],
            "timezone": "Europe/Berlin",
            "calendar": {"allow": [{"cron": "0 6 * * 1-5", "duration": "12h", "timeZone": "Europe/Berlin",
                                    "code": "allow_window_0"}]},
        },
    }


def test_json_has_the_policies_and_the_notes_and_out_writes_the_file(tmp_path: Path) -> None:
    deny = "- {kind: deny, schedule: '0 0 * * *', duration: 90m, applications: [shop-web]}\n"
    code, out, _ = run(tmp_path, project(ALLOW, deny), "--json", "--name", "web", "--out", str(tmp_path / "p.yaml"))
    assert code == 0
    body = json.loads(out)
    assert [p["metadata"]["name"] for p in body["policies"]] == ["web-1", "web-2"]
    assert body["policies"][1]["spec"]["calendar"]["deny"][0] | {"timeZone": "UTC"} == {
        "cron": "0 0 * * *", "duration": "1h30m", "timeZone": "UTC", "code": "deny_window_1"
    }
    assert body["out"] == str(tmp_path / "p.yaml")
    assert any({"window": 1, "field": "manualSync"}.items() <= note.items() for note in body["notes"])
    assert list(yaml.safe_load_all((tmp_path / "p.yaml").read_text())) == body["policies"]


def test_a_bad_name_is_refused(tmp_path: Path) -> None:
    code, _, err = run(tmp_path, project(ALLOW), "--name", "Shop_Prod")
    assert code == 2
    assert "policy name 'Shop_Prod' is not a valid metadata.name" in err


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("1h", 3600, id="hours"),
        pytest.param("30m", 1800, id="minutes"),
        pytest.param("2h30m", 9000, id="mixed"),
        pytest.param("1h0m0s", 3600, id="go-string-form"),
        pytest.param("1.5h", 5400, id="fraction"),
        pytest.param("90s", 90, id="seconds"),
        pytest.param("1500ms", Fraction(3, 2), id="milliseconds"),
        pytest.param("0", 0, id="zero"),
        pytest.param("-1h", -3600, id="negative"),
        pytest.param("+2m", 120, id="plus"),
    ],
)
def test_go_durations(text: str, seconds: Fraction) -> None:
    assert parse_go_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1d", "h", ".h", "1h30", "1 h", "-", "P1D"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a Go duration"):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("pattern", "globs", "exact"),
    [
        pytest.param("*", ["*"], True, id="star"),
        pytest.param("odoo-*", ["odoo-*"], True, id="glob"),
        pytest.param("wms-{us,ca}", ["wms-us", "wms-ca"], True, id="braces"),
        pytest.param("{a,b{1,2}}-x", ["a-x", "b1-x", "b2-x"], True, id="nested-braces"),
        pytest.param(r"odoo\*", ["odoo[*]"], True, id="escaped-star"),
        pytest.param("app-[^x]", ["app-[^x]"], False, id="caret-class"),
    ],
)
def test_argo_cd_globs_become_fnmatch_globs(pattern: str, globs: list[str], exact: bool) -> None:
    assert app_globs(pattern) == (globs, exact)


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        pytest.param("argocd:odoo-*", "argocd:wms-*", False, id="different-prefixes"),
        pytest.param("argocd:*-eu", "argocd:*-us", False, id="different-suffixes"),
        pytest.param("argocd:prod-*", "argocd:*-eu", True, id="prefix-and-suffix"),
        pytest.param("argocd:odoo-prod", "argocd:odoo-*", True, id="literal-in-glob"),
        pytest.param("argocd:wms-us", "argocd:wms-ca", False, id="two-literals"),
    ],
)
def test_may_overlap(a: str, b: str, overlap: bool) -> None:
    assert may_overlap(a, b) is overlap
    assert may_overlap(b, a) is overlap


def notes(text: str) -> list[str]:
    return [str(note) for note in import_project(text, "p.yaml", now=NOW).notes]


def test_allow_windows_that_may_select_one_application_are_named() -> None:
    other = ALLOW.replace("[shop-*]", "[\"*-eu\"]").replace("0 6", "0 20")
    (line,) = [n for n in notes(project(ALLOW, other)) if "may select the same application" in n]
    assert line.startswith("p.yaml:16: window 1 applications: argocd:*-eu and window 0's argocd:shop-*")
    assert "stricter" in line


def test_windows_with_the_same_selector_share_one_policy() -> None:
    deny = ALLOW.replace("kind: allow", "kind: deny").replace("0 6", "0 12").replace("12h", "1h")
    imported = import_project(project(ALLOW, deny), "p.yaml", now=NOW)
    (document,) = imported.documents
    assert [e["code"] for e in document["spec"]["calendar"]["deny"]] == ["deny_window_1"]
    assert [e["code"] for e in document["spec"]["calendar"]["allow"]] == ["allow_window_0"]


def test_a_dst_zone_is_explained_once_then_referred_to() -> None:
    lines = [n for n in notes(project(ALLOW, ALLOW.replace("0 6", "0 18"))) if "timeZone" in n]
    assert "changes its UTC offset" in lines[0]
    assert lines[1].endswith("(see window 0)")
    assert not [n for n in notes(project(ALLOW.replace("Europe/Berlin", "Asia/Tokyo"))) if "timeZone" in n]


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        pytest.param(("applications: [shop-*]", "namespaces: [shop]"), "namespaces", "window skipped",
                     id="namespace-only"),
        pytest.param(("applications: [shop-*]", "clusters: [prod]\n  andOperator: true"), "clusters",
                     "window skipped", id="cluster-only-and"),
        pytest.param(("applications: [shop-*]", "applications: []"), "applications", "has no applications, namespaces or clusters",
                     id="no-selector"),
        pytest.param(("duration: 12h", "duration: '0'"), "duration", "never active", id="zero-duration"),
        pytest.param(("duration: 12h", "duration: 1500ms"), "duration", "rounded up to 2s", id="sub-second"),
        pytest.param(("manualSync: true", "manualSync: true\n  prune: true"), "prune", "unknown sync-window field",
                     id="unknown-field"),
        pytest.param(("manualSync: true", "manualSync: true\n  syncOverrun: true"), "syncOverrun", "not carried over",
                     id="sync-overrun"),
        pytest.param(('"0 6 * * 1-5"', '"0 6 */2 * 1"'), "schedule", "both day fields must match",
                     id="robfig-star-step"),
        pytest.param(("[shop-*]", '["shop-[^x]"]'), "applications", "glob syntax fnmatch does not have",
                     id="caret-class"),
    ],
)
def test_what_does_not_carry_over_is_one_line_naming_window_and_field(
    change: tuple[str, str], field: str, text: str
) -> None:
    other = ALLOW.replace("[shop-*]", "[keep]")  # so that something is always left to import
    found = [n for n in notes(project(ALLOW.replace(*change), other)) if f": window 0 {field}: " in n]
    assert found and text in found[0], notes(project(ALLOW.replace(*change), other))


def test_nothing_left_to_import_is_an_error() -> None:
    with pytest.raises(ArgoImportError, match="no sync window could be carried over"):
        import_project(project(ALLOW.replace("applications: [shop-*]", "namespaces: [shop]")), "p.yaml", now=NOW)


def test_when_nothing_is_left_the_cli_prints_why_before_the_error(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, project(ALLOW.replace("applications: [shop-*]", "namespaces: [shop]")))
    assert (code, out) == (2, "")
    why, error = err.splitlines()[0], err.splitlines()[-1]
    assert ": window 0 namespaces: window skipped" in why
    assert error.endswith("no sync window could be carried over (see the notes)")


def test_robfig_question_mark_is_a_star() -> None:
    imported = import_project(project(ALLOW.replace('"0 6 * * 1-5"', '"0 6 ? * 1-5"')), "p.yaml", now=NOW)
    assert imported.documents[0]["spec"]["calendar"]["allow"][0]["cron"] == "0 6 * * 1-5"
