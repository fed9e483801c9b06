"""Keyless provenance end to end: a test Sigstore (``sigstore_world``: a CA standing in for
Fulcio, a CT log, a Rekor log, the trusted root file the tests write), Sigstore bundles attached
to images as OCI 1.1 referrers as cosign v3 does (``fake_registry``), verified by the sigstore
library through ``readers.sigstore``; the decision through the real HTTP server.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.domain import provenance
from gatekeeper.domain.policy import Policy, ProvenanceRules, SignerIdentity
from gatekeeper.domain.types import ReleaseRequest, TargetKey
from gatekeeper.provenance import ProvenanceReader
from gatekeeper.readers.cosign import CryptographyVerifier
from gatekeeper.readers.git import Pygit2GitReader
from gatekeeper.readers.registry import HttpRegistryClient
from gatekeeper.readers.sigstore import SigstoreBundleVerifier
from tests.integration.conftest import MutableClock, make_settings, start_server, write_tokens
from tests.integration.drift_world import commit
from tests.integration.fake_registry import FakeRegistry, Signer, digest_of, slsa_statement
from tests.integration.sigstore_world import GITHUB, Authority, TestSigstore, b64, key_bundle, signature_statement

pytestmark = pytest.mark.integration

TARGET = TargetKey("argocd:odoo-prod")
REPO = "acme/odoo"
WORKFLOW = "https://github.com/acme/odoo/.github/workflows/release.yml@refs/heads/main"
IDENTITIES = (SignerIdentity(GITHUB, "https://github.com/acme/*"),)
BUILDERS = ("https://github.com/slsa-framework/*",)
SLSA_V1 = "https://slsa.dev/provenance/v1"
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: odoo}}
spec:
  template:
    spec:
      containers: [{{name: odoo, image: "{image}"}}]
"""


@dataclass
class World:
    registry: FakeRegistry
    sigstore: TestSigstore
    trusted_root: Path
    root: Path
    repo_url: str
    git: Any

    def revision(self, digest: str) -> str:
        image = f"{self.registry.host}/{REPO}@{digest}"
        return commit(self.git, "main", {"deploy/web.yaml": DEPLOYMENT.format(image=image)}, f"release {digest}")

    def policy(self, **rules: Any) -> Policy:
        given = {"require_digest": True, "allowed_registries": (f"{self.registry.host}/acme/*",),
                 "signature_identities": IDENTITIES, "slsa_builders": BUILDERS, **rules}  # fmt: skip
        return Policy("odoo-prod", ("argocd:odoo-prod*",), provenance=ProvenanceRules(**given),
                      file=str(self.root / "policies" / "odoo.yaml"))  # fmt: skip

    def reader(self, client: HttpRegistryClient | None = None, trusted_root: Path | None = None) -> ProvenanceReader:
        return ProvenanceReader(Pygit2GitReader(self.root / "git-cache"), client or HttpRegistryClient(timeout=5),
                                CryptographyVerifier(), lambda _t, _p: (self.repo_url, "deploy"),
                                bundles=SigstoreBundleVerifier(trusted_root or self.trusted_root))  # fmt: skip

    def image(self, tag: str, *, signer: str = WORKFLOW, issuer: str = GITHUB, attested: bool = True,
              authority: Authority | None = None, **statement: Any) -> str:  # fmt: skip
        """An image cosign v3 signed (and attested) keylessly as ``signer``."""
        digest = self.registry.image(REPO, tag)
        bundle = self.sigstore.bundle(signature_statement(digest), signer, issuer, authority)
        self.registry.bundle(REPO, digest, bundle, "https://sigstore.dev/cosign/sign/v1")
        if attested:
            self.attest(digest, **statement)
        return digest

    def attest(self, digest: str, **statement: Any) -> None:
        bundle = self.sigstore.bundle(slsa_statement(digest, name=f"{self.registry.host}/{REPO}", **statement), WORKFLOW)
        self.registry.bundle(REPO, digest, bundle, SLSA_V1 if statement.get("version", "v1") == "v1" else None)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import pygit2

    root = tmp_path_factory.mktemp("keyless")
    (root / "policies").mkdir()
    sigstore = TestSigstore()
    trusted_root = sigstore.write_trusted_root(root / "trusted_root.json")
    registry = FakeRegistry().start()
    git = pygit2.init_repository(str(root / "config.git"), bare=True)
    yield World(registry, sigstore, trusted_root, root, (root / "config.git").resolve().as_uri(), git)
    registry.stop()


