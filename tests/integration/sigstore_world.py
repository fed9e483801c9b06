"""A test Sigstore, made with ``cryptography`` from keys generated here: a Fulcio-like CA that
issues short-lived code-signing certificates (the SAN the signer's identity, the OIDC issuer in
Fulcio's extensions, an embedded SCT signed by a test CT log), a Rekor-like log that records
``dsse`` entries (an inclusion proof with a signed checkpoint, an inclusion promise), the
``trusted_root.json`` naming all three, and Sigstore bundles (v0.3) as cosign v3 writes them for
an image: a DSSE envelope of an in-toto statement.

Every field is what sigstore-python 4.5 checks (``verify/verifier.py``, ``models.py``,
``_internal/sct.py``, ``_internal/rekor/checkpoint.py``, ``_internal/merkle.py``); nothing is copied
from a real Sigstore instance.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OIDC_ISSUER = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # raw bytes (Fulcio's first issuer extension)
OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")  # a DER UTF8String
SOURCE_REPOSITORY = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.12")  # a DER UTF8String: the repository URI
SCT_LIST = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")  # RFC 6962 embedded SCTs
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO = "application/vnd.in-toto+json"
COSIGN_SIGN = "https://sigstore.dev/cosign/sign/v1"
GITHUB = "https://token.actions.githubusercontent.com"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def log_id(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A log's id, as the trusted root and sigstore name it: sha256 of its DER public key."""
    return hashlib.sha256(spki(key.public_key())).digest()


def _der_length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _u24(data: bytes) -> bytes:
    return len(data).to_bytes(3, "big") + data


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


