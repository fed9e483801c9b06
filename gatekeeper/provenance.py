"""The provenance reader: a ``FactReader`` that brings, per policy with provenance rules, what
fails for the images of a release (DESIGN §3, Provenance).

Images come from the manifests at the **requested** revision (the release itself), read with the
Git reader from where the target deploys (the drift reader's ``source``, injected as ``locate``).
``requireDigest`` and ``allowedRegistries`` are pure (``domain.provenance``); signatures and SLSA
provenance need the registry: the image's manifest by digest, then what cosign stored for it
(``evidence.Evidence``: the ``.sig`` and ``.att`` tags, Sigstore bundle referrers, key-based or
keyless). A verified image is kept per (image, digest, keys, identities, trusted root) in a
bounded cache: what a digest's signatures prove does not change, and a key rotation, another
identity or another trusted root is another cache key. What fails is kept ``FAILURE_TTL`` only (a
signature or attestation may be attached after the push: cosign v3 adds referrers later); a
registry that cannot be read is never cached. Runs outside any transaction, under ``FACT_TIMEOUT``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from gatekeeper.domain import provenance as rules
from gatekeeper.domain.images import ImageRef, images_of
from gatekeeper.domain.policy import Policy, ProvenanceRules
from gatekeeper.domain.provenance import ProvenanceOutcome, ProvenanceReading
from gatekeeper.domain.types import Reason, ReleaseRequest
from gatekeeper.evidence import Evidence, Subject, Trust
from gatekeeper.ports import (
    BundleVerifier,
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

CACHE_SIZE = 4096
FAILURE_TTL = 60.0  # seconds a failing image's outcome is kept (a polling hook asks the registry once a minute)
PARALLEL_IMAGES = 8  # images of one release checked at once (registry round trips overlap)

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
        bundles: BundleVerifier,
        cache_size: int = CACHE_SIZE,
        failure_ttl: float = FAILURE_TTL,
    ) -> None:
        self.git = git
        self.registry = registry
        self.verifier = verifier
        self.bundles = bundles
        self.evidence = Evidence(registry, verifier, bundles)
        self.locate = locate
        self.cache_size = cache_size
        self.failure_ttl = failure_ttl
        # (found, until): until None for a verified image, a monotonic instant for a failure
        self._cache: OrderedDict[tuple[str, str, str, str], tuple[tuple[Reason, ...], float | None]] = OrderedDict()
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
        wanted = policy.provenance
        if refs and (wanted.signature_keys or wanted.signature_identities or wanted.slsa_builders):
            if wanted.signature_identities and not wanted.signature_keys and self.bundles.fingerprint == "none":
                missing = (f"policy {policy.name} trusts keyless identities and SIGSTORE_TRUSTED_ROOT is not set: "
                           "no keyless signature can be verified")  # fmt: skip
                return ProvenanceOutcome(len(uses), (*reasons, rules.reason(rules.TRUSTED_ROOT_MISSING, missing)))
            try:
                trust = Trust(_keys(policy), wanted.signature_identities)
            except OSError as exc:
                return _failed(rules.KEYS_UNREADABLE, f"policy {policy.name}: a signature key cannot be read: {exc}")
            # images are asked about in parallel: a cold release of many images over a slow link
            # must fit in FACT_TIMEOUT (each costs a few round trips; the cache makes the next free)
            traced = self._pool.map(lambda ref: self.traced(ref, trust, wanted), refs)
            reasons += tuple(reason for found in traced for reason in found)
        return ProvenanceOutcome(len(uses), tuple(dict.fromkeys(reasons)))

    # --- signatures -------------------------------------------------------------------------------

    def traced(self, ref: ImageRef, trust: Trust, wanted: ProvenanceRules) -> tuple[Reason, ...]:
        """What is missing for ``ref``: a cosign signature by one of the trusted keys or
        identities (where the policy asks), SLSA provenance signed by them from an allowed builder
        and source (where it asks). None: traced."""
        signed = bool(wanted.signature_keys or wanted.signature_identities)
        asked = repr((signed, wanted.slsa_builders, wanted.slsa_source_repos, trust.identities)).encode()
        root = self.bundles.fingerprint.encode() if trust.identities else b""
        fingerprint = hashlib.sha256(b"\0".join((*trust.keys, asked, root))).hexdigest()
        try:
            digest = ref.digest or self.registry.manifest(ref.registry, ref.repository, ref.tag or "latest").digest
        except RegistryError as exc:
            return (self._registry_reason(ref, exc),)
        key = (ref.registry, ref.repository, digest, fingerprint)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and (cached[1] is None or cached[1] > time.monotonic()):
                self._cache.move_to_end(key)
                return cached[0]
        subject = Subject(ref, digest)
        try:
            self.registry.manifest(ref.registry, ref.repository, digest)  # exists, and is a manifest
            found = self.evidence.signature(subject, trust) if signed else ()
            if wanted.slsa_builders:
                found += self.evidence.provenance(subject, trust, wanted)
        except InvalidKeyError as exc:
            return (rules.reason(rules.KEYS_UNREADABLE, f"a signature key cannot be used: {exc}"),)
        except RegistryError as exc:
            return (self._registry_reason(ref, exc),)
        with self._lock:
            self._cache[key] = (found, None if not found else time.monotonic() + self.failure_ttl)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found

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


def _failed(code: str, message: str) -> ProvenanceOutcome:
    logger.info("provenance: %s", message)
    return ProvenanceOutcome(reasons=(rules.reason(code, message),))
