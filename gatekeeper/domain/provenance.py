"""Provenance: the images a release runs may be traced (DESIGN §3, Provenance). Pure.

The rules a reader can check without a registry (``requireDigest``, ``allowedRegistries``) are
here; what needs one (signatures) arrives from the provenance reader as reasons of its own. Every
reason has check ``provenance`` and a code below, and names the image and both values. A failure
defers with no ``not_before`` (only a new revision, or break-glass where the policy allows it,
unblocks it); a registry or repository that cannot be read defers with a retry (fail closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from gatekeeper.domain.images import ImageRef, ImageUse, InvalidReferenceError
from gatekeeper.domain.policy import ProvenanceRules
from gatekeeper.domain.types import Reason

CHECK = "provenance"
# Reason codes (docs/policies.md lists them).
NOT_PINNED = "image_not_pinned"  # requireDigest: the image has a tag but no @sha256: digest
REGISTRY_NOT_ALLOWED = "registry_not_allowed"  # registry/repository matches no allowedRegistries glob
REFERENCE_INVALID = "image_reference_invalid"  # not a reference the distribution grammar accepts
NOT_SIGNED = "image_not_signed"  # no cosign signature (no sha256-<hex>.sig tag, no signature layer)
SIGNATURE_INVALID = "signature_invalid"  # signatures exist, none verifies with a policy key
SIGNATURE_DIGEST_MISMATCH = "signature_digest_mismatch"  # a valid signature over another digest
MANIFEST_INVALID = "manifest_invalid"  # the registry's manifest or signature is not what the API says
IMAGE_NOT_FOUND = "image_not_found"  # the registry has no manifest for the digest (or tag)
KEYS_UNREADABLE = "signature_keys_unreadable"  # a key file of the policy cannot be read or parsed
REGISTRY_UNAVAILABLE = "registry_unavailable"  # retried: the registry did not answer (fail closed)
SOURCE_UNAVAILABLE = "provenance_source_unavailable"  # retried: the manifests could not be read
UNSUPPORTED = "provenance_unsupported"  # the target's source cannot be read (rendered, no source)
RETRIED = frozenset({REGISTRY_UNAVAILABLE, SOURCE_UNAVAILABLE})


@dataclass(frozen=True, slots=True)
class ProvenanceOutcome:
    """One policy's provenance for one release: how many images, and what failed."""

    images: int = 0
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True)
class ProvenanceReading:
    """What the provenance reader brings: per policy name that has provenance rules, its outcome."""

    outcomes: tuple[tuple[str, ProvenanceOutcome], ...] = ()

    def of(self, policy: str) -> ProvenanceOutcome | None:
        return next((outcome for name, outcome in self.outcomes if name == policy), None)


def has_rules(rules: ProvenanceRules) -> bool:
    return bool(
        rules.require_digest
        or rules.allowed_registries
        or rules.signature_keys
        or rules.slsa_builders
        or rules.slsa_source_repos
    )


def reason(code: str, message: str) -> Reason:
    return Reason(CHECK, code, message[:600], None)


def allowed(ref: ImageRef, patterns: Sequence[str]) -> bool:
    """Whether ``registry/repository`` (or the registry alone) matches one of the globs."""
    return any(fnmatchcase(ref.name, pattern) or fnmatchcase(ref.registry, pattern) for pattern in patterns)


def static_check(uses: Sequence[ImageUse], rules: ProvenanceRules) -> tuple[tuple[Reason, ...], tuple[ImageRef, ...]]:
    """``requireDigest`` and ``allowedRegistries`` for each image, and the references that pass
    them (deduplicated: those are what the registry is asked about)."""
    reasons: list[Reason] = []
    passed: dict[ImageRef, None] = {}
    for use in uses:
        try:
            ref = ImageRef.parse(use.image)
        except InvalidReferenceError as exc:
            reasons.append(reason(REFERENCE_INVALID, f"image {use.image[:120]!r} ({use.where}): {exc}"))
            continue
        failed = False
        if rules.require_digest and not ref.pinned:
            reasons.append(reason(
                NOT_PINNED,
                f"image {use.image} ({use.where}) is not pinned by digest "
                f"(got tag '{ref.tag or 'latest'}', expected '@sha256:...')",
            ))  # fmt: skip
            failed = True
        if rules.allowed_registries and not allowed(ref, rules.allowed_registries):
            reasons.append(reason(
                REGISTRY_NOT_ALLOWED,
                f"image {use.image} ({use.where}) comes from {ref.name}, which matches none of the allowed "
                f"registries ({', '.join(rules.allowed_registries)})",
            ))  # fmt: skip
            failed = True
        if not failed:
            passed[ref] = None
    return tuple(dict.fromkeys(reasons)), tuple(passed)