def outcome(world: World, digest: str, policy: Policy | None = None, reader: ProvenanceReader | None = None) -> list[Any]:
    request = ReleaseRequest(TARGET, world.revision(digest))
    return list((reader or world.reader()).outcome(request, policy or world.policy()).reasons)


def codes(world: World, digest: str, policy: Policy | None = None, reader: ProvenanceReader | None = None) -> list[str]:
    return [reason.code for reason in outcome(world, digest, policy, reader)]


# --- keyless: what verifies, and what does not --------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v0.2"])
def test_a_keyless_signed_and_attested_image_passes(world: World, version: str) -> None:
    assert codes(world, world.image(f"keyless-{version}", version=version)) == []


def test_a_keyless_signature_by_an_identity_the_policy_does_not_allow_is_refused(world: World) -> None:
    digest = world.image("fork", signer="https://github.com/mallory/odoo/.github/workflows/release.yml@refs/heads/main")
    (reason,) = outcome(world, digest)
    assert reason.code == provenance.SIGNATURE_INVALID
    assert digest in reason.message and "https://github.com/mallory/odoo/" in reason.message
    assert "https://github.com/acme/* (issuer https://token.actions.githubusercontent.com)" in reason.message


def test_a_keyless_signature_from_another_oidc_issuer_is_refused_even_with_a_matching_subject(world: World) -> None:
    digest = world.image("other-issuer", issuer="https://gitlab.example.org")
    (reason,) = outcome(world, digest)
    assert reason.code == provenance.SIGNATURE_INVALID and "issuer https://gitlab.example.org" in reason.message


def test_an_email_identity_matches_by_glob(world: World) -> None:
    digest = world.image("email", signer="release@acme.io", issuer="https://accounts.google.com", attested=False)
    policy = world.policy(signature_identities=(SignerIdentity("https://accounts.google.com", "*@acme.io"),),
                          slsa_builders=())  # fmt: skip
    assert codes(world, digest, policy) == []


def test_the_issuer_is_read_from_the_older_fulcio_extension_too(world: World) -> None:
    digest = world.registry.image(REPO, "v1-issuer")
    bundle = world.sigstore.bundle(signature_statement(digest), WORKFLOW, issuer_v1_only=True)
    world.registry.bundle(REPO, digest, bundle, "https://sigstore.dev/cosign/sign/v1")
    assert codes(world, digest, world.policy(slsa_builders=())) == []


def test_a_bundle_from_a_certificate_authority_not_in_the_trusted_root_is_refused(world: World) -> None:
    digest = world.image("rogue-ca", authority=Authority("rogue-fulcio", world.sigstore.now))
    (reason,) = outcome(world, digest)
    assert reason.code == provenance.SIGNATURE_INVALID and "trusted root" in reason.message


def test_a_keyless_bundle_naming_another_digest_is_a_digest_mismatch(world: World) -> None:
    digest = world.registry.image(REPO, "moved")
    other = world.registry.image(REPO, "moved-other")
    world.registry.bundle(REPO, digest, world.sigstore.bundle(signature_statement(other), WORKFLOW))
    world.attest(digest)
    (reason,) = outcome(world, digest)
    assert reason.code == provenance.SIGNATURE_DIGEST_MISMATCH
    assert other in reason.message and digest in reason.message


def test_a_tampered_bundle_is_refused(world: World) -> None:
    digest = world.registry.image(REPO, "tampered")
    bundle = json.loads(world.sigstore.bundle(signature_statement(digest), WORKFLOW))
    bundle["dsseEnvelope"]["payload"] = bundle["dsseEnvelope"]["payload"][:-8] + "AAAAAA=="
    world.registry.bundle(REPO, digest, json.dumps(bundle).encode())
    assert codes(world, digest, world.policy(slsa_builders=())) == [provenance.SIGNATURE_INVALID]


@pytest.mark.parametrize(
    ("bundle", "message"),
    [(b"{not json", "is not JSON"), (b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}', "verificationMaterial"),
     (json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": {"certificate": {}},
                  "dsseEnvelope": {"payload": "", "payloadType": "x", "signatures": []}}).encode(), "not a Sigstore bundle")],
    ids=["not-json", "no-material", "no-certificate"],
)
def test_a_malformed_bundle_is_a_clear_reason(world: World, bundle: bytes, message: str) -> None:
    digest = world.registry.image(REPO, f"malformed-{digest_of(bundle)[:12]}")
    world.registry.bundle(REPO, digest, bundle)
    (reason,) = outcome(world, digest, world.policy(slsa_builders=()))
    assert reason.code == provenance.SIGNATURE_INVALID and message in reason.message, reason.message


