"""Provenance end to end: images from real Git commits (pygit2), a fake OCI registry on loopback
speaking the distribution API with token auth, cosign signatures the tests make with keys they
generate, the real httpx client and ``cryptography`` verification, and the decision through the
real HTTP server on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gatekeeper.domain import provenance
from gatekeeper.domain.policy import Policy, ProvenanceRules
from gatekeeper.domain.types import ReleaseRequest, TargetKey
from gatekeeper.ports import RegistryContentError, RegistryError
from gatekeeper.provenance import ProvenanceReader
from gatekeeper.readers.cosign import CryptographyVerifier
from gatekeeper.readers.git import Pygit2GitReader
from gatekeeper.readers.registry import HttpRegistryClient, docker_credentials
from gatekeeper.readers.sigstore import SigstoreBundleVerifier
from tests.integration.conftest import MutableClock, free_port, make_settings, start_server, write_tokens
from tests.integration.drift_world import commit
from tests.integration.fake_registry import (
    FakeRegistry,
    Signer,
    digest_of,
    dsse_envelope,
    simple_signing,
    slsa_statement,
)

pytestmark = pytest.mark.integration

TARGET = TargetKey("argocd:odoo-prod")
REPO = "acme/odoo"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: odoo}}
spec:
  template:
    spec:
      initContainers: {init}
      containers: [{{name: odoo, image: "{image}"}}]
"""


@dataclass
class World:
    registry: FakeRegistry
    signer: Signer
    root: Path
    repo_url: str
    git: object
    policy_file: Path

    def revision(self, image: str, init: str | None = None) -> str:
        init_containers = f'[{{name: migrate, image: "{init}"}}]' if init else "[]"
        files = {"deploy/web.yaml": DEPLOYMENT.format(image=image, init=init_containers)}
        return commit(self.git, "main", files, f"release {image}")  # type: ignore[arg-type]

    def policy(self, **rules: object) -> Policy:
        given = {"require_digest": True, "allowed_registries": (f"{self.registry.host}/acme/*",),
                 "signature_keys": ("keys/cosign.pub",), **rules}  # fmt: skip
        return Policy("odoo-prod", ("argocd:odoo-prod*",), provenance=ProvenanceRules(**given),  # type: ignore[arg-type]
                      file=str(self.policy_file))  # fmt: skip

    def reader(self, client: HttpRegistryClient | None = None) -> ProvenanceReader:
        return ProvenanceReader(Pygit2GitReader(self.root / "git-cache"), client or HttpRegistryClient(timeout=5),
                                CryptographyVerifier(), lambda _t, _p: (self.repo_url, "deploy"),
                                bundles=SigstoreBundleVerifier(None))  # fmt: skip

    def signed_image(self, tag: str, signer: Signer | None = None) -> str:
        digest = self.registry.image(REPO, tag)
        payload = simple_signing(self.registry.host, REPO, digest)
        self.registry.signature(REPO, digest, [(payload, (signer or self.signer).sign(payload))])
        return digest

    def ref(self, digest: str) -> str:
        return f"{self.registry.host}/{REPO}@{digest}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import pygit2

    root = tmp_path_factory.mktemp("provenance")
    registry = FakeRegistry().start()
    signer = Signer()
    (root / "policies" / "keys").mkdir(parents=True)
    (root / "policies" / "keys" / "cosign.pub").write_bytes(signer.pem)
    git = pygit2.init_repository(str(root / "config.git"), bare=True)
    yield World(registry, signer, root, (root / "config.git").resolve().as_uri(), git, root / "policies" / "odoo.yaml")
    registry.stop()


def codes(world: World, revision: str, policy: Policy | None = None, reader: ProvenanceReader | None = None) -> list[str]:
    outcome = (reader or world.reader()).outcome(ReleaseRequest(TARGET, revision), policy or world.policy())
    return [reason.code for reason in outcome.reasons]


def messages(world: World, revision: str) -> str:
    outcome = world.reader().outcome(ReleaseRequest(TARGET, revision), world.policy())
    return " | ".join(reason.message for reason in outcome.reasons)


# --- the cases of the Acceptance list ----------------------------------------------------------------


def test_a_signed_pinned_image_from_an_allowed_registry_passes(world: World) -> None:
    digest = world.signed_image("17.0")
    assert codes(world, world.revision(world.ref(digest))) == []


