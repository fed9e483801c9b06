"""Which identity a Fulcio certificate names, as the keyless policy matches it (readers/sigstore.py):
the OIDC issuer extension and the SANs, Fulcio's "other name" (a DER UTF8String) included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gatekeeper.domain.policy import SignerIdentity
from gatekeeper.readers.sigstore import OIDC_ISSUER_V2, OTHER_NAME, IdentityPolicy, issuer_of, subjects_of

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def utf8(text: str) -> bytes:
    data = text.encode()
    return bytes([0x0C, len(data)]) + data


def certificate(*names: x509.GeneralName, issuer: str = "https://github.com/login/oauth") -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test")])
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(7).not_valid_before(NOW).not_valid_after(NOW + timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName(list(names)), critical=True)
        .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V2, utf8(issuer)), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip


def test_an_other_name_identity_is_its_text_and_matches_exactly() -> None:
    cert = certificate(x509.OtherName(OTHER_NAME, utf8("octocat!github.com")))
    assert subjects_of(cert) == ["octocat!github.com"]
    assert issuer_of(cert) == "https://github.com/login/oauth"
    assert IdentityPolicy([SignerIdentity("https://github.com/login/oauth", "octocat!github.com")]).allows(cert)
    assert not IdentityPolicy([SignerIdentity("https://github.com/login/oauth", "mallory!github.com")]).allows(cert)


def test_a_subject_glob_stops_at_the_organisation_it_names() -> None:
    allowed = IdentityPolicy([SignerIdentity("https://token.actions.githubusercontent.com", "https://github.com/acme/*")])
    fork = certificate(x509.UniformResourceIdentifier("https://github.com/acme-evil/odoo/.github/workflows/r.yml@refs/heads/main"),
                       issuer="https://token.actions.githubusercontent.com")  # fmt: skip
    ours = certificate(x509.UniformResourceIdentifier("https://github.com/acme/odoo/.github/workflows/r.yml@refs/heads/main"),
                       issuer="https://token.actions.githubusercontent.com")  # fmt: skip
    assert not allowed.allows(fork)
    assert allowed.allows(ours)
