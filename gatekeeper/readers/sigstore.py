"""Keyless Sigstore bundles with the sigstore library (the only module that imports it).

The trusted root (Fulcio CAs, Rekor and CT log keys) is read once from ``SIGSTORE_TRUSTED_ROOT``,
a file shipped with the deployment: nothing is fetched at run time (no TUF, never
``Verifier.production()``). A bundle verifies when ``Verifier.verify_dsse`` accepts it: its
certificate chains to a trusted CA at the time its Rekor entry proves (the inclusion promise), the
embedded SCT verifies with a trusted CT log key, the inclusion proof and signed checkpoint verify
with a trusted Rekor key, the entry matches the envelope, and the DSSE signature verifies with the
certificate's key, all under the policy's identities (``IdentityPolicy``). sigstore errors never
leave: they become ``BundleError`` and its subclasses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path

from cryptography.x509 import (
    Certificate,
    ExtensionNotFound,
    ObjectIdentifier,
    OtherName,
    RFC822Name,
    SubjectAlternativeName,
    UniformResourceIdentifier,
)
from pydantic import ValidationError
from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import VerificationPolicy
from sigstore_models.trustroot import v1 as trustroot

from gatekeeper.domain.policy import SignerIdentity
from gatekeeper.ports import BundleError, IdentityNotAllowedError, TrustedRootMissingError, VerifiedEnvelope

# Fulcio's certificate extensions (fulcio docs/oid-info.md): the OIDC issuer, raw (deprecated) and
# as a DER UTF8String; the "other name" SAN Fulcio uses for identities that are neither email nor URI.
OIDC_ISSUER = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OTHER_NAME = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
SOURCE_REPOSITORY = ObjectIdentifier("1.3.6.1.4.1.57264.1.12")  # a DER UTF8String: https://github.com/acme/odoo


def issuer_of(cert: Certificate) -> str | None:
    """The certificate's OIDC issuer: the v2 extension (a DER UTF8String), else the v1 one (raw)."""
    for oid, der in ((OIDC_ISSUER_V2, True), (OIDC_ISSUER, False)):
        try:
            raw: bytes = cert.extensions.get_extension_for_oid(oid).value.value  # type: ignore[attr-defined]
        except ExtensionNotFound:
            continue
        text = _utf8_string(raw) if der else raw.decode("utf-8", "replace")
        if text is not None:
            return text
    return None


def _utf8_string(der: bytes) -> str | None:
    """The text of a DER UTF8String (tag 0x0C, a short or long length); None if it is not one."""
    if len(der) < 2 or der[0] != 0x0C:
        return None
    start = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    return der[start:].decode("utf-8", "replace")


def repository_of(cert: Certificate) -> str | None:
    """The repository the signing workflow ran for (Fulcio's Source Repository URI), if stated."""
    try:
        raw: bytes = cert.extensions.get_extension_for_oid(SOURCE_REPOSITORY).value.value  # type: ignore[attr-defined]
    except ExtensionNotFound:
        return None
    return _utf8_string(raw)


def subjects_of(cert: Certificate) -> list[str]:
    """The certificate's SAN identities: emails, URIs and Fulcio's other names."""
    try:
        names = cert.extensions.get_extension_for_class(SubjectAlternativeName).value
    except ExtensionNotFound:
        return []
    found = [*names.get_values_for_type(RFC822Name), *names.get_values_for_type(UniformResourceIdentifier)]
    # (cryptography gives an other name's value as DER: its UTF8String's tag and length come first)
    others = (_utf8_string(item.value) for item in names.get_values_for_type(OtherName) if item.type_id == OTHER_NAME)
    return found + [text for text in others if text is not None]


def describe(cert: Certificate) -> str:
    repository = repository_of(cert)
    where = f", repository {repository}" if repository else ""
    return f"{', '.join(subjects_of(cert)) or '(no subject)'} (issuer {issuer_of(cert) or '(none)'}{where})"


class IdentityPolicy:
    """A sigstore ``VerificationPolicy``: the certificate's issuer is one of the identities' issuer
    (exact), one of its SANs matches that identity's subject glob (``fnmatch``, case-sensitive) and,
    where the identity names a repository glob, its Source Repository URI matches it (a
    certificate that states none does not).
    No identities: nothing verifies (sigstore's ``AnyOf([])`` fails the same way)."""

    def __init__(self, identities: Sequence[SignerIdentity]) -> None:
        self.identities = tuple(identities)

    def allows(self, cert: Certificate) -> bool:
        issuer, subjects, repository = issuer_of(cert), subjects_of(cert), repository_of(cert)
        return any(
            issuer == wanted.issuer
            and any(fnmatchcase(subject, wanted.subject) for subject in subjects)
            and (wanted.repository is None or (repository is not None and fnmatchcase(repository, wanted.repository)))
            for wanted in self.identities
        )

    def verify(self, cert: Certificate) -> None:
        if not self.allows(cert):
            raise IdentityNotAllowedError(describe(cert), self.identities)


class SigstoreBundleVerifier:
    """A ``BundleVerifier`` over one trusted root file. ``trusted_root`` None: every keyless bundle
    is refused with ``TrustedRootMissingError`` (fail closed). A file that cannot be loaded fails
    here, at start-up (``ValueError``)."""

    def __init__(self, trusted_root: Path | None) -> None:
        self.path = trusted_root
        self._verifier: Verifier | None = None
        self.fingerprint = "none"
        if trusted_root is None:
            return
        try:
            data = trusted_root.read_bytes()
            inner = trustroot.TrustedRoot.from_json(data)
            # each is needed by every keyless verification: say so now, not at the first release
            lacking = [what for what, found in (("Fulcio CA", inner.certificate_authorities),
                                                ("Rekor log", inner.tlogs), ("CT log", inner.ctlogs)) if not found]
            if lacking:
                raise ValueError(f"it lists no {', no '.join(lacking)}")
            self._verifier = Verifier(trusted_root=TrustedRoot(inner))
        except (OSError, ValueError, SigstoreError) as exc:
            raise ValueError(f"SIGSTORE_TRUSTED_ROOT {trusted_root} is not a Sigstore trusted root: {exc}") from exc
        self.fingerprint = hashlib.sha256(data).hexdigest()

    def verify_dsse(self, bundle: bytes, identities: Sequence[SignerIdentity]) -> VerifiedEnvelope:
        if self._verifier is None:
            raise TrustedRootMissingError("keyless signatures need a trusted root and SIGSTORE_TRUSTED_ROOT is not set")
        try:
            parsed = Bundle.from_json(bundle)
        except (SigstoreError, ValidationError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise BundleError(f"not a Sigstore bundle: {str(exc)[:200]}") from exc
        try:
            payload_type, payload = self._verifier.verify_dsse(parsed, _policy(identities))
        except IdentityNotAllowedError:
            raise
        except Exception as exc:  # the library's own and whatever a crafted bundle makes it raise
            # (ExtensionNotFound for a certificate without KeyUsage, RecursionError, ...)
            raise BundleError(f"does not verify against the trusted root: {str(exc)[:200]}") from exc
        return VerifiedEnvelope(payload_type, payload, describe(parsed.signing_certificate))


def _policy(identities: Sequence[SignerIdentity]) -> VerificationPolicy:
    return IdentityPolicy(identities)
