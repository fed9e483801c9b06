"""A fake OCI registry on loopback speaking the distribution API v2 on the wire: manifests (by
tag or digest, with their media type and ``Docker-Content-Digest``), blobs, tags, the OCI 1.1
referrers API (switchable off, to test the tag-schema fallback) and token auth (a 401 with a
``WWW-Authenticate: Bearer`` challenge, a token realm that may require Basic credentials).

It holds only what the tests push: images they build and cosign signatures they make with keys
they generate (``Signer``). ``requests`` counts what it was asked (the cache tests read it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
_ROUTE = re.compile(r"^/v2/(?P<repo>.+)/(?P<kind>manifests|blobs|tags|referrers)/(?P<ref>[^/]+)$")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class FakeRegistry:
    host: str = ""
    token_auth: bool = True
    referrers_api: bool = True
    users: dict[str, str] = field(default_factory=dict)  # token realm's Basic credentials, if any
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    requests: int = 0
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- what tests push --------------------------------------------------------------------------

    def blob(self, data: bytes) -> dict[str, Any]:
        digest = digest_of(data)
        self.blobs[digest] = data
        return {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}

    def put_manifest(self, repo: str, body: bytes, media_type: str = OCI_MANIFEST, tag: str | None = None) -> str:
        digest = digest_of(body)
        self.manifests[(repo, digest)] = (media_type, body)
        if tag:
            self.tags[(repo, tag)] = digest
        return digest

    def image(self, repo: str, tag: str, content: bytes | None = None) -> str:
        """A one-layer image (random content unless given); its manifest digest."""
        config = self.blob(json.dumps({"architecture": "amd64", "os": "linux"}).encode())
        layer = self.blob(content or secrets.token_bytes(64))
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {**config, "mediaType": "application/vnd.oci.image.config.v1+json"},
                    "layers": [{**layer, "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}]}  # fmt: skip
        return self.put_manifest(repo, json.dumps(manifest).encode(), tag=tag)

    def signature(
        self, repo: str, digest: str, layers: list[tuple[bytes, bytes]], *, subject: bool = False, tag: bool = True
    ) -> str:
        """cosign's ``sha256-<hex>.sig`` manifest: one simple-signing layer per (payload, signature)."""
        config = self.blob(EMPTY_CONFIG)
        descriptors = [
            {**self.blob(payload), "mediaType": SIMPLE_SIGNING,
             "annotations": {"dev.cosignproject.cosign/signature": base64.b64encode(sig).decode()}}
            for payload, sig in layers
        ]  # fmt: skip
        manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                    "config": {**config, "mediaType": "application/vnd.oci.image.config.v1+json"},
                                    "layers": descriptors}  # fmt: skip
        if subject:
            media, body = self.manifests[(repo, digest)]
            manifest["subject"] = {"mediaType": media, "digest": digest, "size": len(body)}
            manifest["artifactType"] = SIMPLE_SIGNING
        sig_tag = digest.replace(":", "-") + ".sig" if tag else None
        return self.put_manifest(repo, json.dumps(manifest).encode(), tag=sig_tag)

    def attestation(self, repo: str, digest: str, envelopes: list[bytes]) -> str:
        """cosign's ``sha256-<hex>.att`` manifest: one DSSE envelope layer per attestation."""
        config = self.blob(EMPTY_CONFIG)
        layers = [{**self.blob(envelope), "mediaType": DSSE,
                   "annotations": {"predicateType": json.loads(base64.b64decode(json.loads(envelope)["payload"]))
                                   .get("predicateType", "")}} for envelope in envelopes]  # fmt: skip
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {**config, "mediaType": "application/vnd.oci.image.config.v1+json"}, "layers": layers}
        return self.put_manifest(repo, json.dumps(manifest).encode(), tag=digest.replace(":", "-") + ".att")

    def bundle(self, repo: str, digest: str, bundle: bytes, predicate_type: str | None = None,
               media_type: str = BUNDLE) -> str:  # fmt: skip
        """A Sigstore bundle as cosign v3 attaches it (specs/BUNDLE_SPEC.md): an OCI 1.1 artifact
        manifest of the bundle's type, the empty config, the bundle JSON its one layer, the image its
        subject, what it holds in its annotations."""
        config = self.blob(EMPTY_CONFIG)
        layer = {**self.blob(bundle), "mediaType": media_type,
                 "annotations": {"org.opencontainers.image.title": digest_of(bundle).replace(":", "-") + ".sigstore.json"}}
        subject_media, subject_body = self.manifests[(repo, digest)]
        annotations = {"dev.sigstore.bundle.content": "dsse-envelope", "org.opencontainers.image.created": "2026-12-07T23:00:00Z"}
        if predicate_type:
            annotations["dev.sigstore.bundle.predicateType"] = predicate_type
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": media_type,
                    "config": {**config, "mediaType": EMPTY}, "layers": [layer], "annotations": annotations,
                    "subject": {"mediaType": subject_media, "digest": digest, "size": len(subject_body)}}  # fmt: skip
        return self.put_manifest(repo, json.dumps(manifest).encode())

    def referrers_of(self, repo: str, digest: str) -> list[dict[str, Any]]:
        found = []
        for (name, child), (media, body) in self.manifests.items():
            if name != repo:
                continue
            document = json.loads(body) if body.startswith(b"{") else {}
            if (document.get("subject") or {}).get("digest") == digest:
                found.append({"mediaType": media, "digest": child, "size": len(body),
                              "artifactType": document.get("artifactType", "")})  # fmt: skip
                if document.get("annotations"):  # the referrers API carries the manifest's annotations
                    found[-1]["annotations"] = document["annotations"]
        return found

    # --- serving ----------------------------------------------------------------------------------

    def start(self) -> FakeRegistry:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with registry.lock:
                    registry.requests += 1
                registry.handle(self)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlparse(request.path)
        if url.path == "/token":
            return self._token(request, parse_qs(url.query))
        route = _ROUTE.match(url.path)
        if url.path == "/v2/" or route is None:
            return _send(request, 200 if url.path == "/v2/" else 404, b"{}")
        repo, kind, ref = route["repo"], route["kind"], route["ref"]
        if self.token_auth and request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.tokens:
            challenge = (f'Bearer realm="http://{self.host}/token",service="fake-registry",'
                         f'scope="repository:{repo}:pull"')  # fmt: skip
            return _send(request, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge})
        if kind == "manifests":
            digest = ref if ref.startswith("sha256:") else self.tags.get((repo, ref), "")
            found = self.manifests.get((repo, digest))
            if found is None:
                return _send(request, 404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            return _send(request, 200, found[1], {"Content-Type": found[0], "Docker-Content-Digest": digest})
        if kind == "blobs":
            data = self.blobs.get(ref)
            return _send(request, 200 if data is not None else 404, data if data is not None else b"{}")
        if kind == "tags":
            tags = sorted(tag for name, tag in self.tags if name == repo)
            return _send(request, 200, json.dumps({"name": repo, "tags": tags}).encode())
        if not self.referrers_api:
            return _send(request, 404, b"{}")
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.referrers_of(repo, ref)}
        return _send(request, 200, json.dumps(index).encode(), {"Content-Type": OCI_INDEX})

    def _token(self, request: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
        if self.users:
            given = request.headers.get("Authorization", "")
            wanted = {"Basic " + base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in self.users.items()}
            if given not in wanted:
                return _send(request, 401, b'{"errors":[{"code":"DENIED"}]}')
        token = secrets.token_hex(16)
        self.tokens.add(token)
        return _send(request, 200, json.dumps({"token": token, "scope": query.get("scope", [""])[0]}).encode())


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops concurrent connects (a 1 s SYN retry per drop)
    daemon_threads = True


def _send(request: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    request.send_response(status)
    for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
        request.send_header(name, value)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


# --- cosign, as the tests do it: keys they generate, payloads they sign -----------------------------


def simple_signing(registry: str, repo: str, digest: str) -> bytes:
    """cosign's simple-signing payload naming ``digest``."""
    document = {"critical": {"identity": {"docker-reference": f"{registry}/{repo}"},
                             "image": {"docker-manifest-digest": digest},
                             "type": "cosign container image signature"}, "optional": None}  # fmt: skip
    return json.dumps(document).encode()


class Signer:
    """A key pair the tests generate: ``pem`` is the public key a policy trusts."""

    def __init__(self, kind: str = "ecdsa") -> None:
        self.kind = kind
        if kind == "ecdsa":
            self.key: Any = ec.generate_private_key(ec.SECP256R1())
        elif kind == "ed25519":
            self.key = ed25519.Ed25519PrivateKey.generate()
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, payload: bytes) -> bytes:
        if self.kind == "ecdsa":
            return bytes(self.key.sign(payload, ec.ECDSA(hashes.SHA256())))
        if self.kind == "ed25519":
            return bytes(self.key.sign(payload))
        return bytes(self.key.sign(payload, padding.PKCS1v15(), hashes.SHA256()))


def slsa_statement(
    digest: str,
    *,
    version: str = "v1",
    builder: str = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator.yml@refs/tags/v2.0.0",
    source: str = "git+https://github.com/acme/odoo@refs/heads/main",
    name: str = "registry/acme/odoo",
) -> dict[str, Any]:
    """An in-toto statement with SLSA provenance (v0.2 or v1 field layout) about ``digest``."""
    subject = [{"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}]
    if version == "v0.2":
        predicate: dict[str, Any] = {"builder": {"id": builder}, "buildType": "https://github.com/Attestations/GitHubActionsWorkflow@v1",
                                     "invocation": {"configSource": {"uri": source, "entryPoint": "release.yml"}}}  # fmt: skip
        return {"_type": "https://in-toto.io/Statement/v0.1", "subject": subject,
                "predicateType": "https://slsa.dev/provenance/v0.2", "predicate": predicate}  # fmt: skip
    predicate = {"buildDefinition": {"buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                                     "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": source,
                                                                         "path": ".github/workflows/release.yml"}}},
                 "runDetails": {"builder": {"id": builder}}}  # fmt: skip
    return {"_type": "https://in-toto.io/Statement/v1", "subject": subject,
            "predicateType": "https://slsa.dev/provenance/v1", "predicate": predicate}  # fmt: skip


def dsse_envelope(statement: dict[str, Any], signer: Signer) -> bytes:
    """A DSSE envelope whose signature is over the PAE of the statement, as cosign attest makes it."""
    payload = json.dumps(statement).encode()
    kind = IN_TOTO.encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
    signature = base64.b64encode(signer.sign(pae)).decode()
    return json.dumps({"payloadType": IN_TOTO, "payload": base64.b64encode(payload).decode(),
                       "signatures": [{"keyid": "", "sig": signature}]}).encode()  # fmt: skip
