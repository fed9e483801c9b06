"""Drift end to end: real Git repositories (pygit2, a bare remote the reader fetches from), the real
``kubernetes`` client against a fake API server on loopback, the drift check in ``decide``, and the
diff stored with the decision and shown by the API on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gatekeeper.domain.decision import DecideOptions, Facts, decide
from gatekeeper.domain.drift import DriftReading
from gatekeeper.domain.policy import DriftMode, IgnoreRule, Policy, Source
from gatekeeper.domain.types import ReleaseRequest, TargetKey, Verdict
from gatekeeper.domain.windows import WindowIndex
from gatekeeper.drift import DriftReader
from gatekeeper.ports import GitReadError, UnsupportedManifestsError
from gatekeeper.readers.git import Pygit2GitReader
from gatekeeper.readers.kubernetes import KubernetesClusterReader
from tests.integration.conftest import MutableClock, make_settings, start_server, token_of, write_tokens
from tests.integration.drift_world import (
    ARGO_APP,
    IMAGE_BASELINE,
    ConfigRepo,
    argocd_application,
    files_at,
    live_config_map,
    live_deployment,
    live_service,
)
from tests.integration.fake_kubernetes import FakeKubernetes, start_fake_kubernetes, write_kubeconfig

pytestmark = pytest.mark.integration

GATEKEEPER = str(Path(sys.executable).with_name("gatekeeper"))
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
TARGET = TargetKey(f"argocd:{ARGO_APP}")


@dataclass
class World:
    repo: ConfigRepo
    kube: FakeKubernetes
    kubeconfig: Path
    cache: Path
    root: Path

    def reader(self, *, last_applied: str | None = None, kubeconfig: Path | None = None) -> DriftReader:
        git = Pygit2GitReader(self.cache)
        cluster = KubernetesClusterReader(kubeconfig or self.kubeconfig, timeout=5.0)
        return DriftReader(git, cluster, last_applied=lambda _target: last_applied)

    def applied(self, synced: str | None = None) -> None:
        """The cluster as Argo CD left it after syncing the baseline."""
        self.kube.clear()
        self.kube.put(live_deployment())
        self.kube.put(live_config_map())
        self.kube.put(live_service())
        self.kube.put(argocd_application(self.repo.url, synced or self.repo.baseline))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("drift")
    repo = ConfigRepo(root)
    kube = start_fake_kubernetes()
    kubeconfig = write_kubeconfig(root / "kubeconfig", {"prod": kube.url, "down": "http://127.0.0.1:9"}, "prod")
    yield World(repo, kube, kubeconfig, root / "git-cache", root)
    kube.stop()


NO_SOURCE = Source()


def policy(mode: DriftMode = DriftMode.BLOCK, *, source: Source = NO_SOURCE, ignore: tuple[IgnoreRule, ...] = ()) -> Policy:
    return Policy(name="odoo-production", targets=("argocd:odoo-prod*",), source=source, drift=mode, drift_ignore=ignore)


def check(world: World, rule: Policy, revision: str | None = None, **reader: object) -> tuple[DriftReading, object]:
    request = ReleaseRequest(TARGET, revision or world.repo.release)
    reading = world.reader(**reader).read(request, [rule], NOW)  # type: ignore[arg-type]
    open_calendar = WindowIndex.build(int(NOW.timestamp()) - 86_400, int(NOW.timestamp()) + 400 * 86_400, {})
    facts = Facts(policy_hash="h", calendars={rule.name: open_calendar}, readings={"drift": reading})
    decision = decide(request, facts, [rule], now=NOW, options=DecideOptions(retry_delay=timedelta(minutes=5)))
    return reading, decision


def codes(decision: object) -> list[str]:
    return [reason.code for reason in decision.reasons]  # type: ignore[attr-defined]


def test_no_drift_when_the_cluster_is_what_argo_cd_synced(world: World) -> None:
    world.applied()
    reading, decision = check(world, policy())
    outcome = reading.of("odoo-production")
    assert outcome is not None and outcome.problem is None
    assert (outcome.baseline, outcome.checked, outcome.drifted) == (world.repo.baseline, 3, ())
    assert decision.verdict is Verdict.APPROVE and codes(decision) == []


def test_a_release_that_changes_the_image_in_git_is_not_drift(world: World) -> None:
    """The release's own change (17.0 -> 17.1) is compared nowhere: the baseline is what Argo CD
    synced, never the revision asked for."""
    world.applied()
    reading, decision = check(world, policy(), revision=world.repo.release)
    assert reading.of("odoo-production").baseline == world.repo.baseline  # type: ignore[union-attr]
    assert decision.verdict is Verdict.APPROVE


def test_a_live_object_with_every_server_default_and_field_is_no_drift(world: World) -> None:
    """uid, resourceVersion, generation, managedFields, status, defaults (imagePullPolicy, protocol,
    strategy, probes), canonical quantities (1000m vs "1", 1024Mi vs 1Gi), tracking labels and
    annotations, an injected sidecar, a YAML date that the API keeps as a string."""
    world.applied()
    live = world.kube.object("apps/v1", "Deployment", "odoo", "web")
    assert live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    reading, _decision = check(world, policy())
    assert reading.of("odoo-production").drifted == ()  # type: ignore[union-attr]


def test_an_image_changed_live_is_drift_and_block_defers_for_an_approval(world: World) -> None:
    world.applied()
    world.kube.put(live_deployment(image="registry.acme.io/odoo:hotfix"))
    reading, decision = check(world, policy())
    (drifted,) = reading.of("odoo-production").drifted  # type: ignore[union-attr]
    assert str(drifted.ref) == "apps/v1 Deployment odoo/web"
    (line,) = drifted.fields
    assert line.path == "/spec/template/spec/containers/0/image"
    assert (json.loads(line.desired), json.loads(line.live)) == (IMAGE_BASELINE, "registry.acme.io/odoo:hotfix")
    assert decision.verdict is Verdict.DEFER and codes(decision) == ["drift_detected"]
    assert decision.requires == ("approval:release-manager",) and decision.not_before is None
    reason = decision.reasons[0]
    assert "1 of 3 objects differ" in reason.message and "containers/0/image" in reason.message
    assert reason.diff[0].path == line.path and reason.digest


def test_warn_mode_approves_with_the_drift_as_a_reason(world: World) -> None:
    world.applied()
    world.kube.put(live_deployment(image="registry.acme.io/odoo:hotfix"))
    _reading, decision = check(world, policy(DriftMode.WARN))
    assert decision.verdict is Verdict.APPROVE and codes(decision) == ["drift_detected"]


def test_replicas_changed_by_hand_are_drift_unless_the_pointer_is_ignored(world: World) -> None:
    world.applied()
    world.kube.put(live_deployment(replicas=5))
    reading, _ = check(world, policy())
    (drifted,) = reading.of("odoo-production").drifted  # type: ignore[union-attr]
    assert [(f.path, f.desired, f.live) for f in drifted.fields] == [("/spec/replicas", "2", "5")]
    ignored = policy(ignore=(IgnoreRule("Deployment", ("/spec/replicas",)),))
    reading, decision = check(world, ignored)
    assert reading.of("odoo-production").drifted == () and decision.verdict is Verdict.APPROVE  # type: ignore[union-attr]
    other_name = policy(ignore=(IgnoreRule("Deployment", ("/spec/replicas",), name="worker"),))
    assert check(world, other_name)[0].of("odoo-production").drifted  # type: ignore[union-attr]


def test_an_object_missing_live_is_drift(world: World) -> None:
    world.applied()
    world.kube.delete("v1", "ConfigMap", "odoo", "odoo-config")
    reading, decision = check(world, policy())
    (drifted,) = reading.of("odoo-production").drifted  # type: ignore[union-attr]
    assert (str(drifted.ref), drifted.missing) == ("v1 ConfigMap odoo/odoo-config", True)
    assert "v1 ConfigMap odoo/odoo-config is missing live" in decision.reasons[0].message


def test_one_list_per_kind_and_namespace_not_a_get_per_object(world: World) -> None:
    world.applied()
    reader = world.reader()
    reader.read(ReleaseRequest(TARGET, world.repo.release), [policy()], NOW)  # warm: discovery
    before = len(world.kube.requests)
    reader.read(ReleaseRequest(TARGET, world.repo.release), [policy()], NOW)
    paths = [request.path for request in world.kube.requests[before:]]
    assert sorted(paths) == sorted(
        [
            "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/odoo-prod",
            "/apis/apps/v1/namespaces/odoo/deployments",
            "/api/v1/namespaces/odoo/configmaps",
            "/api/v1/namespaces/odoo/services",
        ]
    )


def test_an_unreachable_cluster_defers_until_the_retry_delay(world: World) -> None:
    world.applied()
    down = write_kubeconfig(world.root / "down.kubeconfig", {"down": "http://127.0.0.1:9"}, "down")
    _reading, decision = check(world, policy(), kubeconfig=down)
    assert decision.verdict is Verdict.DEFER and codes(decision) == ["cluster_unreachable"]
    assert decision.not_before == NOW + timedelta(minutes=5)
    assert "127.0.0.1:9" in decision.reasons[0].message or "failed" in decision.reasons[0].message


def test_a_forbidden_list_defers_naming_the_rbac_refusal(world: World) -> None:
    world.applied()
    world.kube.forbidden.add(("deployments", "odoo"))
    _reading, decision = check(world, policy())
    assert codes(decision) == ["cluster_unreachable"] and decision.verdict is Verdict.DEFER
    assert "403" in decision.reasons[0].message and "cannot list resource" in decision.reasons[0].message


def test_an_unknown_baseline_revision_is_a_reason_naming_it(world: World) -> None:
    missing = "0123456789abcdef0123456789abcdef01234567"
    world.applied(synced=missing)
    _reading, decision = check(world, policy())
    assert decision.verdict is Verdict.DEFER and codes(decision) == ["revision_unknown"]
    assert missing in decision.reasons[0].message and world.repo.url in decision.reasons[0].message
    assert decision.not_before == NOW + timedelta(minutes=5)


def test_a_repository_that_cannot_be_fetched_is_git_unavailable(world: World) -> None:
    world.applied()
    gone = Source(repo=(world.root / "nowhere.git").as_uri(), path="clusters/prod")
    _reading, decision = check(world, policy(source=gone))
    assert decision.verdict is Verdict.DEFER and codes(decision) == ["git_unavailable"]
    assert "nowhere.git" in decision.reasons[0].message


@pytest.mark.parametrize(
    ("path", "says"),
    [
        pytest.param("clusters/patched", "sets patches", id="kustomize-patch"),
        pytest.param("charts/odoo", "is a Helm chart", id="helm-chart"),
    ],
)
def test_what_would_need_rendering_warns_drift_unsupported(world: World, path: str, says: str) -> None:
    world.applied()
    _reading, decision = check(world, policy(source=Source(repo=world.repo.url, path=path)))
    assert decision.verdict is Verdict.APPROVE and codes(decision) == ["drift_unsupported"]
    assert says in decision.reasons[0].message


def test_a_first_release_has_no_baseline_and_warns(world: World) -> None:
    world.applied()
    world.kube.delete("argoproj.io/v1alpha1", "Application", "argocd", ARGO_APP)
    rule = policy(source=Source(repo=world.repo.url, path="clusters/prod"))
    _reading, decision = check(world, rule)
    assert decision.verdict is Verdict.APPROVE and codes(decision) == ["drift_baseline_unknown"]
    # ... and with a last applied release, that is the baseline
    reading, again = check(world, rule, last_applied=world.repo.baseline)
    assert reading.of("odoo-production").baseline == world.repo.baseline and codes(again) == []  # type: ignore[union-attr]


def test_the_source_comes_from_the_argo_cd_application_and_follows_it(world: World) -> None:
    """No spec.source: repository, path and destination namespace are the Application's. An
    Application moved to a branch that Argo CD synced: the reader fetches it from the remote."""
    world.applied()
    hotfix = world.repo.branch("hotfix", files_at("registry.acme.io/odoo:hotfix"), "hotfix image")
    world.kube.put(live_deployment(image="registry.acme.io/odoo:hotfix"))
    world.kube.put(argocd_application(world.repo.url, hotfix))
    reading, decision = check(world, policy())
    outcome = reading.of("odoo-production")
    assert outcome is not None and (outcome.baseline, outcome.drifted) == (hotfix, ())
    assert decision.verdict is Verdict.APPROVE  # type: ignore[attr-defined]
    # OutOfSync: status.sync.revision is already the new one; the history says what is deployed
    world.kube.put(argocd_application(world.repo.url, world.repo.release, status="OutOfSync"))
    app = world.kube.object("argoproj.io/v1alpha1", "Application", "argocd", ARGO_APP)
    app["status"]["history"][-1]["revision"] = world.repo.baseline
    world.kube.put(live_deployment())
    reading, _ = check(world, policy())
    assert reading.of("odoo-production").baseline == world.repo.baseline  # type: ignore[union-attr]
    assert reading.of("odoo-production").drifted == ()  # type: ignore[union-attr]


def test_an_application_that_renders_helm_is_drift_unsupported(world: World) -> None:
    world.applied()
    app = argocd_application(world.repo.url, world.repo.baseline)
    app["spec"]["source"] = {"repoURL": "https://charts.acme.io", "chart": "odoo", "targetRevision": "1.4.0"}
    world.kube.put(app)
    _reading, decision = check(world, policy())
    assert codes(decision) == ["drift_unsupported"] and "chart" in decision.reasons[0].message


def flux_objects(world: World, **spec: object) -> None:
    world.kube.put(
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "odoo", "namespace": "flux-system", "uid": "k-1", "generation": 3},
            "spec": {
                "interval": "10m",
                "path": "./apps/odoo",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": "odoo-config"},
                "targetNamespace": "odoo",
                **spec,
            },
            "status": {
                "lastAppliedRevision": f"main@sha1:{world.repo.baseline}",
                "lastAttemptedRevision": f"main@sha1:{world.repo.release}",
                "observedGeneration": 3,
            },
        }
    )
    world.kube.put(
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "odoo-config", "namespace": "flux-system"},
            "spec": {"interval": "1m", "url": world.repo.url, "ref": {"branch": "main"}},
        }
    )


def test_a_flux_kustomization_gives_source_namespace_and_last_applied_revision(world: World) -> None:
    """In the cluster named by spec.source.cluster (a kubeconfig context): the Kustomization's
    path, its GitRepository's URL, targetNamespace, and lastAppliedRevision as the baseline."""
    world.applied()
    flux_objects(world)
    request = ReleaseRequest(TargetKey("flux:Kustomization/flux-system/odoo"), world.repo.release)
    rule = Policy(name="flux", targets=("flux:*",), source=Source(cluster="prod"), drift=DriftMode.BLOCK)
    outcome = world.reader().read(request, [rule], NOW).of("flux")
    assert outcome is not None and outcome.problem is None, outcome
    assert (outcome.baseline, outcome.checked, outcome.drifted) == (world.repo.baseline, 3, ())
    flux_objects(world, patches=[{"patch": "- {op: replace, path: /spec/replicas, value: 3}"}])
    outcome = world.reader().read(request, [rule], NOW).of("flux")
    assert outcome is not None and outcome.problem is not None and outcome.problem.code == "drift_unsupported"
    helm = ReleaseRequest(TargetKey("flux:HelmRelease/odoo/web"), world.repo.release)
    outcome = world.reader().read(helm, [rule], NOW).of("flux")
    assert outcome is not None and outcome.problem is not None and "HelmRelease" in outcome.problem.message


