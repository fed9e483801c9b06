"""The ports the orchestrator uses, named by role (STYLE: ports by role, adapters by technology).

``ReleaseStore`` and its ``StoreTransaction`` (implemented by ``store.sql.SqlReleaseStore`` and
``store.memory.InMemoryReleaseStore``), the ``Clock``, the ``FactReader`` family (Git, cluster and
registry readers plug in here), ``GitReader`` and ``ClusterReader`` (``readers.git``,
``readers.kubernetes``) with the errors they translate theirs to, ``RegistryClient`` and
``SignatureVerifier`` (``readers.registry``, ``readers.cosign``), and ``ActionHandler`` (outbox
handlers, one module per kind under ``gatekeeper.actions``). Protocols only: nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gatekeeper.domain.approvals import Approval
from gatekeeper.domain.freezes import Freeze
from gatekeeper.domain.policy import Policy, SignerIdentity
from gatekeeper.domain.records import (
    ActionRecord,
    DecidedRelease,
    DecisionRecord,
    NewAction,
    ReleaseDetail,
    ReleaseRecord,
    ReleaseStatus,
)
from gatekeeper.domain.types import Decision, ReleaseRequest


class Clock(Protocol):
    """The one source of ``now``: the orchestrator asks it, ``decide`` never does."""

    def __call__(self) -> datetime: ...


_USERINFO = re.compile(r"(://)[^/@\s]+@")


class GitReadError(Exception):
    """A repository that could not be read at a revision: names repository, path and revision."""

    def __init__(self, repo: str, path: str, revision: str, message: str) -> None:
        text = f"{repo} at {revision[:40]} ({path or '/'}): {message}"
        super().__init__(_USERINFO.sub(r"\1***@", text))  # a token in a URL never reaches a reason
        self.repo, self.path, self.revision = repo, path, revision


class RevisionNotFoundError(GitReadError):
    """The repository was read, but it has no such revision (not even after a fetch)."""


class UnsupportedManifestsError(Exception):
    """Manifests that would need rendering gatekeeper does not do (Helm, Kustomize patches and
    generators, remote bases): the drift check warns ``drift_unsupported`` instead of guessing."""


class ClusterReadError(Exception):
    """The Kubernetes API could not be read (unreachable, refused, forbidden): names the cluster."""


class GitReader(Protocol):
    """Desired state: the Kubernetes objects in a repository's ``path`` at ``revision``."""

    def manifests(self, repo: str, path: str, revision: str) -> tuple[dict[str, Any], ...]: ...


