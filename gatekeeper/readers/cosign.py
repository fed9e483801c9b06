"""Key-based signature verification (``cryptography``): does a cosign signature over a payload
verify with one of the policy's PEM public keys?

ECDSA (P-256, P-384, P-521; cosign's default is P-256 with SHA-256, a DER signature), Ed25519
and RSA (PKCS#1 v1.5 or PSS, SHA-256). Loaded keys are kept by their PEM bytes. Fetching the
signature is not done here (``readers.registry``); this only checks bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from gatekeeper.ports import InvalidKeyError

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512
}  # fmt: skip


def load_key(pem: bytes) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise InvalidKeyError(f"not a PEM public key ({exc})") from exc
    if isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        return key
    raise InvalidKeyError(f"{type(key).__name__} keys are not supported (ECDSA, Ed25519, RSA are)")


def verify_with(key: PublicKey, payload: bytes, signature: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(_HASHES.get(key.curve.name, hashes.SHA256)()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, payload)
        else:
            return _verify_rsa(key, payload, signature)
    except InvalidSignature:
        return False
    return True


def _verify_rsa(key: rsa.RSAPublicKey, payload: bytes, signature: bytes) -> bool:
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    for pad in (padding.PKCS1v15(), pss):
        try:
            key.verify(signature, payload, pad, hashes.SHA256())
            return True
        except InvalidSignature:
            continue
    return False


class CryptographyVerifier:
    """A ``SignatureVerifier``: the first key that verifies wins."""

    def __init__(self) -> None:
        self._keys: dict[bytes, PublicKey] = {}
        self._lock = threading.Lock()

    def key(self, pem: bytes) -> PublicKey:
        with self._lock:
            if pem not in self._keys:
                self._keys[pem] = load_key(pem)
            return self._keys[pem]

    def verify(self, payload: bytes, signature: bytes, keys: Sequence[bytes]) -> bool:
        return any(verify_with(self.key(pem), payload, signature) for pem in keys)
