"""The provenance reader: a ``FactReader`` that brings, per policy with provenance rules, what
fails for the images of a release (DESIGN §3, Provenance).

Images come from the manifests at the **requested** revision (the release itself), read with the
Git reader from where the target deploys (the drift reader's ``source``, injected as ``locate``).
``requireDigest`` and ``allowedRegistries`` are pure (``domain.provenance``); signatures need the
registry: the image's manifest by digest, then cosign's ``sha256-<hex>.sig`` tag, whose layers are
simple-signing payloads with the signature in their ``dev.cosignproject.cosign/signature``
annotation. A signature counts when it verifies with one of the policy's keys and its payload's
``critical.image.docker-manifest-digest`` is the image's digest. SLSA provenance: cosign's
``sha256-<hex>.att`` tag, DSSE envelopes verified over the PAE with the same keys, an in-toto
statement naming the digest, the builder and source repository allowed. Verified outcomes are kept per
(image, digest, keys) in a bounded cache: what a digest's signatures say does not change, and a
key rotation in the policy is another cache key. A registry that cannot be read is never cached.
Runs outside any transaction, under ``FACT_TIMEOUT``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from gatekeeper.domain import provenance as rules
from gatekeeper.domain.images import ImageRef, images_of
from gatekeeper.domain.policy import Policy, ProvenanceRules
from gatekeeper.domain.provenance import ProvenanceOutcome, ProvenanceReading
from gatekeeper.domain.types import Reason, ReleaseRequest
from gatekeeper.ports import (
    ClusterReadError,
    GitReader,
    GitReadError,
    InvalidKeyError,
    RegistryClient,
    RegistryContentError,
    RegistryError,
    RegistryNotFoundError,
    SignatureVerifier,
    UnsupportedManifestsError,
)

logger = logging.getLogger(__name__)

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_TYPES = frozenset({SIMPLE_SIGNING, "application/vnd.dev.cosign.artifact.sig.v1+json"})
CACHE_SIZE = 4096
PARALLEL_IMAGES = 8  # images of one release checked at once (registry round trips overlap)
MAX_SIGNATURES = 16  # signature layers tried per image (a .sig manifest may collect many)

Locate = Callable[[str, Policy], tuple[str, str]]  # target, policy -> (repository URL, path)


class ProvenanceReader:
    name = rules.CHECK

    def __init__(
        self,
        git: GitReader,
        registry: RegistryClient,
        verifier: SignatureVerifier,
        locate: Locate,
        *,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.git = git
        self.registry = registry
        self.verifier = verifier
        self.locate = locate
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str, str, str], tuple[Reason, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(PARALLEL_IMAGES, thread_name_prefix="provenance")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def needed(self, policies: Sequence[Policy]) -> bool:
        return any(rules.has_rules(policy.provenance) for policy in policies)

    def read(self, request: ReleaseRequest, policies: Sequence[Policy], now: datetime) -> ProvenanceReading:
        return ProvenanceReading(tuple(
            (policy.name, self.outcome(request, policy)) for policy in policies if rules.has_rules(policy.provenance)
        ))  # fmt: skip

    def outcome(self, request: ReleaseRequest, policy: Policy) -> ProvenanceOutcome:
        target = request.target
        try:
            repo, path = self.locate(target, policy)
            manifests = self.git.manifests(repo, path, request.revision)
        except UnsupportedManifestsError as exc:
            return _failed(rules.UNSUPPORTED, f"images of {target} cannot be read: {exc}")
        except (GitReadError, ClusterReadError) as exc:
            return _failed(rules.SOURCE_UNAVAILABLE, f"manifests of {target}@{request.revision} not read: {exc}")
        except Exception as exc:  # the drift reader's "unsupported source" (no spec.source, a chart, ...)
            return _failed(rules.UNSUPPORTED, f"images of {target} cannot be read: {exc}")
        uses = images_of(manifests)
        reasons, refs = rules.static_check(uses, policy.provenance)
        if policy.provenance.signature_keys or policy.provenance.slsa_builders:
            try:
                keys = _keys(policy)
            except OSError as exc:
                return _failed(rules.KEYS_UNREADABLE, f"policy {policy.name}: a signature key cannot be read: {exc}")
            # images are asked about in parallel: a cold release of many images over a slow link
            # must fit in FACT_TIMEOUT (each costs a few round trips; the cache makes the next free)
            traced = self._pool.map(lambda ref: self.traced(ref, keys, policy.provenance), refs)
            reasons += tuple(reason for found in traced for reason in found)
        return ProvenanceOutcome(len(uses), tuple(dict.fromkeys(reasons)))

    # --- signatures -------------------------------------------------------------------------------

    def traced(self, ref: ImageRef, keys: tuple[bytes, ...], wanted: ProvenanceRules) -> tuple[Reason, ...]:
        """What is missing for ``ref``: a cosign signature by one of ``keys`` (where the policy
        asks), SLSA provenance signed by one of them from an allowed builder and source (where it
        asks). None: traced."""
        asked = repr((bool(wanted.signature_keys), wanted.slsa_builders, wanted.slsa_source_repos)).encode()
        fingerprint = hashlib.sha256(b"\0".join((*keys, asked))).hexdigest()
        try:
            digest = ref.digest or self.registry.manifest(ref.registry, ref.repository, ref.tag or "latest").digest
        except RegistryError as exc:
            return (self._registry_reason(ref, exc),)
        key = (ref.registry, ref.repository, digest, fingerprint)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            self.registry.manifest(ref.registry, ref.repository, digest)  # exists, and is a manifest
            found = self._verify(ref, digest, keys) if wanted.signature_keys else ()
            if wanted.slsa_builders:
                found += self._attested(ref, digest, keys, wanted)
        except InvalidKeyError as exc:
            return (rules.reason(rules.KEYS_UNREADABLE, f"a signature key cannot be used: {exc}"),)
        except RegistryError as exc:
            return (self._registry_reason(ref, exc),)
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found

    def _verify(self, ref: ImageRef, digest: str, keys: tuple[bytes, ...]) -> tuple[Reason, ...]:
        layers = self._signature_layers(ref, digest)
        if layers is None:
            missing = f"image {ref} has no cosign signature (no {_sig_tag(digest)} tag, no signature referrer)"
            return (rules.reason(rules.NOT_SIGNED, missing),)
        signed = [layer for layer in layers if (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)]
        if not signed:
            return (rules.reason(rules.NOT_SIGNED, f"image {ref}: {_sig_tag(digest)} holds no signature layer"),)
        others: list[str] = []
        for layer in signed[:MAX_SIGNATURES]:
            payload = self.registry.blob(ref.registry, ref.repository, str(layer.get("digest")))
            try:
                signature = base64.b64decode(layer["annotations"][SIGNATURE_ANNOTATION], validate=True)
            except (binascii.Error, ValueError):
                continue
            if not self.verifier.verify(payload, signature, keys):
                continue
            named = _signed_digest(payload)
            if named == digest:
                return ()
            others.append(named or "(none)")
        if others:
            return (rules.reason(
                rules.SIGNATURE_DIGEST_MISMATCH,
                f"image {ref}: the signature by a trusted key names digest {others[0]}, expected {digest}",
            ),)  # fmt: skip
        return (rules.reason(
            rules.SIGNATURE_INVALID,
            f"image {ref}: none of its {len(signed)} signature(s) verifies with the policy's "
            f"{len(keys)} key(s) (signed by another key, or altered)",
        ),)  # fmt: skip

    def _signature_layers(self, ref: ImageRef, digest: str) -> list[dict[str, Any]] | None:
        """The layers of cosign's signature manifests: the ``sha256-<hex>.sig`` tag, else the OCI
        1.1 referrers of the digest whose artifact type is a cosign signature (cosign's
        ``--registry-referrers-mode=oci-1-1``). None: neither exists."""
        try:
            manifests = [self.registry.manifest(ref.registry, ref.repository, _sig_tag(digest))]
        except RegistryNotFoundError:
            referrers = self.registry.referrers(ref.registry, ref.repository, digest)
            found = [str(item.get("digest")) for item in referrers if item.get("artifactType") in SIGNATURE_TYPES]
            if not found:
                return None
            manifests = [self.registry.manifest(ref.registry, ref.repository, item) for item in found[:MAX_SIGNATURES]]
        layers = [layer for manifest in manifests for layer in manifest.body.get("layers") or []]
        return [layer for layer in layers if isinstance(layer, dict)]

    def _attested(
        self, ref: ImageRef, digest: str, keys: tuple[bytes, ...], wanted: ProvenanceRules
    ) -> tuple[Reason, ...]:
        """SLSA provenance from cosign's ``sha256-<hex>.att`` tag: DSSE envelopes whose signature
        over the PAE verifies with a policy key, an in-toto statement naming this digest, an SLSA
        predicate (v0.2 or v1) whose builder and source repository the policy allows."""
        if not keys:
            return (rules.reason(rules.PROVENANCE_INVALID,
                                 f"image {ref}: slsa needs signatures.keys to verify attestations"),)  # fmt: skip
        try:
            attestations = self.registry.manifest(ref.registry, ref.repository, _tag(digest, ".att"))
        except RegistryNotFoundError:
            return (rules.reason(rules.PROVENANCE_MISSING,
                                 f"image {ref} has no SLSA provenance (no {_tag(digest, '.att')} tag)"),)  # fmt: skip
        layers = [layer for layer in attestations.body.get("layers") or [] if isinstance(layer, dict)]
        problems: list[str] = []
        refused: tuple[Reason, ...] = ()
        for layer in layers[:MAX_SIGNATURES]:
            envelope = self.registry.blob(ref.registry, ref.repository, str(layer.get("digest")))
            statement, problem = self._statement(envelope, keys)
            if statement is None:
                problems.append(problem)
                continue
            if statement.get("predicateType") not in rules.SLSA_TYPES:
                continue  # another kind of attestation (a vulnerability scan, an SBOM)
            if not rules.names_subject(statement, digest):
                problems.append(f"its statement names another subject, not {digest}")
                continue
            refused = rules.slsa_reasons(str(ref), statement, wanted)
            if not refused:
                return ()
        if refused:
            return refused
        if problems:
            return (rules.reason(rules.PROVENANCE_INVALID, f"image {ref}: no attestation holds: {problems[0]}"),)
        missing = f"image {ref}: {_tag(digest, '.att')} holds no SLSA provenance"
        return (rules.reason(rules.PROVENANCE_MISSING, missing),)

    def _statement(self, envelope: bytes, keys: tuple[bytes, ...]) -> tuple[dict[str, Any] | None, str]:
        """The in-toto statement of a DSSE envelope whose signature verifies, or why not."""
        try:
            document = json.loads(envelope)
            payload_type = str(document["payloadType"])
            payload = base64.b64decode(document["payload"], validate=True)
            signatures = [base64.b64decode(item["sig"], validate=True) for item in document["signatures"]]
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None, "an attestation layer is not a DSSE envelope"
        message = rules.pae(payload_type, payload)
        if not any(self.verifier.verify(message, signature, keys) for signature in signatures[:MAX_SIGNATURES]):
            return None, "its DSSE signature does not verify with the policy's keys"
        try:
            statement = json.loads(payload)
        except ValueError:
            return None, "its payload is not an in-toto statement"
        return (statement, "") if isinstance(statement, dict) else (None, "its payload is not an in-toto statement")

    @staticmethod
    def _registry_reason(ref: ImageRef, exc: RegistryError) -> Reason:
        if isinstance(exc, RegistryContentError):
            return rules.reason(rules.MANIFEST_INVALID, f"image {ref}: {exc}")
        if isinstance(exc, RegistryNotFoundError):
            return rules.reason(rules.IMAGE_NOT_FOUND, f"image {ref} is not in its registry: {exc}")
        logger.warning("provenance: registry %s: %s", ref.registry, exc)
        return rules.reason(rules.REGISTRY_UNAVAILABLE, f"image {ref}: registry {ref.registry} not read: {exc}")


def _keys(policy: Policy) -> tuple[bytes, ...]:
    """The policy's PEM keys, their paths relative to the policy file's directory."""
    folder = Path(policy.file).parent
    return tuple((folder / path).read_bytes() for path in policy.provenance.signature_keys)


def _signed_digest(payload: bytes) -> str | None:
    """The manifest digest a simple-signing payload names (``critical.image.docker-manifest-digest``)."""
    try:
        document: Any = json.loads(payload)
        return str(document["critical"]["image"]["docker-manifest-digest"])
    except (ValueError, KeyError, TypeError):
        return None


def _sig_tag(digest: str) -> str:
    return _tag(digest, ".sig")


def _tag(digest: str, suffix: str) -> str:
    """cosign's tag schema: ``sha256:<hex>`` -> ``sha256-<hex><suffix>``."""
    return digest.replace(":", "-") + suffix


def _failed(code: str, message: str) -> ProvenanceOutcome:
    logger.info("provenance: %s", message)
    return ProvenanceOutcome(reasons=(rules.reason(code, message),))