class ClusterReader(Protocol):
    """Live state: objects of one cluster (a kubeconfig context; None: the current one)."""

    def list(self, cluster: str | None, api_version: str, kind: str, namespace: str | None) -> list[dict[str, Any]]: ...

    def get(
        self, cluster: str | None, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None: ...


class RegistryError(Exception):
    """A registry could not be read (unreachable, 5xx, refused credentials): fail closed, retried."""


class RegistryNotFoundError(RegistryError):
    """The registry answered 404 for the manifest, tag or blob."""


class RegistryContentError(RegistryError):
    """The registry answered, with content that is not what the API says (not JSON, an unknown
    media type, bytes whose digest is not the one asked for): never retried."""


@dataclass(frozen=True, slots=True)
class RegistryManifest:
    """A manifest as the registry served it: media type, the sha256 digest of its bytes, and the
    parsed JSON (an OCI image index or manifest, or a Docker v2 manifest or list)."""

    media_type: str
    digest: str
    body: dict[str, Any]


class RegistryClient(Protocol):
    """The distribution API v2 (``readers.registry``): manifests by tag or digest, blobs, and the
    OCI 1.1 referrers of a digest (with the ``sha256-<hex>`` tag-schema fallback)."""

    def manifest(self, registry: str, repository: str, reference: str) -> RegistryManifest: ...

    def blob(self, registry: str, repository: str, digest: str) -> bytes: ...

    def tags(self, registry: str, repository: str) -> list[str]: ...

    def referrers(self, registry: str, repository: str, digest: str) -> list[dict[str, Any]]: ...


class InvalidKeyError(Exception):
    """A public key (PEM) that cannot be loaded, or of a kind that is not supported."""


class SignatureVerifier(Protocol):
    """Whether ``signature`` (raw bytes) over ``payload`` verifies with one of ``keys`` (PEM)."""

    def verify(self, payload: bytes, signature: bytes, keys: Sequence[bytes]) -> bool: ...


class BundleError(Exception):
    """A Sigstore bundle that does not verify (malformed, a certificate from no trusted CA, a bad
    SCT, log entry or signature): the message says which, never the whole bundle."""


class IdentityNotAllowedError(BundleError):
    """A bundle that verifies against the trusted root, signed by an identity the policy does not allow."""

    def __init__(self, found: str, allowed: Sequence[SignerIdentity]) -> None:
        self.found = found
        super().__init__(f"signed by {found}, which matches none of the allowed identities "
                         f"({'; '.join(str(item) for item in allowed)})")  # fmt: skip


class TrustedRootMissingError(BundleError):
    """Keyless verification asked for and no trusted root configured (``SIGSTORE_TRUSTED_ROOT``)."""


@dataclass(frozen=True, slots=True)
class VerifiedEnvelope:
    """The DSSE payload of a bundle that verified, and who signed it (``subject (issuer ...)``)."""

    payload_type: str
    payload: bytes
    signer: str


class BundleVerifier(Protocol):
    """Keyless Sigstore bundles (``readers.sigstore``): a bundle's Fulcio certificate chains to the
    trusted root at the time its transparency log entry proves, its SCT and log entry verify, its
    identity is one of ``identities``, and its DSSE signature verifies. ``fingerprint`` names the
    trusted root (cache keys carry it)."""

    fingerprint: str

    def verify_dsse(self, bundle: bytes, identities: Sequence[SignerIdentity]) -> VerifiedEnvelope: ...


class FactReader(Protocol):
    """One source of facts (Git, a cluster, a registry), read before any transaction.

    ``read`` may block on the network; the orchestrator gives it ``FACT_TIMEOUT`` and turns a
    timeout or an exception into a fail-closed reason naming ``name``. A reader may also have
    ``needed(policies) -> bool``: then it runs only for the policies it says it is needed for.
    """

    name: str

    def read(self, request: ReleaseRequest, policies: Sequence[Policy], now: datetime) -> object: ...


@dataclass(frozen=True, slots=True)
class People:
    """Who touched a revision: the logins of its author and merger (for messages), and every
    identity any Git event named for it (casefolded; four eyes compares these)."""

    author: str | None = None
    merger: str | None = None
    touched: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A delivery's answer as stored (a redelivery gets it back)."""

    status: int
    body: dict[str, Any]


class StoreTransaction(Protocol):
    """What one short transaction may do. Nothing in it does network I/O."""

    def find_release(self, target: str, revision: str, *, lock: bool) -> ReleaseRecord | None: ...

    def release_by_id(self, release_id: int, *, lock: bool) -> ReleaseRecord | None: ...

    def lock_target(self, target: str) -> None: ...

    def create_release(
        self,
        target: str,
        revision: str,
        trigger: str,
        context: dict[str, Any],
        now: datetime,
        *,
        status: ReleaseStatus = ReleaseStatus.PENDING,
        not_before: datetime | None = None,
    ) -> ReleaseRecord: ...

    def supersede_open(self, target: str, keep_id: int, now: datetime) -> int: ...

    def add_context(self, release: ReleaseRecord, context: dict[str, Any]) -> ReleaseRecord:
        """The release's context with ``context``'s keys added (the caller holds its lock)."""
        ...

    # Set-based, for a push announcing many releases in one transaction (GateService.announce_in).
    def find_releases(self, targets: Sequence[str], revision: str, *, lock: bool) -> dict[str, ReleaseRecord]: ...

    def lock_targets(self, targets: Sequence[str]) -> None: ...

    def create_decided(
        self, items: Sequence[DecidedRelease], now: datetime
    ) -> list[tuple[ReleaseRecord, DecisionRecord]]: ...

    def append_audits(
        self, kind: str, entries: Sequence[tuple[str, str | None, dict[str, Any], bool]], now: datetime
    ) -> None: ...

    def set_status(self, release: ReleaseRecord, status: ReleaseStatus, now: datetime) -> ReleaseRecord: ...

    def set_not_before(self, release: ReleaseRecord, not_before: datetime | None) -> ReleaseRecord: ...

    def add_decision(
        self, release: ReleaseRecord, decision: Decision, trigger: str, status: ReleaseStatus, now: datetime
    ) -> DecisionRecord: ...

    def latest_decision(self, release_id: int) -> DecisionRecord | None: ...

    def approvals_of(self, release_id: int) -> tuple[Approval, ...]: ...

    def add_approval(self, release_id: int, approval: Approval, now: datetime) -> None: ...

    def people_of(self, sha: str) -> People: ...

    def record_commit(
        self, sha: str, author: str | None, merger: str | None, identities: Iterable[str], now: datetime
    ) -> None: ...

    def append_audit(
        self,
        kind: str,
        actor: str,
        subject: str | None,
        data: dict[str, Any],
        now: datetime,
        *,
        break_glass: bool = False,
    ) -> None: ...

    def enqueue(self, action: NewAction, now: datetime) -> bool: ...

    def wake_actions(self, release_id: int, now: datetime) -> int: ...

    def claim_delivery(self, source: str, delivery_id: str, now: datetime) -> StoredAnswer | None: ...

    def answer_delivery(self, source: str, delivery_id: str, answer: StoredAnswer) -> None: ...

    def add_freeze(
        self,
        targets: tuple[str, ...],
        start: datetime,
        end: datetime | None,
        reason: str,
        code: str,
        created_by: str,
        now: datetime,
    ) -> Freeze: ...

    def freeze_by_id(self, freeze_id: int, *, lock: bool) -> Freeze | None: ...

    def lift_freeze(self, freeze: Freeze, who: str, reason: str, now: datetime) -> Freeze: ...


class ReleaseStore(Protocol):
    """Releases, decisions, approvals, deliveries, freezes, audit and the outbox."""

    def transaction(self) -> AbstractContextManager[StoreTransaction]: ...

    def release(self, release_id: int) -> ReleaseDetail | None: ...

    def releases(
        self, *, status: str | None, target: str | None, before_id: int | None, limit: int
    ) -> tuple[list[ReleaseDetail], int | None]: ...

    def due_releases(self, now: datetime, limit: int, *, also: Sequence[str] = ()) -> list[ReleaseRecord]: ...

    def verification_due(self, now: datetime, limit: int) -> list[ReleaseRecord]: ...

    def open_releases(self, limit: int, target: str | None = None) -> list[ReleaseRecord]: ...

    def newest_releases(self, prefix: str, limit: int) -> list[ReleaseRecord]: ...

    def freezes(
        self, *, ending_after: datetime | None, before_id: int | None = None, limit: int | None = None
    ) -> list[Freeze]: ...

    def claim_actions(self, now: datetime, owner: str, lease_seconds: float, limit: int) -> list[ActionRecord]: ...

    def finish_action(self, action_id: int, owner: str, now: datetime, result: str) -> None: ...

    def retry_action(
        self, action_id: int, owner: str, now: datetime, at: datetime, error: str | None, *, failed: bool = False
    ) -> None: ...

    def actions(
        self, *, status: str | None, before_id: int | None, limit: int, release_id: int | None = None
    ) -> list[ActionRecord]: ...

    def action_counts(self) -> dict[str, int]: ...

    def chain_audit(self, batch: int = 50, *, wait: bool = True) -> int: ...

    def audit_records(self, *, after: int, limit: int | None) -> list[dict[str, Any]]: ...

    def audit_head(self, *, chain: bool = True) -> tuple[int, str]: ...

    def decision_ids(self) -> list[int]: ...

    def prune_deliveries(self, older_than: datetime) -> int: ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


class ActionHandler(Protocol):
    """Carries out one kind of outbox action, idempotently (DESIGN §8).

    Returns a short result to record, or raises ``ActionFailedError`` (retried with backoff) or
    ``ActionWaitError`` (not due yet: tried again at its ``until``, not counted as a failure).
    """

    kind: str

    def run(self, action: ActionRecord, release: ReleaseDetail | None) -> str: ...
