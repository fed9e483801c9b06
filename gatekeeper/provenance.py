"""The provenance reader: a ``FactReader`` that brings, per policy with provenance rules, what
fails for the images of a release (DESIGN §3, Provenance).

Images come from the manifests at the **requested** revision (the release itself), read with the
Git reader from where the target deploys (the drift reader's ``source``, injected as ``locate``).
``requireDigest`` and ``allowedRegistries`` are pure (``domain.provenance``); signatures need the
registry: the image's manifest by digest, then cosign's ``sha256-<hex>.sig`` tag, whose layers are
simple-signing payloads with the signature in their ``dev.cosignproject.cosign/signature``
annotation. A signature counts when it verifies with one of the policy's keys and its payload's
``critical.image.docker-manifest-digest`` is the image's digest. Verified outcomes are kept per
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
from datetime import datetime
from pathlib import Path
from typing import Any

from gatekeeper.domain import provenance as rules
from gatekeeper.domain.images import ImageRef, images_of
from gatekeeper.domain.policy import Policy
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
CACHE_SIZE = 4096
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
        if policy.provenance.signature_keys:
            try:
                keys = _keys(policy)
            except OSError as exc:
                return _failed(rules.KEYS_UNREADABLE, f"policy {policy.name}: a signature key cannot be read: {exc}")
            reasons += tuple(reason for ref in refs for reason in self.signed(ref, keys))
        return ProvenanceOutcome(len(uses), tuple(dict.fromkeys(reasons)))

    # --- signatures -------------------------------------------------------------------------------

    def signed(self, ref: ImageRef, keys: tuple[bytes, ...]) -> tuple[Reason, ...]:
        """The reasons a cosign signature of ``ref`` by one of ``keys`` is missing (none: signed)."""
        fingerprint = hashlib.sha256(b"\0".join(keys)).hexdigest()
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
            found = self._verify(ref, digest, keys)
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
        self.registry.manifest(ref.registry, ref.repository, digest)  # exists, and is a manifest
        try:
            signatures = self.registry.manifest(ref.registry, ref.repository, digest.replace(":", "-") + ".sig")
        except RegistryNotFoundError:
            return (rules.reason(rules.NOT_SIGNED, f"image {ref} has no cosign signature (no {_sig_tag(digest)} tag)"),)
        layers = [layer for layer in signatures.body.get("layers") or [] if isinstance(layer, dict)]
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
    return digest.replace(":", "-") + ".sig"


def _failed(code: str, message: str) -> ProvenanceOutcome:
    logger.info("provenance: %s", message)
    return ProvenanceOutcome(reasons=(rules.reason(code, message),))