def test_an_attestation_alone_is_not_a_signature(world: World) -> None:
    digest = world.registry.image(REPO, "attested-only")
    world.attest(digest)
    assert codes(world, digest) == [provenance.NOT_SIGNED]


# --- keyless SLSA provenance ---------------------------------------------------------------------------


def test_keyless_provenance_from_a_builder_not_allowed_is_refused(world: World) -> None:
    digest = world.image("evil-builder", builder="https://ci.example.org/runner")
    (reason,) = outcome(world, digest)
    assert reason.code == provenance.BUILDER_NOT_ALLOWED and "https://ci.example.org/runner" in reason.message


def test_a_keyless_image_without_provenance_is_refused(world: World) -> None:
    assert codes(world, world.image("no-provenance", attested=False)) == [provenance.PROVENANCE_MISSING]


def test_provenance_by_an_identity_not_allowed_is_invalid(world: World) -> None:
    digest = world.image("att-by-mallory", attested=False)
    statement = slsa_statement(digest)
    world.registry.bundle(REPO, digest, world.sigstore.bundle(statement, "https://github.com/mallory/x"), SLSA_V1)
    (reason,) = outcome(world, digest)
    assert reason.code == provenance.PROVENANCE_INVALID and "mallory" in reason.message


# --- trust: keys in bundles, the trusted root, the cache ------------------------------------------------


def test_a_key_based_bundle_verifies_with_the_policy_key(world: World) -> None:
    signer = Signer()
    (world.root / "policies" / "cosign.pub").write_bytes(signer.pem)
    digest = world.registry.image(REPO, "key-bundle")
    world.registry.bundle(REPO, digest, key_bundle(signature_statement(digest), signer.sign))
    world.registry.bundle(REPO, digest, key_bundle(slsa_statement(digest), signer.sign), SLSA_V1)
    assert codes(world, digest, world.policy(signature_keys=("cosign.pub",), signature_identities=())) == []
    assert codes(world, digest) == [provenance.SIGNATURE_INVALID, provenance.PROVENANCE_INVALID]  # no keys: no trust


def test_without_a_trusted_root_keyless_policies_fail_closed_without_asking_the_registry(world: World) -> None:
    digest = world.image("no-root")
    reader = ProvenanceReader(Pygit2GitReader(world.root / "git-cache"), HttpRegistryClient(timeout=5),
                              CryptographyVerifier(), lambda _t, _p: (world.repo_url, "deploy"),
                              bundles=SigstoreBundleVerifier(None))  # fmt: skip
    before = world.registry.requests
    (reason,) = outcome(world, digest, reader=reader)
    assert reason.code == provenance.TRUSTED_ROOT_MISSING and "SIGSTORE_TRUSTED_ROOT" in reason.message
    assert world.registry.requests == before


def test_a_trusted_root_file_that_does_not_load_fails_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "root.json").write_text('{"mediaType": "nonsense"}')
    with pytest.raises(ValueError, match="is not a Sigstore trusted root"):
        SigstoreBundleVerifier(tmp_path / "root.json")
    root = TestSigstore().trusted_root()
    (tmp_path / "no-ct.json").write_text(json.dumps({**root, "ctlogs": []}))
    with pytest.raises(ValueError, match="lists no CT log"):
        SigstoreBundleVerifier(tmp_path / "no-ct.json")
    with pytest.raises(ValueError, match="is not a Sigstore trusted root"):
        SigstoreBundleVerifier(tmp_path / "missing.json")


def test_bundles_are_found_through_the_tag_schema_when_the_registry_has_no_referrers_api(world: World) -> None:
    digest = world.image("fallback")
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": world.registry.referrers_of(REPO, digest)}  # fmt: skip
    world.registry.put_manifest(REPO, json.dumps(index).encode(), "application/vnd.oci.image.index.v1+json",
                                tag=digest.replace(":", "-"))  # fmt: skip
    world.registry.referrers_api = False
    try:
        assert codes(world, digest) == []
    finally:
        world.registry.referrers_api = True


