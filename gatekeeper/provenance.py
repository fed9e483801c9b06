"""The provenance reader: a ``FactReader`` that brings, per policy with provenance rules, what
fails for the images of a release (DESIGN §3, Provenance).

Images come from the manifests at the **requested** revision (the release itself), read with the
Git reader from where the target deploys (the drift reader's ``source``, injected as ``locate``).
``requireDigest`` and ``allowedRegistries`` are pure (``domain.provenance``); signatures need the
registry: the image's manifest by digest, then cosign's signatures. Key-based: the
``sha256-<hex>.sig`` tag, whose layers are simple-signing payloads with the signature in their
``dev.cosignproject.cosign/signature`` annotation; it counts when it verifies with one of the
policy's keys and its payload's ``critical.image.docker-manifest-digest`` is the image's digest.
Sigstore bundles (cosign v3's default), the digest's OCI 1.1 referrers of a bundle artifact type:
a DSSE envelope of an in-toto statement of type ``https://sigstore.dev/cosign/sign/v1`` naming the
digest, verified with the policy's keys (a public key hint) or keyless (``BundleVerifier``: the
trusted root and the policy's identities). SLSA provenance: cosign's ``sha256-<hex>.att`` tag
(DSSE envelopes verified over the PAE with the keys) or bundle referrers (the same trust), an
in-toto statement naming the digest, the builder and source repository allowed. Verified outcomes
are kept per (image, digest, keys, identities, trusted root) in a bounded cache: what a digest's
signatures say does not change, and a key rotation, another identity or another trusted root is
another cache key. A registry that cannot be read is never cached. Runs outside any transaction,
under ``FACT_TIMEOUT``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gatekeeper.domain import provenance as rules
from gatekeeper.domain.images import ImageRef, images_of
from gatekeeper.domain.policy import Policy, ProvenanceRules, SignerIdentity
from gatekeeper.domain.provenance import ProvenanceOutcome, ProvenanceReading
from gatekeeper.domain.types import Reason, ReleaseRequest
from gatekeeper.ports import (
    BundleError,
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
    TrustedRootMissingError,
    UnsupportedManifestsError,
)

logger = logging.getLogger(__name__)

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_TYPES = frozenset({SIMPLE_SIGNING, "application/vnd.dev.cosign.artifact.sig.v1+json"})
# Sigstore bundles as OCI 1.1 referrers (cosign v3's default; cosign specs/BUNDLE_SPEC.md): the
# referrer's artifactType is the bundle media type, its one layer the bundle JSON.
BUNDLE_TYPES = frozenset({
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
})  # fmt: skip
BUNDLE_PREDICATE = "dev.sigstore.bundle.predicateType"  # the referrer's hint of what its statement is
COSIGN_SIGN = "https://sigstore.dev/cosign/sign/v1"  # cosign v3 signs an image with a statement of this type
IN_TOTO = "application/vnd.in-toto+json"
CACHE_SIZE = 4096
PARALLEL_IMAGES = 8  # images of one release checked at once (registry round trips overlap)
MAX_SIGNATURES = 16  # signature layers tried per image (a .sig manifest may collect many)

Locate = Callable[[str, Policy], tuple[str, str]]  # target, policy -> (repository URL, path)


@dataclass(frozen=True, slots=True)
class Trust:
    """What a policy trusts to sign: PEM keys (``signatures.keys``) and keyless identities."""

    keys: tuple[bytes, ...] = ()
    identities: tuple[SignerIdentity, ...] = ()


@dataclass(slots=True)
class _Subject:
    """One image digest being traced, with its referrers read at most once."""

    ref: ImageRef
    digest: str
    referrers: list[dict[str, Any]] | None = field(default=None)


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
    ) -> None:
        self.git = git
        self.registry = registry
        self.verifier = verifier
        self.bundles = bundles
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
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        subject = _Subject(ref, digest)
        try:
            self.registry.manifest(ref.registry, ref.repository, digest)  # exists, and is a manifest
            found = self._verify(subject, trust) if signed else ()
            if wanted.slsa_builders:
                found += self._attested(subject, trust, wanted)
        except InvalidKeyError as exc:
            return (rules.reason(rules.KEYS_UNREADABLE, f"a signature key cannot be used: {exc}"),)
        except RegistryError as exc:
            return (self._registry_reason(ref, exc),)
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found

    def _verify(self, subject: _Subject, trust: Trust) -> tuple[Reason, ...]:
        """A signature: cosign's simple-signing layers (keys), else its Sigstore bundles (keys or
        keyless). The first that verifies and names the digest passes."""
        simple = self._simple_signatures(subject, trust.keys) if trust.keys else None
        if simple == ():
            return ()
        bundled = self._bundle_signatures(subject, trust)
        if bundled == ():
            return ()
        failed = [found for found in (bundled, simple) if found and found[0].code != rules.NOT_SIGNED]
        for found in failed:
            if found[0].code == rules.SIGNATURE_DIGEST_MISMATCH:
                return found
        if failed:
            return failed[0]
        ref, digest = subject.ref, subject.digest
        return simple or (rules.reason(rules.NOT_SIGNED, f"image {ref} has no cosign signature (no {_sig_tag(digest)} "
                                       "tag, no signature or Sigstore bundle referrer)"),)  # fmt: skip

    def _simple_signatures(self, subject: _Subject, keys: tuple[bytes, ...]) -> tuple[Reason, ...] | None:
        """cosign's simple-signing payloads (the ``.sig`` tag or such referrers), verified with
        ``keys``. None: there are none."""
        ref, digest = subject.ref, subject.digest
        layers = self._signature_layers(subject)
        if layers is None:
            return None
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

    def _signature_layers(self, subject: _Subject) -> list[dict[str, Any]] | None:
        """The layers of cosign's signature manifests: the ``sha256-<hex>.sig`` tag, else the OCI
        1.1 referrers of the digest whose artifact type is a cosign signature (cosign's
        ``--registry-referrers-mode=oci-1-1``). None: neither exists."""
        ref = subject.ref
        try:
            manifests = [self.registry.manifest(ref.registry, ref.repository, _sig_tag(subject.digest))]
        except RegistryNotFoundError:
            referrers = self._referrers(subject)
            found = [str(item.get("digest")) for item in referrers if item.get("artifactType") in SIGNATURE_TYPES]
            if not found:
                return None
            manifests = [self.registry.manifest(ref.registry, ref.repository, item) for item in found[:MAX_SIGNATURES]]
        layers = [layer for manifest in manifests for layer in manifest.body.get("layers") or []]
        return [layer for layer in layers if isinstance(layer, dict)]

    def _bundle_signatures(self, subject: _Subject, trust: Trust) -> tuple[Reason, ...] | None:
        """cosign v3's signature bundles: a DSSE envelope of an in-toto statement of type
        ``https://sigstore.dev/cosign/sign/v1`` whose subject is the image digest. None: none."""
        ref, digest = subject.ref, subject.digest
        problems: list[str] = []
        others: list[str] = []
        root_missing = ""
        for where, statement, problem, missing in self._bundle_statements(subject, trust, frozenset({COSIGN_SIGN})):
            if statement is None:
                problems.append(f"{where} {problem}")
                root_missing = root_missing or (problem if missing else "")
            elif statement.get("predicateType") != COSIGN_SIGN:
                continue  # an attestation (SLSA, SBOM) is not a signature
            elif rules.names_subject(statement, digest):
                return ()
            else:
                others.append(_first_subject(statement))
        if others:
            return (rules.reason(
                rules.SIGNATURE_DIGEST_MISMATCH,
                f"image {ref}: its signature bundle by a trusted signer names digest {others[0]}, expected {digest}",
            ),)  # fmt: skip
        if root_missing:
            return (rules.reason(rules.TRUSTED_ROOT_MISSING, f"image {ref}: {root_missing}"),)
        if problems:
            return (rules.reason(rules.SIGNATURE_INVALID, f"image {ref}: no signature bundle verifies: {problems[0]}"),)
        return None

    def _referrers(self, subject: _Subject) -> list[dict[str, Any]]:
        if subject.referrers is None:
            ref = subject.ref
            subject.referrers = self.registry.referrers(ref.registry, ref.repository, subject.digest)
        return subject.referrers

    def _bundle_statements(
        self, subject: _Subject, trust: Trust, kinds: frozenset[str]
    ) -> Iterator[tuple[str, dict[str, Any] | None, str, bool]]:
        """Each Sigstore bundle referrer of the digest whose predicate-type hint (if any) is one of
        ``kinds``: (where, its verified statement or None, why not, whether for want of a trusted root)."""
        ref = subject.ref
        bundles = [item for item in self._referrers(subject)
                   if item.get("artifactType") in BUNDLE_TYPES and _hinted(item, kinds)]  # fmt: skip
        for item in bundles[:MAX_SIGNATURES]:
            where = f"bundle {str(item.get('digest'))[:19]}"
            manifest = self.registry.manifest(ref.registry, ref.repository, str(item.get("digest")))
            layers = [layer for layer in manifest.body.get("layers") or [] if isinstance(layer, dict)]
            if not layers:
                yield where, None, "has no layer (expected the bundle JSON)", False
                continue
            data = self.registry.blob(ref.registry, ref.repository, str(layers[0].get("digest")))
            yield (where, *self._open_bundle(data, trust))

    def _open_bundle(self, data: bytes, trust: Trust) -> tuple[dict[str, Any] | None, str, bool]:
        """The in-toto statement of a Sigstore bundle that verifies: key-based (a public key hint:
        its DSSE signature with the policy's keys) or keyless (the sigstore library against the
        trusted root and the policy's identities). Else None, why, and whether the trusted root is missing."""
        try:
            document = json.loads(data)
        except ValueError:
            return None, "is not JSON (not a Sigstore bundle)", False
        material = document.get("verificationMaterial") if isinstance(document, dict) else None
        if not isinstance(material, dict):
            return None, "is not a Sigstore bundle (no verificationMaterial)", False
        envelope = document.get("dsseEnvelope")
        if not isinstance(envelope, dict):
            return None, "holds a message signature, not a DSSE in-toto statement (as cosign v3 writes)", False
        if "publicKey" in material:
            if not trust.keys:
                return None, "is signed with a key and the policy has no signatures.keys", False
            statement, problem = self._statement(envelope, trust.keys)
            return statement, problem, False
        if not trust.identities:
            return None, "is keyless (a Fulcio certificate) and the policy has no signatures.identities", False
        try:
            verified = self.bundles.verify_dsse(data, trust.identities)
        except TrustedRootMissingError as exc:
            return None, str(exc), True
        except BundleError as exc:
            return None, str(exc), False
        if verified.payload_type != IN_TOTO:
            return None, f"has DSSE payload type {verified.payload_type[:80]!r}, not an in-toto statement", False
        return _statement_of(verified.payload)

    def _attested(self, subject: _Subject, trust: Trust, wanted: ProvenanceRules) -> tuple[Reason, ...]:
        """SLSA provenance: cosign's ``sha256-<hex>.att`` tag (DSSE envelopes whose signature over
        the PAE verifies with a policy key), else Sigstore bundle referrers (keys or keyless); an
        in-toto statement naming this digest, an SLSA predicate (v0.2 or v1) whose builder and
        source repository the policy allows."""
        ref, digest = subject.ref, subject.digest
        if not trust.keys and not trust.identities:
            return (rules.reason(rules.PROVENANCE_INVALID, f"image {ref}: slsa needs signatures.keys or "
                                 "signatures.identities to verify attestations"),)  # fmt: skip
        problems: list[str] = []
        refused: tuple[Reason, ...] = ()
        seen = 0
        for statement, problem in self._attestations(subject, trust):
            seen += 1
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
        where = "" if seen else f" (no {_tag(digest, '.att')} tag, no bundle referrer)"
        return (rules.reason(rules.PROVENANCE_MISSING, f"image {ref} has no SLSA provenance{where}"),)

    def _attestations(self, subject: _Subject, trust: Trust) -> Iterator[tuple[dict[str, Any] | None, str]]:
        """The statements of the ``.att`` tag's envelopes (with keys), then of the bundle referrers."""
        ref = subject.ref
        if trust.keys:
            try:
                attestations = self.registry.manifest(ref.registry, ref.repository, _tag(subject.digest, ".att"))
            except RegistryNotFoundError:
                attestations = None
            layers = [layer for layer in (attestations.body.get("layers") or []) if isinstance(layer, dict)] \
                if attestations else []  # fmt: skip
            for layer in layers[:MAX_SIGNATURES]:
                blob = self.registry.blob(ref.registry, ref.repository, str(layer.get("digest")))
                try:
                    envelope = json.loads(blob)
                except ValueError:
                    yield None, "an attestation layer is not a DSSE envelope"
                    continue
                yield self._statement(envelope, trust.keys)
        for where, statement, problem, _missing in self._bundle_statements(subject, trust, rules.SLSA_TYPES):
            yield statement, f"{where} {problem}" if statement is None else ""

    def _statement(self, document: object, keys: tuple[bytes, ...]) -> tuple[dict[str, Any] | None, str]:
        """The in-toto statement of a DSSE envelope whose signature verifies with ``keys``, or why not."""
        if not isinstance(document, dict):
            return None, "an attestation layer is not a DSSE envelope"
        try:
            payload_type = str(document["payloadType"])
            payload = base64.b64decode(document["payload"], validate=True)
            signatures = [base64.b64decode(item["sig"], validate=True) for item in document["signatures"]]
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None, "an attestation layer is not a DSSE envelope"
        message = rules.pae(payload_type, payload)
        if not any(self.verifier.verify(message, signature, keys) for signature in signatures[:MAX_SIGNATURES]):
            return None, "its DSSE signature does not verify with the policy's keys"
        statement, problem, _ = _statement_of(payload)
        return statement, problem

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


def _statement_of(payload: bytes) -> tuple[dict[str, Any] | None, str, bool]:
    try:
        statement = json.loads(payload)
    except ValueError:
        statement = None
    if isinstance(statement, dict):
        return statement, "", False
    return None, "its payload is not an in-toto statement", False


def _hinted(descriptor: dict[str, Any], kinds: frozenset[str]) -> bool:
    """Whether a bundle referrer may hold one of ``kinds``: its predicate-type annotation says so,
    or it has none (the statement itself is checked once verified)."""
    hint = (descriptor.get("annotations") or {}).get(BUNDLE_PREDICATE)
    return hint is None or hint in kinds


def _first_subject(statement: dict[str, Any]) -> str:
    """The first subject digest a statement names (``sha256:<hex>``), for messages."""
    subjects = statement.get("subject")
    first = subjects[0] if isinstance(subjects, list) and subjects and isinstance(subjects[0], dict) else {}
    digests = first.get("digest")
    if not isinstance(digests, dict):
        return "(none)"
    return next((f"{algorithm}:{value}" for algorithm, value in digests.items()), "(none)")


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