def test_an_image_pinned_only_by_tag_is_refused(world: World) -> None:
    world.signed_image("17.0-tag")
    revision = world.revision(f"{world.registry.host}/{REPO}:17.0-tag")
    assert codes(world, revision) == [provenance.NOT_PINNED]
    assert "got tag '17.0-tag', expected '@sha256:...'" in messages(world, revision)


def test_an_image_from_a_registry_not_allowed_is_refused_without_asking_it(world: World) -> None:
    revision = world.revision("docker.io/acme/odoo@" + digest_of(b"x"), init=world.ref(world.signed_image("i")))
    before = world.registry.requests
    assert codes(world, revision) == [provenance.REGISTRY_NOT_ALLOWED]
    assert world.registry.requests - before <= 5  # only the allowed init container's image was asked about
    assert "docker.io/acme/odoo" in messages(world, revision)


def test_an_unsigned_image_is_refused(world: World) -> None:
    digest = world.registry.image(REPO, "unsigned")
    assert codes(world, world.revision(world.ref(digest))) == [provenance.NOT_SIGNED]


def test_a_signature_by_a_key_the_policy_does_not_trust_is_refused(world: World) -> None:
    digest = world.signed_image("other-key", signer=Signer())
    assert codes(world, world.revision(world.ref(digest))) == [provenance.SIGNATURE_INVALID]


def test_a_signed_payload_naming_another_digest_is_refused(world: World) -> None:
    digest = world.registry.image(REPO, "moved")
    other = world.registry.image(REPO, "other")
    payload = simple_signing(world.registry.host, REPO, other)
    world.registry.signature(REPO, digest, [(payload, world.signer.sign(payload))])
    revision = world.revision(world.ref(digest))
    assert codes(world, revision) == [provenance.SIGNATURE_DIGEST_MISMATCH]
    assert other in messages(world, revision) and digest in messages(world, revision)


def test_a_tampered_signature_or_payload_is_refused(world: World) -> None:
    digest = world.registry.image(REPO, "tampered")
    payload = simple_signing(world.registry.host, REPO, digest)
    signature = bytearray(world.signer.sign(payload))
    signature[-1] ^= 0x01
    world.registry.signature(REPO, digest, [(payload, bytes(signature))])
    assert codes(world, world.revision(world.ref(digest))) == [provenance.SIGNATURE_INVALID]
    altered = world.registry.image(REPO, "altered")
    signed = world.signer.sign(simple_signing(world.registry.host, REPO, altered))
    payload = simple_signing(world.registry.host, REPO, altered).replace(b"cosign container", b"cosign_container")
    world.registry.signature(REPO, altered, [(payload, signed)])
    assert codes(world, world.revision(world.ref(altered))) == [provenance.SIGNATURE_INVALID]


@pytest.mark.parametrize(
    "media_type",
    ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"],
)
def test_a_signed_multi_platform_index_passes(world: World, media_type: str) -> None:
    children = [world.registry.image(REPO, f"{media_type[-20:]}-{arch}") for arch in ("amd64", "arm64")]
    index = {"schemaVersion": 2, "mediaType": media_type,
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": child, "size": 1,
                            "platform": {"architecture": arch, "os": "linux"}}
                           for child, arch in zip(children, ("amd64", "arm64"), strict=True)]}  # fmt: skip
    digest = world.registry.put_manifest(REPO, json.dumps(index).encode(), media_type)
    payload = simple_signing(world.registry.host, REPO, digest)
    world.registry.signature(REPO, digest, [(payload, world.signer.sign(payload))])
    assert codes(world, world.revision(world.ref(digest))) == []


@pytest.mark.parametrize("referrers_api", [True, False], ids=["referrers-api", "tag-schema-fallback"])
def test_a_signature_stored_as_an_oci_referrer_counts(world: World, referrers_api: bool) -> None:
    digest = world.registry.image(REPO, f"referred-{referrers_api}")
    payload = simple_signing(world.registry.host, REPO, digest)
    child = world.registry.signature(REPO, digest, [(payload, world.signer.sign(payload))], subject=True, tag=False)
    if not referrers_api:  # what a client pushing to a registry without the API keeps: the sha256-<hex> index
        media, body = world.registry.manifests[(REPO, child)]
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [{"mediaType": media, "digest": child, "size": len(body),
                                "artifactType": "application/vnd.dev.cosign.simplesigning.v1+json"}]}  # fmt: skip
        world.registry.put_manifest(REPO, json.dumps(index).encode(), "application/vnd.oci.image.index.v1+json",
                                    tag=digest.replace(":", "-"))  # fmt: skip
    world.registry.referrers_api = referrers_api
    try:
        assert codes(world, world.revision(world.ref(digest))) == []
    finally:
        world.registry.referrers_api = True