def test_verified_keyless_results_are_cached_and_identities_or_the_trusted_root_are_part_of_the_key(
    world: World, tmp_path: Path
) -> None:
    digest = world.image("cached")
    client = HttpRegistryClient(timeout=5)
    reader = world.reader(client)
    assert codes(world, digest, reader=reader) == []
    cold = client.requests
    for _ in range(3):
        assert codes(world, digest, reader=reader) == []
    assert client.requests == cold
    other = world.policy(signature_identities=(SignerIdentity(GITHUB, "https://github.com/elsewhere/*"),))
    assert codes(world, digest, other, reader) == [provenance.SIGNATURE_INVALID, provenance.PROVENANCE_INVALID]
    assert client.requests > cold
    # another trusted root (another CA): verified again, and refused
    stranger = TestSigstore().write_trusted_root(tmp_path / "other-root.json")
    assert codes(world, digest, reader=world.reader(client, stranger)) == [
        provenance.SIGNATURE_INVALID, provenance.PROVENANCE_INVALID
    ]


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
    signatures:
      identities:
        - {{issuer: "https://token.actions.githubusercontent.com", subject: "https://github.com/acme/*"}}
    slsa: {{builders: ["https://github.com/slsa-framework/*"], sourceRepos: ["github.com/acme/*"]}}
    breakGlass: false
