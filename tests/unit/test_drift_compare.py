"""The drift comparison (``domain.drift.compare``): only what Git sets counts, by meaning."""

from __future__ import annotations

from typing import Any

import pytest

from gatekeeper.announce import normalise, touched
from gatekeeper.domain.drift import MAX_FIELDS, ObjectDrift, ObjectRef, compare, diff_lines, digest, summary
from gatekeeper.domain.policy import IgnoreRule
from gatekeeper.ports import GitReadError

REF = ObjectRef("apps/v1", "Deployment", "odoo", "web")


def paths(desired: dict[str, Any], live: dict[str, Any] | None, ref: ObjectRef = REF, **kw: Any) -> list[str] | None:
    found = compare(ref, desired, live, **kw)
    if found is None:
        return None
    return ["(missing)"] if found.missing else [line.path for line in found.fields]


@pytest.mark.parametrize(
    ("desired", "live"),
    [
        pytest.param({"spec": {"cpu": {"requests": {"cpu": "1000m"}}}}, {"spec": {"cpu": {"requests": {"cpu": "1"}}}}, id="cpu-millis"),
        pytest.param({"r": {"limits": {"memory": "1024Mi"}}}, {"r": {"limits": {"memory": "1Gi"}}}, id="memory-binary"),
        pytest.param({"r": {"limits": {"cpu": 2}}}, {"r": {"limits": {"cpu": "2"}}}, id="cpu-number-vs-string"),
        pytest.param({"r": {"requests": {"cpu": "0.5"}}}, {"r": {"requests": {"cpu": "500m"}}}, id="cpu-decimal"),
        pytest.param({"r": {"requests": {"storage": "1e3"}}}, {"r": {"requests": {"storage": "1k"}}}, id="exponent"),
        pytest.param({"spec": {"port": 8080}}, {"spec": {"port": "8080"}}, id="int-vs-digit-string"),
        pytest.param({"spec": {"replicas": 2}}, {"spec": {"replicas": 2.0}}, id="int-vs-float"),
        pytest.param({"spec": {"template": {"x": {}}}}, {"spec": {"template": {}}}, id="empty-map-unset"),
        pytest.param({"spec": {"args": []}}, {"spec": {}}, id="empty-list-unset"),
        pytest.param({"spec": {"a": None}}, {"spec": {}}, id="null-unset"),
        pytest.param({"status": {"replicas": 3}}, {"status": {"replicas": 1}}, id="status-is-the-servers"),
        pytest.param(
            {"metadata": {"name": "web", "namespace": "odoo", "labels": {"app.kubernetes.io/instance": "mine"}}},
            {"metadata": {"name": "web", "namespace": "odoo", "labels": {"app.kubernetes.io/instance": "odoo-prod"}}},
            id="tracking-label",
        ),
        pytest.param(
            {"metadata": {"annotations": {"argocd.argoproj.io/sync-wave": "1"}}},
            {"metadata": {}},
            id="argocd-annotation",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "a", "image": "x"}]}},
            {"spec": {"containers": [{"name": "sidecar", "image": "y"}, {"name": "a", "image": "x", "imagePullPolicy": "Always"}]}},
            id="merged-by-name-extra-live-and-reordered",
        ),
        pytest.param(
            {"spec": {"volumeMounts": [{"mountPath": "/etc"}]}},
            {"spec": {"volumeMounts": [{"mountPath": "/etc", "readOnly": False}]}},
            id="merged-by-mount-path",
        ),
    ],
)
def test_what_only_the_server_sets_or_says_differently_is_no_drift(desired: dict[str, Any], live: dict[str, Any]) -> None:
    assert paths(desired, live) is None


@pytest.mark.parametrize(
    ("desired", "live", "expected"),
    [
        pytest.param({"spec": {"replicas": 2}}, {"spec": {"replicas": 5}}, ["/spec/replicas"], id="replicas"),
        pytest.param({"r": {"requests": {"cpu": "1"}}}, {"r": {"requests": {"cpu": "1001m"}}}, ["/r/requests/cpu"], id="cpu-other"),
        pytest.param({"spec": {"on": True}}, {"spec": {"on": 1}}, ["/spec/on"], id="bool-is-no-number"),
        pytest.param({"spec": {"tag": "1.0"}}, {"spec": {"tag": "1"}}, ["/spec/tag"], id="strings-are-strings"),
        pytest.param({"spec": {"x": "y"}}, {"spec": {}}, ["/spec/x"], id="unset-live"),
        pytest.param({"spec": {"args": ["a", "b"]}}, {"spec": {"args": ["a"]}}, ["/spec/args"], id="atomic-list-length"),
        pytest.param({"spec": {"args": ["a", "b"]}}, {"spec": {"args": ["a", "c"]}}, ["/spec/args/1"], id="atomic-list-item"),
        pytest.param(
            {"spec": {"containers": [{"name": "a", "image": "x"}]}},
            {"spec": {"containers": [{"name": "b", "image": "x"}]}},
            ["/spec/containers/0"],
            id="named-element-missing",
        ),
        pytest.param(
            {"metadata": {"annotations": {"acme.io/owner": "erp"}}},
            {"metadata": {"annotations": {"acme.io/owner": "sales"}}},
            ["/metadata/annotations/acme.io~1owner"],
            id="annotation-pointer-escaped",
        ),
        pytest.param({"spec": {"m": {"k": 1}}}, {"spec": {"m": "flat"}}, ["/spec/m"], id="type-changed"),
    ],
)
def test_a_field_git_sets_with_another_value_live_is_drift(
    desired: dict[str, Any], live: dict[str, Any], expected: list[str]
) -> None:
    assert paths(desired, live) == expected


