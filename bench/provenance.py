"""The provenance check of a release of 10 images (issue 16): cold and cached, with the registry
requests per image.

Run from the repository root:  .venv/bin/python bench/provenance.py [--images 10] [--checks 50]

A bare Git repository (pygit2) holds one Deployment whose pod template runs the 10 images, each
pinned by digest; the fake OCI registry of the tests (tests/integration/fake_registry.py, real HTTP
on loopback, Bearer-token auth with a 401 challenge) holds the images and their cosign signatures,
made with an ECDSA P-256 key generated here. The provenance reader (Pygit2GitReader,
HttpRegistryClient, CryptographyVerifier, as `gatekeeper serve` builds them) checks the release
once cold (new reader: token, manifests, signature manifests, payloads, verification) and then
--checks times cached (what a PreSync hook polling the same release costs: no registry request).
Printed: cold time, cached median and p95, registry requests per image cold and cached, and the
ratio (target: cached at least 100x faster than cold).

Then the same release keyless (``--variant keyless``, or both by default): each image carries two
Sigstore bundles as OCI 1.1 referrers, as cosign v3 attaches them (a cosign/sign/v1 signature and
SLSA v1 provenance), made by the test Sigstore of tests/integration/sigstore_world.py (a CA for
Fulcio, a CT log, a Rekor log, the trusted root file); the policy trusts an identity and a builder,
and the sigstore library verifies every bundle (SigstoreBundleVerifier).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import statistics
import tempfile
import time

import pygit2

from gatekeeper.domain.policy import Policy, ProvenanceRules, SignerIdentity
from gatekeeper.domain.types import ReleaseRequest, TargetKey
from gatekeeper.provenance import ProvenanceReader
from gatekeeper.readers.cosign import CryptographyVerifier
from gatekeeper.readers.git import Pygit2GitReader
from gatekeeper.readers.registry import HttpRegistryClient
from gatekeeper.readers.sigstore import SigstoreBundleVerifier
from tests.integration.drift_world import commit
from tests.integration.fake_registry import FakeRegistry, Signer, simple_signing, slsa_statement
from tests.integration.sigstore_world import GITHUB, TestSigstore, signature_statement

WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"


def deployment(images: list[str]) -> str:
    containers = "\n".join(f'        - {{name: c{i}, image: "{image}"}}' for i, image in enumerate(images))
    return ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: odoo}\n"
            f"spec:\n  template:\n    spec:\n      containers:\n{containers}\n")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--checks", type=int, default=50)
    parser.add_argument("--variant", choices=["key", "keyless", "both"], default="both")
    args = parser.parse_args()
    for variant in ("key", "keyless") if args.variant == "both" else (args.variant,):
        run(variant, args.images, args.checks)


def run(variant: str, count: int, checks: int) -> None:
    registry = FakeRegistry().start()
    signer = Signer()
    sigstore = TestSigstore()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "keys").mkdir()
        (root / "keys" / "cosign.pub").write_bytes(signer.pem)
        trusted_root = sigstore.write_trusted_root(root / "trusted_root.json")
        images = []
        for index in range(count):
            repo = f"acme/app-{index:02d}"
            digest = registry.image(repo, "1.0")
            if variant == "key":
                payload = simple_signing(registry.host, repo, digest)
                registry.signature(repo, digest, [(payload, signer.sign(payload))])
            else:
                registry.bundle(repo, digest, sigstore.bundle(signature_statement(digest), WORKFLOW),
                                "https://sigstore.dev/cosign/sign/v1")  # fmt: skip
                registry.bundle(repo, digest, sigstore.bundle(slsa_statement(digest), WORKFLOW),
                                "https://slsa.dev/provenance/v1")  # fmt: skip
            images.append(f"{registry.host}/{repo}@{digest}")
        git = pygit2.init_repository(str(root / "config.git"), bare=True)
        revision = commit(git, "main", {"deploy/web.yaml": deployment(images)}, "release")
        url = (root / "config.git").resolve().as_uri()
        if variant == "key":
            rules = ProvenanceRules(require_digest=True, allowed_registries=(f"{registry.host}/acme/*",),
                                    signature_keys=("keys/cosign.pub",))  # fmt: skip
        else:
            rules = ProvenanceRules(require_digest=True, allowed_registries=(f"{registry.host}/acme/*",),
                                    signature_identities=(SignerIdentity(GITHUB, "https://github.com/acme/*"),),
                                    slsa_builders=("https://github.com/slsa-framework/*",))  # fmt: skip
        policy = Policy("bench", ("argocd:*",), provenance=rules, file=str(root / "policy.yaml"))
        client = HttpRegistryClient(timeout=10)
        bundles = SigstoreBundleVerifier(trusted_root if variant == "keyless" else None)
        reader = ProvenanceReader(Pygit2GitReader(root / "cache"), client, CryptographyVerifier(),
                                  lambda _t, _p: (url, "deploy"), bundles=bundles)  # fmt: skip
        request = ReleaseRequest(TargetKey("argocd:odoo-prod"), revision)
        started = time.perf_counter()
        outcome = reader.outcome(request, policy)
        cold = time.perf_counter() - started
        assert outcome.images == count and not outcome.reasons, outcome
        cold_requests = client.requests
        timings = []
        for _ in range(checks):
            started = time.perf_counter()
            assert not reader.outcome(request, policy).reasons
            timings.append(time.perf_counter() - started)
        cached_requests = client.requests - cold_requests
        timings.sort()
        median = statistics.median(timings)
        p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
        what = "key-based .sig tags" if variant == "key" else "keyless bundle referrers (signature + SLSA)"
        print(f"[{variant}] {what}; images: {count}, checks cached: {checks}")
        print(f"cold:   {cold * 1000:8.1f} ms  registry requests {cold_requests} "
              f"({cold_requests / count:.1f} per image)")  # fmt: skip
        print(f"cached: {median * 1000:8.3f} ms median, {p95 * 1000:.3f} ms p95  registry requests "
              f"{cached_requests} ({cached_requests / checks / count:.1f} per image per check)")  # fmt: skip
        print(f"cold / cached median: {cold / median:.0f}x")
    registry.stop()


if __name__ == "__main__":
    main()