"""


def test_the_gate_decides_keyless_releases(world: World, database_url: str, tmp_path: Path) -> None:
    policies, calendars = tmp_path / "policies", tmp_path / "calendars"
    policies.mkdir()
    calendars.mkdir()
    (policies / "odoo.yaml").write_text(textwrap.dedent(POLICY.format(repo=world.repo_url, host=world.registry.host)))
    mismatched = world.registry.image(REPO, f"served-moved-{database_url[:6]}")
    world.registry.bundle(REPO, mismatched, world.sigstore.bundle(signature_statement(digest_of(b"x")), WORKFLOW))
    world.attest(mismatched)
    malformed = world.registry.image(REPO, f"served-malformed-{database_url[:6]}")
    world.registry.bundle(REPO, malformed, b'{"mediaType": 7')
    cases = {
        "approve": world.image(f"served-{database_url[:6]}"),
        provenance.SIGNATURE_INVALID: world.image(f"served-fork-{database_url[:6]}", signer="https://github.com/mallory/x"),
        "rogue_ca": world.image(f"served-rogue-{database_url[:6]}", authority=Authority("rogue", world.sigstore.now)),
        provenance.SIGNATURE_DIGEST_MISMATCH: mismatched,
        provenance.BUILDER_NOT_ALLOWED: world.image(f"served-builder-{database_url[:6]}", builder="https://ci.example.org/x"),
        provenance.PROVENANCE_MISSING: world.image(f"served-bare-{database_url[:6]}", attested=False),
        "malformed": malformed,
    }
    expected = {"approve": [], "rogue_ca": [provenance.SIGNATURE_INVALID],
                "malformed": [provenance.SIGNATURE_INVALID, provenance.PROVENANCE_INVALID]}  # fmt: skip
    revisions = {case: world.revision(digest) for case, digest in cases.items()}
    settings = make_settings(database_url, policies, calendars, write_tokens(tmp_path), GIT_CACHE_DIR=tmp_path / "git",
                             SIGSTORE_TRUSTED_ROOT=world.trusted_root)  # fmt: skip
    server = start_server(settings, MutableClock())
    try:
        with server.client("hook") as client:
            for case, revision in revisions.items():
                answer = client.post("/v1/gate", json={"target": TARGET, "revision": revision})
                assert answer.status_code == 200, (case, answer.text)
                body = answer.json()
                want = expected.get(case, [case])
                assert [reason["code"] for reason in body["reasons"]] == want, (case, body["reasons"])
                assert body["verdict"] == ("approve" if not want else "defer"), (case, body)
                if want:
                    assert body["not_before"] is None, (case, body)
    finally:
        server.stop()


# --- what a registry may serve that no cosign wrote -----------------------------------------------------


def test_a_key_signed_envelope_that_is_not_an_in_toto_statement_proves_nothing(world: World) -> None:
    """The policy key signed it, over the PAE of its own payload type: but a payload that is not an
    in-toto statement is not what cosign signs, so its JSON is not read as one."""
    signer = Signer()
    (world.root / "policies" / "cosign.pub").write_bytes(signer.pem)
    digest = world.registry.image(REPO, "key-bundle-text")

    def typed(statement: dict[str, Any], payload_type: str) -> bytes:
        bundle = json.loads(key_bundle(statement, signer.sign))
        payload = json.dumps(statement).encode()
        pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)
        bundle["dsseEnvelope"]["payloadType"] = payload_type
        bundle["dsseEnvelope"]["signatures"] = [{"sig": b64(signer.sign(pae))}]
        return json.dumps(bundle).encode()

    world.registry.bundle(REPO, digest, typed(signature_statement(digest), "text/plain"))
    world.registry.bundle(REPO, digest, typed(slsa_statement(digest), "application/x-anything"), SLSA_V1)
    found = outcome(world, digest, world.policy(signature_keys=("cosign.pub",), signature_identities=()))
    assert [reason.code for reason in found] == [provenance.SIGNATURE_INVALID, provenance.PROVENANCE_INVALID]
    assert "'text/plain', not an in-toto statement" in found[0].message


def test_a_referrer_with_annotations_of_the_wrong_shape_is_a_clear_reason(world: World) -> None:
    digest = world.registry.image(REPO, "annotations-string")
    subject_media, subject_body = world.registry.manifests[(REPO, digest)]
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json", "layers": "none",
                "annotations": "not an object",
                "subject": {"mediaType": subject_media, "digest": digest, "size": len(subject_body)}}  # fmt: skip
    world.registry.put_manifest(REPO, json.dumps(manifest).encode())
    found = outcome(world, digest, world.policy(slsa_builders=()))
    assert [reason.code for reason in found] == [provenance.SIGNATURE_INVALID]
    assert "has no layer" in found[0].message


def test_an_image_that_failed_is_asked_again_once_its_signature_arrives(world: World) -> None:
    """cosign v3 attaches its bundles after the push: a failure is kept a short while only, a
    verified image for good."""
    digest = world.registry.image(REPO, "signed-later")
    reader = world.reader()
    assert codes(world, digest, reader=reader) == [provenance.NOT_SIGNED, provenance.PROVENANCE_MISSING]
    world.registry.bundle(REPO, digest, world.sigstore.bundle(signature_statement(digest), WORKFLOW),
                          "https://sigstore.dev/cosign/sign/v1")  # fmt: skip
    world.attest(digest)
    assert codes(world, digest, reader=reader) == [provenance.NOT_SIGNED, provenance.PROVENANCE_MISSING]  # within TTL
    reader.failure_ttl = 0.0
    assert codes(world, digest, reader=reader) == [provenance.NOT_SIGNED, provenance.PROVENANCE_MISSING]  # kept 60 s
    impatient = world.reader()
    impatient.failure_ttl = 0.0
    assert codes(world, digest, reader=impatient) == []
    before = world.registry.requests
    assert codes(world, digest, reader=impatient) == []  # verified: kept, no registry request
    assert world.registry.requests == before


def test_a_repository_glob_refuses_another_repository_calling_our_reusable_workflow(world: World) -> None:
    """A reusable workflow's certificate names the workflow (ours) as its subject, whoever calls
    it: only the Source Repository URI says whose build it was."""
    shared = "https://github.com/acme/shared/.github/workflows/build.yml@refs/heads/main"
    policy = world.policy(signature_identities=(SignerIdentity(GITHUB, "https://github.com/acme/*", "https://github.com/acme/*"),),
                          slsa_builders=())  # fmt: skip
    ours = world.registry.image(REPO, "reusable-ours")
    world.registry.bundle(REPO, ours, world.sigstore.bundle(signature_statement(ours), shared,
                                                              repository="https://github.com/acme/odoo"))  # fmt: skip
    theirs = world.registry.image(REPO, "reusable-theirs")
    world.registry.bundle(REPO, theirs, world.sigstore.bundle(signature_statement(theirs), shared,
                                                                repository="https://github.com/mallory/odoo"))  # fmt: skip
    unstated = world.registry.image(REPO, "reusable-unstated")
    world.registry.bundle(REPO, unstated, world.sigstore.bundle(signature_statement(unstated), shared))
    assert codes(world, ours, policy) == []
    (reason,) = outcome(world, theirs, policy)
    assert reason.code == provenance.SIGNATURE_INVALID and "repository https://github.com/mallory/odoo" in reason.message
    assert codes(world, unstated, policy) == [provenance.SIGNATURE_INVALID]  # a repository glob needs one stated
    assert codes(world, theirs, world.policy(slsa_builders=())) == []  # without it, the subject alone decides