def test_one_valid_signature_among_others_is_enough(world: World) -> None:
    digest = world.registry.image(REPO, "several")
    payload = simple_signing(world.registry.host, REPO, digest)
    world.registry.signature(REPO, digest, [(payload, Signer().sign(payload)), (payload, world.signer.sign(payload))])
    assert codes(world, world.revision(world.ref(digest))) == []


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_ed25519_and_rsa_keys_verify_too(world: World, kind: str, tmp_path: Path) -> None:
    signer = Signer(kind)
    (world.policy_file.parent / "keys" / f"{kind}.pub").write_bytes(signer.pem)
    digest = world.signed_image(f"key-{kind}", signer=signer)
    policy = world.policy(signature_keys=(f"keys/{kind}.pub",))
    assert codes(world, world.revision(world.ref(digest)), policy) == []


def test_a_registry_that_is_down_defers_with_a_retry(world: World) -> None:
    down = f"127.0.0.1:{free_port()}"
    revision = world.revision(f"{down}/acme/odoo@{digest_of(b'gone')}")
    policy = world.policy(allowed_registries=(f"{down}/*",))
    outcome = world.reader().outcome(ReleaseRequest(TARGET, revision), policy)
    (reason,) = outcome.reasons
    assert reason.code == provenance.REGISTRY_UNAVAILABLE and down in reason.message
    assert reason.code in provenance.RETRIED


def test_a_malformed_manifest_is_a_clear_reason(world: World) -> None:
    digest = world.registry.put_manifest(REPO, b"<html>not a manifest</html>")
    revision = world.revision(world.ref(digest))
    assert codes(world, revision) == [provenance.MANIFEST_INVALID]
    assert "is not JSON" in messages(world, revision)


def test_an_image_the_registry_does_not_have_is_refused(world: World) -> None:
    assert codes(world, world.revision(world.ref(digest_of(b"never pushed")))) == [provenance.IMAGE_NOT_FOUND]


def test_a_verified_digest_is_cached_so_polling_costs_no_registry_requests(world: World) -> None:
    revision = world.revision(world.ref(world.signed_image("cached")))
    client = HttpRegistryClient(timeout=5)
    reader = world.reader(client)
    assert codes(world, revision, reader=reader) == []
    cold = client.requests
    assert cold >= 4  # manifest, signature manifest, payload blob (and the token dance)
    for _ in range(5):
        assert codes(world, revision, reader=reader) == []
    assert client.requests == cold
    # a key rotation in the policy is another cache key: verified again (and refused)
    other = Signer()
    (world.policy_file.parent / "keys" / "rotated.pub").write_bytes(other.pem)
    assert codes(world, revision, world.policy(signature_keys=("keys/rotated.pub",)), reader) == [
        provenance.SIGNATURE_INVALID
    ]
    assert client.requests > cold


# --- SLSA provenance ----------------------------------------------------------------------------------

BUILDERS = ("https://github.com/slsa-framework/*",)
SOURCES = ("github.com/acme/*",)


def attested(world: World, tag: str, signer: Signer | None = None, **statement: object) -> str:
    digest = world.signed_image(tag)
    envelope = dsse_envelope(slsa_statement(digest, **statement), signer or world.signer)  # type: ignore[arg-type]
    world.registry.attestation(REPO, digest, [envelope])
    return digest


def slsa_codes(world: World, digest: str, **rules: object) -> list[str]:
    policy = world.policy(slsa_builders=BUILDERS, slsa_source_repos=SOURCES, **rules)
    return codes(world, world.revision(world.ref(digest)), policy)


@pytest.mark.parametrize("version", ["v0.2", "v1"])
def test_a_signed_image_with_slsa_provenance_from_an_allowed_builder_and_source_passes(
    world: World, version: str
) -> None:
    assert slsa_codes(world, attested(world, f"slsa-{version}", version=version)) == []