# --- through the service: stored with the decision, shown by the API ---------------------------------

DRIFT_POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-production}
spec:
  targets: ["argocd:odoo-prod*"]
  drift:
    mode: block
    ignore: [{kind: Deployment, name: worker, jsonPointers: [/spec/replicas]}]
"""


def test_the_diff_is_stored_with_the_decision_and_shown_by_the_api(
    world: World, database_url: str, tmp_path: Path
) -> None:
    world.applied()
    world.kube.put(live_deployment(replicas=5))
    policies, calendars = tmp_path / "policies", tmp_path / "calendars"
    policies.mkdir()
    calendars.mkdir()
    (policies / "odoo.yaml").write_text(textwrap.dedent(DRIFT_POLICY))
    settings = make_settings(
        database_url, policies, calendars, write_tokens(tmp_path),
        KUBECONFIG=world.kubeconfig, GIT_CACHE_DIR=tmp_path / "git",
    )  # fmt: skip
    server = start_server(settings, MutableClock())
    try:
        with server.client("hook") as client:
            answer = client.post("/v1/gate", json={"target": TARGET, "revision": world.repo.release})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["verdict"] == "defer" and body["requires"] == ["approval:release-manager"]
        (reason,) = body["reasons"]
        assert reason["code"] == "drift_detected"
        assert reason["diff"] == [
            {"object": "apps/v1 Deployment odoo/web", "path": "/spec/replicas", "desired": "2", "live": "5"}
        ]
        release_id = body["release_id"]
        with server.client("viewer") as client:
            shown = client.get(f"/v1/releases/{release_id}").json()
        assert shown["decisions"][-1]["reasons"][0]["diff"] == reason["diff"]
        assert shown["decisions"][-1]["reasons"][0]["digest"] == reason["digest"]
        if database_url.startswith("sqlite"):  # the CLI reads the same API (once is enough)
            token = tmp_path / "viewer.token"
            token.write_text(token_of("viewer"))
            cli = [GATEKEEPER, "releases", "show", str(release_id), "--server", server.url, "--token-file", str(token)]
            printed = subprocess.run(cli, capture_output=True, text=True, timeout=60, check=False)
            assert printed.returncode == 0, printed.stderr
            assert "apps/v1 Deployment odoo/web /spec/replicas: git 2, live 5" in printed.stdout
        # An approval acknowledges exactly the drift it was shown ...
        with server.client("manager") as client:
            approved = client.post(f"/v1/releases/{release_id}/approve", json={"reason": "scaled for the sale"}).json()
        decision = approved["decisions"][-1]
        assert decision["verdict"] == "approve", decision
        assert "acknowledged by alice" in decision["reasons"][0]["message"]
        # ... and drift that differs afterwards defers again
        world.kube.put(live_deployment(replicas=6))
        with server.client("hook") as client:
            again = client.post("/v1/gate", json={"target": TARGET, "revision": world.repo.release}).json()
        assert again["verdict"] == "defer" and again["reasons"][0]["diff"][0]["live"] == "6"
    finally:
        server.stop()


# --- the Git reader on its own -------------------------------------------------------------------


def test_the_git_reader_fetches_only_what_it_lacks_and_reads_without_a_checkout(world: World, tmp_path: Path) -> None:
    git = Pygit2GitReader(tmp_path / "cache")
    objects = git.manifests(world.repo.url, "clusters/prod", world.repo.baseline)
    assert sorted((o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) for o in objects) == [
        ("ConfigMap", "odoo-config", "odoo"), ("Deployment", "web", "odoo"), ("Service", "odoo", "odoo"),
    ]  # fmt: skip
    assert git.fetches == 1
    git.manifests(world.repo.url, "apps/odoo", world.repo.release)  # a commit the mirror has: no fetch
    assert git.fetches == 1
    assert git.manifests(world.repo.url, "/clusters/prod/", "main")[0]["kind"]  # a branch: fetched
    assert git.fetches == 2
    assert not list((tmp_path / "cache").glob("*/apps"))  # a bare mirror, no work tree


@pytest.mark.parametrize(
    ("files", "path", "error", "says"),
    [
        pytest.param({"x/a.yaml": "kind: [unclosed"}, "x", GitReadError, "x/a.yaml is not valid YAML", id="bad-yaml"),
        pytest.param({"x/a.yaml": "a: 1"}, "y", GitReadError, "path y does not exist", id="no-such-path"),
        pytest.param(
            {"x/kustomization.yaml": "resources: ['https://github.com/acme/base//odoo?ref=v1']"},
            "x", UnsupportedManifestsError, "remote resource", id="remote-base",
        ),
        pytest.param(
            {"x/kustomization.yaml": "resources: [../../elsewhere]"},
            "x", UnsupportedManifestsError, "outside the repository", id="outside-the-repository",
        ),
        pytest.param(
            {"x/kustomization.yaml": "configMapGenerator: [{name: c, literals: [a=b]}]"},
            "x", UnsupportedManifestsError, "sets configMapGenerator", id="generator",
        ),
    ],
)  # fmt: skip
def test_what_the_git_reader_cannot_read_is_named(
    world: World, tmp_path: Path, files: dict[str, str], path: str, error: type[Exception], says: str
) -> None:
    sha = world.repo.branch(f"case-{tmp_path.name[-12:]}", files, "a case")
    with pytest.raises(error) as raised:
        Pygit2GitReader(tmp_path / "cache").manifests(world.repo.url, path, sha)
    assert says in str(raised.value)
    if error is GitReadError:
        assert world.repo.url in str(raised.value) and sha in str(raised.value)


def test_a_list_and_multi_document_files_are_read_and_other_documents_skipped(world: World, tmp_path: Path) -> None:
    listed = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n"
    files = {"x/list.yaml": listed, "x/values.yaml": "replicaCount: 2\n", "x/sub/b.json": '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}'}
    sha = world.repo.branch("lists", files, "lists")
    objects = Pygit2GitReader(tmp_path / "cache").manifests(world.repo.url, "x", sha)
    assert [o["metadata"]["name"] for o in objects] == ["a", "b"]  # by file name


def test_secrets_in_git_are_never_listed_from_the_cluster(world: World) -> None:
    """The shipped service account may not read Secrets: a Secret in Git is left out, not a 403."""
    world.applied()
    world.kube.forbidden.add(("secrets", "odoo"))
    files = {**files_at(IMAGE_BASELINE), "apps/odoo/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: hunter2}\n"}
    sha = world.repo.branch("with-secret", files, "a secret")
    world.kube.put(argocd_application(world.repo.url, sha))
    before = len(world.kube.requests)
    reading, decision = check(world, policy())
    assert reading.of("odoo-production").checked == 3 and codes(decision) == []  # type: ignore[union-attr]
    assert not any("/secrets" in request.path for request in world.kube.requests[before:])
