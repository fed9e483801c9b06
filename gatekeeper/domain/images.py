"""Images: which container images a target's manifests run, and their references parsed the way
the distribution reference grammar (``distribution/reference``) parses them. Pure.

A reference is ``[registry/]repository[:tag][@algorithm:hex]``. The first path component is a
registry when it has a ``.`` or a ``:`` or is ``localhost``; otherwise the image is on Docker Hub
(``docker.io``), whose one-component names live under ``library/``. Images come from every pod
template: Pods, Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs (and any other
object with a ``spec.template.spec``), their containers, init and ephemeral containers. Nothing
here speaks to a registry.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NewType

Digest = NewType("Digest", str)

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN = re.compile(
    r"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_SHA256 = re.compile(r"^sha256:[a-f0-9]{64}$")
MAX_REFERENCE = 255 + 128 + 80  # name, tag and digest at their longest


class InvalidReferenceError(ValueError):
    """The string is not an image reference (the message says why)."""


@dataclass(frozen=True, slots=True, order=True)
class ImageRef:
    """A parsed reference: ``registry`` (``docker.io`` for Docker Hub), ``repository`` (with
    ``library/`` added for Docker Hub's official images), and a ``tag`` and/or ``digest``."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        if not text or len(text) > MAX_REFERENCE or text != text.strip():
            raise InvalidReferenceError(f"{text[:80]!r} is not an image reference")
        rest, _, digest = text.partition("@")
        if digest and not _DIGEST.match(digest):
            raise InvalidReferenceError(f"{text!r}: digest {digest!r} is not algorithm:hex")
        if digest.startswith("sha256:") and not _SHA256.match(digest):
            raise InvalidReferenceError(f"{text!r}: a sha256 digest has 64 lowercase hex digits")
        name, tag = rest, None
        last = rest.rsplit("/", 1)[-1]
        if ":" in last:
            name, _, tag = rest.rpartition(":")
            if not _TAG.match(tag):
                raise InvalidReferenceError(f"{text!r}: tag {tag!r} is not a valid tag")
        registry, repository = _split_domain(name)
        if not _REPOSITORY.match(repository):
            raise InvalidReferenceError(f"{text!r}: repository {repository!r} is not a valid name")
        return cls(registry, repository, tag, Digest(digest) if digest else None)

    @property
    def name(self) -> str:
        """``registry/repository``, what ``allowedRegistries`` globs are matched against."""
        return f"{self.registry}/{self.repository}"

    @property
    def pinned(self) -> bool:
        return self.digest is not None

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, remainder = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.match(first):
            raise InvalidReferenceError(f"{name!r}: registry {first!r} is not a host[:port]")
        registry = DOCKER_HUB if first in DOCKER_HUB_ALIASES else first
        repository = remainder
    else:
        registry, repository = DOCKER_HUB, name
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return registry, repository


@dataclass(frozen=True, slots=True, order=True)
class ImageUse:
    """One container's image as written, and where: ``Deployment odoo/web, container web``."""

    image: str
    where: str


def pod_spec(manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec a manifest runs (None: it runs no pods)."""
    kind = manifest.get("kind")
    spec = manifest.get("spec")
    if not isinstance(spec, Mapping):
        return None
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") if isinstance(spec, Mapping) else None
    inner = template.get("spec") if isinstance(template, Mapping) else None
    return inner if isinstance(inner, Mapping) else None


def images_of(manifests: Sequence[Mapping[str, Any]]) -> tuple[ImageUse, ...]:
    """Every container image the manifests run, in manifest order."""
    return tuple(use for manifest in manifests for use in _uses(manifest))


def _uses(manifest: Mapping[str, Any]) -> Iterator[ImageUse]:
    spec = pod_spec(manifest)
    if spec is None:
        return
    metadata = manifest.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = f"{namespace}/{metadata.get('name')}" if namespace else str(metadata.get("name"))
    for field in CONTAINER_FIELDS:
        for container in spec.get(field) or ():
            if isinstance(container, Mapping) and container.get("image") is not None:
                label = {"initContainers": "init container ", "ephemeralContainers": "ephemeral container "}
                where = f"{manifest.get('kind')} {name}, {label.get(field, 'container ')}{container.get('name')}"
                yield ImageUse(str(container["image"]), where)