def test_an_image_without_an_attestation_is_refused(world: World) -> None:
    assert slsa_codes(world, world.signed_image("no-att")) == [provenance.PROVENANCE_MISSING]


def test_provenance_from_a_builder_not_allowed_is_refused(world: World) -> None:
    digest = attested(world, "evil-builder", builder="https://ci.example.org/runner")
    assert slsa_codes(world, digest) == [provenance.BUILDER_NOT_ALLOWED]


@pytest.mark.parametrize("version", ["v0.2", "v1"])
def test_provenance_from_a_source_repository_not_allowed_is_refused(world: World, version: str) -> None:
    digest = attested(world, f"fork-{version}", version=version, source="git+https://github.com/mallory/odoo@refs/heads/main")
    outcome = world.reader().outcome(
        ReleaseRequest(TARGET, world.revision(world.ref(digest))),
        world.policy(slsa_builders=BUILDERS, slsa_source_repos=SOURCES),
    )
    (reason,) = outcome.reasons
    assert reason.code == provenance.SOURCE_NOT_ALLOWED and "github.com/mallory/odoo" in reason.message


def test_an_attestation_by_another_key_or_about_another_image_is_invalid(world: World) -> None:
    assert slsa_codes(world, attested(world, "att-other-key", signer=Signer())) == [provenance.PROVENANCE_INVALID]
    digest = world.signed_image("att-other-subject")
    envelope = dsse_envelope(slsa_statement(digest_of(b"another image")), world.signer)
    world.registry.attestation(REPO, digest, [envelope])
    assert slsa_codes(world, digest) == [provenance.PROVENANCE_INVALID]


# --- the registry client on the wire ---------------------------------------------------------------


def test_the_client_reads_tags_and_referrers_and_falls_back_to_the_tag_schema(world: World) -> None:
    digest = world.registry.image("acme/ref", "1.0")
    payload = simple_signing(world.registry.host, "acme/ref", digest)
    world.registry.signature("acme/ref", digest, [(payload, world.signer.sign(payload))], subject=True)
    client = HttpRegistryClient(timeout=5)
    assert client.tags(world.registry.host, "acme/ref") == ["1.0", digest.replace(":", "-") + ".sig"]
    (found,) = client.referrers(world.registry.host, "acme/ref", digest)
    assert found["artifactType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    # a registry without the referrers API: the sha256-<hex> tag holds the index
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [found]}
    world.registry.put_manifest("acme/ref", json.dumps(index).encode(), "application/vnd.oci.image.index.v1+json",
                                tag=digest.replace(":", "-"))  # fmt: skip
    world.registry.referrers_api = False
    try:
        assert client.referrers(world.registry.host, "acme/ref", digest) == [found]
        assert client.referrers(world.registry.host, "acme/ref", digest_of(b"none")) == []
    finally:
        world.registry.referrers_api = True


def test_the_client_checks_digests_and_refuses_what_it_cannot_read(world: World) -> None:
    client = HttpRegistryClient(timeout=5)
    digest = world.registry.image("acme/check", "1")
    assert client.manifest(world.registry.host, "acme/check", "1").digest == digest
    body = json.loads(world.registry.manifests[("acme/check", digest)][1])
    assert client.blob(world.registry.host, "acme/check", body["layers"][0]["digest"])
    world.registry.manifests[("acme/check", digest)] = ("application/vnd.oci.image.manifest.v1+json", b"{}")
    with pytest.raises(RegistryContentError, match="digest"):
        client.manifest(world.registry.host, "acme/check", digest)
    with pytest.raises(RegistryError, match="could not be reached"):
        client.manifest(f"127.0.0.1:{free_port()}", "acme/check", digest)


def test_registry_credentials_come_from_a_docker_config_json(tmp_path: Path) -> None:
    registry = FakeRegistry(users={"ci": "s3cret"}).start()
    try:
        digest = registry.image("acme/private", "1")
        config = tmp_path / "config.json"
        auth = base64.b64encode(b"ci:s3cret").decode()
        config.write_text(json.dumps({"auths": {f"http://{registry.host}/v1/": {"auth": auth}}}))
        credentials = docker_credentials(config)
        assert "s3cret" not in repr(credentials)  # a SecretStr
        assert HttpRegistryClient(credentials=credentials).manifest(registry.host, "acme/private", digest).digest == digest
        with pytest.raises(RegistryError, match="token service"):
            HttpRegistryClient().manifest(registry.host, "acme/private", digest)
    finally:
        registry.stop()


