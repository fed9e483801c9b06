"""The registry reader: the distribution API v2 over httpx (the only module that speaks to a
registry).

Manifests by tag or digest (OCI image index and manifest, Docker v2 manifest and list), blobs,
tags, and the OCI 1.1 referrers API with the tag-schema fallback (the ``sha256-<hex>`` tag holding
an index of referrers). Bytes fetched by digest are checked against it. Authentication: a
``WWW-Authenticate`` challenge (Bearer: a token from the realm, asked with the Docker
``config.json`` credentials of that registry where there are any; Basic: those credentials).
Loopback registries and those in ``INSECURE_REGISTRIES`` are spoken to over plain HTTP, the rest
over HTTPS. httpx errors never leave: they become ``RegistryError`` and its subclasses.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from gatekeeper.ports import RegistryContentError, RegistryError, RegistryManifest, RegistryNotFoundError

logger = logging.getLogger(__name__)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)
MAX_MANIFEST = 4 * 1024 * 1024  # the distribution spec's suggested manifest limit
MAX_BLOB = 4 * 1024 * 1024  # payloads and attestations are small; images' layers are never fetched
DOCKER_HUB_API = "registry-1.docker.io"
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")

Credentials = tuple[str, SecretStr]


def docker_credentials(path: Path | None) -> dict[str, Credentials]:
    """Registry host -> (username, password) from a Docker ``config.json`` (``auths``: ``auth``
    base64 ``user:password``, or ``username``/``password``; keys may be URLs)."""
    if path is None:
        return {}
    document = json.loads(path.read_text())
    found: dict[str, Credentials] = {}
    for key, entry in (document.get("auths") or {}).items():
        host = re.sub(r"^https?://", "", str(key)).split("/", 1)[0]
        host = "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host
        if entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        else:
            user, password = str(entry.get("username", "")), str(entry.get("password", ""))
        if user or password:
            found[host] = (user, SecretStr(password))
    return found


def loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpRegistryClient:
    """A ``RegistryClient`` for any number of registries; tokens are kept per (registry, scope).

    ``requests`` counts the HTTP requests made (the bench and the cache tests read it)."""

    def __init__(
        self,
        *,
        credentials: Mapping[str, Credentials] | None = None,
        insecure: Sequence[str] = (),
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.credentials = dict(credentials or {})
        self.insecure = frozenset(insecure)
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=True)
        self._tokens: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self.requests = 0

    def close(self) -> None:
        self._http.close()

    # --- the API --------------------------------------------------------------------------------

    def manifest(self, registry: str, repository: str, reference: str) -> RegistryManifest:
        response = self._get(registry, repository, f"manifests/{reference}", {"Accept": ", ".join(MANIFEST_TYPES)})
        body = self._bounded(response, MAX_MANIFEST, f"manifest {registry}/{repository}@{reference}")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        where = f"manifest {registry}/{repository}@{reference}"
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryContentError(f"{where}: its bytes have digest {digest}, not the one asked for")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise RegistryContentError(f"{where} is not JSON ({exc})") from exc
        if not isinstance(document, dict):
            raise RegistryContentError(f"{where} is not a JSON object")
        media_type = str(document.get("mediaType") or response.headers.get("content-type", "").split(";")[0])
        if media_type not in MANIFEST_TYPES:
            raise RegistryContentError(f"{where} has media type {media_type[:80]!r} (expected one of {MANIFEST_TYPES})")
        return RegistryManifest(media_type, digest, document)

    def blob(self, registry: str, repository: str, digest: str) -> bytes:
        if not _DIGEST.match(digest):
            raise RegistryContentError(f"blob {digest[:80]!r} of {registry}/{repository} is not a sha256 digest")
        response = self._get(registry, repository, f"blobs/{digest}", {})
        body = self._bounded(response, MAX_BLOB, f"blob {registry}/{repository}@{digest}")
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise RegistryContentError(f"blob {registry}/{repository}@{digest}: its bytes have another digest")
        return body

    def tags(self, registry: str, repository: str) -> list[str]:
        response = self._get(registry, repository, "tags/list", {})
        try:
            return [str(tag) for tag in response.json().get("tags") or []]
        except (ValueError, AttributeError) as exc:
            raise RegistryContentError(f"tags of {registry}/{repository} are not a JSON tag list") from exc

    def referrers(self, registry: str, repository: str, digest: str) -> list[dict[str, Any]]:
        """The descriptors that name ``digest`` as their subject: the referrers API, else the
        ``sha256-<hex>`` tag (an index the pushing client keeps), else none."""
        try:
            response = self._get(registry, repository, f"referrers/{digest}", {"Accept": OCI_INDEX})
            document = response.json()
        except RegistryNotFoundError:
            try:
                document = self.manifest(registry, repository, digest.replace(":", "-")).body
            except RegistryNotFoundError:
                return []
        except ValueError as exc:
            raise RegistryContentError(f"referrers of {registry}/{repository}@{digest} are not JSON") from exc
        manifests = document.get("manifests") if isinstance(document, dict) else None
        if not isinstance(manifests, list):
            raise RegistryContentError(f"referrers of {registry}/{repository}@{digest} are not an image index")
        return [item for item in manifests if isinstance(item, dict)]

    # --- HTTP -------------------------------------------------------------------------------------

    def base(self, registry: str) -> str:
        host = DOCKER_HUB_API if registry == "docker.io" else registry
        scheme = "http" if loopback(registry) or registry in self.insecure else "https"
        return f"{scheme}://{host}"

    def _get(self, registry: str, repository: str, path: str, headers: dict[str, str]) -> httpx.Response:
        url = f"{self.base(registry)}/v2/{repository}/{path}"
        scope = f"repository:{repository}:pull"
        response = self._send(url, {**headers, **self._auth_header(registry, scope)}, registry)
        if response.status_code == 401:
            auth = self._answer(registry, scope, response.headers.get("www-authenticate", ""))
            response = self._send(url, {**headers, **auth}, registry)
        if response.status_code == 404:
            raise RegistryNotFoundError(f"{registry}/{repository}: {path} not found")
        if response.status_code != 200:
            raise RegistryError(f"{registry} answered {response.status_code} for {repository}/{path}: "
                                f"{response.text[:200]!r}")  # fmt: skip
        return response

    def _send(self, url: str, headers: dict[str, str], registry: str) -> httpx.Response:
        with self._lock:
            self.requests += 1
        try:
            return self._http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryError(f"registry {registry} could not be reached: {type(exc).__name__}: {exc}") from exc

    def _auth_header(self, registry: str, scope: str) -> dict[str, str]:
        token = self._tokens.get((registry, scope))
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _answer(self, registry: str, scope: str, challenge: str) -> dict[str, str]:
        """The header that answers a 401's ``WWW-Authenticate`` challenge."""
        scheme, _, rest = challenge.partition(" ")
        credentials = self.credentials.get(registry)
        basic = httpx.BasicAuth(credentials[0], credentials[1].get_secret_value()) if credentials else None
        if scheme.lower() == "basic":
            if credentials is None:
                raise RegistryError(f"registry {registry} asks for credentials and REGISTRY_AUTH_FILE has none")
            raw = f"{credentials[0]}:{credentials[1].get_secret_value()}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if scheme.lower() != "bearer":
            raise RegistryError(f"registry {registry} answered 401 with challenge {challenge[:80]!r}")
        params = dict(_CHALLENGE.findall(rest))
        realm = params.pop("realm", "")
        if not realm:
            raise RegistryError(f"registry {registry}: a Bearer challenge without a realm")
        query = {"service": params.get("service", registry), "scope": params.get("scope", scope)}
        try:
            response = self._http.get(realm, params=query, auth=basic) if basic else self._http.get(realm, params=query)
        except httpx.HTTPError as exc:
            raise RegistryError(f"token service of {registry} could not be reached: {exc}") from exc
        finally:
            with self._lock:
                self.requests += 1
        if response.status_code != 200:
            raise RegistryError(f"token service of {registry} answered {response.status_code}")
        try:
            document = response.json()
            token = str(document.get("token") or document.get("access_token") or "")
        except (ValueError, AttributeError) as exc:
            raise RegistryError(f"token service of {registry} did not answer JSON") from exc
        if not token:
            raise RegistryError(f"token service of {registry} gave no token")
        self._tokens[(registry, scope)] = token
        return {"Authorization": f"Bearer {token}"}

    @staticmethod
    def _bounded(response: httpx.Response, limit: int, what: str) -> bytes:
        body = response.content
        if len(body) > limit:
            raise RegistryContentError(f"{what} is larger than {limit} bytes")
        return body
