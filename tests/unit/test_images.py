"""Image references as the distribution grammar reads them, images from every pod template, and
the provenance rules that need no registry (requireDigest, allowedRegistries)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gatekeeper.domain import provenance
from gatekeeper.domain.approvals import Approval, ApprovalFacts
from gatekeeper.domain.decision import Facts, decide
from gatekeeper.domain.images import ImageRef, ImageUse, InvalidReferenceError, images_of
from gatekeeper.domain.policy import Policy, ProvenanceRules
from gatekeeper.domain.provenance import ProvenanceOutcome, ProvenanceReading, static_check
from gatekeeper.domain.types import ReleaseRequest, TargetKey, Verdict
from gatekeeper.domain.windows import WindowIndex

DIGEST = "sha256:" + "ab" * 32
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
T = int(NOW.timestamp())


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        pytest.param("nginx", "docker.io", "library/nginx", None, None, id="hub-official"),
        pytest.param("nginx:1.27", "docker.io", "library/nginx", "1.27", None, id="hub-tag"),
        pytest.param("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None, id="hub-user"),
        pytest.param("index.docker.io/library/nginx", "docker.io", "library/nginx", None, None, id="hub-alias"),
        pytest.param("registry.acme.io/odoo/web:17.0", "registry.acme.io", "odoo/web", "17.0", None, id="registry"),
        pytest.param("localhost/odoo", "localhost", "odoo", None, None, id="localhost"),
        pytest.param("127.0.0.1:5000/a/b:1@" + DIGEST, "127.0.0.1:5000", "a/b", "1", DIGEST, id="port-tag-digest"),
        pytest.param("ghcr.io/acme/odoo@" + DIGEST, "ghcr.io", "acme/odoo", None, DIGEST, id="digest-only"),
        pytest.param("acme/odoo:1.0", "docker.io", "acme/odoo", "1.0", None, id="no-domain-two-parts"),
    ],
)
def test_references_parse_as_the_distribution_grammar_does(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("Nginx", id="uppercase-repository"),
        pytest.param("nginx@sha256:abc", id="short-digest"),
        pytest.param("nginx:bad tag", id="tag-space"),
        pytest.param("nginx:-x", id="tag-leading-dash"),
        pytest.param("registry.acme.io/", id="no-repository"),
        pytest.param(" nginx", id="whitespace"),
    ],
)
def test_invalid_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        ImageRef.parse(text)


def _pod(containers: list[str], init: tuple[str, ...] = (), ephemeral: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(containers)],
        "initContainers": [{"name": f"i{i}", "image": image} for i, image in enumerate(init)],
        "ephemeralContainers": [{"name": f"e{i}", "image": image} for i, image in enumerate(ephemeral)],
    }


def test_images_come_from_every_pod_template() -> None:
    manifests = [
        {"kind": "Deployment", "metadata": {"name": "web", "namespace": "odoo"},
         "spec": {"template": {"spec": _pod(["web:1"], init=("migrate:1",))}}},
        {"kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {"template": {"spec": _pod(["pg:16"])}}},
        {"kind": "DaemonSet", "metadata": {"name": "log"}, "spec": {"template": {"spec": _pod(["fluent:2"])}}},
        {"kind": "Job", "metadata": {"name": "once"}, "spec": {"template": {"spec": _pod(["job:1"])}}},
        {"kind": "CronJob", "metadata": {"name": "nightly"},
         "spec": {"jobTemplate": {"spec": {"template": {"spec": _pod(["cron:1"])}}}}},
        {"kind": "Pod", "metadata": {"name": "debug"}, "spec": _pod(["pod:1"], ephemeral=("busybox:1",))},
        {"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"image": "not-an-image"}},
    ]  # fmt: skip
    assert [use.image for use in images_of(manifests)] == [
        "migrate:1", "web:1", "pg:16", "fluent:2", "job:1", "cron:1", "pod:1", "busybox:1"
    ]  # fmt: skip
    assert images_of(manifests)[0].where == "Deployment odoo/web, init container i0"


RULES = ProvenanceRules(require_digest=True, allowed_registries=("registry.acme.io/*",))


@pytest.mark.parametrize(
    ("image", "codes"),
    [
        pytest.param("registry.acme.io/odoo@" + DIGEST, [], id="pinned-allowed"),
        pytest.param("registry.acme.io/odoo:17", [provenance.NOT_PINNED], id="tag-only"),
        pytest.param("docker.io/odoo@" + DIGEST, [provenance.REGISTRY_NOT_ALLOWED], id="hub"),
        pytest.param("evil.io/registry.acme.io/x:1", [provenance.NOT_PINNED, provenance.REGISTRY_NOT_ALLOWED],
                     id="both"),
        pytest.param("Registry.acme.io/odoo@" + DIGEST, [provenance.REGISTRY_NOT_ALLOWED], id="host-case"),
        pytest.param("odoo:bad tag", [provenance.REFERENCE_INVALID], id="invalid"),
    ],
)
def test_digest_and_registry_rules_name_the_image_and_both_values(image: str, codes: list[str]) -> None:
    reasons, passed = static_check([ImageUse(image, "Deployment web, container web")], RULES)
    assert [reason.code for reason in reasons] == codes
    assert all(image[:40] in reason.message for reason in reasons)
    assert bool(passed) == (not codes)
    if provenance.NOT_PINNED in codes:
        assert "expected '@sha256:...'" in reasons[0].message


def _decide(outcome: ProvenanceOutcome, *, break_glass: bool, glass_given: bool) -> Verdict:
    policy = Policy(name="prod", targets=("argocd:*",), provenance=ProvenanceRules(require_digest=True, break_glass=break_glass))
    given = Approval("alice", frozenset({"release-manager", "break-glass"}), break_glass=True, reason="incident")
    facts = Facts(
        policy_hash="h",
        calendars={"prod": WindowIndex.build(T - 86_400, T + 400 * 86_400, {})},
        readings={"provenance": ProvenanceReading((("prod", outcome),))},
        approvals=ApprovalFacts(approvals=(given,) if glass_given else ()),
    )
    request = ReleaseRequest(target=TargetKey("argocd:odoo"), revision="a" * 40)
    return decide(request, facts, [policy], now=NOW).verdict


FAILED = ProvenanceOutcome(1, (provenance.reason(provenance.NOT_PINNED, "image x is not pinned"),))


@pytest.mark.parametrize(
    ("break_glass", "given", "verdict"),
    [
        pytest.param(False, False, Verdict.DEFER, id="failure-defers"),
        pytest.param(False, True, Verdict.DEFER, id="break-glass-refused"),
        pytest.param(True, True, Verdict.APPROVE, id="break-glass-allowed"),
    ],
)
def test_break_glass_overrides_provenance_only_where_the_policy_allows(
    break_glass: bool, given: bool, verdict: Verdict
) -> None:
    assert _decide(FAILED, break_glass=break_glass, glass_given=given) is verdict


def test_clean_provenance_approves() -> None:
    assert _decide(ProvenanceOutcome(3, ()), break_glass=False, glass_given=False) is Verdict.APPROVE


@pytest.mark.parametrize(
    ("uri", "repository"),
    [
        pytest.param("git+https://github.com/acme/odoo@refs/heads/main", "github.com/acme/odoo", id="v02-config-source"),
        pytest.param("https://github.com/acme/odoo", "github.com/acme/odoo", id="v1-workflow-repository"),
        pytest.param("https://gitlab.acme.io/erp/odoo.git", "gitlab.acme.io/erp/odoo", id="dot-git"),
        pytest.param("ssh://git@github.com/acme/odoo.git", "github.com/acme/odoo", id="ssh-user-dropped"),
    ],
)
def test_source_repositories_are_compared_without_scheme_ref_or_dot_git(uri: str, repository: str) -> None:
    assert provenance.repository_of(uri) == repository


def test_pae_is_dsse_pre_authentication_encoding() -> None:
    assert provenance.pae("application/vnd.in-toto+json", b"{}") == b"DSSEv1 28 application/vnd.in-toto+json 2 {}"


def test_builder_and_source_come_from_each_predicate_version_own_fields() -> None:
    v02 = {"predicateType": provenance.SLSA_V02,
           "predicate": {"builder": {"id": "b"}, "materials": [{"uri": "git+https://github.com/acme/x@v1"}]}}
    v1 = {"predicateType": provenance.SLSA_V1,
          "predicate": {"runDetails": {"builder": {"id": "b1"}},
                        "buildDefinition": {"resolvedDependencies": [{"uri": "git+https://github.com/acme/y"}]}}}
    assert provenance.builder_and_source(v02) == ("b", "git+https://github.com/acme/x@v1")
    assert provenance.builder_and_source(v1) == ("b1", "git+https://github.com/acme/y")


def test_a_policy_with_provenance_rules_and_no_reading_defers_with_a_retry() -> None:
    policy = Policy(name="prod", targets=("argocd:*",), provenance=ProvenanceRules(require_digest=True))
    facts = Facts(policy_hash="h", calendars={"prod": WindowIndex.build(T - 86_400, T + 400 * 86_400, {})})
    decision = decide(ReleaseRequest(TargetKey("argocd:odoo"), "a" * 40), facts, [policy], now=NOW)
    assert decision.verdict is Verdict.DEFER and decision.not_before is not None
    assert [reason.code for reason in decision.reasons] == ["facts_unavailable"]