# --- through the real HTTP server ----------------------------------------------------------------------

POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {{name: odoo-prod}}
spec:
  targets: ["argocd:odoo-prod*"]
  source: {{repo: "{repo}", path: deploy}}
  provenance:
    requireDigest: true
    allowedRegistries: ["{host}/acme/*"]
    signatures: {{keys: [keys/cosign.pub]}}
    breakGlass: false
"""


def test_the_gate_approves_a_signed_release_and_defers_an_unsigned_one_even_with_break_glass(
    world: World, database_url: str, tmp_path: Path
) -> None:
    policies, calendars = tmp_path / "policies", tmp_path / "calendars"
    (policies / "keys").mkdir(parents=True)
    calendars.mkdir()
    (policies / "keys" / "cosign.pub").write_bytes(world.signer.pem)
    (policies / "odoo.yaml").write_text(textwrap.dedent(POLICY.format(repo=world.repo_url, host=world.registry.host)))
    signed = world.revision(world.ref(world.signed_image("served")))
    unsigned = world.revision(world.ref(world.registry.image(REPO, "served-unsigned")))
    settings = make_settings(database_url, policies, calendars, write_tokens(tmp_path), GIT_CACHE_DIR=tmp_path / "git")
    server = start_server(settings, MutableClock())
    try:
        with server.client("hook") as client:
            approved = client.post("/v1/gate", json={"target": TARGET, "revision": signed}).json()
            deferred = client.post("/v1/gate", json={"target": TARGET, "revision": unsigned}).json()
        assert approved["verdict"] == "approve", approved["reasons"]
        assert deferred["verdict"] == "defer" and deferred["not_before"] is None, deferred
        assert [reason["code"] for reason in deferred["reasons"]] == [provenance.NOT_SIGNED]
        with server.client("breakglass") as client:
            answer = client.post(f"/v1/releases/{deferred['release_id']}/approve",
                                 json={"reason": "incident", "break_glass": True})  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["decisions"][-1]["verdict"] == "defer"  # breakGlass: false
        with server.client("viewer") as client:
            ready = client.get("/readyz").json()
        assert ready["config"]["not_enforced"] == []
    finally:
        server.stop()


def test_the_gate_fails_closed_when_the_registry_is_down_and_never_answers_500_for_a_malformed_manifest(
    world: World, database_url: str, tmp_path: Path
) -> None:
    policies, calendars = tmp_path / "policies", tmp_path / "calendars"
    (policies / "keys").mkdir(parents=True)
    calendars.mkdir()
    (policies / "keys" / "cosign.pub").write_bytes(world.signer.pem)
    policy = POLICY.format(repo=world.repo_url, host=world.registry.host).replace(
        f'["{world.registry.host}/acme/*"]', '["127.0.0.1:*"]'
    )
    (policies / "odoo.yaml").write_text(textwrap.dedent(policy))
    down = world.revision(f"127.0.0.1:{free_port()}/acme/odoo@{digest_of(b'down')}")
    malformed = world.revision(world.ref(world.registry.put_manifest(REPO, b'{"mediaType": 7')))
    settings = make_settings(database_url, policies, calendars, write_tokens(tmp_path), GIT_CACHE_DIR=tmp_path / "git")
    clock = MutableClock()
    server = start_server(settings, clock)
    try:
        with server.client("hook") as client:
            unreachable = client.post("/v1/gate", json={"target": TARGET, "revision": down})
            broken = client.post("/v1/gate", json={"target": TARGET, "revision": malformed})
        assert unreachable.status_code == 200 and broken.status_code == 200
        body = unreachable.json()
        assert body["verdict"] == "defer"
        assert [reason["code"] for reason in body["reasons"]] == [provenance.REGISTRY_UNAVAILABLE]
        assert body["not_before"] is not None  # retried after RETRY_DELAY: fail closed, not forever
        assert [reason["code"] for reason in broken.json()["reasons"]] == [provenance.MANIFEST_INVALID]
        assert broken.json()["not_before"] is None
    finally:
        server.stop()