def test_an_object_missing_live_is_drift() -> None:
    assert paths({"spec": {}}, None) == ["(missing)"]


@pytest.mark.parametrize(
    ("rule", "ignored"),
    [
        pytest.param(IgnoreRule("Deployment", ("/spec/replicas",)), True, id="kind"),
        pytest.param(IgnoreRule("Deployment", ("/spec",)), True, id="parent-pointer"),
        pytest.param(IgnoreRule("Deployment", ("/spec/replicas",), name="web", namespace="odoo"), True, id="name-namespace"),
        pytest.param(IgnoreRule("Deployment", ("/spec/replicas",), name="worker"), False, id="other-name"),
        pytest.param(IgnoreRule("StatefulSet", ("/spec/replicas",)), False, id="other-kind"),
        pytest.param(IgnoreRule("Deployment", ("/spec/repl",)), False, id="prefix-is-no-parent"),
    ],
)
def test_drift_ignore_leaves_out_json_pointers_per_kind_and_name(rule: IgnoreRule, ignored: bool) -> None:
    found = paths({"spec": {"replicas": 2}}, {"spec": {"replicas": 5}}, ignore=[rule])
    assert found == (None if ignored else ["/spec/replicas"])


def test_secret_values_never_appear_in_a_diff_and_string_data_compares_as_data() -> None:
    secret = ObjectRef("v1", "Secret", "odoo", "db")
    assert compare(secret, {"stringData": {"password": "hunter2"}}, {"data": {"password": "aHVudGVyMg=="}}) is None
    found = compare(secret, {"stringData": {"password": "hunter2"}}, {"data": {"password": "b3RoZXI="}})
    assert found is not None
    (line,) = found.fields
    assert (line.path, line.desired, line.live) == ("/data/password", "(redacted)", "(redacted)")
    assert "hunter2" not in repr(found) and "aHVudGVy" not in repr(found)


def test_the_diff_is_truncated_and_its_digest_is_stable() -> None:
    desired = {"data": {f"k{i:02d}": "a" * 300 for i in range(MAX_FIELDS + 5)}}
    live = {"data": {f"k{i:02d}": "b" for i in range(MAX_FIELDS + 5)}}
    found = compare(ObjectRef("v1", "ConfigMap", "odoo", "c"), desired, live)
    assert found is not None and len(found.fields) == MAX_FIELDS and found.more == 5
    assert all(len(line.desired) <= 120 for line in found.fields)
    lines = diff_lines([found])
    assert lines[-1].desired == "... 5 more differences"
    other = ObjectDrift(REF, missing=True)
    assert digest([found, other]) == digest([other, found]) != digest([found])
    message = summary([found, other], 12, "abcdef0123456789")
    assert message.startswith("2 of 12 objects differ from Git at abcdef012345: ")
    assert "apps/v1 Deployment odoo/web is missing live" in message


def test_a_git_error_names_repository_path_and_revision_but_never_a_token_in_a_url() -> None:
    url = "https://x-access-token:ghp_secret@github.com/acme/odoo-config.git"
    error = GitReadError(url, "clusters/prod", "9181d06803", f"fetch failed: could not reach {url}")
    assert str(error) == (
        "https://***@github.com/acme/odoo-config.git at 9181d06803 (clusters/prod): "
        "fetch failed: could not reach https://***@github.com/acme/odoo-config.git"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/odoo-config.git",
        "https://GitHub.com/acme/odoo-config/",
        "git@github.com:acme/odoo-config.git",
        "ssh://git@github.com/acme/odoo-config",
        "https://token@github.com/acme/odoo-config",
    ],
)
def test_one_repository_under_its_several_urls(url: str) -> None:
    assert normalise(url) == "github.com/acme/odoo-config"


def test_a_push_touches_a_source_path_below_it_not_beside_it() -> None:
    assert touched("clusters/prod", ["clusters/prod/odoo/deployment.yaml"])
    assert touched("./clusters/prod/", ["clusters/prod"])
    assert not touched("clusters/prod", ["clusters/prod-wms/odoo.yaml", "clusters/production.yaml"])
    assert touched("", ["README.md"])