@dataclass
class Authority:
    """A Fulcio-like root CA (``trusted`` or not: a CA the trusted root does not list)."""

    name: str
    now: datetime
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    cert: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gatekeeper-tests"),
                          x509.NameAttribute(NameOID.COMMON_NAME, self.name)])  # fmt: skip
        public = self.key.public_key()
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - timedelta(days=1)).not_valid_after(self.now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip


class TestSigstore:
    """The CA, the CT log and the transparency log; ``bundle`` signs a statement as a keyless
    signer of ``subject`` (a URI or an email) from ``issuer`` would through cosign."""

    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.fulcio = Authority("test-fulcio", self.now)
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())
        self.log_index = 7

    # --- the trusted root ------------------------------------------------------------------------

    def trusted_root(self) -> dict[str, Any]:
        start = (self.now - timedelta(days=1)).isoformat().replace("+00:00", "Z")

        def log(key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, Any]:
            return {"baseUrl": url, "hashAlgorithm": "SHA2_256",
                    "publicKey": {"rawBytes": b64(spki(key.public_key())), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                  "validFor": {"start": start}},
                    "logId": {"keyId": b64(log_id(key))}}  # fmt: skip

        der = self.fulcio.cert.public_bytes(serialization.Encoding.DER)
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.rekor_key, "https://rekor.test.invalid")],
            "certificateAuthorities": [{"subject": {"organization": "gatekeeper-tests", "commonName": "test-fulcio"},
                                        "uri": "https://fulcio.test.invalid",
                                        "certChain": {"certificates": [{"rawBytes": b64(der)}]},
                                        "validFor": {"start": start}}],
            "ctlogs": [log(self.ct_key, "https://ctfe.test.invalid/test")],
            "timestampAuthorities": [],
        }  # fmt: skip

    def write_trusted_root(self, path: Path) -> Path:
        path.write_text(json.dumps(self.trusted_root(), indent=2))
        return path

    # --- Fulcio: a short-lived certificate with an embedded SCT -----------------------------------

    def certificate(
        self, public: ec.EllipticCurvePublicKey, subject: str, issuer: str, authority: Authority | None = None,
        *, issuer_v1_only: bool = False, repository: str | None = None,
    ) -> x509.Certificate:
        ca = authority or self.fulcio
        san: x509.GeneralName = x509.RFC822Name(subject) if "@" in subject and "://" not in subject \
            else x509.UniformResourceIdentifier(subject)  # fmt: skip
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.cert.subject).public_key(public)
            .serial_number(x509.random_serial_number())
            # Fulcio's certificates live ten minutes; the log's integrated time must fall inside
            .not_valid_before(self.now - timedelta(minutes=2)).not_valid_after(self.now + timedelta(minutes=8))
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)  # the subject is empty: critical
            .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER, issuer.encode()), critical=False)
        )  # fmt: skip
        if repository is not None:  # Fulcio's Source Repository URI (1.3.6.1.4.1.57264.1.12)
            builder = builder.add_extension(x509.UnrecognizedExtension(SOURCE_REPOSITORY, _der(0x0C, repository.encode())),
                                            critical=False)  # fmt: skip
        if not issuer_v1_only:  # older Fulcio certificates have only the raw (v1) issuer extension
            builder = builder.add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V2, _der(0x0C, issuer.encode())),
                                            critical=False)  # fmt: skip
        # the precertificate: the same TBS without the SCT list, which the CT log signs
        precertificate = builder.sign(ca.key, hashes.SHA256())
        tbs = precertificate.tbs_certificate_bytes
        sct = self._sct(tbs, ca)
        certificate = builder.add_extension(
            x509.UnrecognizedExtension(SCT_LIST, _der(0x04, struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct)),
            critical=False,
        ).sign(ca.key, hashes.SHA256())
        assert certificate.tbs_precertificate_bytes == tbs  # what sigstore rebuilds to check the SCT
        return certificate

    def _sct(self, tbs: bytes, ca: Authority) -> bytes:
        """An RFC 6962 v1 SCT over the precertificate entry (issuer key hash, TBS), signed by the CT log."""
        # whole seconds: sigstore rebuilds the timestamp from a float (timestamp() * 1000)
        millis = int((self.now - timedelta(minutes=1)).timestamp()) * 1000
        issuer_key_hash = hashlib.sha256(spki(ca.key.public_key())).digest()
        signed = struct.pack("!BBQH", 0, 0, millis, 1) + issuer_key_hash + _u24(tbs) + struct.pack("!H", 0)
        signature = _sign(self.ct_key, signed)
        return (bytes([0]) + log_id(self.ct_key) + struct.pack("!QH", millis, 0)
                + bytes([4, 3]) + struct.pack("!H", len(signature)) + signature)  # fmt: skip

    # --- Rekor: a dsse entry, its inclusion proof, checkpoint and promise --------------------------

    def log_entry(self, envelope: dict[str, Any], certificate: x509.Certificate, payload: bytes) -> dict[str, Any]:
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        body = json.dumps({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest()},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": [{"signature": signature["sig"], "verifier": b64(pem)} for signature in envelope["signatures"]],
        }}, separators=(",", ":"), sort_keys=True).encode()  # fmt: skip
        self.log_index += 1
        index, size = self.log_index, self.log_index + 1  # the entry is the last leaf of the tree
        integrated = int((self.now - timedelta(seconds=30)).timestamp())
        hashes_, root = self._proof(body, index, size)
        identity = log_id(self.rekor_key)
        promise = json.dumps({"body": b64(body), "integratedTime": integrated, "logID": identity.hex(),
                              "logIndex": index}, separators=(",", ":"), sort_keys=True).encode()  # RFC 8785 for these
        note = f"rekor.test.invalid - 1\n{size}\n{b64(root)}\n"
        checkpoint = note + "\n" + f"\u2014 rekor.test.invalid {b64(identity[:4] + _sign(self.rekor_key, note.encode()))}\n"
        return {
            "logIndex": str(index), "logId": {"keyId": b64(identity)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"}, "integratedTime": str(integrated),
            "inclusionPromise": {"signedEntryTimestamp": b64(_sign(self.rekor_key, promise))},
            "inclusionProof": {"logIndex": str(index), "rootHash": b64(root), "treeSize": str(size),
                               "hashes": [b64(item) for item in hashes_], "checkpoint": {"envelope": checkpoint}},
            "canonicalizedBody": b64(body),
        }  # fmt: skip

    @staticmethod
    def _proof(body: bytes, index: int, size: int) -> tuple[list[bytes], bytes]:
        """An RFC 6962 tree of ``size`` leaves (the others made up), ``body`` at ``index``: the
        audit path of that leaf and the root."""
        leaves = [hashlib.sha256(b"\0" + (body if i == index else b"entry %d" % i)).digest() for i in range(size)]

        def root(nodes: list[bytes]) -> bytes:
            if len(nodes) == 1:
                return nodes[0]
            split = 1 << ((len(nodes) - 1).bit_length() - 1)
            return hashlib.sha256(b"\1" + root(nodes[:split]) + root(nodes[split:])).digest()

        def path(position: int, nodes: list[bytes]) -> list[bytes]:
            if len(nodes) == 1:
                return []
            split = 1 << ((len(nodes) - 1).bit_length() - 1)
            if position < split:
                return [*path(position, nodes[:split]), root(nodes[split:])]
            return [*path(position - split, nodes[split:]), root(nodes[:split])]

        return path(index, leaves), root(leaves)

    # --- bundles ----------------------------------------------------------------------------------

    def bundle(
        self, statement: dict[str, Any], subject: str, issuer: str = GITHUB, authority: Authority | None = None,
        *, issuer_v1_only: bool = False, repository: str | None = None,
    ) -> bytes:
        """A v0.3 bundle: a DSSE envelope of ``statement`` signed by an ephemeral key whose
        certificate names ``subject`` and ``issuer``, logged in the test Rekor."""
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self.certificate(key.public_key(), subject, issuer, authority, issuer_v1_only=issuer_v1_only,
                                       repository=repository)  # fmt: skip
        payload = json.dumps(statement).encode()
        pae = b"DSSEv1 %d %s %d %s" % (len(IN_TOTO), IN_TOTO.encode(), len(payload), payload)
        envelope = {"payload": b64(payload), "payloadType": IN_TOTO, "signatures": [{"sig": b64(_sign(key, pae))}]}
        return json.dumps({
            "mediaType": BUNDLE_V03,
            "verificationMaterial": {
                "certificate": {"rawBytes": b64(certificate.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [self.log_entry(envelope, certificate, payload)],
            },
            "dsseEnvelope": envelope,
        }).encode()  # fmt: skip


def key_bundle(statement: dict[str, Any], sign: Any) -> bytes:
    """A key-based v0.3 bundle (``cosign sign --key`` with the new bundle format): a public key hint,
    the DSSE envelope signed by ``sign`` (bytes -> signature)."""
    payload = json.dumps(statement).encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(IN_TOTO), IN_TOTO.encode(), len(payload), payload)
    envelope = {"payload": b64(payload), "payloadType": IN_TOTO, "signatures": [{"sig": b64(sign(pae))}]}
    return json.dumps({"mediaType": BUNDLE_V03, "verificationMaterial": {"publicKey": {"hint": "cosign.pub"},
                                                                         "tlogEntries": []},
                       "dsseEnvelope": envelope}).encode()  # fmt: skip


def signature_statement(digest: str) -> dict[str, Any]:
    """What cosign v3 signs for an image: an in-toto statement of type cosign/sign/v1 about its digest."""
    return {"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": digest.removeprefix("sha256:")}}],
            "predicateType": COSIGN_SIGN, "predicate": {}}  # fmt: skip
