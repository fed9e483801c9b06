"""``Pygit2GitReader``: desired state from Git, read from a bare mirror without a checkout.

One bare mirror per repository under ``GIT_CACHE_DIR``, fetched incrementally: only when the
revision asked for is not there yet (a commit never changes) or is a branch or tag name. Credentials
come from settings (``GIT_TOKEN`` for https, ``GIT_SSH_KEY_FILE`` for ssh). What is read: plain YAML
or JSON directories (recursively, multi-document files, ``kind: List``) and ``kustomization.yaml``
``resources`` lists (recursively, with ``namespace``). What would need rendering (Helm charts,
Kustomize patches, generators, transformers, remote bases) raises ``UnsupportedManifestsError``.
No pygit2 or YAML error escapes: they become ``GitReadError`` naming repository, path and revision.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pygit2
import yaml

from gatekeeper.domain.drift import CLUSTER_SCOPED
from gatekeeper.ports import GitReadError, RevisionNotFoundError, UnsupportedManifestsError

logger = logging.getLogger(__name__)

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# The kustomization fields that only list or place objects; every other field transforms them.
PLAIN_KUSTOMIZATION = frozenset({"apiVersion", "kind", "metadata", "resources", "bases", "namespace"})
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
MAX_DEPTH = 16
CACHED_TREES = 64


# libyaml's parser where PyYAML has it (eight times faster on large trees), safe constructors.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """YAML as Kubernetes reads it into JSON: timestamps stay strings."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class Pygit2GitReader:
    def __init__(self, cache_dir: Path, *, token: str | None = None, ssh_key_file: Path | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.token = token
        self.ssh_key_file = ssh_key_file
        self.fetches = 0  # for the bench and the tests: how often a remote was asked
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._trees: OrderedDict[tuple[str, str, str], tuple[dict[str, Any], ...]] = OrderedDict()

    def manifests(self, repo: str, path: str, revision: str) -> tuple[dict[str, Any], ...]:
        """The objects in ``path`` at ``revision`` (a commit SHA, branch or tag)."""
        path = posixpath.normpath(path.strip("/")) if path.strip("/") else ""
        path = "" if path == "." else path
        with self._lock(repo):
            mirror = self._mirror(repo, path, revision)
            commit = self._commit(mirror, repo, path, revision)
            key = (repo, str(commit.id), path)
            if key in self._trees:
                self._trees.move_to_end(key)
                return self._trees[key]
            objects = tuple(_Render(mirror, repo, revision, commit.tree).at(path, 0))
            self._trees[key] = objects
            if len(self._trees) > CACHED_TREES:
                self._trees.popitem(last=False)
            return objects

    def _lock(self, repo: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(repo, threading.Lock())

    def _mirror(self, repo: str, path: str, revision: str) -> pygit2.Repository:
        folder = self.cache_dir / (hashlib.sha256(repo.encode()).hexdigest()[:24] + ".git")
        try:
            if (folder / "HEAD").exists():
                return pygit2.Repository(str(folder))
            folder.parent.mkdir(parents=True, exist_ok=True)
            mirror = pygit2.init_repository(str(folder), bare=True)
            mirror.remotes.create("origin", repo, "+refs/heads/*:refs/heads/*")
            mirror.remotes.add_fetch("origin", "+refs/tags/*:refs/tags/*")
            return pygit2.Repository(str(folder))
        except (pygit2.GitError, OSError) as exc:
            raise GitReadError(repo, path, revision, f"mirror {folder} could not be opened: {exc}") from exc

    def _commit(self, mirror: pygit2.Repository, repo: str, path: str, revision: str) -> pygit2.Commit:
        if _SHA.match(revision):
            found = _resolve(mirror, revision)
            if found is not None:
                return found
        self._fetch(mirror, repo, path, revision)
        found = _resolve(mirror, revision)
        if found is None:
            raise RevisionNotFoundError(repo, path, revision, f"revision {revision} is not in the repository")
        return found

    def _fetch(self, mirror: pygit2.Repository, repo: str, path: str, revision: str) -> None:
        self.fetches += 1
        try:
            mirror.remotes["origin"].fetch(
                callbacks=_Credentials(self.token, self.ssh_key_file), prune=pygit2.enums.FetchPrune.PRUNE
            )
        except (pygit2.GitError, KeyError, ValueError) as exc:
            raise GitReadError(repo, path, revision, f"fetch failed: {str(exc)[:200]}") from exc


class _Credentials(pygit2.RemoteCallbacks):
    def __init__(self, token: str | None, ssh_key_file: Path | None) -> None:
        super().__init__()
        self._token = token
        self._ssh_key_file = ssh_key_file
        self._asked = 0

    def credentials(self, url: str, username_from_url: str | None, allowed_types: int) -> Any:
        self._asked += 1
        if self._asked > 1:  # libgit2 asks again after a refusal: fail instead of looping
            raise pygit2.GitError(f"credentials for {url} were refused")
        if allowed_types & pygit2.enums.CredentialType.SSH_KEY and self._ssh_key_file is not None:
            return pygit2.Keypair(username_from_url or "git", None, str(self._ssh_key_file), "")
        if allowed_types & pygit2.enums.CredentialType.USERPASS_PLAINTEXT and self._token is not None:
            return pygit2.UserPass(username_from_url or "x-access-token", self._token)
        raise pygit2.GitError(f"{url} asks for credentials and none are configured (GIT_TOKEN, GIT_SSH_KEY_FILE)")


def _resolve(mirror: pygit2.Repository, revision: str) -> pygit2.Commit | None:
    candidates = [revision] if _SHA.match(revision) else [f"refs/heads/{revision}", f"refs/tags/{revision}", revision]
    for candidate in candidates:
        try:
            found = mirror.revparse_single(candidate)
            return found.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            continue
    return None


class _Render:
    """The objects of a directory tree, as a GitOps controller would apply them unrendered."""

    def __init__(self, mirror: pygit2.Repository, repo: str, revision: str, root: pygit2.Tree) -> None:
        self.mirror, self.repo, self.revision, self.root = mirror, repo, revision, root

    def error(self, path: str, message: str) -> GitReadError:
        return GitReadError(self.repo, path, self.revision, message)

    def at(self, path: str, depth: int) -> list[dict[str, Any]]:
        if not path:
            return self.directory(self.root, "", depth)
        try:
            entry = self.root[path]
        except KeyError:
            raise self.error(path, f"path {path} does not exist at this revision") from None
        node = self.mirror[entry.id]
        if isinstance(node, pygit2.Tree):
            return self.directory(node, path, depth)
        return self.file(node, path)

    def directory(self, tree: pygit2.Tree, path: str, depth: int) -> list[dict[str, Any]]:
        if depth > MAX_DEPTH:
            raise self.error(path, f"directories nest deeper than {MAX_DEPTH} levels (a kustomization cycle?)")
        names = {str(entry.name): entry for entry in tree}
        if "Chart.yaml" in names:
            raise UnsupportedManifestsError(f"{path or '/'} is a Helm chart (charts are not rendered)")
        for name in KUSTOMIZATION_FILES:
            if name in names:
                return self.kustomization(tree, path, name, depth)
        found: list[dict[str, Any]] = []
        for name in sorted(names):
            node = self.mirror[names[name].id]
            child = posixpath.join(path, name)
            if isinstance(node, pygit2.Tree):
                found.extend(self.directory(node, child, depth + 1))
            elif name.endswith(MANIFEST_SUFFIXES):
                found.extend(self.file(node, child))
        return found

    def kustomization(self, tree: pygit2.Tree, path: str, name: str, depth: int) -> list[dict[str, Any]]:
        file = posixpath.join(path, name)
        documents = self.documents(self.mirror[tree[name].id], file)
        spec = documents[0] if documents and isinstance(documents[0], dict) else {}
        rendering = sorted(set(spec) - PLAIN_KUSTOMIZATION)
        if rendering:
            raise UnsupportedManifestsError(f"{file} sets {', '.join(rendering)} (Kustomize rendering is not done)")
        found: list[dict[str, Any]] = []
        for resource in [*(spec.get("resources") or []), *(spec.get("bases") or [])]:
            found.extend(self.resource(path, str(resource), depth))
        namespace = spec.get("namespace")
        if namespace:
            for manifest in found:
                if manifest.get("kind") not in CLUSTER_SCOPED:
                    manifest.setdefault("metadata", {})["namespace"] = str(namespace)
        return found

    def resource(self, base: str, resource: str, depth: int) -> list[dict[str, Any]]:
        if "://" in resource or resource.startswith(("github.com/", "git@")) or "?ref=" in resource:
            raise UnsupportedManifestsError(f"{base or '/'}: remote resource {resource} is not fetched")
        target = posixpath.normpath(posixpath.join(base, resource))
        if target.startswith("../") or target == "..":
            raise UnsupportedManifestsError(f"{base or '/'}: resource {resource} lies outside the repository")
        return self.at(target, depth + 1)

    def file(self, blob: pygit2.Object, path: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for document in self.documents(blob, path):
            if not isinstance(document, dict):
                continue
            if document.get("kind") == "List" and isinstance(document.get("items"), list):
                found.extend(item for item in document["items"] if _is_object(item))
            elif _is_object(document):
                found.append(document)
        return found

    def documents(self, blob: pygit2.Object, path: str) -> list[Any]:
        if not isinstance(blob, pygit2.Blob):
            raise self.error(path, f"{path} is not a file")
        try:
            return [document for document in yaml.load_all(blob.data, Loader=_Loader) if document is not None]
        except yaml.YAMLError as exc:
            raise self.error(path, f"{path} is not valid YAML: {str(exc)[:200]}") from exc


def _is_object(document: Any) -> bool:
    return isinstance(document, dict) and bool(document.get("apiVersion")) and bool(document.get("kind"))
