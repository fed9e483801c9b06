"""Provenance: the images a release runs may be traced (DESIGN §3, Provenance). Pure.

The rules a reader can check without a registry (``requireDigest``, ``allowedRegistries``) are
here; what needs one (signatures) arrives from the provenance reader as reasons of its own. Every
reason has check ``provenance`` and a code below, and names the image and both values. A failure
defers with no ``not_before`` (only a new revision, or break-glass where the policy allows it,
unblocks it); a registry or repository that cannot be read defers with a retry (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

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
PROVENANCE_MISSING = "provenance_missing"  # no SLSA provenance attestation (no sha256-<hex>.att tag)
PROVENANCE_INVALID = "provenance_invalid"  # attestations exist, none verifies or names this image
BUILDER_NOT_ALLOWED = "provenance_builder_not_allowed"  # the builder id matches no slsa.builders glob
SOURCE_NOT_ALLOWED = "provenance_source_not_allowed"  # the source repository matches no slsa.sourceRepos glob
KEYS_UNREADABLE = "signature_keys_unreadable"  # a key file of the policy cannot be read or parsed
TRUSTED_ROOT_MISSING = "sigstore_trusted_root_missing"  # keyless identities, and no SIGSTORE_TRUSTED_ROOT
REGISTRY_UNAVAILABLE = "registry_unavailable"  # retried: the registry did not answer (fail closed)
SOURCE_UNAVAILABLE = "provenance_source_unavailable"  # retried: the manifests could not be read
UNSUPPORTED = "provenance_unsupported"  # the target's source cannot be read (rendered, no source)
NOT_READ = "facts_unavailable"  # retried: the reader did not run (as drift and every fact source say)
RETRIED = frozenset({REGISTRY_UNAVAILABLE, SOURCE_UNAVAILABLE, NOT_READ})


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
        or rules.signature_identities
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


# --- SLSA provenance (in-toto statements) ---------------------------------------------------------

SLSA_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_V1 = "https://slsa.dev/provenance/v1"
SLSA_TYPES = frozenset({SLSA_V02, SLSA_V1})
_SCHEMES = ("git+https://", "git+ssh://", "git+http://", "https://", "http://", "ssh://", "git://", "git+")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what the envelope's signatures sign."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def names_subject(statement: Mapping[str, Any], digest: str) -> bool:
    algorithm, _, value = digest.partition(":")
    subjects = statement.get("subject")
    return isinstance(subjects, list) and any(
        isinstance(item, Mapping) and (item.get("digest") or {}).get(algorithm) == value for item in subjects
    )


def builder_and_source(statement: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The builder id and the source repository of a SLSA provenance predicate (v0.2 and v1 keep
    them in different fields)."""
    predicate = statement.get("predicate")
    if not isinstance(predicate, Mapping):
        return None, None
    if statement.get("predicateType") == SLSA_V02:
        builder = _at(predicate, "builder", "id")
        source = _at(predicate, "invocation", "configSource", "uri") or _first_uri(predicate.get("materials"))
        return builder, source
    builder = _at(predicate, "runDetails", "builder", "id")
    external = _at_map(predicate, "buildDefinition", "externalParameters")
    source = (
        _at(external, "workflow", "repository")
        or _at(external, "source", "uri")
        or (external.get("source") if isinstance(external.get("source"), str) else None)
        or _first_uri(_at_map(predicate, "buildDefinition").get("resolvedDependencies"))
    )
    return builder, source


def repository_of(uri: str) -> str:
    """``git+https://github.com/acme/odoo@refs/heads/main`` -> ``github.com/acme/odoo``."""
    text = uri.strip()
    for scheme in _SCHEMES:
        if text.startswith(scheme):
            text = text[len(scheme):]
            break
    host, slash, path = text.partition("/")
    host = host.rpartition("@")[2]  # ssh://git@github.com/...: the user is not the repository
    path = path.split("@", 1)[0]  # ...@refs/heads/main: the ref is not either
    return f"{host}{slash}{path}".removesuffix("/").removesuffix(".git")


def slsa_reasons(image: str, statement: Mapping[str, Any], rules: ProvenanceRules) -> tuple[Reason, ...]:
    """The builder and source repository rules against a verified statement about ``image``."""
    builder, source = builder_and_source(statement)
    found: list[Reason] = []
    if not builder or not any(fnmatchcase(builder, pattern) for pattern in rules.slsa_builders):
        found.append(reason(
            BUILDER_NOT_ALLOWED,
            f"image {image}: built by {builder or '(no builder id)'}, which matches none of the allowed "
            f"builders ({', '.join(rules.slsa_builders)})",
        ))  # fmt: skip
    repository = repository_of(source) if source else None
    if rules.slsa_source_repos and (
        not repository or not any(fnmatchcase(repository, pattern) for pattern in rules.slsa_source_repos)
    ):
        found.append(reason(
            SOURCE_NOT_ALLOWED,
            f"image {image}: built from {repository or '(no source repository)'}, which matches none of the "
            f"allowed source repositories ({', '.join(rules.slsa_source_repos)})",
        ))  # fmt: skip
    return tuple(found)


def _at(value: object, *keys: str) -> str | None:
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value if isinstance(value, str) and value else None


def _at_map(value: object, *keys: str) -> Mapping[str, Any]:
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _first_uri(items: object) -> str | None:
    if isinstance(items, list) and items and isinstance(items[0], Mapping):
        uri = items[0].get("uri")
        return uri if isinstance(uri, str) else None
    return None
